#!/usr/bin/env bash
# The quick start's "run it locally": the server on the embedded store
# (./.scorehook), with the example tenant, profile and trigger from
# examples/ applied, and a local action receiver printing what fires.
#
#   scripts/dev.sh [--port N] [--receiver-port N] [other `scorehook serve` flags]
#
# --port (or PORT / SCOREHOOK_PORT, default 3000) is the server's port,
# --receiver-port (or RECEIVER_PORT, default 4000) the receiver's; the demo
# tenant's actions_url follows the receiver's port. Both ports are bound
# before anything is written: if one is taken the script says which and
# stops, and the data directory is left as it was.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${PORT:-${SCOREHOOK_PORT:-3000}}"
receiver_port="${RECEIVER_PORT:-4000}"
serve_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="${2:?--port needs a number}"; shift 2 ;;
    --port=*) port="${1#--port=}"; shift ;;
    --receiver-port) receiver_port="${2:?--receiver-port needs a number}"; shift 2 ;;
    --receiver-port=*) receiver_port="${1#--receiver-port=}"; shift ;;
    *) serve_args+=("$1"); shift ;;
  esac
done
for value in "$port" "$receiver_port"; do
  [[ "$value" =~ ^[0-9]+$ ]] && [ "$value" -le 65535 ] || { echo "dev.sh: '$value' is not a port number" >&2; exit 2; }
done
unset SCOREHOOK_PORT
export SCOREHOOK_ADMIN_TOKEN="${SCOREHOOK_ADMIN_TOKEN:-dev-admin-token-for-local-use-only}"
# The demo's receiver is on loopback, and the demo sends plain http: a local
# server may reach private targets (a deployed one never does by default).
export SCOREHOOK_ALLOW_PRIVATE_TARGETS="${SCOREHOOK_ALLOW_PRIVATE_TARGETS:-1}"

echo "building scorehook (the first build takes a few minutes)…"
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/scorehook"

work=$(mktemp -d)
receiver=
# `|| true`: a child that already exited must not stop the clean-up under `set -e`.
trap '[ -n "$receiver" ] && kill "$receiver" 2>/dev/null || true; rm -rf "$work"' EXIT

# The receiver first, and only once it listens does the server start.
"$bin" receiver --port "$receiver_port" --secret whsec_c2NvcmVob29rLWRlbW8tc2lnbmluZy1rZXktMDAwMDA= >"$work/receiver.out" 2>"$work/receiver.err" &
receiver=$!
for _ in $(seq 1 100); do
  grep -q "receiving actions on" "$work/receiver.out" 2>/dev/null && break
  if ! kill -0 "$receiver" 2>/dev/null; then
    echo "dev.sh: the action receiver cannot listen on port $receiver_port ($(cat "$work/receiver.err"))." >&2
    echo "dev.sh: is the port taken? Choose another with --receiver-port N. Nothing was written." >&2
    exit 1
  fi
  sleep 0.1
done
cat "$work/receiver.out"
# From here on the receiver prints each action as it arrives, and each one
# it refuses (a bad signature) with the reason.
tail -n +2 -f "$work/receiver.out" &
tail_pid=$!
tail -n 0 -f "$work/receiver.err" >&2 &
tail_err_pid=$!
trap '[ -n "$receiver" ] && kill "$receiver" "$tail_pid" "$tail_err_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# The example tenant, its actions sent to this receiver's port.
mkdir "$work/config"
sed "s#http://127.0.0.1:4000/#http://127.0.0.1:$receiver_port/#" examples/demo.json >"$work/config/demo.json"

echo "operator token: $SCOREHOOK_ADMIN_TOKEN (sign in to http://127.0.0.1:$port/ui as tenant demo with it)"
# `serve` binds its port before it opens the store or applies the tenant
# file, so a taken port stops it with nothing written.
status=0
"$bin" serve --port "$port" --config "$work/config" "${serve_args[@]}" || status=$?
if [ "$status" -ne 0 ]; then
  echo "dev.sh: the server stopped (exit $status): its message is above (a taken port: choose another with --port N)." >&2
fi
exit "$status"
