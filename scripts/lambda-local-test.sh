#!/usr/bin/env bash
# The Lambda functions as docs/deploy.md runs them without Docker
# ("Test locally before deploying"): `cargo lambda watch` serving the
# bin/ functions, `cargo lambda invoke` sending them the samples in events/,
# against the local DynamoDB in DYNAMODB_ENDPOINT (scripts/test.sh passes
# its moto). Installs cargo-lambda from PyPI into ./.venv-lambda if missing.
#
# In a fresh table, with a fresh key file: the example tenant is applied by
# `scorehook serve --store dynamodb --config examples/` (as the deploy guide
# does; SCOREHOOK_BIN if the caller built one, else the debug build), then
# through cargo lambda: a webhook (the generic sample, signed afresh, since
# the sample's own signature is stale) must answer 202, the leaderboard
# sample a 200 whose body lists the scored contact, and the sweeper's
# schedule sample must succeed. Anything else fails the run.
#
# `cargo lambda watch` builds each function with `cargo run --bin <name>`
# (host, debug profile, CARGO_TARGET_DIR honoured). The functions are built
# here first with the same `cargo build`, so a compile error shows as one and
# the first invoke does not wait on a build. That build shares dependencies
# with `cargo build` (scripts/dev.sh), not with `cargo test`'s: the
# dev-dependencies turn on other features (tokio's test-util, …), so a
# target directory holding only the test build compiles them once more.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "lambda-local-test: $*" >&2; exit 1; }
[ -n "${DYNAMODB_ENDPOINT:-}" ] || fail "DYNAMODB_ENDPOINT must name a local DynamoDB (e.g. moto: scripts/test.sh starts one)"
# A local DynamoDB takes any credentials; keep the caller's if set.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_REGION="${AWS_REGION:-us-east-1}"

. scripts/cargo-lambda-env.sh
use_cargo_lambda

bins=(--bin lambda_http --bin lambda_sweeper)
[ -n "${SCOREHOOK_BIN:-}" ] || bins+=(--bin scorehook)
echo "==> cargo build ${bins[*]} (what cargo lambda watch runs)"
cargo build --quiet "${bins[@]}"
SCOREHOOK_BIN="${SCOREHOOK_BIN:-${CARGO_TARGET_DIR:-target}/debug/scorehook}"
[ -x "$SCOREHOOK_BIN" ] || fail "no scorehook binary at $SCOREHOOK_BIN"

work=$(mktemp -d)
seed_pid=
watch_pid=
stop() {
  # kill -0 before kill: a pid that already exited is left alone.
  if [ -n "$seed_pid" ] && kill -0 "$seed_pid" 2>/dev/null; then kill "$seed_pid" 2>/dev/null || true; fi
  if [ -n "$watch_pid" ] && kill -0 "$watch_pid" 2>/dev/null; then
    # watch starts each function as its child, in a session of its own, and
    # stops them on SIGINT; whatever is left after 5 s is killed by its pid.
    local functions
    functions=$(pgrep -P "$watch_pid" || true)
    kill -INT "$watch_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
    for pid in $watch_pid $functions; do
      if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
  fi
  rm -rf "$work"
}
trap stop EXIT

# The environment the deploy guide exports: a fresh table, a key file of
# this run's own, the operator token the sample events carry.
export SCOREHOOK_TABLE="scorehook-lambda-local-$(date +%s)-$$"
export SCOREHOOK_SECRETS_KEY_FILE="$work/secrets.key"
export SCOREHOOK_ADMIN_TOKEN=dev-admin-token-for-local-use-only
export SCOREHOOK_ALLOW_PRIVATE_TARGETS=1
export RUST_LOG="${RUST_LOG:-warn}"

echo "==> seeding table $SCOREHOOK_TABLE with the example tenant (scorehook serve --store dynamodb --config examples/)"
"$SCOREHOOK_BIN" serve --store dynamodb --config examples/ --port 0 --data-dir "$work/data" \
  >"$work/seed.out" 2>"$work/seed.err" &
