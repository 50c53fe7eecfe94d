#!/usr/bin/env python3
"""Plot the evaluations of several runs against each other as one SVG (no third-party packages).

    scripts/plot_evals.py OUT.svg RUN_OR_EVAL_JSONL... [--metric combined_score] [--size packed_sparsity]
                          [--hline teacher=81.38 --hline majority=74.80] [--scale 100]

Two panels: the metric against the packed size at each evaluation (how a pruning schedule
trades accuracy for size), and the packed size against the update. A run is a run directory
(its eval.jsonl) or an eval.jsonl file; its label is the directory or file name.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plot_run import H, W, panel, read_jsonl  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--metric", default="combined_score")
    ap.add_argument("--size", default="packed_sparsity")
    ap.add_argument("--hline", action="append", default=[], help="LABEL=VALUE, a dashed reference line (scaled)")
    ap.add_argument("--scale", type=float, default=100.0, help="metric multiplier (100: GLUE points)")
    a = ap.parse_args()
    series_xy, series_size = [], []
    for r in a.runs:
        p = Path(r)
        rows = read_jsonl(p / "eval.jsonl" if p.is_dir() else p)
        if not rows:
            sys.exit(f"{r}: no evaluations")
        label = p.name if p.is_dir() else p.name.split(".")[0]
        series_xy.append((label, [(e[a.size], e[a.metric] * a.scale) for e in rows if a.size in e and a.metric in e], False))
        series_size.append((label, [(e["step"], e[a.size]) for e in rows if a.size in e], False))
    xs = [x for _, s, _ in series_xy for x, _ in s]
    for h in a.hline:
        name, value = h.split("=")
        series_xy.append((name, [(min(xs), float(value)), (max(xs), float(value))], True))
    body = panel(f"{a.metric} (x{a.scale:g}) against {a.size}", series_xy, 0, xfmt=".2f")
    body += panel(f"{a.size} against update", series_size, H)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{2 * H}" font-family="sans-serif">'
           f'<rect width="100%" height="100%" fill="white"/>' + "".join(body) + "</svg>\n")
    Path(a.out).write_text(svg)
    print(a.out)


if __name__ == "__main__":
    main()
