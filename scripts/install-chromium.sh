#!/bin/sh
# Install Debian's chromium for the browser tests (tests/browser) unless it is already there.
# Playwright's own browser download is not used; the tests drive this binary by its path.
set -eu
exec sh "$(dirname "$0")/apt-install.sh" chromium /usr/bin/chromium
