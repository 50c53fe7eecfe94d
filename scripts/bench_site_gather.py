#!/usr/bin/env python3
"""Cost of a per-site shortcut (models/layers.h SiteShortcut) beside the maps it sits between.

The residual between two stream sites of a per-site packed model is a gather of the kept
coordinates (a new one reads a zero column) times the site's values. This times, in PyTorch on
the CPU, the ways to write it against one FFN map of the same width, so the choice in
src/models/layers.cpp is measured, not guessed:
  last_dim     pad, then index_select on the last dim of [B, T, d]
  rows         pad, reshape to [B*T, d+1], index_select on dim 1 (what sculpt does)
  matmul       a [d, d'] 0/scale selection matrix (SliceGPT's shortcut)
  ffn_map      one d -> 4d linear map, for scale

Usage: .venv/bin/python scripts/bench_site_gather.py [--threads 2]
"""
import argparse
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for B, T, d, d_out in [(32, 48, 60, 53), (32, 128, 700, 650), (1, 128, 700, 650)]:
        x = torch.randn(B, T, d)
        idx = torch.randint(0, d + 1, (d_out,))
        scale = torch.rand(d_out)
        S = torch.zeros(d, d_out)
        for j, i in enumerate(idx.tolist()):
            if i < d:
                S[i, j] = scale[j]
        W = torch.randn(4 * d, d)
        ways = {
            "last_dim": lambda: torch.nn.functional.pad(x, (0, 1)).index_select(-1, idx) * scale,
            "rows": lambda: (torch.nn.functional.pad(x, (0, 1)).reshape(-1, d + 1).index_select(1, idx) * scale).view(B, T, d_out),
            "matmul": lambda: x @ S,
            "ffn_map": lambda: torch.nn.functional.linear(x, W),
        }
        ref = ways["rows"]()
        assert torch.allclose(ways["last_dim"](), ref) and torch.allclose(ways["matmul"](), ref, atol=1e-5)
        for name, f in ways.items():
            for _ in range(3):
                f()
            n = 20
            t = time.perf_counter()
            for _ in range(n):
                f()
            print(f"{B}x{T}x{d}->{d_out}  {name:9s} {(time.perf_counter() - t) / n * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
