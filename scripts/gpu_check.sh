#!/usr/bin/env bash
# One call on a GPU machine that has CMake, nvcc and PyTorch (python3) but no network and none
# of our Debian -dev packages: builds sculpt against that PyTorch's LibTorch with the bundle
# from scripts/gpu_bundle.sh, then runs `sculpt env`, the unit and gpu tests, hf-live if
# Transformers is installed, and the benchmarks (bert-base bf16 training step with MFU, the
# same step in Transformers when present, dense vs packed inference). Every log goes to $OUT
# (default gpu-check-out/); summary.txt collects the figures. Budget: about 9 minutes.
# Prepare here:  scripts/gpu_bundle.sh            (build-bundle/prefix.tar, ~9 MB)
# Run there:     OUT=/some/dir scripts/gpu_check.sh [--build-only]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUILD=${SCULPT_BUILD_DIR:-build-gpu}
PY=${PYTHON:-python3}
BUNDLE=build-bundle
summary="$OUT/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
step() {  # step NAME TIMEOUT_S CMD...: runs CMD with a time limit into $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  say "[gpu-check] $name: exit $rc in $((SECONDS - t0)) s"
  return $rc
}

[[ -d $BUNDLE/prefix ]] || { [[ -f $BUNDLE/prefix.tar ]] && tar -C "$BUNDLE" -xf "$BUNDLE/prefix.tar"; }
[[ -d $BUNDLE/prefix ]] || { say "no $BUNDLE/prefix(.tar): run scripts/gpu_bundle.sh where the packages are"; exit 2; }
PREFIX=$(cd "$BUNDLE/prefix/usr" && pwd)
TORCH_DIR=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch
say "[gpu-check] torch $("$PY" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")')"
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
export LD_LIBRARY_PATH=$PREFIX/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

step configure 300 cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$TORCH_DIR" \
  -DCMAKE_PREFIX_PATH="$PREFIX;$PREFIX/lib/x86_64-linux-gnu/cmake" -DSCULPT_PYTHON="$(command -v "$PY")" \
  -DCMAKE_CXX_COMPILER_LAUNCHER= || { tail -30 "$OUT/configure.log"; exit 1; }
step build "${SCULPT_GPU_CHECK_BUILD_S:-420}" cmake --build "$BUILD" -j "$(nproc)" || { grep -m20 -B2 -A6 'error' "$OUT/build.log"; exit 1; }
[[ "${1:-}" == --build-only ]] && exit 0
S=$BUILD/sculpt
step env 60 "$S" env; cat "$OUT/env.log" >> "$summary"
step tests 240 bash -c "cd $BUILD && ctest --output-on-failure -j 8 -L '^(unit|gpu)$'"
grep -E 'tests passed|tests failed|Skipped' "$OUT/tests.log" | tee -a "$summary"
if "$PY" -c 'import transformers' 2>/dev/null; then
  step hf_live 240 bash -c "cd $BUILD && ctest --output-on-failure -L hf-live"
fi
step bench_train 120 "$S" bench train --model bert-base --batch 32 --seq 128 --precision bf16 --device cuda --peak-tflops 989 --steps 20 --warmup 5
grep -E 'step time|samples/s|TFLOP|MFU' "$OUT/bench_train.log" | tee -a "$summary"
if "$PY" -c 'import transformers' 2>/dev/null; then
  SCULPT=$S SCULPT_PYTHON=$PY step bench_vs_transformers 180 bash scripts/bench_vs_pytorch.sh --device cuda --batch 32 --seq 128 \
    --precision bf16 --steps 20 --warmup 5 --repeats 3
  tail -4 "$OUT/bench_vs_transformers.log" | tee -a "$summary"
else
  say "[gpu-check] bench_vs_transformers: skipped, transformers is not installed in $PY"
fi
step bench_infer 120 "$S" bench infer --synthetic bert-base --device cuda --shape 128x128 --shape 32x512 --steps 20 --warmup 3
grep -E 'speedup' "$OUT/bench_infer.log" | tee -a "$summary"
say "[gpu-check] logs in $OUT"
