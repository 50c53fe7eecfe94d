#!/usr/bin/env bash
# Download SQuAD v1.1 and v2.0 (train + dev JSON) into DEST (default data/squad).
# Usage: scripts/download_squad.sh [DEST]   — needs network access (curl).
set -euo pipefail
DEST=${1:-data/squad}
BASE=${SQUAD_BASE_URL:-https://rajpurkar.github.io/SQuAD-explorer/dataset}
mkdir -p "$DEST"
for f in train-v1.1.json dev-v1.1.json train-v2.0.json dev-v2.0.json; do
  [[ -s "$DEST/$f" ]] && { echo "[squad] $f already there"; continue; }
  curl -fsSL -o "$DEST/$f.tmp" "$BASE/$f" && mv "$DEST/$f.tmp" "$DEST/$f"
  echo "[squad] $DEST/$f"
done
