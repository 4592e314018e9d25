#!/bin/sh
# Install Debian's chromium for the browser tests (tests/browser), unless it is already there.
# Idempotent: does nothing when /usr/bin/chromium exists. Playwright's own browser download
# is not used; the tests drive this binary through executable_path.
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "install-chromium: $CHROMIUM already present: $("$CHROMIUM" --version 2>/dev/null || echo 'version unknown')"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-chromium: not root and no sudo; cannot install chromium" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: apt-get not found; install chromium at $CHROMIUM by hand" >&2
    exit 1
fi

echo "install-chromium: $CHROMIUM missing; running apt-get update"
$SUDO apt-get update
echo "install-chromium: installing chromium"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium

if [ -x "$CHROMIUM" ]; then
    echo "install-chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
else
    echo "install-chromium: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
