#!/usr/bin/env bash
# Download the GLUE tasks into the official TSV layout: <dest>/<TASK>/{train,dev,test}.tsv.
# Usage: scripts/download_glue.sh [DEST=data/glue] [TASKS="CoLA SST-2 MRPC STS-B QQP MNLI QNLI RTE WNLI"]
# Needs network access (curl, unzip). Then point recipes at it: data.root=DEST or SCULPT_DATA.
set -euo pipefail
DEST=${1:-data/glue}
TASKS=${2:-"CoLA SST-2 MRPC STS-B QQP MNLI QNLI RTE WNLI"}
BASE=${GLUE_BASE_URL:-https://dl.fbaipublicfiles.com/glue/data}
mkdir -p "$DEST"
for task in $TASKS; do
  if [[ "$task" == MRPC ]]; then
    # MRPC ships as the Microsoft corpus; the GLUE split is rebuilt from dev_ids.tsv exactly as
    # the official download_glue_data.py does.
    mkdir -p "$DEST/MRPC"
    curl -fsSL -o "$DEST/MRPC/msr_paraphrase_train.txt" "${MRPC_TRAIN_URL:-https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_train.txt}"
    curl -fsSL -o "$DEST/MRPC/msr_paraphrase_test.txt" "${MRPC_TEST_URL:-https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_test.txt}"
    curl -fsSL -o "$DEST/MRPC/dev_ids.tsv" "${MRPC_DEV_IDS_URL:-https://raw.githubusercontent.com/MegEngine/Models/master/official/nlp/bert/glue_data/MRPC/dev_ids.tsv}"
    awk -F'\t' 'NR==FNR {dev[$1"\t"$2]=1; next}
                FNR==1 {print > train; print > devf; next}
                { key=$2"\t"$3; line=$1"\t"$2"\t"$3"\t"$4"\t"$5; if (key in dev) print line > devf; else print line > train }' \
        train="$DEST/MRPC/train.tsv" devf="$DEST/MRPC/dev.tsv" "$DEST/MRPC/dev_ids.tsv" "$DEST/MRPC/msr_paraphrase_train.txt"
    echo "[glue] MRPC: $(($(wc -l < "$DEST/MRPC/train.tsv") - 1)) train rows (expected 3668)"
    continue
  fi
  zip="$DEST/$task.zip"
  curl -fsSL -o "$zip" "$BASE/$task.zip"
  unzip -q -o "$zip" -d "$DEST"
  rm -f "$zip"
  echo "[glue] $task -> $DEST/$task"
done
