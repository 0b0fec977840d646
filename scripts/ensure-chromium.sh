#!/usr/bin/env bash
# The console's browser tests (tests/api/console/test_browser.py) drive Debian's headless
# Chromium through Playwright (no browser download: Playwright is pointed at this binary).
# Installs the `chromium` package with apt-get when it is missing and this runs as root;
# otherwise says what to do. Idempotent; exits 1 when the browser cannot be had, since
# the browser tests fail (never skip) without it.
set -u

BIN="${CONTINUUM_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$BIN" ]; then
  echo "chromium: $BIN found"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium: installing Debian's chromium package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ -x "$BIN" ]; then
  echo "chromium: $BIN installed"
  exit 0
fi
echo "chromium: $BIN missing and not installable here (needs root and apt-get):" \
  "run 'sudo apt-get install chromium' or set CONTINUUM_CHROMIUM to a Chromium binary" >&2
exit 1
