#!/usr/bin/env python3
"""Hugging Face `tokenizers` (Rust) on the same pairs as `sculpt bench data`, in the same run.

Reads TSV pairs (text_a<TAB>text_b per line), encodes them with encode_batch (threads from
RAYON_NUM_THREADS, set by the caller), truncation longest_first at --max-length, and writes the
ids for sculpt to compare: int64 n, int64 offsets[n + 1], int32 ids[offsets[n]], little-endian.
Prints one JSON line: seconds (encode only), examples, tokens, peak_rss_mb, version.
"""
import argparse
import array
import json
import os
import resource
import sys
import time

import tokenizers


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokenizer", required=True, help="directory with tokenizer.json")
    ap.add_argument("--input", required=True)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    tok = tokenizers.Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    tok.enable_truncation(max_length=args.max_length, strategy="longest_first")
    tok.no_padding()
    with open(args.input, encoding="utf-8") as f:
        pairs = [tuple(line.rstrip("\n").split("\t", 1)) for line in f]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    encodings = tok.encode_batch(pairs)
    seconds = time.perf_counter() - start
    offsets, ids = array.array("q", [0]), array.array("i")
    for e in encodings:
        ids.extend(e.ids)
        offsets.append(len(ids))
    with open(args.out, "wb") as f:
        f.write(array.array("q", [len(encodings)]).tobytes())
        f.write(offsets.tobytes())
        f.write(ids.tobytes())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "examples": len(encodings), "tokens": len(ids), "peak_rss_mb": peak / 1024,
                      "encode_rss_growth_mb": (peak - rss_before) / 1024, "version": tokenizers.__version__,
                      "threads": os.environ.get("RAYON_NUM_THREADS", "")}))


if __name__ == "__main__":
    sys.exit(main())
