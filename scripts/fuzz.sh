#!/usr/bin/env bash
# Fuzzes every inbound parser for a bounded time (issue #11), prints the
# executions per target and writes the figures to FUZZING.md. Not part of
# the test command (scripts/test.sh): it needs the nightly toolchain, and the
# first instrumented build takes several minutes on two cores (later runs
# reuse fuzz/target).
#
#   scripts/fuzz.sh            60 s per target, every target
#   scripts/fuzz.sh 300        300 s per target
#   FUZZ_TARGETS="form cursor" scripts/fuzz.sh 30   only these targets
#   FUZZ_CMIN=0 scripts/fuzz.sh   keep the grown corpus unminimised
#
# The corpus lives in fuzz/corpus/<target>/ and is kept in git: each run
# starts from it, adds what reaches new code, and (unless FUZZ_CMIN=0) is
# minimised again with `cargo fuzz cmin`. A crash, timeout or out-of-memory
# input fails the script; the input is left under fuzz/artifacts/<target>/
# and its path is printed. Make it a unit test next to the parser, fix the
# parser, and reproduce with `cargo +nightly fuzz run <target> <path>`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
[[ $seconds =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || { echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2; exit 2; }
out=$root/FUZZING.md
# The instrumented build has its own target dir (fuzz/target): its flags
# differ from the normal build's, so sharing one would rebuild both.
unset CARGO_TARGET_DIR
# No sanitizer: the crate has no unsafe code, and without ASan the fuzzer
# runs about twice as many inputs. Debug assertions and overflow checks stay
# on (cargo fuzz's default), so an arithmetic overflow is a crash.
build_flags=(--sanitizer none)
# A slow input is a finding too (a request could pin a core): 10 s each.
fuzz_flags=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)

rustup toolchain list | grep -q '^nightly' || { echo "the nightly toolchain is missing: rustup toolchain install nightly" >&2; exit 1; }
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "==> building every fuzz target (instrumented, release, debug assertions)"
cargo +nightly fuzz build "${build_flags[@]}"
targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
when=$(date -u +"%Y-%m-%d %H:%M UTC")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
rows=""
failed=()
thousands() { echo "$1" | sed -e ':a' -e 's/\B[0-9]\{3\}\>/,&/' -e 'ta'; }
total_seconds=0
total_execs=0
for target in $targets; do
  echo "==> $target: ${seconds}s"
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  log=$work/$target.log
  status=0
  cargo +nightly fuzz run "${build_flags[@]}" "$target" "$corpus" -- "${fuzz_flags[@]}" >"$log" 2>&1 || status=$?
  execs=$(awk '/^stat::number_of_executed_units:/ {print $NF}' "$log")
  rate=$(awk '/^stat::average_exec_per_sec:/ {print $NF}' "$log")
  # libFuzzer prints no final stats when it dies on a crash; count what it reached.
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  execs=${execs:-0}
  rate=${rate:-0}
  crashes=0
  if [ "$status" -ne 0 ]; then
    crashes=1
    artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | cut -d' ' -f5)
    tail -40 "$log"
    echo "!! $target failed (exit $status); input: ${artifact:-none written, see the log above}" >&2
    failed+=("$target: ${artifact:-exit $status}")
  elif [ "${FUZZ_CMIN:-1}" = 1 ]; then
    # Edges only (no hit-count buckets), chosen by greedy set cover: the
    # same code covered by under half the files of a plain cmin.
    cargo +nightly fuzz cmin "${build_flags[@]}" "$target" "$corpus" -- -use_counters=0 -set_cover_merge=1 >"$work/$target.cmin.log" 2>&1 ||
      { tail -20 "$work/$target.cmin.log"; echo "!! cmin of $target failed" >&2; failed+=("$target: cmin"); }
  fi
  files=$(find "$corpus" -type f | wc -l)
  bytes=$(du -sb "$corpus" | cut -f1)
  echo "   $target: $execs executions, $rate /s, corpus $files files ($bytes bytes), crashes $crashes"
  rows+="| \`$target\` | $seconds | $(thousands "$execs") | $(thousands "$rate") | $files | $crashes |"$'\n'
  total_seconds=$((total_seconds + seconds))
  total_execs=$((total_execs + execs))
done

cores=$(nproc)
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
cat >"$out" <<EOF
# Fuzzing

Written by \`scripts/fuzz.sh $seconds\` on $when. Every figure below was measured
in that run on this machine; rerun the script to refresh them.

- Machine: $cores cores ($cpu), $(uname -sm); load average (1, 5, 15 min) at
  the start: $load_start, at the end: $(cut -d' ' -f1-3 /proc/loadavg). The machine
  is shared, so executions per second vary from run to run.
- Toolchain: $(rustc +nightly --version), $(cargo +nightly fuzz --version)
- Build: libFuzzer, release with debug assertions and overflow checks, no
  sanitizer (the crate has no \`unsafe\`). One target at a time, one process.
- Per input: at most 10 s (a slower input counts as a crash).
- Corpus: \`fuzz/corpus/<target>/\`, seeded from \`tests/fixtures/crm/\` and the
  README's examples, grown by the runs and minimised with \`cargo fuzz cmin\`
  (every covered edge kept, hit counts not).

Total: $(thousands "$total_seconds") s of fuzzing, $(thousands "$total_execs") executions, ${#failed[@]} target(s) with a crash.

| target | seconds | executions | executions/s | corpus files | crashes |
|---|---|---|---|---|---|
$rows
What each target feeds (see \`fuzz/fuzz_targets/\`):

- \`generic\`, \`hubspot\`, \`highlevel\`, \`activecampaign\`, \`bitrix24\`, \`pipedrive\`: one
  webhook request per input (a line of query and header values, then the
  body). \`crm::verify\` with those headers, then the body parser the webhook
  route uses (\`parse_body\` for generic, \`crm::normalize\` for the others),
  whatever verify said. Every accepted interaction must read back from its
  stored JSON with the same id, type, contact, deal and time; every id-only
  event must read back from its outbox JSON.
- \`form\`: PHP-style bracketed form bodies; always an object, never deeper
  than the bracket limit.
- \`duration\`: durations and expiries; what parses prints back to itself.
- \`condition\`: a rule condition's JSON, compiled and evaluated against
  fields from the input; a saved condition compiles the same after loading.
- \`template\`: action templates, parsed and rendered; text without
  placeholders renders as itself.
- \`cursor\`: leaderboard cursors decoded from any string; an issued cursor
  decodes to its position, and not for another tenant, order or key.
- \`profile\`: profile and trigger JSON as the admin API reads it, validated
  and compiled; an accepted spec still compiles after a store round trip.
EOF
if [ ${#failed[@]} -gt 0 ]; then
  printf '\nFailures:\n' >>"$out"
  printf -- '- %s\n' "${failed[@]}" >>"$out"
fi
echo
cat "$out"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
