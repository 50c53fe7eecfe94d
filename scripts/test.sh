#!/usr/bin/env bash
# Builds (incrementally) and runs the whole test suite with ctest. Extra arguments go to
# ctest, e.g. scripts/test.sh -L unit   or   scripts/test.sh -R Bert
# When ../shared (SCULPT_SHARED) is present, a skipped test fails the run, except the `gpu`
# tests on a machine without a GPU: a missing fixture must not pass silently.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SCULPT_BUILD_DIR:-build}
bash scripts/venv.sh --test
bash scripts/get_model.sh minilm-l6   # the pretrained model of the hf_live_minilm parity test (85 MB, once)
bash scripts/configure.sh
cmake --build "$BUILD_DIR" -j "$(nproc)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
(cd "$BUILD_DIR" && ctest --output-on-failure -j "$(nproc)" "$@") 2>&1 | tee "$log" || status=$?
((status == 0)) || exit "$status"
bash scripts/check_skips.sh "$log" "$BUILD_DIR"
