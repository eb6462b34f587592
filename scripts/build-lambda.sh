#!/usr/bin/env bash
# Cross-compiles the three Lambda functions for arm64 (provided.al2023) the
# way `sam build` does, without SAM or Docker: cargo-lambda (with Zig) from
# PyPI into ./.venv-lambda. Binaries land in target/lambda/<name>/bootstrap.
# Not part of the test command: a cold release build takes about 7 minutes
# on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cargo-lambda-env.sh
use_cargo_lambda
cargo lambda build --release --arm64 \
  --bin lambda_http --bin lambda_executor --bin lambda_sweeper
ls -l target/lambda/*/bootstrap
