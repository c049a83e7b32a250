#!/usr/bin/env bash
# fuzz-capi.sh — builds the libFuzzer target over the C ABI (test/native/fuzz/
# fuzz_capi.cc, clang, ASan + UBSan, CPU only) into build-fuzz/ and runs it.
# Usage: scripts/fuzz-capi.sh [SECONDS (60)] [SEED (1)]   (docs/hardening.md)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
seed=${2:-1}
command -v clang++ >/dev/null || { echo "fuzz-capi: clang++ not found (apt-get install -y clang)"; exit 1; }
if [ ! -f build-fuzz/CMakeCache.txt ]; then
  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DGRIP_CUDA=OFF -DGRIP_LIBFUZZER=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build build-fuzz --target grip_fuzz_capi -j 2 | tail -n 3
mkdir -p build-fuzz/corpus
# New inputs go to build-fuzz/corpus; the committed seeds are read only.
exec build-fuzz/grip_fuzz_capi build-fuzz/corpus test/fuzz/corpus/capi \
  -artifact_prefix=build-fuzz/ -max_total_time="$seconds" -seed="$seed" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1
