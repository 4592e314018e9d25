#!/bin/sh
# Install Debian's redis-server for the cluster tests (tests/integration/test_cluster.py) unless
# it is already there. The tests start their own server on a free port and never use the
# system service.
set -eu
exec sh "$(dirname "$0")/apt-install.sh" redis-server /usr/bin/redis-server
