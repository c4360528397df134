#!/usr/bin/env python3
"""The PyTorch side of issue 7's benchmark: HF transformers' BertForPreTraining (MLM + NSP)
on the configuration `pretext bench` uses, trained with AdamW on random token ids, 15% of
positions masked (80/10/10), random NSP labels. Prints one JSON object like
`pretext bench --json`: tokens_per_second, peak_rss_mib, losses.

    python benches/reference.py --shape reference --steps 10 --threads 2
"""
import argparse
import json
import resource
import time

import torch
from transformers import BertConfig, BertForPreTraining

SHAPES = {
    "reference": dict(layers=4, hidden=256, heads=4, ffn=1024),
    "large": dict(layers=6, hidden=512, heads=8, ffn=2048),
}
VOCAB, SEQ, BATCH = 8192, 128, 32


def batch(gen):
    ids = torch.randint(5, VOCAB, (BATCH, SEQ), generator=gen)
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
    nsp = torch.randint(0, 2, (BATCH,), generator=gen)
    return ids, types, labels, nsp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=SHAPES, default="reference")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    s = SHAPES[a.shape]
    torch.manual_seed(1)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=s["hidden"], num_hidden_layers=s["layers"],
                     num_attention_heads=s["heads"], intermediate_size=s["ffn"],
                     max_position_embeddings=SEQ, hidden_act="gelu",
                     hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    model = BertForPreTraining(cfg)
    model.train()
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    other = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": other, "weight_decay": 0.0}], lr=5e-4, eps=1e-6)
    gen = torch.Generator().manual_seed(1)
    losses = []

    def step():
        ids, types, labels, nsp = batch(gen)
        out = model(input_ids=ids, token_type_ids=types, attention_mask=torch.ones_like(ids),
                    labels=labels, next_sentence_label=nsp)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return out.loss.detach().item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        losses.append(step())
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "steps": a.steps,
        "seconds": seconds,
        "tokens_per_second": BATCH * SEQ * a.steps / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "losses": losses,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        # ATen's kernels; ATEN_CPU_CAPABILITY=avx2 lowers it (faster on some AMD CPUs).
        "simd": torch.backends.cpu.get_cpu_capability(),
    }))


if __name__ == "__main__":
    main()
