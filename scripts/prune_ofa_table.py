#!/usr/bin/env python3
"""results/prune_ofa_minilm/table.md from the runs of scripts/prune_ofa_minilm.sh: the dense MLM
teacher and the 85%-sparse upstream model (perplexity on the held-out blocks, sparsity), then per
task the dense fp32 teacher, the pattern-locked transfer, its 8-bit QAT (fake-quantized, as the
run evaluated it) and the exported int8 model through `sculpt eval`; and the `bench infer` output.
Standard library only. Usage: scripts/prune_ofa_table.py [TASK ...]   (default: mrpc rte)
"""
import json, os, sys

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
runs = os.path.join(repo, "runs")
tasks = sys.argv[1:] or ["mrpc", "rte"]
MAIN = {"mrpc": "combined_score", "rte": "accuracy", "stsb": "combined_score", "cola": "matthews_correlation"}


def load(*parts):
    path = os.path.join(runs, *parts)
    return json.load(open(path)) if os.path.exists(path) else None


def last_eval(run):
    path = os.path.join(runs, run, "eval.jsonl")
    if not os.path.exists(path):
        return None
    lines = [json.loads(l) for l in open(path) if l.strip()]
    return lines[-1] if lines else None


def pct(v):
    return "—" if v is None else f"{100 * v:.1f}"


out = ["# Prune Once for All on MiniLM-L6-H384 (all-MiniLM-L6-v2), local corpus", "",
       "Produced by `scripts/prune_ofa_minilm.sh` then `scripts/prune_ofa_table.py` on 2 CPU cores.", "",
       "## Upstream (masked LM on data/corpus/local.txt: SQuAD contexts + GLUE train sentences)", "",
       "| model | updates | tokens seen | held-out perplexity | masked-token accuracy | encoder sparsity |", "| --- | --- | --- | --- | --- | --- |"]
for name, run in (("dense MLM teacher (new head)", "ofa_minilm_mlm_teacher"), ("GMP to 85%, distilled", "ofa_minilm_upstream_85")):
    r, e = load(run, "results.json"), last_eval(run)
    if not r:
        out.append(f"| {name} | (not run) | | | | |")
        continue
    out.append(f"| {name} | {r['updates']} | {r['updates'] * 32 * 128:,} | {r['final']['perplexity']:.1f} | "
               f"{100 * r['final']['accuracy']:.1f} | {e.get('sparsity', 0):.4f} |")
out += ["", "## Transfer (pattern locked, distilled from the dense task teacher), then 8-bit QAT", "",
        "| task (metric) | dense fp32 teacher | 85% sparse transfer | + QAT (fake-quant) | int8 export (`sculpt eval`) | sparsity |",
        "| --- | --- | --- | --- | --- | --- |"]
for task in tasks:
    m = MAIN.get(task, "accuracy")
    teacher = load("ofa_minilm_eval", f"{task}_teacher.json")
    int8 = load("ofa_minilm_eval", f"{task}_int8.json")
    transfer, qat = load(f"ofa_minilm_85_{task}", "results.json"), load(f"ofa_minilm_85_{task}_qat", "results.json")
    sp = last_eval(f"ofa_minilm_85_{task}")
    out.append(f"| {task} ({m}) | {pct(teacher and teacher[m])} | {pct(transfer and transfer['best']['value'])} | "
               f"{pct(qat and qat['best']['value'])} | {pct(int8 and int8[m])} | {sp['sparsity']:.4f} |" if sp else
               f"| {task} ({m}) | {pct(teacher and teacher[m])} | (not run) | | | |")
bench = os.path.join(runs, "ofa_minilm_bench.txt")
if os.path.exists(bench):
    out += ["", "## Speed: dense fp32 teacher vs the int8 model, one `sculpt bench infer` run", "", "```", open(bench).read().rstrip(), "```"]
os.makedirs(os.path.join(repo, "results", "prune_ofa_minilm"), exist_ok=True)
path = os.path.join(repo, "results", "prune_ofa_minilm", "table.md")
open(path, "w").write("\n".join(out) + "\n")
print(open(path).read())
