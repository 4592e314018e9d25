#!/bin/sh
# Install Debian's nftables for the ICE-TCP browser test, which drops UDP to the media port
# inside a network namespace of its own so that only TCP can carry the session.
set -eu
exec sh "$(dirname "$0")/apt-install.sh" nftables /usr/sbin/nft
