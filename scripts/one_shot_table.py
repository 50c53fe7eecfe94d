#!/usr/bin/env python3
"""The one-shot baselines' table (scripts/one_shot_baselines.sh): per task and cell, the size
it reached, its dev score as compressed and after the short fine-tune, and the compress time.

usage: one_shot_table.py RUNS_ROOT OUT_DIR TASK [TASK ...]
"""
import csv
import json
import os
import sys

# The scores a GLUE task reports, in the order the table shows them.
METRICS = {"mrpc": ["accuracy", "f1"], "rte": ["accuracy"], "stsb": ["pearson", "spearmanr"], "cola": ["matthews_correlation"],
           "sst2": ["accuracy"], "qnli": ["accuracy"], "mnli": ["accuracy"], "qqp": ["accuracy", "f1"]}


def load(path):
    with open(path) as f:
        return json.load(f)


def score(metrics, names):
    return " / ".join(f"{100 * metrics[n]:.1f}" for n in names if n in metrics) or "-"


def main():
    root, out, tasks = sys.argv[1], sys.argv[2], sys.argv[3:]
    rows = []
    for task in tasks:
        names = METRICS.get(task, ["accuracy"])
        base = os.path.join(root, task)
        if not os.path.exists(os.path.join(base, "teacher.eval.json")):
            continue
        teacher = load(os.path.join(base, "teacher.eval.json"))
        rows.append({"task": task, "cell": "teacher (dense)", "size": "-", "before": score(teacher, names), "after": "-", "seconds": "-"})
        for cell in sorted(os.listdir(base)):
            report_path = os.path.join(base, cell, "compression.json")
            if cell.endswith("_ft") or not os.path.exists(report_path):
                continue
            report = load(report_path)
            a = report["achieved"]
            if report["method"] == "kmeans":
                size = f"{report['bits']}-bit codebooks, {a['compression_ratio']:.2f}x smaller file (rel. error {a['relative_error']:.3f})"
            else:
                size = f"CoFi sparsity {a['packed_sparsity']:.3f}, SP3 remaining {a['packed_remaining']:.3f}"
            before_path = os.path.join(base, cell + ".before.json")
            before = score(load(before_path), names) if os.path.exists(before_path) else "(not run)"
            ft = os.path.join(base, cell + "_ft", "results.json")
            after = score(load(ft)["final"], names) if os.path.exists(ft) else "(not run)"
            rows.append({"task": task, "cell": cell, "size": size, "before": before, "after": after, "seconds": f"{report['seconds']:.0f}"})
    os.makedirs(out, exist_ok=True)
    header = ["task", "cell", "size", "before", "after", "seconds"]
    with open(os.path.join(out, "table.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("# One-shot baselines on the MiniLM-L6 teachers (dev split)\n\n")
        f.write("Scores x100 (MRPC: accuracy / F1). before: as compressed; after: after a short fine-tune "
                "(scripts/one_shot_baselines.sh). Regenerate: scripts/one_shot_table.py runs/one_shot results/one_shot_minilm "
                + " ".join(tasks) + "\n\n")
        f.write("| task | cell | size | before | after | compress s |\n|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['task']} | {r['cell']} | {r['size']} | {r['before']} | {r['after']} | {r['seconds']} |\n")
    print(f"wrote {out}/table.md and table.csv ({len(rows)} rows)")


if __name__ == "__main__":
    main()
