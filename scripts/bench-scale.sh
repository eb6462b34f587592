#!/usr/bin/env bash
# The Scale part of the benchmarks (issue #9): runs benches/scale.rs
# (release) and writes its part of BENCHMARKS.md. scripts/bench.sh calls it
# with its work directory; run alone, it can refresh just that part.
#
#   scripts/bench-scale.sh DIR        writes DIR/scale.md (the "## Scale" section)
#                                     and DIR/scale-target.md (its Targets row)
#   scripts/bench-scale.sh --update   replaces both in the existing BENCHMARKS.md
#
#   SCALE_CONTACTS=100000 (default 1,000,000), SCALE_TASKS (concurrent ingest
#   tasks, 128), SCALE_QUERIES (timed pages per case, 200): read by the bench.
#   SCALE_BIN=path: run that built bench binary instead of building it.
#
# About 4 minutes on two cores at 1 million contacts after the release build,
# with about 5 GB of free disk under $TMPDIR for the temporary store.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=python3
update=""
if [ "${1:-}" = "--update" ]; then
  update=1
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
else
  out=${1:?usage: scripts/bench-scale.sh DIR | --update}
fi

echo "==> scale (benches/scale.rs, release)"
# SCALE_BIN: an already built bench binary (cargo bench --bench scale --no-run) to run as is.
scale_bin=${SCALE_BIN:-$(cargo bench --bench scale --no-run --message-format=json 2>/dev/null |
  $py -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "scale" and m.get("executable"):
        print(m["executable"])')}
[ -n "$scale_bin" ] || { echo "the scale bench did not build: cargo bench --bench scale --no-run" >&2; exit 1; }
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
"$scale_bin" --bench | tee "$out/scale.txt"

SCALE_LOAD_START=$load_start $py - "$out" <<'PY'
import os, sys, time

out = sys.argv[1]
f = {}
for line in open(f"{out}/scale.txt"):
    parts = line.split()
    if len(parts) == 3 and parts[0] == "SCALE":
        f[parts[1]] = parts[2]


def n(key):
    return f"{round(float(f[key])):,}"


def mb(key, unit=1e6):
    return f"{float(f[key]) / unit:,.0f} MB"


def mib(key):  # /proc reports KiB
    return f"{float(f[key]) * 1024 / 1e6:,.0f} MB"


met = float(f["leaderboard_top_p99_ms"]) < 10 and float(f["leaderboard_filtered_p99_ms"]) < 10 \
    and float(f["leaderboard_deep_p99_ms"]) < 10
verdict = "met" if met else "**missed**"
contacts = n("contacts")
open(f"{out}/scale-target.md", "w").write(
    f"| leaderboard page under 10 ms at 1 million contacts (embedded) | p99 {f['leaderboard_top_p99_ms']} / "
    f"{f['leaderboard_filtered_p99_ms']} / {f['leaderboard_deep_p99_ms']} ms (top / min-max filter / deep cursor; "
    f"medians {f['leaderboard_top_median_ms']} / {f['leaderboard_filtered_median_ms']} / "
    f"{f['leaderboard_deep_median_ms']} ms) at {contacts} contacts | {verdict} |\n")

rows = [
    ("top page", "leaderboard_top"),
    (f"min/max filter in the middle of the range ({f['filter_range'].replace('..', ' to ')} points)",
     "leaderboard_filtered"),
    (f"after a cursor {n('deep_rank')} rows down", "leaderboard_deep"),
    ("top page over the router (token, JSON)", "http_top"),
    (f"cursor page over the router ({n('deep_rank')} rows down)", "http_deep"),
]
table = "\n".join(f"| {label} | {f[k + '_median_ms']} ms | {f[k + '_p99_ms']} ms |" for label, k in rows)
when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
load_end = " ".join(open("/proc/loadavg").read().split()[:3])
open(f"{out}/scale.md", "w").write(f"""## Scale

Measured on {when}, {os.cpu_count()} cores; load average (1, 5, 15 min)
{os.environ['SCALE_LOAD_START']} at the start, {load_end} at the end.

`benches/scale.rs` (release, `cargo bench --bench scale`; alone:
`scripts/bench-scale.sh --update`) on a fresh data directory, through the
`Service` calls the HTTP handlers make, group commit (the default). A tenant
with one published profile of 12 rules: one per interaction type (opens,
clicks, pricing visits, forms, unsubscribes) and seven worth 1, 2, 4 … 64
points on the interaction's attributes, so one interaction each spreads the
contacts from {f['score_range'].replace('..', ' to ')} points, most of them low.

**Fill**: {contacts} contacts, one interaction each, ingested by
{f['tasks']} concurrent tasks: **{f['fill_seconds']} s, {n('fill_per_second')} interactions/s**
({f['fill_writes_per_transaction']} writes per transaction and `fsync`). Store file:
{mb('store_bytes')}. Process memory: peak RSS (`VmHWM`) {mib('rss_peak_kib')}, RSS after the
fill {mib('rss_kib')}.

**Leaderboard** at {contacts} contacts: pages of 50, score descending,
{f.get('queries', '200')} timed queries per case after a tenth as many untimed
ones, one at a time. Target: a page under 10 ms ({verdict}, by p99).

| page | median | p99 |
|---|---|---|
{table}

**Retroactive publish**: a second version of the profile (one rule's points
changed, 1 → 3) is published and its recompute run to the end, one sweeper
step (a batch of contacts) after another: every contact's score rebuilt
from its {contacts} stored interactions, in **{f['recompute_seconds']} s:
{n('recompute_interactions_per_second')} interactions/s, {n('recompute_contacts_per_second')} contacts/s**
(one interaction per contact, so both rates are the same); {n('recompute_contacts_changed')}
contacts changed and were committed, in {n('recompute_transactions')} transactions. Store file
after: {mb('store_bytes_after_recompute')}; peak RSS {mib('rss_peak_kib_after_recompute')}.
""")
PY

if [ -n "$update" ]; then
  $py - "$root/BENCHMARKS.md" "$out" <<'PY'
import re, sys

path, out = sys.argv[1], sys.argv[2]
text = open(path).read()
row = open(f"{out}/scale-target.md").read()
section = open(f"{out}/scale.md").read()
text, rows = re.subn(r"^\| leaderboard page under 10 ms at 1 million contacts.*\n", lambda _: row, text, flags=re.M)
text, sections = re.subn(r"^## Scale\n.*?(?=^## |\Z)", lambda _: section, text, flags=re.M | re.S)
if rows != 1 or sections != 1:
    sys.exit(f"BENCHMARKS.md: found {rows} target rows and {sections} Scale sections, expected one of each")
open(path, "w").write(text)
PY
  echo "==> BENCHMARKS.md: Scale section and target row updated"
fi
