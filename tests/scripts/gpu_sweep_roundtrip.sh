#!/usr/bin/env bash
# scripts/gpu_sweep.sh end to end on this machine's CPU, with the tiny recipes: a checkout
# ("here") runs the teacher stage and packs the prune stage; a bare copy of the tree ("there",
# as the device tool gives it) runs the packed cells; `unpack` brings their records and run
# files back, and the sweep here counts them as done. The cells run there must be the sweep's
# own: the same sweep run here from the same (fp16-stored) teacher gives the same packed scores.
# Usage: gpu_sweep_roundtrip.sh SCULPT_BINARY PYTHON   (exit 77: skipped, no ../shared)
set -euo pipefail
SCULPT=$(realpath "$1") PY=$2
[[ $PY == */* ]] && PY=$(realpath -s "$PY")
SRC=$(cd "$(dirname "$0")/../.." && pwd)
export SCULPT_SHARED=${SCULPT_SHARED:-$SRC/../shared}
[[ -d $SCULPT_SHARED/data/glue/SST-2 && -d $SCULPT_SHARED/fixtures/hf/tok_bert_wordpiece ]] ||
  { echo "needs ../shared/data/glue/SST-2 and fixtures (set SCULPT_SHARED); not found, skipped"; exit 77; }
export SCULPT_SHARED=$(cd "$SCULPT_SHARED" && pwd)
export SCULPT_DATA=$SCULPT_SHARED/data
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export SCULPT_CACHE=$T/cache SCULPT_BUILD_DIR=$(dirname "$SCULPT") SCULPT_PYTHON=$PY
fail() { echo "FAILED: $*" >&2; exit 1; }
json() { "$PY" -c "import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {'d': d}))" "$@"; }

for d in here there again; do
  mkdir -p "$T/$d" && ln -s "$SRC/scripts" "$T/$d/scripts" && ln -s "$SRC/recipes" "$T/$d/recipes"
  cat > "$T/$d/tiny.yaml" <<EOF
sweep:
  name: tiny
  output_root: runs/sweeps
  records: records
  tasks: [sst2]
  stages:
    - name: teacher
      recipe: recipes/tests/tiny_bert_finetune.yaml
    - name: prune
      from: teacher
      grid: {run.seed: [7, 8]}
      variants:
        sp3: {recipe: recipes/tests/tiny_bert_sp3.yaml, grid: {prune.target: [0.5]}}
EOF
done

cd "$T/here"
"$SCULPT" sweep tiny.yaml --stage teacher > teacher.log 2>&1 || { cat teacher.log; fail "teacher stage"; }
bash scripts/gpu_sweep.sh pack tiny.yaml --stage prune > pack.log 2>&1 || { cat pack.log; fail "pack"; }
cat pack.log
C=gpu-sweep/tree/runs/sweeps/tiny/teacher/sst2/default
[[ -f $C/results.json && -f gpu-sweep/data/glue/SST-2/train.tsv && -f gpu-sweep/shared/fixtures/hf/tok_bert_wordpiece/vocab.txt ]] ||
  fail "the pack lacks the teacher cell, SST-2 or the tokenizer"
[[ $("$PY" -c "from safetensors.torch import load_file; print({str(v.dtype) for v in load_file('$C/best/model.safetensors').values()})") == "{'torch.float16'}" ]] ||
  fail "the teacher's weights are not stored as fp16"
[[ ! -e gpu-sweep/tree/runs/sweeps/tiny/teacher/sst2/default/checkpoints ]] || fail "checkpoints were packed"

# The records are tracked files: they travel with the tree.
cp -r gpu-sweep records "$T/there/" && cp -r gpu-sweep/tree/. "$T/again/"
(cd "$T/there" && OUT=$T/out PYTHON=$PY bash scripts/gpu_sweep.sh run 300) || fail "run"
ls "$T/out"
[[ $(ls "$T/out") == $'files.txt\ngpu_sweep.tgz\nsweep.log' ]] || fail "run left other files in OUT"
! grep -q -E 'safetensors|checkpoints|/best/|/final/' "$T/out/files.txt" || fail "weights or model folders in the archive"

bash scripts/gpu_sweep.sh unpack "$T/out/gpu_sweep.tgz" | tee unpack.log
grep -q '4 run directories and records added, 0 kept' unpack.log || fail "unpack added other than 2 run directories and 2 records"
"$SCULPT" sweep tiny.yaml --status | tee status.log
grep -q '3 cells: 3 done, 0 interrupted, 0 fresh, 0 recorded' status.log || fail "the returned cells do not count as done"

# The same cells run here from the same inputs: the same packed scores, records and run files agree.
(cd "$T/again" && "$SCULPT" sweep tiny.yaml --stage prune --jobs 2 > sweep.log 2>&1) || { cat "$T/again/sweep.log"; fail "local run"; }
for s in 7 8; do
  cell=runs/sweeps/tiny/prune/sst2/sp3_target-0.5_seed-$s
  here=$(json "$cell/compression.json" "d['packed'], d['sparsity']")
  again=$(json "$T/again/$cell/compression.json" "d['packed'], d['sparsity']")
  echo "seed $s: returned $here, run here $again"
  [[ $here == "$again" ]] || fail "seed $s: the returned cell ($here) differs from the same cell run here ($again)"
  [[ $(json "records/prune/sst2/sp3_target-0.5_seed-$s.json" "d['score']") == $(json "$cell/compression.json" "d['packed']['accuracy']") ]] ||
    fail "seed $s: the record's score is not its cell's"
done

# A second unpack keeps what is here.
bash scripts/gpu_sweep.sh unpack "$T/out/gpu_sweep.tgz" | tee unpack2.log
grep -q '0 run directories and records added, 4 kept' unpack2.log || fail "a second unpack replaced files"
echo "gpu_sweep round trip: OK"
