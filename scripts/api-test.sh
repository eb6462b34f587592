#!/usr/bin/env bash
# Schemathesis against a real `scorehook serve`: every operation of
# GET /openapi.json, with the documented auth (the operator token), must
# never answer 5xx, and every answer must match the document (status code,
# content type, headers, body schema). The server runs on the embedded store
# in a temporary data dir, seeded with the example tenant (a published
# profile and a trigger), a deal profile, scored contacts and a deal, and
# fired actions whose delivery fails (so replay has something to act on).
# Webhook operations cannot be signed by Schemathesis: they answer 401, as
# documented, and must never 5xx either. It never skips: no tool, no pass.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if ! "$venv/bin/python" -c 'import schemathesis' 2>/dev/null; then
  echo "==> installing test tools into $venv (schemathesis)"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi

# The server under test: SCOREHOOK_BIN when the caller has just built one
# (scripts/test.sh passes the debug binary `cargo test` built), else the
# debug build, brought up to date here.
if [ -z "${SCOREHOOK_BIN:-}" ]; then
  echo "==> cargo build (the server the API tests drive)"
  cargo build --quiet --bin scorehook
  SCOREHOOK_BIN="${CARGO_TARGET_DIR:-target}/debug/scorehook"
fi
[ -x "$SCOREHOOK_BIN" ] || { echo "api-test: no scorehook binary at $SCOREHOOK_BIN" >&2; exit 1; }

token=api-test-operator-token-0123456789abcdef
data=$(mktemp -d)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$data"' EXIT
# The example tenant's receiver is on loopback: the operator allows private targets here.
SCOREHOOK_ALLOW_PRIVATE_TARGETS=1 SCOREHOOK_ADMIN_TOKEN=$token RUST_LOG=warn "$SCOREHOOK_BIN" serve --port 0 --data-dir "$data/store" \
  --config examples/ >"$data/stdout" 2>"$data/stderr" &
server_pid=$!
base=
for _ in $(seq 1 100); do
  base=$(grep -o 'listening on http://[^ ]*' "$data/stdout" | sed 's/^listening on //' || true)
  [ -n "$base" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$data/stderr" >&2; echo "api-test: the server did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { cat "$data/stderr" >&2; echo "api-test: the server printed no address" >&2; exit 1; }

echo "==> seeding tenant demo on $base"
"$venv/bin/python" scripts/api_seed.py "$base" "$token" examples/demo.json

echo "==> schemathesis: every operation of $base/openapi.json"
# The examples phase is left out: Schemathesis 4.32 fails intermittently
# inside Hypothesis while drawing examples for nested schemas (a tool error,
# not an answer of ours). Coverage and fuzzing still use the examples.
"$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run "$base/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases coverage,fuzzing \
  --max-examples "${API_TEST_EXAMPLES:-50}" \
  --workers 2 \
  --warnings off \
  || { echo "api-test: server log:" >&2; tail -n 50 "$data/stderr" >&2; exit 1; }
