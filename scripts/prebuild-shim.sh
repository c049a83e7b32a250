#!/bin/sh
# prebuild-shim.sh — prebuildify calls this in place of node-gyp; we build
# with cmake-js instead (prebuildify then picks build/Release/grip.node).
set -e
exec npx --no-install cmake-js rebuild
