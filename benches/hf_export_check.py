#!/usr/bin/env python3
"""An export read by HF transformers, compared with pretext's own predictions (issue 17, item 4).

    pretext export RUN --hf /tmp/export
    pretext fill RUN "the [MASK] of the [MASK] ." --json --top-k 10 > pretext.json
    python3 benches/hf_export_check.py /tmp/export pretext.json

Loads the folder with `AutoModelForMaskedLM` (BertForMaskedLM for a post-LN run,
RobertaPreLayerNormForMaskedLM for a pre-LN one) and `AutoTokenizer`, predicts every [MASK]
of the text pretext filled in, and compares: [MASK] at the same positions, the same top-k
tokens (ties within the tolerance may swap), and each of pretext's top-k probabilities against
transformers' probability of the same token, within --tolerance (default 1e-4). Exit status 1
on a disagreement.
"""
import argparse
import json
import sys

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export", help="a folder `pretext export --hf` wrote")
    ap.add_argument("fill", help="`pretext fill RUN TEXT --json` output for the export's run")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    ours = json.load(open(args.fill))
    tok = AutoTokenizer.from_pretrained(args.export)
    model = AutoModelForMaskedLM.from_pretrained(args.export).eval()
    enc = tok(ours["text"], return_tensors="pt")
    with torch.no_grad():
        probs = model(**enc).logits.softmax(-1)[0]
    print(f"{type(model).__name__}: {model.num_parameters():,} parameters")

    worst = 0.0
    failures = []
    for mask in ours["masks"]:
        pos = mask["position"]
        if int(enc["input_ids"][0, pos]) != tok.mask_token_id:
            failures.append(f"position {pos} is not [MASK] in transformers' tokenisation")
            continue
        k = len(mask["candidates"])
        top = probs[pos].topk(k)
        theirs = [(int(i), float(p)) for p, i in zip(top.values, top.indices)]
        for c, (tid, tp) in zip(mask["candidates"], theirs):
            worst = max(worst, abs(c["probability"] - float(probs[pos, c["id"]])))
            if c["id"] != tid and abs(c["probability"] - tp) > args.tolerance:
                failures.append(f"mask {mask['mask']}: pretext ranks {c['token']!r} where "
                                f"transformers ranks {tok.convert_ids_to_tokens(tid)!r}")
        print(f"mask {mask['mask']} (position {pos}): "
              + ", ".join(f"{tok.convert_ids_to_tokens(i)} {p:.6f}" for i, p in theirs))
    print(f"largest difference in a top-{k} probability: {worst:.2e}")
    if worst > args.tolerance:
        failures.append(f"a probability differs by {worst:.2e} > {args.tolerance:g}")
    for f in failures:
        print("DISAGREES:", f, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
