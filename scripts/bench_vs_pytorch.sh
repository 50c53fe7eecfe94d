#!/usr/bin/env bash
# The same BERT training step in Transformers' eager PyTorch model and in sculpt, on the same
# device, in one run: same config (bert-base shape, random init), batch, length, dtype (bf16
# autocast), optimizer (AdamW) — and their ratio. Needs python3 with torch and transformers,
# and a sculpt build (build-cuda/ from scripts/build_cuda.sh on a GPU, build/ otherwise).
# Usage: scripts/bench_vs_pytorch.sh [--device cuda] [--batch 32] [--seq 128] [--precision bf16] [--steps 20]
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda BATCH=32 SEQ=128 PRECISION=bf16 STEPS=20 WARMUP=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --seq) SEQ=$2; shift 2 ;;
    --precision) PRECISION=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
SCULPT=${SCULPT:-$( [[ -x build-cuda/sculpt ]] && echo build-cuda/sculpt || echo build/sculpt )}

PT=$(python3 - "$DEVICE" "$BATCH" "$SEQ" "$PRECISION" "$STEPS" "$WARMUP" <<'PY'
import sys, time, torch
from transformers import BertConfig, BertForSequenceClassification
device, B, T, precision, steps, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
torch.manual_seed(0)
# bert-base-uncased's shape, eager attention (the PyTorch stack a user would otherwise run)
config = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=512, num_labels=2, attn_implementation="eager")
model = BertForSequenceClassification(config).to(device).train()
no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=2e-5)
ids = torch.randint(5, config.vocab_size, (B, T), device=device)
labels = torch.randint(0, 2, (B,), device=device)
mask = torch.ones_like(ids)
def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    opt.step()
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
for _ in range(warmup): step()
sync(); t0 = time.perf_counter()
for _ in range(steps): step()
sync(); print(B * steps / (time.perf_counter() - t0))
PY
)
SC=$("$SCULPT" bench train --model bert-base --batch "$BATCH" --seq "$SEQ" --device "$DEVICE" --precision "$PRECISION" \
       --steps "$STEPS" --warmup "$WARMUP" | awk '/samples\/s/ {print $2}')
echo "bench vs pytorch: device $DEVICE, bert-base shape, batch $BATCH x length $SEQ, $PRECISION, AdamW, $STEPS steps after $WARMUP"
printf "  transformers eager  %10.1f samples/s\n" "$PT"
printf "  sculpt              %10.1f samples/s\n" "$SC"
python3 -c "print('  ratio sculpt/pytorch %8.2fx' % ($SC / $PT))"
