#!/bin/sh
# Install what building sfu.protocol._fanout needs (a C compiler and OpenSSL's headers) unless they are
# there. Python's own headers come with the interpreter that makes the venv. The extension is
# optional at build time, so a failure here is reported and never fails make.
set -u
HERE=$(dirname "$0")
sh "$HERE/apt-install.sh" gcc /usr/bin/gcc || echo "install-build-deps: no gcc; sfu.protocol._fanout will not build" >&2
sh "$HERE/apt-install.sh" libssl-dev /usr/include/openssl/evp.h \
    || echo "install-build-deps: no OpenSSL headers; sfu.protocol._fanout will not build" >&2
exit 0
