#!/usr/bin/env bash
# The same BERT sequence-classification work in Transformers (eager PyTorch, its default
# attention) and in sculpt, on the same device, config (random init), batch, length, dtype and
# optimizer (AdamW, HF's decay groups), in one run: a training step and an inference forward.
# Runs alternate (Transformers, sculpt, Transformers, ...) and each side's median is kept, so a
# slow spell of a shared machine hits both alike. Installs transformers into the venv if needed.
# Usage: scripts/bench_vs_pytorch.sh [--device cpu|cuda] [--layers 12] [--hidden 768] [--heads 12]
#          [--ffn 3072] [--batch 8] [--seq 128] [--precision fp32|bf16] [--steps 5] [--warmup 2]
#          [--repeats 3] [--threads N]
# The last line reads `ratio sculpt/transformers: X.XX` (training step, >1: sculpt is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cpu LAYERS=12 HIDDEN=768 HEADS=12 FFN=3072 BATCH=8 SEQ=128 PRECISION=fp32 STEPS=5 WARMUP=2 REPEATS=3 THREADS=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) DEVICE=$2 ;; --layers) LAYERS=$2 ;; --hidden) HIDDEN=$2 ;; --heads) HEADS=$2 ;; --ffn) FFN=$2 ;;
    --batch) BATCH=$2 ;; --seq) SEQ=$2 ;; --precision) PRECISION=$2 ;; --steps) STEPS=$2 ;; --warmup) WARMUP=$2 ;;
    --repeats) REPEATS=$2 ;; --threads) THREADS=$2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
PY=${SCULPT_PYTHON:-}
if [[ -z "$PY" ]]; then
  bash scripts/venv.sh --test
  PY=${SCULPT_VENV:-.venv}/bin/python
fi
SCULPT=${SCULPT:-${SCULPT_BUILD_DIR:-build}/sculpt}
[[ -x "$SCULPT" ]] || { echo "no sculpt binary at $SCULPT (run scripts/setup.sh)" >&2; exit 1; }
THREADS=${THREADS:-$(nproc)}
export SCULPT_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

transformers_run() {  # prints "train_seconds_per_step infer_seconds_per_batch attn_impl"
  "$PY" - "$DEVICE" "$LAYERS" "$HIDDEN" "$HEADS" "$FFN" "$BATCH" "$SEQ" "$PRECISION" "$STEPS" "$WARMUP" "$THREADS" <<'PY'
import sys, time, torch
from transformers import BertConfig, BertForSequenceClassification
device, L, H, A, F, B, T, precision, steps, warmup, threads = sys.argv[1:]
L, H, A, F, B, T, steps, warmup, threads = map(int, (L, H, A, F, B, T, steps, warmup, threads))
torch.set_num_threads(threads)
torch.manual_seed(0)
config = BertConfig(vocab_size=30522, hidden_size=H, num_hidden_layers=L, num_attention_heads=A, intermediate_size=F,
                    max_position_embeddings=max(512, T), num_labels=2)
model = BertForSequenceClassification(config).to(device)
no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=2e-5)
ids = torch.randint(5, config.vocab_size, (B, T), device=device)
labels = torch.randint(0, 2, (B,), device=device)
mask = torch.ones_like(ids)
types = torch.zeros_like(ids)
bf16 = precision == "bf16"
sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels).loss
    loss.backward()
    opt.step()
def forward():
    with torch.inference_mode(), torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
        model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
def timed(fn):
    for _ in range(warmup): fn()
    sync(); t0 = time.perf_counter()
    for _ in range(steps): fn()
    sync(); return (time.perf_counter() - t0) / steps
model.train(); train = timed(step)
model.eval(); infer = timed(forward)
print(train, infer, model.config._attn_implementation)
PY
}
sculpt_run() {  # prints "train_seconds_per_step infer_seconds_per_batch"
  local common=(--device "$DEVICE" --layers "$LAYERS" --hidden "$HIDDEN" --heads "$HEADS" --ffn "$FFN" --batch "$BATCH"
                --seq "$SEQ" --precision "$PRECISION" --steps "$STEPS" --warmup "$WARMUP")
  local train infer
  train=$("$SCULPT" bench train "${common[@]}" | awk '/step time/ {print $3}')
  infer=$("$SCULPT" bench train --forward-only "${common[@]}" | awk '/step time/ {print $3}')
  echo "$train $infer"
}

declare -a HT HI ST SI
ATTN=
for ((r = 0; r < REPEATS; ++r)); do
  read -r t i ATTN < <(transformers_run)
  HT+=("$t") HI+=("$i")
  read -r t i < <(sculpt_run)
  ST+=("$t") SI+=("$i")
  echo "  repeat $((r + 1)): transformers train ${HT[-1]} s, infer ${HI[-1]} s | sculpt train ${ST[-1]} s, infer ${SI[-1]} s" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ht=$(median "${HT[@]}") hi=$(median "${HI[@]}") st=$(median "${ST[@]}") si=$(median "${SI[@]}")
echo "bench vs transformers: device $DEVICE, threads $THREADS, $LAYERS layers x $HIDDEN hidden ($HEADS heads, ffn $FFN), batch $BATCH x length $SEQ, $PRECISION, AdamW; median of $REPEATS alternating runs of $STEPS steps after $WARMUP"
echo "  transformers attention: $ATTN"
awk -v ht="$ht" -v hi="$hi" -v st="$st" -v si="$si" -v b="$BATCH" 'BEGIN {
  printf "  training step     transformers %9.4f s   sculpt %9.4f s   (%.1f vs %.1f samples/s)\n", ht, st, b / ht, b / st
  printf "  inference forward transformers %9.4f s   sculpt %9.4f s   ratio %.2f\n", hi, si, hi / si
  printf "ratio sculpt/transformers: %.2f\n", ht / st }'
