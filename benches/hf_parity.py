#!/usr/bin/env python3
"""Learning-curve parity with HF transformers (issue 14, item 3).

Trains transformers' BertForMaskedLM (post-LN) or RobertaPreLayerNormForMaskedLM (pre-LN) on
the token ids a pretext run trains on, and scores pretext's shared held-out MLM batches (the
same ids, the same masked positions), so that the two learning curves differ only in what is
meant to be compared: initialisation, masking, model, optimizer and schedule.

    pretext batches experiments/hf_parity.toml --only norm=post-ln,seed=1 --steps 2000 \\
        --out parity.safetensors
    python3 benches/hf_parity.py parity.safetensors runs/hf-parity/tokenizer.json \\
        --norm post-ln --seed 1 --out hf,norm=post-ln,seed=1.jsonl

Everything else comes from the file's metadata (pretext's resolved settings): the shape, the
dropout, AdamW's settings, the warm-up and decay, clipping, the masking rate and the
evaluation interval. The recipe is HF's own, as a transformers user writes it: the model's
own initialisation, transformers' DataCollatorForLanguageModeling for the masking (15 %,
80/10/10), torch.optim.AdamW with no decay on biases and LayerNorm weights,
get_linear_schedule_with_warmup (or the cosine one), clip_grad_norm_. Runs on a GPU where
there is one (float32, TF32 off) and on the CPU otherwise; the curves do not depend on it
beyond float rounding.

Output: one JSON object a line, {"step", "tokens", "heldout_loss", "heldout_accuracy",
"train_loss"}, at step 0 and every `training.eval_every` steps; `tokens` counts the real
(non-padding) tokens trained on, as pretext's metrics do.
"""
import argparse
import json
import math
import sys
import time
import tomllib

import numpy as np
import torch
from safetensors import safe_open


def load(path):
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") != "pretext batches v1":
        sys.exit(f"{path}: not a file written by `pretext batches` (format {meta.get('format')!r})")
    return meta, tensors


def build_model(cfg, vocab, pad_id, norm):
    m = cfg["model"]
    common = dict(
        vocab_size=vocab,
        hidden_size=m["hidden"],
        num_hidden_layers=m["layers"],
        num_attention_heads=m["heads"],
        intermediate_size=m["ffn"],
        hidden_act="gelu",
        hidden_dropout_prob=m["dropout"],
        attention_probs_dropout_prob=m["attention_dropout"],
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=m["layer_norm_eps"],
        pad_token_id=pad_id,
    )
    if norm == "post-ln":
        from transformers import BertConfig, BertForMaskedLM

        return BertForMaskedLM(BertConfig(max_position_embeddings=m["max_positions"], **common))
    if norm == "pre-ln":
        from transformers import RobertaPreLayerNormConfig, RobertaPreLayerNormForMaskedLM

        # RoBERTa numbers positions from pad_id + 1, so it needs pad_id + 1 more rows.
        return RobertaPreLayerNormForMaskedLM(
            RobertaPreLayerNormConfig(max_position_embeddings=m["max_positions"] + pad_id + 1, **common)
        )
    sys.exit(f"--norm {norm}: HF has post-ln (BERT) and pre-ln (RobertaPreLayerNorm)")


