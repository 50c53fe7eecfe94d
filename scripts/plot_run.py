#!/usr/bin/env python3
"""Plot a sculpt run directory as one SVG (no third-party packages).

    scripts/plot_run.py runs/quickstart_sp3            # writes runs/quickstart_sp3/run.svg

Panels: training loss (and, for pruning runs, the prediction / layer loss and the
Lagrangian); the expected size against the ramped target with the packed size at each
evaluation; the evaluation metric. Reads metrics.jsonl and eval.jsonl.
"""
import json
import math
import sys
from pathlib import Path

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 760, 220, 64, 150, 28, 34


def read_jsonl(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def panel(title, series, y0, xfmt=".0f"):
    """series: [(label, [(x, y), ...], dashed)] -> SVG elements for one panel at height y0."""
    pts = [p for _, s, _ in series for p in s if p[1] is not None and math.isfinite(p[1])]
    if not pts:
        return []
    xmin, xmax = min(p[0] for p in pts), max(p[0] for p in pts)
    ymin, ymax = min(p[1] for p in pts), max(p[1] for p in pts)
    if xmax == xmin:
        xmax = xmin + 1
    if ymax == ymin:
        ymax = ymin + 1
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    sx = lambda x: PAD_L + (x - xmin) / (xmax - xmin) * pw
    sy = lambda y: y0 + PAD_T + (1 - (y - ymin) / (ymax - ymin)) * ph
    out = [f'<text x="{PAD_L}" y="{y0 + 18}" font-size="13" font-weight="bold">{title}</text>',
           f'<rect x="{PAD_L}" y="{y0 + PAD_T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for frac in (0, 0.5, 1):
        y = ymin + frac * (ymax - ymin)
        out.append(f'<text x="{PAD_L - 6}" y="{sy(y) + 4:.1f}" font-size="10" text-anchor="end">{y:.4g}</text>')
        x = xmin + frac * (xmax - xmin)
        out.append(f'<text x="{sx(x):.1f}" y="{y0 + H - 14}" font-size="10" text-anchor="middle">{x:{xfmt}}</text>')
    for i, (label, s, dashed) in enumerate(series):
        s = [p for p in s if p[1] is not None and math.isfinite(p[1])]
        if not s:
            continue
        c = COLORS[i % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="1.6"{dash}/>')
        if len(s) <= 60:
            out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{c}"/>' for x, y in s]
        ly = y0 + PAD_T + 14 * i + 8
        out.append(f'<line x1="{W - PAD_R + 10}" y1="{ly}" x2="{W - PAD_R + 28}" y2="{ly}" stroke="{c}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{W - PAD_R + 32}" y="{ly + 4}" font-size="11">{label}</text>')
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: scripts/plot_run.py RUN_DIR")
    run = Path(sys.argv[1])
    metrics, evals = read_jsonl(run / "metrics.jsonl"), read_jsonl(run / "eval.jsonl")
    if not metrics:
        sys.exit(f"{run}: no metrics.jsonl")
    col = lambda rows, k: [(r["step"], r.get(k)) for r in rows if k in r]
    panels = [("training loss", [(k, col(metrics, k), False) for k in ("loss", "pred_loss", "layer_loss", "lagrangian")
                                  if col(metrics, k)])]
    size = "expected_remaining" if any("expected_remaining" in m for m in metrics) else "expected_sparsity"
    if col(metrics, size):
        packed = "packed_remaining" if size == "expected_remaining" else "packed_sparsity"
        panels.append(("size (" + size.split("_")[1] + ")", [(size, col(metrics, size), False), ("target", col(metrics, "target_now"), True),
                                                             ("packed (eval)", col(evals, packed), False)]))
    metric_keys = [k for k in (evals[0] if evals else {}) if k not in ("step", "epoch", "best", "eval_seconds")
                   and not k.startswith(("expected_", "packed_"))]
    if metric_keys:
        panels.append(("evaluation", [(k, col(evals, k), False) for k in metric_keys[:4]]))
    body = []
    for i, (title, series) in enumerate(panels):
        body += panel(title, series, i * H)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H * len(panels)}" font-family="sans-serif">'
           f'<rect width="100%" height="100%" fill="white"/>' + "".join(body) + "</svg>\n")
    out = run / "run.svg"
    out.write_text(svg)
    print(out)


if __name__ == "__main__":
    main()
