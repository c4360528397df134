#!/usr/bin/env python3
"""Compares two loss traces step by step: two `pretext bench --json` outputs (their `losses`)
or two runs' `metrics.jsonl` (every `*loss` column of every logged row). Prints the largest
absolute difference and the first step where the traces part by more than --tol.

    benches/compare_traces.py cpu.json gpu.json
    benches/compare_traces.py runs/a/base/metrics.jsonl other/a/base/metrics.jsonl
"""
import argparse
import json


def schedule(path):
    """A bench trace's (warm-up, timed steps): its learning-rate schedule spans both, so traces
    of other lengths are other runs. Traces written before `warmup` was recorded used bench's
    default of 2."""
    if path.endswith(".jsonl"):
        return None
    d = json.loads(open(path).read())
    return d.get("warmup", 2), d["steps"]


def rows(path):
    text = open(path).read()
    if path.endswith(".jsonl"):
        out = []
        for line in text.splitlines():
            r = json.loads(line)
            for k, v in sorted(r.items()):
                if k.endswith("loss") and isinstance(v, (int, float)):
                    out.append((f"{r['split']} {r['step']} {k}", v))
        return out
    return [(f"step {i + 1}", v) for i, v in enumerate(json.loads(text)["losses"])]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    if schedule(args.a) != schedule(args.b):
        raise SystemExit(
            f"the traces come from different schedules (warm-up, steps): {schedule(args.a)} vs "
            f"{schedule(args.b)}; rerun one with the other's --warmup and --steps"
        )
    a, b = rows(args.a), rows(args.b)
    if [k for k, _ in a] != [k for k, _ in b]:
        raise SystemExit(f"the traces log different steps ({len(a)} vs {len(b)} values)")
    worst = max(((abs(x - y), k) for (k, x), (_, y) in zip(a, b)), default=(0.0, "-"))
    parted = next((k for (k, x), (_, y) in zip(a, b) if abs(x - y) > args.tol), None)
    print(f"{len(a)} values; largest |difference| {worst[0]:.2e} at {worst[1]}")
    print(f"first difference above {args.tol:g}: {parted or 'none'}")


if __name__ == "__main__":
    main()
