#!/bin/sh
# Put hls.js (npm, Apache-2.0) where the play page loads it for HLS in browsers without
# native HLS: web/vendor/hls.light.min.js, pinned, unless it is already there. The page
# works without it (WebRTC, or a browser's own HLS); the HLS browser test needs it.
set -eu
VERSION=1.7.4
root="$(cd "$(dirname "$0")/.." && pwd)"
target="$root/web/vendor/hls.light.min.js"
[ -s "$target" ] && grep -q "$VERSION" "$root/web/vendor/VERSION" 2>/dev/null && exit 0
command -v npm >/dev/null || sh "$(dirname "$0")/apt-install.sh" npm /usr/bin/npm
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "hls.js@$VERSION" >/dev/null && tar xzf "hls.js-$VERSION.tgz")
mkdir -p "$root/web/vendor"
cp "$work/package/dist/hls.light.min.js" "$target"
cp "$work/package/LICENSE" "$root/web/vendor/LICENSE.hls.js"
echo "hls.js $VERSION" > "$root/web/vendor/VERSION"
