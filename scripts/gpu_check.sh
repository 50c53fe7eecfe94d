#!/usr/bin/env bash
# One call on a GPU machine that has CMake, nvcc and PyTorch (python3) but no network and none
# of our Debian -dev packages: runs `sculpt env`, the gpu and unit tests, and the benchmarks
# (bert-base bf16 training step with MFU, the same step in Transformers when present, dense vs
# packed inference, the quickstart and its SP3 compression end to end on the GPU). Every log
# goes to $OUT (default gpu-check-out/); summary.txt collects the figures.
# Two ways to get the binaries there:
#   --prebuilt DIR  binaries built here against the same torch wheel as that machine's PyTorch
#                   (2.11.0+cu130 both), packed by scripts/gpu_carry.sh: no build there, about
#                   5 minutes in all. Carry DIR (`carry: ["gpu-carry"]`).
#   (default)       build there with the bundle from scripts/gpu_bundle.sh
#                   (build-bundle/prefix.tar, ~9 MB): about 9 minutes.
# Run there:     OUT=/some/dir scripts/gpu_check.sh [--prebuilt gpu-carry | --build-only]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUILD=${SCULPT_BUILD_DIR:-build-gpu}
PY=${PYTHON:-python3}
BUNDLE=build-bundle
PREBUILT=
[[ "${1:-}" == --prebuilt ]] && PREBUILT=$(cd "$2" && pwd)
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
run_benches() {  # bert-base bf16 training step (MFU), vs Transformers, dense inference; needs $S
  step bench_train 120 "$S" bench train --model bert-base --batch 32 --seq 128 --precision bf16 --device cuda --peak-tflops 989 --steps 20 --warmup 5
  grep -E 'step time|samples/s|TFLOP|MFU' "$OUT/bench_train.log" | tee -a "$summary"
  # Batch 32 x 128 is launch-bound on an H200 (0.030 s/step against 0.035 s at batch 128): the larger batch shows the GEMM side.
  step bench_train_b128 120 "$S" bench train --model bert-base --batch 128 --seq 128 --precision bf16 --device cuda --peak-tflops 989 --steps 10 --warmup 3
  grep -E 'step time|MFU' "$OUT/bench_train_b128.log" | tee -a "$summary"
  if "$PY" -c 'import transformers' 2>/dev/null; then
    SCULPT=$S SCULPT_PYTHON=$PY step bench_vs_transformers 180 bash scripts/bench_vs_pytorch.sh --device cuda --batch 32 --seq 128 \
      --precision bf16 --steps 20 --warmup 5 --repeats 3
    tail -4 "$OUT/bench_vs_transformers.log" | tee -a "$summary"
  else
    say "[gpu-check] bench_vs_transformers: skipped, transformers is not installed in $PY"
  fi
  step bench_infer 120 "$S" bench infer --synthetic bert-base --device cuda --shape 128x128 --shape 32x512 --steps 20 --warmup 3
  grep -E 'speedup' "$OUT/bench_infer.log" | tee -a "$summary"
}
sharded() {  # sharded NAME BINARY: one gtest binary in 8 shards at once into $OUT/NAME_tests.log
  local name=$1 bin=$2 shards=8 t0=$SECONDS
  for i in $(seq 0 $((shards - 1))); do
    GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i timeout 240 "$bin" > "$OUT/${name}_shard_$i.log" 2>&1 &
  done
  wait
  cat "$OUT/${name}"_shard_*.log > "$OUT/${name}_tests.log" && rm -f "$OUT/${name}"_shard_*.log
  say "[gpu-check] $name tests ($shards shards): $((SECONDS - t0)) s, $(grep -c '^\[       OK \]' "$OUT/${name}_tests.log") passed"
  grep -E '^\[  (FAILED|SKIPPED) ' "$OUT/${name}_tests.log" | sort -u | tee -a "$summary"
}
say "[gpu-check] torch $("$PY" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")')"

if [[ -n $PREBUILT ]]; then
  source scripts/prebuilt_env.sh
  use_prebuilt "$PREBUILT" "$PY" 2> "$OUT/prebuilt.err" || { say "$(cat "$OUT/prebuilt.err")"; exit 2; }
  export SCULPT_SHARED=$PREBUILT/shared SCULPT_DATA=$PREBUILT/shared/data
  BIN=$PREBUILT/bin
  S=$BIN/sculpt
  step env 60 "$S" env || { cat "$OUT/env.log"; ldd "$S" | grep 'not found'; exit 1; }
  cat "$OUT/env.log" >> "$summary"
  step gpu_tests 180 "$BIN/sculpt_gpu_tests"
  grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/gpu_tests.log" | tee -a "$summary"
  # The unit and parity tests in 8 gtest shards at once: device-auto paths run on the GPU here.
  sharded unit "$BIN/sculpt_unit_tests"
  sharded parity "$BIN/sculpt_parity_tests"
  run_benches
  # The quickstart and its SP3 compression end to end on the GPU, then packed vs teacher.
  step quickstart 150 "$S" run recipes/quickstart.yaml run.device=cuda run.output_root="$OUT/runs"
  grep -E 'best|accuracy|train_seconds' "$OUT/quickstart.log" | tail -3 | tee -a "$summary"
  step quickstart_sp3 240 "$S" run recipes/quickstart_sp3.yaml run.device=cuda run.output_root="$OUT/runs" \
    model.path="$OUT/runs/quickstart/best"
  grep -E 'packed|remaining|best' "$OUT/quickstart_sp3.log" | tail -4 | tee -a "$summary"
  step bench_packed 90 "$S" bench infer --device cuda --model "$OUT/runs/quickstart/best" \
    --model "$OUT/runs/quickstart_sp3/best" --shape 128x64 --steps 20 --warmup 3
  grep -E 'speedup' "$OUT/bench_packed.log" | tee -a "$summary"
  rm -rf "$OUT/runs"   # weights do not come back; the logs above hold the figures
  # The device tool returns at most 8 files: the summary plus one archive of the logs.
  (cd "$OUT" && tar czf logs.tgz ./*.log && rm -f ./*.log)
  say "[gpu-check] summary in $OUT/summary.txt, logs in $OUT/logs.tgz"
  exit 0
fi

[[ -d $BUNDLE/prefix ]] || { [[ -f $BUNDLE/prefix.tar ]] && tar -C "$BUNDLE" -xf "$BUNDLE/prefix.tar"; }
[[ -d $BUNDLE/prefix ]] || { say "no $BUNDLE/prefix(.tar): run scripts/gpu_bundle.sh where the packages are"; exit 2; }
PREFIX=$(cd "$BUNDLE/prefix/usr" && pwd)
TORCH_DIR=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch
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
run_benches
say "[gpu-check] logs in $OUT"
