#!/usr/bin/env bash
# Runs every check and test scorehook has, on a fresh clone, with nothing
# installed by hand: formatting, lints, the SAM template lint, and all unit,
# property and integration tests. Python tools go into ./.venv (created on
# first run, from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/cfn-lint" ]; then
  echo "==> installing test tools into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cfn-lint template.yaml"
"$venv/bin/cfn-lint" template.yaml
echo "==> cargo test"
cargo test --all-targets --quiet
echo "==> all green"
