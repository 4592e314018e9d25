#!/bin/sh
# Install Debian's firefox-esr for the Firefox browser tests (tests/browser/test_firefox.py),
# unless it is already there. Idempotent: does nothing when /usr/bin/firefox-esr exists. The
# tests drive it through its built-in WebDriver BiDi agent, so no geckodriver is needed.
set -eu

FIREFOX=/usr/bin/firefox-esr

if [ -x "$FIREFOX" ]; then
    echo "install-firefox: $FIREFOX already present: $("$FIREFOX" --version 2>/dev/null || echo 'version unknown')"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-firefox: not root and no sudo; cannot install firefox-esr" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-firefox: apt-get not found; install firefox-esr at $FIREFOX by hand" >&2
    exit 1
fi

# Refresh the package lists only when firefox-esr is not known yet: once is enough.
if ! apt-cache policy firefox-esr 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    echo "install-firefox: firefox-esr not in the package lists; running apt-get update"
    $SUDO apt-get update
fi
echo "install-firefox: installing firefox-esr"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends firefox-esr

if [ -x "$FIREFOX" ]; then
    echo "install-firefox: installed $("$FIREFOX" --version 2>/dev/null || echo "$FIREFOX")"
else
    echo "install-firefox: apt-get finished but $FIREFOX is still missing" >&2
    exit 1
fi
