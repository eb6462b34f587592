#!/usr/bin/env bash
# The quick start's "run it locally": the server on the embedded store
# (./.scorehook), with the example tenant, profile and trigger from
# examples/ applied, and a local action receiver printing what fires.
set -euo pipefail
cd "$(dirname "$0")/.."
export SCOREHOOK_ADMIN_TOKEN="${SCOREHOOK_ADMIN_TOKEN:-dev-admin-token}"
echo "building scorehook (the first build takes a few minutes)…"
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/scorehook"
"$bin" receiver --port 4000 --secret demo-secret-change-me &
receiver=$!
trap 'kill $receiver 2>/dev/null' EXIT
echo "operator token: $SCOREHOOK_ADMIN_TOKEN"
"$bin" serve --port "${PORT:-3000}" --config examples/ "$@"
