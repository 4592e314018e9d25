#!/bin/sh
# Install what building sfu._fanout needs (a C compiler, Python and OpenSSL headers), unless
# it is already there. The extension is optional: when this cannot install them the install
# still succeeds and the server forwards on the pure-Python path, so this never fails make.
set -u

INCLUDE=$("${PYTHON:-python3}" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
if command -v gcc >/dev/null 2>&1 && [ -f /usr/include/openssl/evp.h ] && [ -f "$INCLUDE/Python.h" ]; then
    echo "install-build-deps: gcc, OpenSSL and Python headers present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-build-deps: not root and no sudo; the compiled fan-out may not build" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-build-deps: no apt-get; install gcc and OpenSSL headers to build sfu._fanout" >&2
    exit 0
fi

echo "install-build-deps: installing gcc libssl-dev python3-dev"
$SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev python3-dev \
    || echo "install-build-deps: apt-get failed; the compiled fan-out may not build" >&2
exit 0
