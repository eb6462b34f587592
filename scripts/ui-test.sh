#!/usr/bin/env bash
# Browser tests of the /ui score builder (tests/ui/ui.test.mjs): Debian's
# headless Chromium, driven by playwright-core, against a real
# `scorehook serve` on a temporary data dir. Installs what it needs by
# itself: Chromium from Debian's packages when `chromium` is not on PATH
# (as root, or with sudo), and the node modules into tests/ui/node_modules
# from the committed package-lock.json. It never skips: no browser, no
# pass. Screenshots of each screen land in target/ui-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (Debian package) for the browser tests"
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "ui-test: chromium is not installed and cannot be (not root, no passwordless sudo)." >&2
    echo "ui-test: install Debian's 'chromium' package, then run again." >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  # One retry: an interrupted dpkg run (e.g. a lock held a moment) is worth a second go.
  "${sudo[@]}" apt-get install -y -qq chromium >/dev/null \
    || "${sudo[@]}" apt-get install -y -qq chromium >/dev/null
fi
chromium_bin=$(command -v chromium) || { echo "ui-test: chromium is still not on PATH" >&2; exit 1; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "ui-test: node and npm are needed for the browser tests" >&2
  exit 1
fi
echo "==> installing the browser tests' node modules (npm ci in tests/ui)"
(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)

# The server the tests drive: SCOREHOOK_BIN when the caller has just built
# one (scripts/test.sh passes the debug binary `cargo test` built for the
# integration tests, which saves CI a second compile of the crate), else
# the debug build, brought up to date here.
if [ -z "${SCOREHOOK_BIN:-}" ]; then
  echo "==> cargo build (the server the browser tests drive)"
  cargo build --quiet --bin scorehook
  SCOREHOOK_BIN="${CARGO_TARGET_DIR:-target}/debug/scorehook"
fi
[ -x "$SCOREHOOK_BIN" ] || { echo "ui-test: no scorehook binary at $SCOREHOOK_BIN" >&2; exit 1; }
SCOREHOOK_BIN=$(realpath "$SCOREHOOK_BIN")
shots="$PWD/target/ui-screenshots"
mkdir -p "$shots"
echo "==> browser tests (chromium: $chromium_bin; screenshots in target/ui-screenshots/)"
cd tests/ui
SCOREHOOK_BIN="$SCOREHOOK_BIN" CHROMIUM="$chromium_bin" SCREENSHOT_DIR="$shots" \
  node --test --test-reporter=spec ui.test.mjs
