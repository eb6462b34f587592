# Sourced by scripts/build-lambda.sh and scripts/lambda-local-test.sh, from
# the repository root: puts cargo-lambda (with Zig) on PATH, installing it
# from PyPI into ./.venv-lambda the first time. Major version 1: the test's
# `watch`/`invoke` flags are those of cargo-lambda 1.x.
use_cargo_lambda() {
  local venv=.venv-lambda
  if [ ! -x "$venv/bin/cargo-lambda" ]; then
    echo "==> installing cargo-lambda (PyPI) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'cargo-lambda==1.*'
  fi
  PATH="$PWD/$venv/bin:$PATH"
  export PATH
}
