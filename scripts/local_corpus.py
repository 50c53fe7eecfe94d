#!/usr/bin/env python3
"""A local text corpus for masked language modelling (Prune Once for All's upstream stage on a
small budget): the SQuAD contexts and the GLUE *train* sentences under SCULPT_DATA, one sample per
line, duplicates dropped, in a fixed order. Dev sentences are left out so the tasks the pruned
model transfers to are never read upstream. Standard library only.

Usage: scripts/local_corpus.py [OUT=data/corpus/local.txt]   (prints lines, words and bytes)
"""
import csv, json, os, sys

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
shared = os.environ.get("SCULPT_SHARED") or os.path.join(os.path.dirname(repo), "shared")
data = os.environ.get("SCULPT_DATA") or os.path.join(shared, "data")
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "data", "corpus", "local.txt")

# GLUE train files: (task, columns holding text, has header)
GLUE = [("SST-2", ["sentence"], True), ("CoLA", [3], False), ("MRPC", ["#1 String", "#2 String"], True),
        ("RTE", ["sentence1", "sentence2"], True), ("STS-B", ["sentence1", "sentence2"], True),
        ("QNLI", ["question", "sentence"], True), ("WNLI", ["sentence1", "sentence2"], True)]

samples, seen = [], set()


def add(text):
    text = " ".join(text.split())
    if text and text not in seen:
        seen.add(text)
        samples.append(text)


for name in ("train-v1.1.json", "dev-v1.1.json"):
    path = os.path.join(data, "squad", name)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for article in json.load(f)["data"]:
                for paragraph in article["paragraphs"]:
                    add(paragraph["context"])
for task, columns, header in GLUE:
    path = os.path.join(data, "glue", task, "train.tsv")
    if not os.path.exists(path):
        continue
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        head = next(rows) if header else None
        idx = [head.index(c) if isinstance(c, str) else c for c in columns]
        for row in rows:
            for i in idx:
                if i < len(row):
                    add(row[i])

if not samples:
    sys.exit(f"no SQuAD or GLUE train text under {data}")
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
tmp = out + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    for s in samples:
        f.write(s + "\n")
os.replace(tmp, out)
words = sum(len(s.split()) for s in samples)
print(f"{out}: {len(samples)} lines, {words} words, {os.path.getsize(out)} bytes")
