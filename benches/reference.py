#!/usr/bin/env python3
"""The PyTorch side of `pretext bench`: BERT (MLM + NSP) on the configuration `pretext bench`
uses, trained with AdamW on random token ids, 15% of positions masked (80/10/10), random NSP
labels. Prints one JSON object like `pretext bench --json`: tokens_per_second, peak_rss_mib,
losses.

Two implementations (issue 16):
  --impl dense   HF transformers' BertForPreTraining as its examples run it: eager attention,
                 the MLM head over every position, AdamW's default (per-tensor) loop.
  --impl speed   what a speed-minded PyTorch user writes (Cramming, MosaicBERT): the same
                 parameters, SDPA attention, the MLM transform and decoder applied only at the
                 masked positions (gathered before the head), AdamW with foreach=True.
  --bf16         bf16 autocast (torch.autocast("cpu", dtype=torch.bfloat16)): bf16 matrix
                 products, f32 master weights and optimizer state — HF's `--bf16`.

  --device cuda  the same on a GPU (fp32 without TF32, PyTorch's default; `--bf16` autocasts
                 on the GPU): the side-by-side figure for pretext's CUDA build.

    python benches/reference.py --shape reference --impl speed --bf16 --steps 10 --threads 2
"""
import argparse
import contextlib
import json
import resource
import time

import torch
from transformers import BertConfig, BertForPreTraining

SHAPES = {
    "small": dict(layers=4, hidden=128, heads=4, ffn=512),
    "reference": dict(layers=4, hidden=256, heads=4, ffn=1024),
    "large": dict(layers=6, hidden=512, heads=8, ffn=2048),
}
VOCAB, SEQ, BATCH = 8192, 128, 32


def batch(gen, rows=BATCH):
    ids = torch.randint(5, VOCAB, (rows, SEQ), generator=gen)
    ids[:, 0] = 2  # [CLS]
    types = torch.zeros_like(ids)
    types[:, SEQ // 2:] = 1
    labels = torch.full_like(ids, -100)
    pick = torch.rand(ids.shape, generator=gen) < 0.15
    pick[:, 0] = False
    labels[pick] = ids[pick]
    r = torch.rand(ids.shape, generator=gen)
    ids[pick & (r < 0.8)] = 4  # [MASK]
    rand = pick & (r >= 0.8) & (r < 0.9)
    ids[rand] = torch.randint(5, VOCAB, (int(rand.sum()),), generator=gen)
    nsp = torch.randint(0, 2, (rows,), generator=gen)
    return ids, types, labels, nsp


def dense_loss(model, ids, types, labels, nsp):
    out = model(input_ids=ids, token_type_ids=types, attention_mask=torch.ones_like(ids),
                labels=labels, next_sentence_label=nsp)
    return out.loss


def sparse_loss(model, ids, types, labels, nsp):
    """The encoder, then the MLM head only at the masked positions (about 15 % of them)."""
    seq, pooled = model.bert(input_ids=ids, token_type_ids=types,
                             attention_mask=torch.ones_like(ids), return_dict=False)[:2]
    picked = labels != -100
    logits = model.cls.predictions(seq[picked])
    mlm = torch.nn.functional.cross_entropy(logits.float(), labels[picked])
    pair = torch.nn.functional.cross_entropy(model.cls.seq_relationship(pooled).float(), nsp)
    return mlm + pair


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=SHAPES, default="reference")
    ap.add_argument("--impl", choices=["dense", "speed"], default="dense")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--dropout", type=float, default=0.1)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    s = SHAPES[a.shape]
    torch.manual_seed(1)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=s["hidden"], num_hidden_layers=s["layers"],
                     num_attention_heads=s["heads"], intermediate_size=s["ffn"],
                     max_position_embeddings=SEQ, hidden_act="gelu",
                     hidden_dropout_prob=a.dropout, attention_probs_dropout_prob=a.dropout)
    attn = "sdpa" if a.impl == "speed" else "eager"
    model = BertForPreTraining._from_config(cfg, attn_implementation=attn)
    model.to(a.device)
    model.train()
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    other = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": other, "weight_decay": 0.0}], lr=5e-4, eps=1e-6,
                            foreach=(a.impl == "speed"))
    loss_of = sparse_loss if a.impl == "speed" else dense_loss
    autocast = (torch.autocast(a.device, dtype=torch.bfloat16) if a.bf16
                else contextlib.nullcontext())
    gen = torch.Generator().manual_seed(1)
    losses = []

    def step():
        ids, types, labels, nsp = (t.to(a.device) for t in batch(gen, a.batch))
        with autocast:
            loss = loss_of(model, ids, types, labels, nsp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=(a.impl == "speed"))
        opt.step()
        return loss.detach().item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        losses.append(step())
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "impl": a.impl,
        "precision": "bf16" if a.bf16 else "fp32",
        "attention": model.config._attn_implementation,
        "steps": a.steps,
        "seconds": seconds,
        "tokens_per_second": a.batch * SEQ * a.steps / seconds,
        "device": a.device if a.device == "cpu" else torch.cuda.get_device_name(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "losses": losses,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        # ATen's kernels; ATEN_CPU_CAPABILITY=avx2 lowers it (faster on some AMD CPUs).
        "simd": torch.backends.cpu.get_cpu_capability(),
        # Whether this CPU has native bf16 matrix instructions (AMX / AVX512-BF16); without
        # them autocast's bf16 products are emulated and usually slower than fp32.
        "bf16_native": bool(getattr(torch.backends.mkldnn, "is_available", lambda: False)()
                            and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    }))


if __name__ == "__main__":
    main()
