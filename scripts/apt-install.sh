#!/bin/sh
# Usage: apt-install.sh PACKAGE FILE
# Install the Debian PACKAGE unless FILE (its binary or header) is already there; quiet and
# idempotent when it is.
# apt-get update runs only when the package lists do not know PACKAGE yet.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 PACKAGE BINARY" >&2
    exit 2
fi
PACKAGE=$1
BINARY=$2
NAME="install-$PACKAGE"

describe() {  # the first line of --version for a program, the path for anything else
    if [ -x "$BINARY" ] && [ ! -d "$BINARY" ]; then
        "$BINARY" --version 2>/dev/null | head -n 1
    else
        echo "$BINARY"
    fi
}

if [ -e "$BINARY" ]; then
    echo "$NAME: already present: $(describe)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "$NAME: not root and no sudo; cannot install $PACKAGE" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "$NAME: apt-get not found; install $PACKAGE ($BINARY) by hand" >&2
    exit 1
fi

if ! apt-cache policy "$PACKAGE" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    echo "$NAME: $PACKAGE not in the package lists; running apt-get update"
    $SUDO apt-get update
fi
echo "$NAME: installing $PACKAGE"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "$PACKAGE"

if [ -e "$BINARY" ]; then
    echo "$NAME: installed $(describe)"
else
    echo "$NAME: apt-get finished but $BINARY is still missing" >&2
    exit 1
fi
