#!/usr/bin/env bash
# The one-shot compressors (sculpt compress) on the MiniLM teachers of the minilm_glue sweep:
# every method at two sizes per task, evaluated on the dev split as compressed ("before") and
# after a short fine-tune of 50 updates with recipes/minilm/finetune.yaml ("after"; for k-means,
# Deep Compression's centroid fine-tuning: codebook.method=finetune, the weights stay shared and
# the result is a codebook directory of the same size). Resumable: a cell
# with its outputs is skipped, an interrupted fine-tune is resumed. Then the table:
#   results/one_shot_minilm/{table.md,table.csv}
#
#   scripts/one_shot_baselines.sh [TASK ...]          # default: mrpc rte
#   SCULPT_BIN=runs/bin/sculpt FT_UPDATES=50 scripts/one_shot_baselines.sh mrpc
#   ONLY='^kmeans' scripts/one_shot_baselines.sh rte   # only the matching cells; the table is left alone
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SCULPT_BIN:-build/sculpt}
ROOT=${ONE_SHOT_ROOT:-runs/one_shot}
FT_UPDATES=${FT_UPDATES:-50}
TEACHERS=${TEACHERS:-runs/sweeps/minilm_glue/teacher}
export SCULPT_DATA=${SCULPT_DATA:-$PWD/../shared/data} SCULPT_SHARED=${SCULPT_SHARED:-$PWD/../shared}
TASKS=("$@")
[[ ${#TASKS[@]} -gt 0 ]] || TASKS=(mrpc rte)

# name | compress flags (the task's train split is the sample where one is read)
CELLS=(
  "magnitude_0.3|--method magnitude --target 0.3"
  "magnitude_0.6|--method magnitude --target 0.6"
  "activation_0.3|--method activation --target 0.3"
  "activation_0.6|--method activation --target 0.6"
  "taylor_0.3|--method taylor --target 0.3"
  "taylor_0.6|--method taylor --target 0.6"
  "slice_0.25|--method slice --target 0.25"
  "slice_0.5|--method slice --target 0.5"
  "kmeans_4bit|--method kmeans --bits 4"
  "kmeans_2bit|--method kmeans --bits 2"
)

evaluate() {  # MODEL TASK OUT.json
  "$BIN" eval --model "$1" --task "$2" --device cpu 2>/dev/null | sed -n '/^{/,/^}/p' > "$3.tmp" && mv "$3.tmp" "$3"
}

for task in "${TASKS[@]}"; do
  teacher="$TEACHERS/$task/seed-42/best"
  [[ -f "$teacher/config.json" ]] || { echo "[one_shot] $teacher: no teacher (run the minilm_glue sweep's teacher stage)"; exit 1; }
  mkdir -p "$ROOT/$task"
  [[ -f "$ROOT/$task/teacher.eval.json" ]] || evaluate "$teacher" "$task" "$ROOT/$task/teacher.eval.json"
  for cell in "${CELLS[@]}"; do
    name=${cell%%|*}
    flags=${cell#*|}
    [[ -z ${ONLY:-} || $name =~ $ONLY ]] || continue
    out="$ROOT/$task/$name"
    if [[ ! -f "$out/compression.json" ]]; then
      rm -rf "$out"
      echo "[one_shot] $task $name: compress"
      # shellcheck disable=SC2086
      "$BIN" compress $flags --model "$teacher" --task "$task" --out "$out" --progress off
    fi
    [[ -f "$out.before.json" ]] || evaluate "$out" "$task" "$out.before.json"
    extra=()
    [[ $name == kmeans* ]] && extra=(codebook.method=finetune)
    ft="$ROOT/$task/${name}_ft"
    if [[ ! -f "$ft/results.json" ]]; then
      echo "[one_shot] $task $name: fine-tune $FT_UPDATES updates"
      if [[ -f "$ft/recipe.resolved.yaml" ]]; then
        "$BIN" resume "$ft" > "$ft.log" 2>&1
      else
        "$BIN" run recipes/minilm/finetune.yaml data.task="$task" model.path="$out" run.output_root="$ROOT/$task" \
          run.name="${name}_ft" train.duration="${FT_UPDATES}u" eval.every="${FT_UPDATES}u" checkpoint.every=25u \
          logging.progress_bar=off "${extra[@]}" > "$ft.log" 2>&1
      fi
    fi
  done
done

if [[ -n ${ONLY:-} ]]; then
  echo "[one_shot] ONLY=$ONLY: results/one_shot_minilm left as it is (a table of some cells would drop the others)"
  exit 0
fi
python3 scripts/one_shot_table.py "$ROOT" results/one_shot_minilm "${TASKS[@]}"
