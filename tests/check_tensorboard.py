"""Loads a pretext run directory with TensorBoard's own event reader and checks what it finds.

Usage: python tests/check_tensorboard.py RUN_DIR
Needs `pip install tensorboard`. `.ci/run` runs it on a short training run; it exits non-zero
with a message naming what is missing.
"""
import json
import math
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = Path(sys.argv[1])
acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
acc.Reload()
tags = acc.Tags()
problems = []

want_scalars = ["train/loss", "train/mlm/loss", "train/mlm/accuracy", "train/lr", "train/grad_norm",
                "train/tokens_per_second", "eval/loss", "eval/mlm/loss"]
for t in want_scalars:
    if t not in tags["scalars"]:
        problems.append(f"scalar {t} missing (have {sorted(tags['scalars'])})")

# The same numbers must be in metrics.jsonl.
rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
train = {r["step"]: r for r in rows if r["split"] == "train"}
if "train/loss" in tags["scalars"]:
    events = acc.Scalars("train/loss")
    steps = [e.step for e in events]
    if steps != sorted(train):
        problems.append(f"train/loss steps {steps} differ from metrics.jsonl {sorted(train)}")
    for e in events:
        j = train.get(e.step, {}).get("loss")
        if j is None or not math.isclose(e.value, j, rel_tol=1e-6):
            problems.append(f"train/loss at step {e.step}: TensorBoard {e.value}, metrics.jsonl {j}")
    if len(set(steps)) != len(steps):
        problems.append("duplicated steps in train/loss")

if not any(h.startswith("weights/encoder.layers.0.attn.q.weight") for h in tags["histograms"]):
    problems.append(f"weight histograms missing (have {tags['histograms'][:5]})")
if "config" not in tags["tensors"]:
    problems.append(f"config text missing (tensors: {tags['tensors']})")
else:
    text = acc.Tensors("config")[0].tensor_proto.string_val[0].decode()
    if "[model]" not in text:
        problems.append("config text does not hold the resolved config")

if problems:
    print("TensorBoard check FAILED for", run)
    for p in problems:
        print("  -", p)
    sys.exit(1)
print(f"TensorBoard check passed for {run}: {len(tags['scalars'])} scalar tags, "
      f"{len(tags['histograms'])} histogram tags, config text, {len(train)} logged train steps match metrics.jsonl")
