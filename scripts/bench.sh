#!/usr/bin/env bash
# Measures scorehook's speed, cost and size against the targets of issue #9,
# prints the results and writes them to BENCHMARKS.md. Not part of the test
# command (scripts/test.sh): it takes about 10 minutes on two cores after its
# release builds (which take about 7 more: LTO and one codegen unit), 4 of
# them for the million contacts of the Scale part (scripts/bench-scale.sh).
#
# Needs: wrk (Debian: apt-get install wrk), python3, and for the DynamoDB
# figures the test tools' venv (.venv, made by scripts/test.sh) for moto.
#
#   scripts/bench.sh                  everything
#   BENCH_SECONDS=10 scripts/bench.sh longer load runs (default 5 s each)
#   BENCH_LEVELS="1 16" scripts/bench.sh  other concurrency levels
#   BENCH_SKIP_SCALE=1 scripts/bench.sh   keep the last Scale figures (saves 4 minutes)
#   BENCH_LAMBDA_BIN=path/to/bootstrap   the arm64 lambda_http to weigh (default:
#                                        the target dir's lambda/lambda_http/bootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}
seconds=${BENCH_SECONDS:-5}
levels=${BENCH_LEVELS:-"1 4 16 64"}
out=$root/BENCHMARKS.md
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
py=python3
venv_py=.venv/bin/python
[ -x "$venv_py" ] || venv_py=""

