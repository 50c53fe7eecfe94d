#!/usr/bin/env bash
# CoFi schedule variants on MRPC, in parallel on one GPU, from the sweep's MRPC teacher: the
# runs behind README.md here (2026-12-04, one NVIDIA H200, 8 processes at once, ~2 minutes for
# a 6-epoch run). Each is `sculpt run recipes/minilm/cofi.yaml` with the overrides below.
#   here:   results/minilm_glue/cofi_schedules/run_variants.sh prepare   # -> gpu-cofi/ (~54 MB)
#   there:  OUT=... results/minilm_glue/cofi_schedules/run_variants.sh fast|slow [LIMIT_S]
# `prepare` packs the CLI, its Debian runtime libraries, GLUE MRPC and the teacher with its
# weights stored as fp16 (the device tool carries at most 64 MiB; the fp16 copy scores exactly
# the fp32 teacher's 0.8137724738457683 on MRPC dev, `sculpt eval`); the runs compute in fp32.
set -uo pipefail
cd "$(dirname "$0")/../../.."
C=gpu-cofi
if [[ ${1:-} == prepare ]]; then
  T=runs/sweeps/minilm_glue/teacher/mrpc/seed-42/best
  bash scripts/gpu_carry.sh --cli-only $C > /dev/null && mkdir -p $C/data/glue $C/teacher_mrpc   # bin/, lib/
  cp -r ${SCULPT_SHARED:-../shared}/data/glue/MRPC $C/data/glue/
  cp $T/{config.json,special_tokens_map.json,tokenizer.json,tokenizer_config.json,vocab.txt} $C/teacher_mrpc/
  ${SCULPT_PYTHON:-.venv/bin/python} -c "from safetensors.torch import load_file, save_file
save_file({k: v.half().contiguous() for k, v in load_file('$T/model.safetensors').items()}, '$C/teacher_mrpc/model.safetensors', metadata={'format': 'pt'})"
  grep -qx "/$C/" .git/info/exclude || echo "/$C/" >> .git/info/exclude
  du -sh $C; exit 0
fi
source scripts/prebuilt_env.sh
use_prebuilt $PWD/$C python3 || exit 2
export SCULPT_DATA=$PWD/$C/data OMP_NUM_THREADS=2
R=$OUT/runs; mkdir -p $R
base="recipes/minilm/cofi.yaml data.task=mrpc model.path=$PWD/$C/teacher_mrpc run.device=cuda run.output_root=$R checkpoint.every=100000u"
slow="train.duration=14e prune.target_warmup=10e"
declare -A V
if [[ ${1:-} == fast ]]; then   # the recipe's 6e schedule (ramp 1e -> 4e), target 0.95
  V=([A_base]="" [B_rates003]="prune.mask_lr=0.03 prune.lambda_lr=0.03" [C_pred1]="prune.distill.pred_weight=1.0"
     [D_lambda001]="prune.lambda_lr=0.01" [E_rates005]="prune.mask_lr=0.05 prune.lambda_lr=0.05" [F_seed2]="run.seed=2"
     [G_filter_none]="prune.layer_filter=none" [H_warm45]="prune.target_warmup=4.5e prune.start=0.5e")
else                            # a 10e ramp in 14e (cut at LIMIT_S: about 11e in 165 s)
  V=([S1_slow_r01]="$slow" [S2_slow_r003]="$slow prune.mask_lr=0.03 prune.lambda_lr=0.03"
     [S3_slow_r001]="$slow prune.mask_lr=0.01 prune.lambda_lr=0.01" [S4_slow_t07]="$slow prune.target=0.7"
     [S5_fast_t07]="prune.target=0.7" [S7_slow_predonly]="$slow prune.distill.pred_weight=1 prune.distill.layer_weight=0"
     [S8_slow_seed2]="$slow run.seed=2")
fi
for v in "${!V[@]}"; do
  timeout ${2:-280} $C/bin/sculpt run $base run.name=$v ${V[$v]} > $OUT/$v.log 2>&1 &
done
wait
for v in "${!V[@]}"; do echo "== $v"; grep -E "packed model|no evaluation|done:" $OUT/$v.log | tail -3; done
(cd $R && tar czf $OUT/cofi_runs.tgz $(find . -name "*.jsonl" -o -name "results.json" -o -name "compression.json" -o -name "*.yaml" | grep -v checkpoint))
(cd $OUT && tar czf logs.tgz ./*.log && rm -f ./*.log); rm -rf $R
