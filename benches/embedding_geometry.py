#!/usr/bin/env python3
"""Alignment against uniformity of sentence embeddings (Wang & Isola 2020; SimCSE's Figure 2
axes), one point per pretraining run of an experiment with an `sts-embed` downstream entry,
the random encoder (init = "scratch") beside them.

    python3 benches/embedding_geometry.py runs/simcse reports/simcse/alignment_uniformity.png

Reads runs/<experiment>/<variant>/finetune/sts-embed/*/summary.json. Needs matplotlib only.
"""
import glob
import json
import os
import re
import sys


def main():
    runs, out = sys.argv[1], sys.argv[2]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups, scratch = {}, None
    for path in sorted(glob.glob(os.path.join(runs, "*", "finetune", "sts-embed", "*", "summary.json"))):
        s = json.load(open(path))
        variant = path.split(os.sep)[-5]
        point = (s["dev"]["uniformity"], s["dev"]["alignment"], s["dev"]["spearman"])
        if s["init"] == "scratch":
            scratch = point
        else:
            # The variant less its seed; a long value before it (a model.init path) is dropped
            # when an objectives= axis names the group well enough.
            label = re.sub(r",?seed=\d+", "", variant)
            if "objectives=" in label:
                label = "objectives=" + label.rsplit("objectives=", 1)[1]
            groups.setdefault(label, []).append(point)
    if not groups:
        sys.exit(f"{runs}: no sts-embed downstream runs")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, points in groups.items():
        xs, ys, sp = zip(*points)
        ax.scatter(xs, ys, label=f"{label} (Spearman {sum(sp) / len(sp):.3f})", s=40)
    if scratch:
        ax.scatter([scratch[0]], [scratch[1]], marker="x", color="black", s=60,
                   label=f"random encoder (Spearman {scratch[2]:.3f})")
    ax.set_xlabel("uniformity (lower: sentences spread over the sphere)")
    ax.set_ylabel("alignment (lower: paraphrases closer)")
    ax.set_title("STS-B dev sentence embeddings, one point per seed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
