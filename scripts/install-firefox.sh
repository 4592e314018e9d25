#!/bin/sh
# Install Debian's firefox-esr for tests/browser/test_firefox.py unless it is already there.
# The tests drive it through its built-in WebDriver BiDi agent: no geckodriver, no Playwright.
set -eu
exec sh "$(dirname "$0")/apt-install.sh" firefox-esr /usr/bin/firefox-esr
