#!/bin/sh
# prebuild-shim.sh — prebuildify calls this in place of node-gyp; we build
# with cmake-js instead (prebuildify then picks build/Release/grip.node).
# GRIP_PREBUILD_INCREMENTAL=1 reuses an existing build (the packaging test).
set -e
if [ "${GRIP_PREBUILD_INCREMENTAL:-0}" = 1 ]; then
  exec npx --no-install cmake-js build
fi
exec npx --no-install cmake-js rebuild