seed_pid=$!
# It prints its address once the example is applied.
for _ in $(seq 1 300); do
  grep -q 'listening on http://' "$work/seed.out" && break
  kill -0 "$seed_pid" 2>/dev/null || { cat "$work/seed.err" >&2; fail "scorehook serve stopped before seeding the table"; }
  sleep 0.1
done
grep -q 'listening on http://' "$work/seed.out" || { cat "$work/seed.err" >&2; fail "scorehook serve did not seed the table within 30 s"; }
kill "$seed_pid"
wait "$seed_pid" 2>/dev/null || true
seed_pid=

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "==> cargo lambda watch on 127.0.0.1:$port"
# --ignore-changes: an edit made while the test runs must not restart a function under it.
cargo lambda watch --quiet --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$port" \
  >"$work/watch.log" 2>&1 &
watch_pid=$!
up=
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
  kill -0 "$watch_pid" 2>/dev/null || { cat "$work/watch.log" >&2; fail "cargo lambda watch exited"; }
  sleep 0.1
done
[ -n "$up" ] || { cat "$work/watch.log" >&2; fail "cargo lambda watch did not listen on port $port within 10 s"; }

# Invokes function $1 with the event file $2; the answer goes to $work/answer.
invoke() {
  echo "==> cargo lambda invoke $1 --data-file $2"
  # A function that fails at init leaves the invoke waiting: hence the bound.
  local rc=0
  timeout 120 cargo lambda invoke "$1" --invoke-address 127.0.0.1 --invoke-port "$port" \
    --data-file "$2" >"$work/answer" 2>"$work/invoke.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    cat "$work/answer" "$work/invoke.err" >&2
    echo "--- cargo lambda watch log:" >&2
    tail -n 30 "$work/watch.log" >&2
    [ "$rc" -eq 124 ] && fail "$1 gave no answer to $2 within 120 s"
    fail "invoking $1 with $2 failed (exit $rc)"
  fi
  echo "    $(head -c 300 "$work/answer")"
}
# Checks $work/answer with the Python expression $2 over `a` (the answer) and
# `body` (a Function URL answer's body, parsed); $1 says what was expected.
expect() {
  python3 - "$work/answer" "$2" <<'PY' || { echo "--- answer:" >&2; cat "$work/answer" >&2; echo >&2; fail "expected $1"; }
import json, sys
a = json.load(open(sys.argv[1]))
body = json.loads(a["body"]) if isinstance(a, dict) and isinstance(a.get("body"), str) else None
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

# The generic webhook sample, re-signed now with the example tenant's secret.
python3 - events/function-url-webhook-generic.json "$work/webhook.json" <<'PY'
import hashlib, hmac, json, sys, time
event = json.load(open(sys.argv[1]))
ts = str(int(time.time()))
mac = hmac.new(b"demo-secret-change-me", f"{ts}.{event['body']}".encode(), hashlib.sha256).hexdigest()
event["headers"]["x-scorehook-timestamp"] = ts
event["headers"]["x-scorehook-signature"] = f"v1={mac}"
json.dump(event, open(sys.argv[2], "w"))
PY
invoke lambda_http "$work/webhook.json"
expect "202 with one interaction accepted" 'a["statusCode"] == 202 and body == {"accepted": 1, "duplicates": 0}'

invoke lambda_http events/function-url-admin-leaderboard.json
expect "200 with the contacts JSON listing c_42 at score 1" \
  'a["statusCode"] == 200 and [(c["contact_id"], c["score"]) for c in body["contacts"]] == [("c_42", 1)]'

invoke lambda_sweeper events/schedule-sweeper.json
expect "the sweeper to drain" 'a == {"drained": True, "steps": 1}'

echo "==> cargo lambda: webhook, leaderboard and sweeper answered as expected"
