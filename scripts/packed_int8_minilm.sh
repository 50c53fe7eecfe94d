#!/usr/bin/env bash
# Structured pruning and int8 together (issue 12): a MiniLM teacher of the minilm_glue sweep and a
# packed model made from it (default: `sculpt compress --method taylor --target 0.5`, or PACKED=DIR,
# e.g. an SP3 cell's best/), each post-training quantized (static, calibrated on 256 train rows),
# all four evaluated on the dev split and timed in one `sculpt bench infer` run:
#   results/packed_int8_minilm/<task>.md
#
#   scripts/packed_int8_minilm.sh [TASK]                 # default: rte
#   PACKED=runs/sweeps/minilm_glue/prune/rte/sp3_target-0.06_seed-1/best PACKED_INT8_ROOT=runs/packed_int8_sp3 \
#     OUT_NAME=rte_sp3_0.06 scripts/packed_int8_minilm.sh rte     # -> results/packed_int8_minilm/rte_sp3_0.06.md
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SCULPT_BIN:-build/sculpt}
TASK=${1:-rte}
ROOT=${PACKED_INT8_ROOT:-runs/packed_int8}/$TASK
TEACHER=${TEACHER:-runs/sweeps/minilm_glue/teacher/$TASK/seed-42/best}
export SCULPT_DATA=${SCULPT_DATA:-$PWD/../shared/data} SCULPT_SHARED=${SCULPT_SHARED:-$PWD/../shared}
[[ -f "$TEACHER/config.json" ]] || { echo "[packed_int8] $TEACHER: no teacher (run the minilm_glue sweep's teacher stage)"; exit 1; }
mkdir -p "$ROOT"
PACKED=${PACKED:-$ROOT/taylor_0.5}
if [[ ! -f "$PACKED/config.json" ]]; then
  "$BIN" compress --method taylor --target 0.5 --model "$TEACHER" --task "$TASK" --out "$PACKED" --progress off
fi
for pair in "$TEACHER|$ROOT/teacher_int8" "$PACKED|$ROOT/packed_int8"; do
  from=${pair%%|*} to=${pair#*|}
  [[ -f "$to/config.json" ]] || "$BIN" quantize --model "$from" --out "$to" --mode static --task "$TASK" --examples 256
done
OUT=results/packed_int8_minilm/${OUT_NAME:-$TASK}.md
mkdir -p "$(dirname "$OUT")"
{
  echo "# MiniLM-L6 on $TASK: dense and packed, fp32 and int8 (scripts/packed_int8_minilm.sh)"
  echo
  echo "| model | directory | dev metrics |"
  echo "| --- | --- | --- |"
  for row in "dense fp32|$TEACHER" "dense int8 (PTQ static)|$ROOT/teacher_int8" "packed fp32|$PACKED" "packed int8 (PTQ static)|$ROOT/packed_int8"; do
    name=${row%%|*} dir=${row#*|}
    metrics=$("$BIN" eval --model "$dir" --task "$TASK" --device cpu 2>/dev/null | sed -n '/^{/,/^}/p' | python3 -c \
      'import json,sys; j=json.load(sys.stdin); print(", ".join(f"{k} {100*v:.1f}" for k,v in j.items() if isinstance(v,float) and k not in ("loss","seconds")))')
    echo "| $name | \`$dir\` | $metrics |"
  done
  echo
  echo '```'
  "$BIN" bench infer --model "$TEACHER" --model "$ROOT/teacher_int8" --model "$PACKED" --model "$ROOT/packed_int8" \
    --shape 32x128 --shape 1x128 --device cpu 2>/dev/null
  echo '```'
  echo
  echo "Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); $(date -u +%Y-%m-%d)."
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
