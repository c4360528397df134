#!/usr/bin/env python3
"""Chart and table of the learning-curve parity study (benches/hf_parity.py).

    python3 benches/parity_report.py --out reports/hf-parity \\
        --pretext post-ln runs/hf-parity/norm=post-ln,seed=1 --pretext post-ln runs/... \\
        --hf post-ln hf,norm=post-ln,seed=1.jsonl --hf post-ln ...

Reads the held-out MLM rows of each pretext run's metrics.jsonl and of each HF jsonl file
(both scored on the same shared evaluation set), and writes into --out:
- curves.png: held-out MLM loss against tokens trained on, one panel per norm, every seed;
- figures.json: every point, and per evaluation step the two seed ranges;
- parity.md: the table per step — pretext's mean and range over seeds, HF's, the difference
  of means, and whether the two seed ranges overlap ("within the seed spread").
Tokens on the x axis are the real (non-padding) tokens of the shared batches; both
implementations train on the same batches, so step s means the same tokens for both.
Needs matplotlib only.
"""
import argparse
import json
import os
import statistics
import sys


def pretext_rows(run_dir):
    rows = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("split") == "eval" and "mlm/loss" in r:
                rows[r["step"]] = (r["mlm/loss"], r.get("mlm/accuracy"))
    return rows


def hf_rows(path):
    rows, tokens = {}, {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            rows[r["step"]] = (r["heldout_loss"], r["heldout_accuracy"])
            tokens[r["step"]] = r["tokens"]
    return rows, tokens


def spread(values):
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), min(values), max(values), sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pretext", nargs=2, action="append", metavar=("NORM", "RUN_DIR"), default=[])
    ap.add_argument("--hf", nargs=2, action="append", metavar=("NORM", "JSONL"), default=[])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if not a.pretext or not a.hf:
        sys.exit("give at least one --pretext and one --hf")

    curves = {}  # norm -> {"pretext": [rows], "hf": [rows]}
    tokens = {}
    for norm, d in a.pretext:
        curves.setdefault(norm, {"pretext": [], "hf": []})["pretext"].append((d, pretext_rows(d)))
    for norm, p in a.hf:
        rows, t = hf_rows(p)
        # The x axis: the first file's real tokens per step (other seeds' batches differ by < 1 %).
        for k, v in t.items():
            tokens.setdefault(k, v)
        curves.setdefault(norm, {"pretext": [], "hf": []})["hf"].append((p, rows))

    table, figures = [], {"tokens": tokens, "norms": {}}
    for norm, c in curves.items():
        steps = sorted(set.intersection(*(set(r) for _, r in c["pretext"] + c["hf"])) - {0})
        per_step = []
        for s in steps:
            p = spread([r[s][0] for _, r in c["pretext"]])
            h = spread([r[s][0] for _, r in c["hf"]])
            pa = statistics.fmean(r[s][1] for _, r in c["pretext"])
            ha = statistics.fmean(r[s][1] for _, r in c["hf"])
            overlap = p[1] <= h[2] + 1e-12 and h[1] <= p[2] + 1e-12
            # The difference of means in units of HF's seed-to-seed standard deviation.
            z = (p[0] - h[0]) / h[3] if h[3] > 0 else float("nan")
            per_step.append(
                {
                    "step": s,
                    "tokens": tokens.get(s),
                    "pretext": p,
                    "hf": h,
                    "pretext_accuracy": pa,
                    "hf_accuracy": ha,
                    "difference": p[0] - h[0],
                    "overlap": overlap,
                    "difference_in_hf_sd": z,
                }
            )
        figures["norms"][norm] = {
            "pretext_runs": [d for d, _ in c["pretext"]],
            "hf_runs": [d for d, _ in c["hf"]],
            "steps": per_step,
        }
        table.append(
            f"\n### {norm}: pretext {len(c['pretext'])} seed(s), HF {len(c['hf'])} seed(s)\n\n"
            "| step | tokens | pretext loss, mean [min, max] | HF loss, mean [min, max] (sd) | "
            "difference | in HF sd | ranges overlap | accuracy pretext / HF |\n|---|---|---|---|---|---|---|---|"
        )
        for r in per_step:
            p, h = r["pretext"], r["hf"]
            table.append(
                f"| {r['step']} | {r['tokens'] / 1e6:.2f} M | {p[0]:.4f} [{p[1]:.4f}, {p[2]:.4f}] | "
                f"{h[0]:.4f} [{h[1]:.4f}, {h[2]:.4f}] ({h[3]:.4f}) | {r['difference']:+.4f} | "
                f"{r['difference_in_hf_sd']:+.1f} | "
                f"{'yes' if r['overlap'] else '**no**'} | {r['pretext_accuracy']:.4f} / {r['hf_accuracy']:.4f} |"
            )
        within = sum(r["overlap"] for r in per_step)
        close = sum(abs(r["difference_in_hf_sd"]) <= 2 for r in per_step)
        table.append(
            f"\nSeed ranges overlap at {within} of {len(per_step)} evaluations; the difference of "
            f"means is within 2 HF seed standard deviations at {close} of {len(per_step)}."
        )

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "figures.json"), "w") as f:
        json.dump(figures, f, indent=1)
    with open(os.path.join(a.out, "parity.md"), "w") as f:
        f.write("\n".join(table) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(6.5 * len(curves), 4.6), squeeze=False)
    for ax, (norm, c) in zip(axes[0], curves.items()):
        for who, style, colour in (("pretext", "-", "tab:blue"), ("hf", "--", "tab:orange")):
            for i, (name, rows) in enumerate(c[who]):
                steps = sorted(s for s in rows if s in tokens and s > 0)
                ax.plot(
                    [tokens[s] / 1e6 for s in steps],
                    [rows[s][0] for s in steps],
                    style,
                    color=colour,
                    alpha=0.85,
                    label=f"{'pretext' if who == 'pretext' else 'HF transformers'}" if i == 0 else None,
                )
        ax.set_title(f"{norm}: held-out MLM loss (shared evaluation set)")
        ax.set_xlabel("tokens trained on (millions, padding excluded)")
        ax.set_ylabel("held-out MLM loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "curves.png"), dpi=110)
    print("\n".join(table))
    print(f"wrote {a.out}/curves.png, parity.md, figures.json")


if __name__ == "__main__":
    main()
