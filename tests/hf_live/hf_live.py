"""Live parity with the installed Transformers: random tiny models of every family sculpt runs,
several seeds and shapes each, saved as HF directories; `sculpt forward` must reproduce
Transformers' logits, every hidden state, the loss and each parameter's gradient norm within
1e-4, and greedy generation exactly. The fixtures in shared/ pin one old release; this catches
drift against the current one. Exit code 0 only when every case matches.

With --pretrained DIR it checks a real checkpoint instead (scripts/get_model.sh minilm-l6):
the BertModel in DIR with a seeded classification head, on real GLUE sentence pairs tokenized
by Transformers' tokenizer; exit code 77 (a ctest skip) when DIR is not there.

Usage: python hf_live.py SCULPT_BINARY [--family bert|t5|opt] [--pretrained DIR --glue ROOT] [--keep DIR]
"""
import argparse, json, os, shutil, subprocess, sys, tempfile

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (BertConfig, BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification, OPTConfig,
                          OPTForCausalLM, T5Config, T5ForConditionalGeneration)

ATOL = RTOL = 1e-4
GEN_TOKENS = 8


def padded_batch(g, vocab, B, T, lo=5):
    ids = torch.randint(lo, vocab, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    for b in range(1, B):  # rows of decreasing length, right-padded
        n = max(2, T - 2 * b)
        mask[b, n:] = 0
        ids[b, n:] = 0
    return ids, mask


def bert_cases():
    for seed, (L, H, A, F, T) in enumerate([(2, 32, 2, 37, 12), (3, 48, 4, 64, 9)]):
        for kind in ("seqcls", "regression", "qa", "mlm"):
            g = torch.Generator().manual_seed(100 + seed)
            torch.manual_seed(100 + seed)
            c = BertConfig(vocab_size=99, hidden_size=H, num_hidden_layers=L, num_attention_heads=A, intermediate_size=F,
                           max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu",
                           num_labels={"seqcls": 3, "regression": 1}.get(kind, 2), attn_implementation="eager")
            model = {"qa": BertForQuestionAnswering, "mlm": BertForMaskedLM}.get(kind, BertForSequenceClassification)(c)
            B = 3
            ids, mask = padded_batch(g, c.vocab_size, B, T)
            inputs = {"input_ids": ids, "attention_mask": mask,
                      "token_type_ids": (torch.arange(T) >= T // 2).long().expand(B, T).contiguous() * mask}
            if kind == "qa":
                inputs["start_positions"] = torch.randint(0, T // 2, (B,), generator=g)
                inputs["end_positions"] = torch.randint(T // 2, T, (B,), generator=g)
            elif kind == "mlm":  # the loss at about a third of the tokens, -100 elsewhere (and at padding)
                labels = torch.randint(5, c.vocab_size, (B, T), generator=g)
                keep = (torch.rand(B, T, generator=g) < 0.35) & (mask == 1)
                keep[0, 1] = True
                inputs["labels"] = torch.where(keep, labels, torch.full_like(labels, -100))
            elif kind == "regression":
                inputs["labels"] = torch.rand(B, generator=g) * 5
            else:
                inputs["labels"] = torch.randint(0, 3, (B,), generator=g)
            yield f"bert_{kind}_s{seed}", model, inputs, None


def t5_cases():
    for seed, (v11, L, D, dkv, H, F) in enumerate([(False, 2, 32, 8, 4, 64), (True, 2, 24, 16, 2, 40), (False, 3, 16, 4, 4, 32)]):
        g = torch.Generator().manual_seed(200 + seed)
        torch.manual_seed(200 + seed)
        c = T5Config(vocab_size=101, d_model=D, d_kv=dkv, d_ff=F, num_layers=L, num_decoder_layers=L, num_heads=H,
                     relative_attention_num_buckets=8, relative_attention_max_distance=20, dropout_rate=0.1,
                     feed_forward_proj="gated-gelu" if v11 else "relu", tie_word_embeddings=not v11,
                     decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, attn_implementation="eager")
        model = T5ForConditionalGeneration(c)
        B, T, U = 3, 10, 6
        ids, mask = padded_batch(g, c.vocab_size, B, T, lo=2)
        labels = torch.randint(2, c.vocab_size, (B, U), generator=g)
        labels[2, 4:] = -100
        dec = model._shift_right(labels)
        dmask = (labels != -100).long()
        dmask[:, 0] = 1
        inputs = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec, "decoder_attention_mask": dmask, "labels": labels}
        gen_ids, gen_mask = padded_batch(g, c.vocab_size, B, 7, lo=2)
        yield f"t5_{'v1_1' if v11 else 'v1_0'}_s{seed}", model, inputs, (gen_ids, gen_mask)


def opt_cases():
    shapes = [("pre_ln", True, 32, 32, 2), ("post_ln", False, 32, 32, 2), ("project_in_out", True, 48, 32, 3)]
    for seed, (name, pre, H, E, L) in enumerate(shapes):
        g = torch.Generator().manual_seed(300 + seed)
        torch.manual_seed(300 + seed)
        c = OPTConfig(vocab_size=97, hidden_size=H, word_embed_proj_dim=E, num_hidden_layers=L, num_attention_heads=4, ffn_dim=H * 2,
                      max_position_embeddings=64, do_layer_norm_before=pre, pad_token_id=1, bos_token_id=2, eos_token_id=2,
                      attn_implementation="eager")
        model = OPTForCausalLM(c)
        B, T = 3, 9
        ids, mask = padded_batch(g, c.vocab_size, B, T, lo=3)
        ids[mask == 0] = 1
        labels = ids.clone()
        labels[mask == 0] = -100
        # left-padded prompts for generation, as OPT generates
        gen_ids = torch.randint(3, c.vocab_size, (B, 6), generator=g)
        gen_mask = torch.ones_like(gen_ids)
        gen_mask[1, :2] = 0
        gen_mask[2, :4] = 0
        gen_ids[gen_mask == 0] = 1
        yield f"opt_{name}_s{seed}", model, {"input_ids": ids, "attention_mask": mask, "labels": labels}, (gen_ids, gen_mask)


def pretrained_cases(model_dir, glue_root):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    with open(os.path.join(glue_root, "RTE", "dev.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:5]
    torch.manual_seed(7)
    model = BertForSequenceClassification.from_pretrained(model_dir, num_labels=2, attn_implementation="eager")
    enc = tok([r[1] for r in rows], [r[2] for r in rows], padding=True, truncation=True, max_length=128, return_tensors="pt")
    inputs = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    inputs["labels"] = torch.tensor([0, 1, 1, 0])
    yield f"pretrained_{os.path.basename(os.path.normpath(model_dir))}", model, inputs, None


def reference(model, inputs, gen):
    model.eval()  # dropout off, backward included, as the fixtures
    out = model(**inputs, output_hidden_states=True, return_dict=True)
    ref = {}
    for key in ("loss", "logits", "start_logits", "end_logits"):
        if getattr(out, key, None) is not None:
            ref[key] = out[key]
    for group in ("hidden_states", "encoder_hidden_states", "decoder_hidden_states"):
        for i, h in enumerate(getattr(out, group, None) or ()):
            ref[f"{group}.{i}"] = h
    loss = out.loss if out.loss is not None else None
    loss.backward()
    names, norms = [], []
    for n, p in model.named_parameters():  # HF order, tied weights once
        if p.grad is not None:
            names.append(n)
            norms.append(p.grad.norm())
    ref["grad_norms"] = torch.stack(norms)
    if gen is not None:
        with torch.no_grad():
            kw = dict(max_new_tokens=GEN_TOKENS, do_sample=False, num_beams=1, use_cache=True)
            ref["generated_ids"] = model.generate(input_ids=gen[0], attention_mask=gen[1], **kw)
    return {k: v.detach().contiguous() for k, v in ref.items()}, names


def compare(name, ref, names, out_path):
    failures = []
    with safe_open(out_path, "pt") as f:
        got_keys = set(f.keys())
        meta = f.metadata() or {}
        for key, want in ref.items():
            if key not in got_keys:
                failures.append(f"{key}: missing from sculpt's output")
                continue
            got = f.get_tensor(key)
            if key == "grad_norms":
                got_names = json.loads(meta.get("grad_norm_names", "[]"))
                if got_names != names:
                    failures.append(f"grad_norm_names differ: sculpt {got_names[:4]}... vs HF {names[:4]}...")
                    continue
            if key == "generated_ids":
                if got.shape != want.shape or not torch.equal(got.long(), want.long()):
                    failures.append(f"generated_ids: sculpt {got.tolist()} vs HF {want.tolist()}")
                continue
            if got.shape != want.shape:
                failures.append(f"{key}: shape {list(got.shape)} vs {list(want.shape)}")
                continue
            err = (got.double() - want.double()).abs()
            bound = ATOL + RTOL * want.double().abs()
            if (err > bound).any():
                failures.append(f"{key}: max |diff| {err.max().item():.3g} beyond {ATOL} + {RTOL}·|HF|")
    status = "ok" if not failures else "FAILED"
    print(f"[hf-live] {name}: {status} ({len(ref)} tensors)")
    for line in failures:
        print(f"    {line}")
    return not failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sculpt")
    ap.add_argument("--family", choices=["bert", "t5", "opt"], action="append")
    ap.add_argument("--pretrained")
    ap.add_argument("--glue")
    ap.add_argument("--keep")
    args = ap.parse_args()
    if args.pretrained and not os.path.exists(os.path.join(args.pretrained, "config.json")):
        print(f"[hf-live] {args.pretrained}: no model there (scripts/get_model.sh minilm-l6); skipped")
        return 77
    if args.pretrained and not args.glue:
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        shared = os.environ.get("SCULPT_SHARED") or os.path.join(os.path.dirname(repo), "shared")
        args.glue = os.path.join(os.environ.get("SCULPT_DATA") or os.path.join(shared, "data"), "glue")
    if args.pretrained and not os.path.exists(os.path.join(args.glue, "RTE", "dev.tsv")):
        print(f"[hf-live] {args.glue}/RTE/dev.tsv not found; skipped")
        return 77
    torch.set_num_threads(1)
    families = ["pretrained"] if args.pretrained else args.family or ["bert", "t5", "opt"]
    work = args.keep or tempfile.mkdtemp(prefix="hf_live_")
    print(f"[hf-live] transformers {transformers.__version__}, torch {torch.__version__}, in {work}")
    ok = True
    count = 0
    for fam in families:
        cases = {"bert": bert_cases, "t5": t5_cases, "opt": opt_cases,
                 "pretrained": lambda: pretrained_cases(args.pretrained, args.glue)}[fam]
        for name, model, inputs, gen in cases():
            d = os.path.join(work, name)
            model.save_pretrained(d, safe_serialization=True)
            ref, names = reference(model, inputs, gen)
            tensors = dict(inputs)
            if gen is not None:
                tensors["gen_input_ids"], tensors["gen_attention_mask"] = gen
            save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(d, "inputs.safetensors"))
            out = os.path.join(d, "sculpt.safetensors")
            cmd = [args.sculpt, "forward", "--model", d, "--inputs", os.path.join(d, "inputs.safetensors"), "--out", out,
                   "--max-new-tokens", str(GEN_TOKENS)]
            run = subprocess.run(cmd, capture_output=True, text=True)
            count += 1
            if run.returncode != 0:
                print(f"[hf-live] {name}: FAILED, sculpt forward exited {run.returncode}: {run.stderr.strip()[-800:]}")
                ok = False
                continue
            ok &= compare(name, ref, names, out)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"[hf-live] {count} models, {'all match' if ok else 'MISMATCHES'}")
    return 0 if ok and count else 1


if __name__ == "__main__":
    sys.exit(main())
