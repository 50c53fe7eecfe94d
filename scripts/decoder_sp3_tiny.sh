#!/usr/bin/env bash
# SP3 of a T5 and of an OPT end to end on real SST-2, quickstart-sized (minutes on 2 cores): the
# tiny T5 and OPT fixtures (random weights, the fixtures' 1,104- and 1,000-piece vocabularies)
# fine-tuned on SST-2 as teachers, SP3 to half of their attention and FFN maps, a plain fine-tune
# of the packed model, and `bench infer` of teacher vs packed in one run. Resumable: a finished
# stage is skipped. Writes results/decoder_sp3_tiny/README.md.
#
# Usage: scripts/decoder_sp3_tiny.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SCULPT=${SCULPT:-build/sculpt}
OUT=runs/decoder_sp3_tiny
RES=results/decoder_sp3_tiny
export SCULPT_DATA=${SCULPT_DATA:-$PWD/../shared/data} SCULPT_SHARED=${SCULPT_SHARED:-$PWD/../shared}
mkdir -p "$OUT" "$RES"
DATA=(data.task=sst2 data.max_train_examples=20000 data.batch_size=32 data.max_eval_examples=872 data.eval_batch_size=128)
stage() {  # stage NAME RECIPE ARGS...: run once (a finished run has results.json; a pruning run compression.json)
  local name=$1 recipe=$2; shift 2
  if [[ -f "$OUT/$name/compression.json" || ( -f "$OUT/$name/results.json" && ! "$recipe" =~ sp3 ) ]]; then echo "[tiny] $name: done"; return; fi
  rm -rf "${OUT:?}/$name"
  "$SCULPT" run "$recipe" run.output_root=$OUT run.name=$name "${DATA[@]}" "$@" > "$OUT/$name.log" 2>&1
}
PRUNE=(prune.start=50u prune.structural_start=100u prune.target_warmup=300u prune.mask_lr=0.1 prune.lambda_lr=0.1 prune.epsilon=0.01
       train.duration=800u eval.every=50u checkpoint.every=200u logging.every=50u prune.finetune=500u prune.finetune_lr=1e-3)
stage t5_teacher recipes/tests/tiny_t5_glue.yaml train.duration=2000u train.lr=2e-3 eval.every=500u checkpoint.every=500u
stage t5_sp3 recipes/tests/tiny_t5_glue_sp3.yaml model.path=$OUT/t5_teacher/best "${PRUNE[@]}"
stage t5_sp3_per_site recipes/tests/tiny_t5_glue_sp3.yaml model.path=$OUT/t5_teacher/best "${PRUNE[@]}" prune.stream_masks=per_site
stage opt_teacher recipes/tests/tiny_opt_glue.yaml train.duration=2000u train.lr=2e-3 eval.every=500u checkpoint.every=500u
stage opt_sp3 recipes/tests/tiny_opt_sst2_sp3.yaml model.path=$OUT/opt_teacher/best "${PRUNE[@]}"
stage opt_sp3_per_site recipes/tests/tiny_opt_sst2_sp3.yaml model.path=$OUT/opt_teacher/best "${PRUNE[@]}" prune.stream_masks=per_site
"$SCULPT" bench infer --model $OUT/t5_teacher/best --model $OUT/t5_sp3/best --model $OUT/t5_sp3_per_site/best --shape 32x48 --shape 1x48 \
  --generate 6 --device cpu > $OUT/t5_bench.txt
"$SCULPT" bench infer --model $OUT/opt_teacher/best --model $OUT/opt_sp3/best --model $OUT/opt_sp3_per_site/best --shape 32x48 --shape 1x48 \
  --device cpu > $OUT/opt_bench.txt
python3 - "$OUT" "$RES" <<'PY'
import json, sys
out, res = sys.argv[1], sys.argv[2]
rows = []
for fam, run in (("t5", "t5_sp3"), ("t5, per-site stream masks", "t5_sp3_per_site"), ("opt", "opt_sp3"),
                 ("opt, per-site stream masks", "opt_sp3_per_site")):
    c = json.load(open(f"{out}/{run}/compression.json"))
    s = c["sparsity"]
    # Per-site: each residual site's width (embeddings, then after each block).
    sites = json.load(open(f"{out}/{run}/best/pruning.json"))["kept"]["hidden"] if "per_site" in run else [s["hidden_size"]]
    rows.append(f"| {fam} | {100 * c['teacher']['accuracy']:.1f} | {100 * c['packed']['accuracy']:.1f} | "
                f"{100 * c['finetuned_best']['value']:.1f} | {s['packed_remaining']:.4f} | {int(s['packed_map_weights'])} / {int(s['dense_map_weights'])} | "
                f"{'/'.join(str(w) for w in sites)} |")
bench = {fam: open(f"{out}/{fam}_bench.txt").read() for fam in ("t5", "opt")}
with open(f"{res}/README.md", "w") as f:
    f.write("# SP3 of T5 and OPT, quickstart-sized (tiny fixtures fine-tuned on SST-2)\n\n")
    f.write("Produced by `scripts/decoder_sp3_tiny.sh` on 2 CPU cores. Teachers: the tiny T5 (text-to-text) and OPT\n"
            "(sequence classifier) fixtures of `../shared/fixtures/hf`, fine-tuned 2,000 updates of 32 SST-2 rows;\n"
            "SP3 to 0.5 of the attention and FFN maps (epsilon 0.01), 800 updates; then 500 updates of plain\n"
            "fine-tuning of the packed model. SST-2 dev accuracy on all 872 rows. The models are tiny (64 dims), so\n"
            "per-call overhead dominates the times below; they show the packed models load and run, not a speedup to expect.\n\n")
    f.write("Per-site stream masks (`prune.stream_masks=per_site`) give each residual site its own width; the\n"
            "stream-dims column lists them (embeddings, then after each block in stream order: T5's encoder\n"
            "blocks self-attention and FFN, its decoder blocks self-attention, cross-attention and FFN).\n\n")
    f.write("| family | teacher | packed (SP3 best) | packed + fine-tune (best) | remaining | map weights | stream dims (of 64) |\n")
    f.write("| --- | --- | --- | --- | --- | --- | --- |\n")
    f.write("\n".join(rows) + "\n\n")
    for fam, text in bench.items():
        f.write(f"`sculpt bench infer` ({fam}, teacher vs packed, one run):\n\n```\n{text.strip()}\n```\n\n")
print(open(f"{res}/README.md").read())
PY
