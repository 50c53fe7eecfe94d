#!/usr/bin/env bash
# Prune Once for All on MiniLM-L6 with the local corpus, resumably: the dense MLM teacher,
# upstream gradual magnitude pruning to 85%, then per TASK pattern-locked transfer and 8-bit QAT,
# both distilling from that task's dense teacher of the minilm_glue sweep, and the speed of the
# int8 model against the dense fp32 teacher in one `bench infer` run. A stage with results.json
# is skipped; one with checkpoints is resumed. Stop with SIGTERM (it checkpoints) and run again.
#
# Usage: scripts/prune_ofa_minilm.sh [TASK ...]          (default: mrpc rte)
set -euo pipefail
cd "$(dirname "$0")/.."
SCULPT=${SCULPT:-build/sculpt}
TASKS=${*:-mrpc rte}
SWEEP=runs/sweeps/minilm_glue/teacher
[[ -f data/corpus/local.txt ]] || python3 scripts/local_corpus.py
[[ -f data/models/minilm-l6/config.json ]] || scripts/get_model.sh minilm-l6

stage() {  # stage RUN_DIR ARGS...: run, resume, or skip a finished run
  local dir=$1; shift
  if [[ -f "$dir/results.json" ]]; then echo "[ofa] $dir: done"; return; fi
  if [[ -d "$dir/checkpoints" ]]; then "$SCULPT" resume "$dir"; else "$SCULPT" run "$@"; fi
}

stage runs/ofa_minilm_mlm_teacher recipes/prune-ofa/mlm_teacher.yaml
stage runs/ofa_minilm_upstream_85 recipes/prune-ofa/upstream_prune.yaml
for task in $TASKS; do
  teacher=$SWEEP/$task/seed-42/best
  [[ -f $teacher/config.json ]] || { echo "[ofa] no dense $task teacher at $teacher (run the minilm_glue sweep's teacher stage)" >&2; exit 1; }
  stage runs/ofa_minilm_85_$task recipes/prune-ofa/transfer.yaml data.task=$task run.name=ofa_minilm_85_$task distill.teacher=$teacher
  stage runs/ofa_minilm_85_${task}_qat recipes/prune-ofa/qat.yaml data.task=$task run.name=ofa_minilm_85_${task}_qat \
    model.path=runs/ofa_minilm_85_$task/best distill.teacher=$teacher
  mkdir -p runs/ofa_minilm_eval  # the dense fp32 teacher and the int8 model through `sculpt eval`, same dev set
  for pair in "teacher:$teacher" "int8:runs/ofa_minilm_85_${task}_qat/best"; do
    out=runs/ofa_minilm_eval/${task}_${pair%%:*}.json
    [[ -f $out ]] || { "$SCULPT" eval --model "${pair#*:}" --task "$task" > "$out.tmp" && mv "$out.tmp" "$out"; }
  done
done
"$SCULPT" bench infer --model "$SWEEP/mrpc/seed-42/best" --model runs/ofa_minilm_85_mrpc_qat/best --shape 32x128 --shape 1x128 \
  | tee runs/ofa_minilm_bench.txt
