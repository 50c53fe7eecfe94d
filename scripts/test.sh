#!/usr/bin/env bash
# Builds (incrementally) and runs the whole test suite with ctest. Extra arguments go to
# ctest, e.g. scripts/test.sh -L unit   or   scripts/test.sh -R Bert
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SCULPT_BUILD_DIR:-build}
[[ -f "$BUILD_DIR/CMakeCache.txt" ]] || cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$(nproc)"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