free_port() { $py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
thousands() { $py -c "import sys; print(f'{round(float(sys.argv[1])):,}')" "$1"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
verdict() { # verdict MEASURED OP TARGET -> "met" / "missed"
  awk -v m="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == "<") ? (m < t) : (m >= t); print ok ? "met" : "**missed**" }'
}

echo "==> release build"
cargo build --release --bin scorehook
bin=$target_dir/release/scorehook

cores=$(nproc)
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(free -h | awk '/^Mem:/ {print $2}')
when=$(date -u +"%Y-%m-%d %H:%M UTC")
rustc_version=$(rustc --version)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- engine
echo "==> engine (criterion)"
cargo bench --bench engine -- --warm-up-time 1 --measurement-time 4 evaluate | tee "$work/engine.txt"
# Instructions per interaction, counted by callgrind: repeatable where
# timings on a shared machine are not. examples/engine_profile runs the
# bench's scenario N times; two runs differing only in N give one
# evaluation's instructions, set-up excluded. Skipped without valgrind.
declare -A engine_ipi
engine_ipi_note=""
if command -v valgrind >/dev/null; then
  echo "==> engine (callgrind)"
  cargo build --release --example engine_profile
  profile_bin=$target_dir/release/examples/engine_profile
  instructions() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$profile_bin" "$@" 2>&1 | awk '/Collected :/ {print $NF}'; }
  for rules in 10 100 1000; do
    n=$((20000 / rules + 20))
    engine_ipi[$rules]=$(( ($(instructions "$rules" $((2 * n))) - $(instructions "$rules" "$n")) / n ))
    echo "   $rules rules: ${engine_ipi[$rules]} instructions per interaction"
  done
else
  engine_ipi_note="Instructions not counted in this run: valgrind is missing (apt-get install valgrind)."
fi
engine_rows=""
engine_10_ips=0
for rules in 10 100 1000; do
  est=$target_dir/criterion/evaluate/rules/$rules/new/estimates.json
  ns=$($py -c "import json; print('%.0f' % json.load(open('$est'))['median']['point_estimate'])")
  ips=$($py -c "print('%.0f' % (1e9 / $ns))")
  [ "$rules" = 10 ] && engine_10_ips=$ips
  target="—"
  result=""
  if [ "$rules" = 10 ]; then
    target="> 1,000,000 /s per core"
    result=$(verdict "$ips" ">=" 1000000)
  fi
  ipi="—"
  [ -n "${engine_ipi[$rules]:-}" ] && ipi=$(thousands "${engine_ipi[$rules]}")
  engine_rows+="| $rules rules, 10 triggers | $ns ns | $(thousands "$ips") /s | $ipi | $target | $result |"$'\n'
done

# ---------------------------------------------------------------- HTTP ingest vs floor
echo "==> HTTP ingest vs floor (wrk, ${seconds}s per run, levels: $levels)"
admin=bench-operator-token-0123456789abcdef
secret=bench-webhook-secret-0123456789
threads=2
run_wrk() { # run_wrk CONCURRENCY URL REQUESTS_FILE -> "requests rps p50_us p99_us non2xx errors wrapped"
  local c=$1 t=$threads
  [ "$c" -lt "$t" ] && t=$c
  BENCH_REQUESTS=$3 BENCH_THREADS=$t wrk -t"$t" -c"$c" -d"${seconds}s" --timeout 10s \
    -s benches/load/ingest.lua "$2" | awk '/^RESULT/ {print $2, $3, $4, $5, $6, $7, $8}'
}
ms() { echo "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))"; }
# CPU the server has used so far, in clock ticks: "all writer", where writer
# is the store's group-commit thread and all is every thread (request
# threads, background loops, blocking pool). The writer is found by name:
# writer.rs names it "scorehook-writer", which Linux cuts to 15 characters.
tick=$(getconf CLK_TCK)
server_cpu() {
  local all writer
  all=$(awk '{print $14 + $15}' "/proc/$1/stat")
  writer=$(cat /proc/"$1"/task/*/stat 2>/dev/null | awk '$2 == "(scorehook-write)" {n += $14 + $15; found = 1} END {if (found) print n}')
  [ -n "$writer" ] || { echo "no scorehook-writer thread in process $1: was it renamed?" >&2; exit 1; }
  echo "$all $writer"
}
# µs of server CPU per request: cpu_per BEFORE_TICKS AFTER_TICKS REQUESTS
cpu_per() { $py -c "print(round(($2 - $1) * 1e6 / $tick / max($3, 1)))"; }
declare -A ingest_rows ingest_summary ingest_worst writes_per_sync cpu_floor cpu_ingest cpu_writer store_size
top=${levels##* }
# Each commit mode on its own server and data directory, the floor measured
# on that same server just before its ingest run at each level.
for mode in group each; do
  data=$work/data-$mode
  SCOREHOOK_INBOUND_PER_SECOND=100000 SCOREHOOK_COMMIT=$mode SCOREHOOK_ADMIN_TOKEN=$admin RUST_LOG=warn,scorehook::store=info \
    "$bin" serve --port 0 --data-dir "$data" >"$work/serve-$mode.out" 2>"$work/serve-$mode.err" &
  pids+=($!)
  server_pid=$!
  for _ in $(seq 1 100); do grep -q listening "$work/serve-$mode.out" && break; sleep 0.05; done
  base=$(grep -o 'http://[0-9.:]*' "$work/serve-$mode.out")
  api() { curl -sf -X "$1" "$base$2" -H "Authorization: Bearer $admin" -H 'content-type: application/json' ${3:+-d "$3"} >/dev/null; }
  api PUT /v1/tenants/bench "{\"provider\": \"generic\", \"webhook_secret\": \"$secret\"}"
  api PUT /v1/tenants/bench/profiles/engagement '{"name": "Engagement", "rules": [
    {"id": "opened", "when": {"type": "email.opened"}, "points": 1, "expires_in": "30d"},
    {"id": "demo", "when": {"type": "deal.stage_changed", "attributes": {"stage": {"equals": "demo"}}}, "points": 3},
    {"id": "pricing", "when": {"type": "page.visited", "attributes": {"url": {"contains": "/pricing"}}}, "points": 10, "once": true}]}'
  api POST /v1/tenants/bench/profiles/engagement/publish
  # A trigger every interaction checks but none reaches: the common case fires nothing.
  api PUT /v1/tenants/bench/triggers/hot '{"name": "Hot", "when": {"score": {"profile": "engagement", "op": "gte", "value": 1000000}},
    "runs": "on_enter", "actions": [{"type": "add_tag", "tag": "Caliente"}]}'

  rows=""
  summary=""
  worst=100000
  for c in $levels; do
    # Enough unique interactions for a fast run; signed now (5 minutes of validity).
    $py benches/load/sign.py bench "$secret" "$mode$c" 150000 10000 >"$work/req-$mode-$c.tsv"
    read -r f_all0 _ < <(server_cpu "$server_pid")
    read -r f_n f_rps f_p50 f_p99 f_bad f_err _ < <(run_wrk "$c" "$base/healthz" "")
    read -r i_all0 i_writer0 < <(server_cpu "$server_pid")
    read -r i_n i_rps i_p50 i_p99 i_bad i_err i_wrap < <(run_wrk "$c" "$base" "$work/req-$mode-$c.tsv")
    read -r i_all1 i_writer1 < <(server_cpu "$server_pid")
    cpu_floor[$mode$c]=$(cpu_per "$f_all0" "$i_all0" "$f_n")
    cpu_ingest[$mode$c]=$(cpu_per "$i_all0" "$i_all1" "$i_n")
    cpu_writer[$mode$c]=$(cpu_per "$i_writer0" "$i_writer1" "$i_n")
    ratio=$($py -c "print('%.0f' % (100 * $i_rps / $f_rps))")
    [ "$mode" = each ] && [ -z "${first_commit_ms:-}" ] && first_commit_ms=$($py -c "print('%.2f' % (1000 / $i_rps))")
    summary+="$ratio % at $c, "
    [ "$ratio" -lt "$worst" ] && worst=$ratio
    note=""
    [ "$i_wrap" = 1 ] && note=" (wrapped: some repeats were duplicates)"
    [ "$((i_bad + i_err))" -gt 0 ] && note+=" ($i_bad non-2xx, $i_err socket errors)"
    rows+="| $c | $(thousands "$f_rps") /s | $(ms "$f_p50") / $(ms "$f_p99") ms | $(thousands "$i_rps") /s$note | $(ms "$i_p50") / $(ms "$i_p99") ms | $ratio % | $(verdict "$ratio" ">=" 50) | ${cpu_floor[$mode$c]} / ${cpu_ingest[$mode$c]} (${cpu_writer[$mode$c]}) µs |"$'\n'
    echo "   $mode c=$c floor ${f_rps}/s ingest ${i_rps}/s ratio ${ratio}% CPU/request floor ${cpu_floor[$mode$c]} µs ingest ${cpu_ingest[$mode$c]} µs (writer ${cpu_writer[$mode$c]} µs)"
  done
  # A graceful stop: the store's writer logs its writes and transactions.
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  counts=$(grep -o 'writes=[0-9]* transactions=[0-9]*' "$work/serve-$mode.err" | tail -1)
  writes=$(echo "$counts" | sed -n 's/writes=\([0-9]*\).*/\1/p')
  txns=$(echo "$counts" | sed -n 's/.*transactions=\([0-9]*\)/\1/p')
  writes_per_sync[$mode]=$($py -c "print('%.1f' % (${writes:-0} / max(${txns:-0}, 1)))")
  echo "   $mode: ${writes:-?} writes in ${txns:-?} transactions (${writes_per_sync[$mode]} per fsync)"
  ingest_rows[$mode]=$rows
  ingest_summary[$mode]="${summary%, } (ratio by connections)"
  ingest_worst[$mode]=$worst
  store_size[$mode]=$(du -h "$data/scorehook.redb" | cut -f1)
done
# The ceiling of durable commits made one at a time: one 4 KiB write plus
# fdatasync on the same filesystem, median of 500.
fsync_ms=$($py - "$work" <<'PY'
import os, statistics, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
times = []
for i in range(500):
    start = time.perf_counter()
    os.pwrite(fd, os.urandom(4096), (i % 64) * 4096)
    os.fdatasync(fd)
    times.append(time.perf_counter() - start)
os.close(fd)
print(f"{statistics.median(times) * 1000:.3f}")
PY
)
fsync_ceiling=$($py -c "print(round(1000 / $fsync_ms))")
echo "   4 KiB write + fdatasync: median ${fsync_ms} ms (at most ~${fsync_ceiling} commits/s one at a time)"

# ---------------------------------------------------------------- cold start and size
echo "==> cold start"
$py benches/load/coldstart.py "$bin" 3 >/dev/null # warm the page cache
cold_ms=$($py benches/load/coldstart.py "$bin" 15 | median)
echo "   median ${cold_ms} ms"
size_bytes=$(stat -c %s "$bin")
size_mb=$($py -c "print('%.1f' % ($size_bytes / 1e6))")
size_arch=$(file -b "$bin" | cut -d, -f1-2)
lambda_row=""
lambda_bin=${BENCH_LAMBDA_BIN:-$target_dir/lambda/lambda_http/bootstrap}
if [ -f "$lambda_bin" ] && file -b "$lambda_bin" | grep -q aarch64; then
  l_bytes=$(stat -c %s "$lambda_bin")
  l_mb=$($py -c "print('%.1f' % ($l_bytes / 1e6))")
  lambda_row="| \`lambda_http\` bootstrap, arm64 (cargo lambda build --release --arm64) | $l_mb MB | < 15 MB | $(verdict "$l_mb" "<" 15) |"
  lambda_target="$l_mb MB (\`lambda_http\`, arm64) | $(verdict "$l_mb" "<" 15)"
else
  lambda_row="| \`lambda_http\` arm64 | not measured: no arm64 build found (run scripts/build-lambda.sh first) | < 15 MB | — |"
  lambda_target="not measured: no arm64 build (x86_64 \`scorehook\`: $size_mb MB) | —"
fi

# ---------------------------------------------------------------- DynamoDB cost
echo "==> DynamoDB round trips and units (moto)"
dynamo_rows=""
dynamo_note=""
common_calls="?"
if [ -n "$venv_py" ] && "$venv_py" -c 'import moto.server' 2>/dev/null; then
  port=$(free_port)
  "$venv_py" scripts/moto_serial.py "$port" >"$work/moto.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    "$venv_py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null && break
    sleep 0.2
  done
  # Call and unit counts do not depend on optimisation: the dev build is used.
  cost_bin=$(cargo build --bench dynamo_cost --message-format=json 2>/dev/null |
    $py -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "dynamo_cost" and m.get("executable"):
        print(m["executable"])')
  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 DYNAMODB_ENDPOINT=http://127.0.0.1:$port \
    "$cost_bin" --bench >"$work/dynamo.tsv"
  cat "$work/dynamo.tsv"
  # Prices: DynamoDB on-demand, us-east-1 list prices (the ones docs/deploy.md uses).
  dynamo_rows=$($py - "$work/dynamo.tsv" <<'PY'
import sys
WRU, RRU = 0.625, 0.125  # USD per million write / read request units
labels = {
    "common_new_contact": "common case, a contact's first interaction",
    "common_known_contact": "common case, a known contact",
    "fires_trigger_3_actions": "fires a trigger with 3 actions",
    "duplicate": "a redelivered duplicate",
    "batch_distinct_contacts": "a batch of 10 (10 contacts) in one webhook",
    "batch_one_contact": "a batch of 10 (one contact) in one webhook",
    "config_reload_new_contact": "first interaction after a configuration reload (once per process per 5 s)",
}
for line in open(sys.argv[1]):
    case, n, calls, half_reads, writes = line.split("\t")
    n, calls, half_reads, writes = int(n), int(calls), int(half_reads), int(writes)
    rt, r, w = calls / n, half_reads / 2 / n, writes / n
    cost = w * WRU + r * RRU
    target = ""
    if case.startswith("common"):
        target = "≤ 2: " + ("met" if rt <= 2 else "**missed**")
    print(f"| {labels.get(case, case)} | {rt:g} | {r:g} | {w:g} | ${cost:.2f} | {target} |")
PY
)
  common_calls=$(awk -F'\t' '$1 == "common_known_contact" {print $3 / $2}' "$work/dynamo.tsv")
else
  dynamo_note="Not measured in this run: no moto in .venv (run scripts/test.sh once to create it)."
fi

# ---------------------------------------------------------------- scale
# A million contacts on the embedded store (benches/scale.rs): writes
# $work/scale.md and $work/scale-target.md; alone: scripts/bench-scale.sh --update.
if [ "${BENCH_SKIP_SCALE:-}" = 1 ]; then
  # Keep the last measured Scale figures, marked as carried over.
  $py - "$out" "$work" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
row = re.search(r"^\| leaderboard page under 10 ms at 1 million contacts.*\n", text, flags=re.M)
section = re.search(r"^## Scale\n.*?(?=^## |\Z)", text, flags=re.M | re.S)
if not row or not section:
    sys.exit("BENCH_SKIP_SCALE=1 needs a BENCHMARKS.md with a Scale section to carry over")
open(f"{sys.argv[2]}/scale-target.md", "w").write(row.group(0))
note = "Carried over from an earlier run (this one had BENCH_SKIP_SCALE=1).\n"
body = section.group(0)
if note not in body:
    body = body.replace("## Scale\n", "## Scale\n\n" + note, 1)
open(f"{sys.argv[2]}/scale.md", "w").write(body)
PY
else
  scripts/bench-scale.sh "$work"
fi

# ---------------------------------------------------------------- report
engine_verdict=$(verdict "$engine_10_ips" ">=" 1000000)
cat >"$out" <<EOF
# Benchmarks

Written by \`scripts/bench.sh\` on $when. Every figure below was measured in
that run on this machine; rerun the script to refresh them.

- Machine: $cores cores ($cpu), $mem memory, $(uname -sm)
- Load average (1, 5, 15 min) at the start of the measurements: $load_start; at the
  end: $(cut -d' ' -f1-3 /proc/loadavg). The machine is shared: above about 1, other
  work ran beside the benchmarks and the figures are pessimistic
- Toolchain: $rustc_version; release profile (LTO, one codegen unit, stripped)
- Load generator: wrk ($threads threads) on the same machine as the server, so
  both share the $cores cores, for the floor and for ingest alike.

## Targets

| target | measured | result |
|---|---|---|
| engine over 1 million interactions/s per core, 10-rule profile | $(thousands "$engine_10_ips") /s | $engine_verdict (wall clock on a shared machine; instruction counts in Engine) |
| ingest at least 50% of the floor's throughput (group commit, the default) | ${ingest_summary[group]} | $(verdict "${ingest_worst[group]}" ">=" 50) |
| (the same with \`SCOREHOOK_COMMIT=each\`: an fsync per commit) | ${ingest_summary[each]} | $(verdict "${ingest_worst[each]}" ">=" 50) |
| at most 2 DynamoDB round trips in the common case | $common_calls | $( [ "$common_calls" = "?" ] && echo "not measured" || verdict "$common_calls" "<" 2.0001) |
| cold start to first response under 50 ms locally | $cold_ms ms | $(verdict "$cold_ms" "<" 50) |
| stripped arm64 binary under 15 MB | $lambda_target |
$(cat "$work/scale-target.md")

## Engine

\`benches/engine.rs\` (criterion): one interaction (\`email.opened\`) evaluated
for a warm contact (30 earlier interactions) against one published profile and
10 triggers (5 score thresholds the contact is below, 5 interaction triggers on
another type), so the common case books points and fires nothing. Rules mix
plain types with expiry, \`contains\`, \`starts_with\`, \`gt\`, \`in\` on contact
fields (\`once\`), caps and a regex. Median of criterion's samples, one thread.
Instructions: callgrind's count for one evaluation (\`examples/engine_profile\`,
the same scenario), which unlike the timings does not move with the
machine's load. $engine_ipi_note

A profile's rules are indexed by interaction type when it is compiled, so an
interaction checks only the rules its type can match plus the rules that
name no type. In this scenario that is about a third of the rules whatever
their number (the \`in\` rules on contact fields, and the \`any\` rules
one of whose branches is \`email.opened\`), so cost still grows with the
rules; a profile whose rules each name one type pays for that type's rules
only. The rest of the cost is copying the contact's state (which the outcome
returns) and dropping it: about half the instructions of the 10-rule case
are the allocator's.

| profile | ns per interaction | interactions per second (one core) | instructions per interaction | target | result |
|---|---|---|---|---|---|
$engine_rows
## Ingest over HTTP (embedded store)

\`scorehook serve\` (release) on a fresh data directory; a tenant with a
3-rule profile and one score trigger. Ingest: signed \`generic\` webhooks
(\`POST /v1/webhooks/generic/bench\`), one interaction each, every id unique
(no duplicates), contacts cycling over 10,000; each answered 202 after its
commit is on disk. Floor: \`GET /healthz\` of the same server, run just before
at the same concurrency. ${seconds} s per run, wrk, p50 / p99 latency from wrk's
histogram.

Both commit modes answer 202 only once the interaction is on disk
(\`fdatasync\`), so both survive a process crash and a power loss (README,
"Durability of the embedded store"). They differ in how many interactions
share an \`fsync\`:

- **group** (the default): one writer thread commits every write waiting for
  it in one transaction. This run: **${writes_per_sync[group]} writes per
  transaction** on average over all levels (counted by the store's writer).
- **each** (\`SCOREHOOK_COMMIT=each\`): one transaction and one \`fsync\` per
  write (**${writes_per_sync[each]}** per transaction).

### Group commit

| connections | floor | floor p50 / p99 | ingest | ingest p50 / p99 | ingest / floor | ≥ 50 % | server CPU per request: floor / ingest (writer) |
|---|---|---|---|---|---|---|---|
${ingest_rows[group]}
### An fsync per commit

| connections | floor | floor p50 / p99 | ingest | ingest p50 / p99 | ingest / floor | ≥ 50 % | server CPU per request: floor / ingest (writer) |
|---|---|---|---|---|---|---|---|
${ingest_rows[each]}
Store file after each mode's runs: ${store_size[group]} (group), ${store_size[each]} (each).

With one connection and an fsync per commit a webhook took
**$first_commit_ms ms** end to end in this run; a bare 4 KiB write plus
\`fdatasync\` on the data directory's filesystem took a median of
**$fsync_ms ms** (500 probes; this shared disk's latency varies several-fold
from run to run). One connection cannot share an \`fsync\` with anyone, so
there both modes pay one per webhook; from 4 connections on, group commit
shares it.

What bounds ingest is CPU, not the disk. The last column is the
server's CPU time (from \`/proc\`, wrk's own excluded) divided by the
requests answered; in brackets, the part spent on the store's writer
thread. At $top connections with group commit a webhook cost
**${cpu_ingest[group$top]} µs** of server CPU, **${cpu_writer[group$top]} µs** of it
on the writer (redb's B-tree updates across the contact, history,
ledger, leaderboard and dedupe tables, and the expiry and outbox tables
when they change; page checksums, the page writes and the
\`fdatasync\`), against **${cpu_floor[group$top]} µs** for a \`/healthz\`.
With two cores shared with wrk, ingest reaches at most about the floor's
throughput times the ratio of those CPU costs. The writer is one thread:
its share is also a ceiling of its own, one second of writer CPU per
second (about $(thousands $((1000000 / (${cpu_writer[group$top]} > 0 ? ${cpu_writer[group$top]} : 1)))) webhooks/s at this cost).
Group commit took the \`fsync\` out of the way; the remaining cost and
what was done about it are in the README ("Performance").

## Cold start and binary size

Cold start: \`scorehook serve --port 0\` on a fresh data directory (the store
file is created), from process start to the first answered \`GET /healthz\`,
median of 15 runs (\`benches/load/coldstart.py\`): **$cold_ms ms** (target under
50 ms: $(verdict "$cold_ms" "<" 50)).

| binary | size (stripped) | target | result |
|---|---|---|---|
| \`scorehook\` release, $size_arch (the local server; a superset of the Lambda HTTP function's code) | $size_mb MB | — | — |
$lambda_row

## DynamoDB cost per interaction (moto)

\`benches/dynamo_cost.rs\` drives the real router over \`DynamoStore\` against
moto (\`scripts/moto_serial.py\`) and reads the store's client-side counters:
calls (round trips), read units (consistent read: 1 per started 4 KB) and
write units (transactional: 2 per started KB of each item), computed from item
sizes because moto reports none for transactions. 10 interactions per case,
the configuration cache warm (its reload is the last row). Cost: units ×
DynamoDB on-demand prices in us-east-1, \$0.625 per million write request
units and \$0.125 per million read request units; Lambda, logs and the
action executor's own calls are not included (see docs/deploy.md).
$dynamo_note

| case | round trips per interaction | read units | write units | DynamoDB cost per million interactions | target |
|---|---|---|---|---|---|
$dynamo_rows

Not counted above: a duplicate's rejected transaction is billed by DynamoDB
as a write even though nothing is written; the counters record 0 units for it.

$(cat "$work/scale.md")
EOF
echo
cat "$out"