def optimizer_and_schedule(model, cfg, steps, kind="torch"):
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    o = cfg["optimizer"]
    # HF Trainer's rule: no decay on biases and on every LayerNorm's parameters (named
    # `LayerNorm` in BERT but `layer_norm` in RoBERTa's head, so found by type).
    norms = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".bias") or id(p) in norms else decay).append(p)
    groups = [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    if kind == "pretext":
        opt = PretextAdamW(groups, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"])
    else:
        opt = torch.optim.AdamW(groups, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"])
    schedule = o.get("schedule", "linear")
    if schedule == "linear":
        sched = get_linear_schedule_with_warmup(opt, o["warmup_steps"], steps)
    elif schedule == "cosine":
        sched = get_cosine_schedule_with_warmup(opt, o["warmup_steps"], steps)
    else:
        sys.exit(f"optimizer.schedule = {schedule!r}: this script knows linear and cosine")
    return opt, sched


class PretextAdamW(torch.optim.Optimizer):
    """pretext's AdamW (train::optimizer), for the diagnostic runs: HF's former
    `transformers.AdamW(correct_bias=True)`, whose ε sits beside √v before bias correction —
    `p -= lr·√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε)` — where torch's sits beside √v̂."""

    def __init__(self, groups, lr, betas, eps):
        super().__init__(groups, dict(lr=lr, betas=betas, eps=eps, weight_decay=0.0))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["t"], st["m"], st["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["t"] += 1
                t, m, v = st["t"], st["m"], st["v"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                if g["weight_decay"] > 0:
                    p.mul_(1 - g["lr"] * g["weight_decay"])
                size = g["lr"] * math.sqrt(1 - b2**t) / (1 - b1**t)
                p.addcdiv_(m, v.sqrt().add_(g["eps"]), value=-size)


def pretext_masking(ids, special, mask_id, vocab, prob, gen):
    """pretext's masker (data::masking), for the diagnostic runs: per segment, a budget of
    `prob` of its non-special tokens with stochastic rounding (at least one), chosen without
    replacement; 80 % [MASK], 10 % a random non-special token, 10 % unchanged."""
    inputs, labels = ids.clone(), torch.full_like(ids, -100)
    allowed = torch.ones(vocab, dtype=torch.bool)
    allowed[special] = False
    normal = allowed.nonzero().flatten()
    special = torch.tensor(special)
    for r in range(ids.shape[0]):
        cand = (~torch.isin(ids[r], special)).nonzero().flatten()
        n = len(cand)
        if n == 0:
            continue
        exact = n * prob
        budget = max(1, int(exact) + int(torch.rand((), generator=gen).item() < exact - int(exact)))
        chosen = cand[torch.randperm(n, generator=gen)[:budget]]
        labels[r, chosen] = ids[r, chosen]
        u = torch.rand(len(chosen), generator=gen)
        inputs[r, chosen[u < 0.8]] = mask_id
        rnd = chosen[(u >= 0.8) & (u < 0.9)]
        inputs[r, rnd] = normal[torch.randint(len(normal), (len(rnd),), generator=gen)]
    return inputs, labels


def collator_for(tokenizer_file, mask_prob):
    from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=tokenizer_file,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    return tok, DataCollatorForLanguageModeling(tokenizer=tok, mlm=True, mlm_probability=mask_prob)


@torch.no_grad()
def evaluate(model, ev, device, batch):
    """pretext's held-out MLM loss: the mean over batches of each batch's mean loss over its
    masked positions; accuracy over all masked positions."""
    model.eval()
    ids, mask, labels = ev
    losses, correct, total = [], 0, 0
    for s in range(0, len(ids), batch):
        i, m, l = (t[s : s + batch].to(device) for t in (ids, mask, labels))
        logits = model(input_ids=i, attention_mask=m, token_type_ids=torch.zeros_like(i)).logits
        sel = l != -100
        losses.append(torch.nn.functional.cross_entropy(logits[sel], l[sel]).item())
        correct += (logits[sel].argmax(-1) == l[sel]).sum().item()
        total += sel.sum().item()
    model.train()
    return float(np.mean(losses)), correct / max(total, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("batches", help="the file `pretext batches` wrote")
    ap.add_argument("tokenizer", help="the experiment's tokenizer.json")
    ap.add_argument("--norm", choices=["post-ln", "pre-ln"], default="post-ln")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, help="train on the first N batches (default: all)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, help="torch threads on the CPU")
    ap.add_argument("--out", required=True, help="JSON lines, one per evaluation")
    ap.add_argument(
        "--budget",
        type=float,
        help="seconds of training steps (as pretext's training.budget): stop when spent, and "
        "decay the learning rate over the fraction spent instead of over the steps",
    )
    # Diagnostics: swap one of HF's parts for pretext's, to find what a difference comes from.
    ap.add_argument("--optimizer", choices=["torch", "pretext"], default="torch")
    ap.add_argument("--masking", choices=["hf", "pretext"], default="hf")
    a = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)

    meta, t = load(a.batches)
    cfg = tomllib.loads(meta["config"])
    batch = int(meta["batch_size"])
    steps = min(a.steps or int(meta["steps"]), int(meta["steps"]))
    eval_every = int(cfg["training"]["eval_every"])
    mask_prob = 0.15
    for o in cfg["objectives"]:
        if o["name"] == "mlm":
            mask_prob = float(o.get("options", {}).get("mask_prob", 0.15))
    train_ids = torch.from_numpy(t["train.input_ids"].astype(np.int64))
    train_mask = torch.from_numpy(t["train.attention_mask"].astype(np.int64))
    ev = tuple(
        torch.from_numpy(t[k].astype(np.int64)) for k in ("eval.input_ids", "eval.attention_mask", "eval.labels")
    )
    tok, collate = collator_for(a.tokenizer, mask_prob)
    vocab = int(meta["vocab_size"])
    if len(tok) != vocab:
        sys.exit(f"{a.tokenizer}: {len(tok)} tokens, but the batches were made with {vocab}")
    special = torch.zeros_like(train_ids, dtype=torch.bool)
    for sid in (int(meta[k]) for k in ("pad_id", "cls_id", "sep_id", "mask_id", "unk_id")):
        special |= train_ids == sid
    # Never masked, by either implementation: HF's get_special_tokens_mask and pretext's
    # masker both skip every special token, [UNK] included.

    model = build_model(cfg, vocab, int(meta["pad_id"]), a.norm).to(a.device)
    opt, sched = optimizer_and_schedule(model, cfg, int(meta["steps"]), a.optimizer)
    gen = torch.Generator().manual_seed(a.seed)
    special_ids = [int(meta[k]) for k in ("pad_id", "cls_id", "sep_id", "mask_id", "unk_id")]
    clip = float(cfg["optimizer"].get("clip", 1.0))
    print(
        f"{a.norm} seed {a.seed}: {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{steps} steps of {batch} x {int(meta['seq_len'])}, device {a.device}, "
        f"eval set {meta['eval_fingerprint']}",
        flush=True,
    )

    rows, tokens, recent = [], 0, []
    with open(a.out, "w") as out:

        def log(step):
            loss, acc = evaluate(model, ev, a.device, int(meta["eval_batch_size"]))
            row = {
                "step": step,
                "tokens": tokens,
                "heldout_loss": loss,
                "heldout_accuracy": acc,
                "train_loss": float(np.mean(recent)) if recent else None,
                "train_seconds": spent,
            }
            out.write(json.dumps(row) + "\n")
            out.flush()
            rows.append(row)
            recent.clear()
            print(f"  step {step:>6} tokens {tokens:>10,} held-out loss {loss:.4f} acc {acc:.4f}", flush=True)

        t0 = time.time()
        spent = 0.0  # seconds inside training steps: what --budget counts
        log(0)
        for step in range(1, steps + 1):
            started = time.time()
            if a.budget:
                # pretext's budget schedule (train::optimizer::budget_learning_rate): warm-up
                # by steps, then the decay over the fraction of the budget spent.
                o = cfg["optimizer"]
                w, frac = o["warmup_steps"], min(spent / a.budget, 1.0)
                if w > 0 and step <= w:
                    factor = step / w
                elif o.get("schedule", "linear") == "cosine":
                    factor = 0.5 * (1.0 + math.cos(math.pi * frac))
                else:
                    factor = 1.0 - frac
                for g in opt.param_groups:
                    g["lr"] = o["lr"] * factor
            s = slice((step - 1) * batch, step * batch)
            if a.masking == "pretext":
                inputs, labels = pretext_masking(
                    train_ids[s], special_ids, int(meta["mask_id"]), vocab, mask_prob, gen
                )
                b = {"input_ids": inputs, "attention_mask": train_mask[s], "labels": labels}
                b = {k: v.to(a.device) for k, v in b.items()}
            else:
                examples = [
                    {"input_ids": i.tolist(), "attention_mask": m.tolist(), "special_tokens_mask": sp.long().tolist()}
                    for i, m, sp in zip(train_ids[s], train_mask[s], special[s])
                ]
                b = {k: v.to(a.device) for k, v in collate(examples).items()}
            loss = model(
                input_ids=b["input_ids"],
                attention_mask=b["attention_mask"],
                token_type_ids=torch.zeros_like(b["input_ids"]),
                labels=b["labels"],
            ).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            if not a.budget:
                sched.step()
            opt.zero_grad(set_to_none=True)
            tokens += int(train_mask[s].sum())
            recent.append(loss.item())
            spent += time.time() - started
            if not math.isfinite(recent[-1]):
                sys.exit(f"step {step}: the loss is {recent[-1]}")
            done = a.budget is not None and spent >= a.budget
            if step % eval_every == 0 or step == steps or done:
                log(step)
            if done:
                break
        if a.budget and spent < a.budget:
            print(f"warning: the batches ran out after {spent:.0f} s of the {a.budget:.0f} s budget", flush=True)
        print(f"{step} steps in {time.time() - t0:.1f} s ({spent:.1f} s in training steps)", flush=True)


if __name__ == "__main__":
    main()
