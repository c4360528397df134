#!/usr/bin/env python3
"""pretext's matrix products against PyTorch's (MKL / oneDNN) on the products of one training
step (issue 16: "a GEMM within 85 % of MKL's sgemm on the model's shapes").

Runs `pretext bench --gemm --json` for the list of products and pretext's GFLOP/s in f32 and
bf16, then times `torch.matmul` on the same shapes and layouts (A and B read transposed where
the layer reads them, on all threads or on one for attention's per-head products): f32, and
bf16 operands cast beforehand (the library's ceiling; autocast also pays the casts), held
against pretext's "bf16 kept" figure (the operands a bf16 step keeps rounded given as bf16).

    PYTHON=venv/bin/python; $PYTHON benches/gemm_compare.py --shape reference --threads 2
"""
import argparse
import json
import subprocess
import time

import torch


def timed(f, seconds):
    f()
    reps, t0 = 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - t0 < seconds:
        f()
        reps += 1
    return (time.perf_counter() - t0) / reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="reference", choices=["small", "reference", "large"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--pretext", default="target/release/pretext")
    a = ap.parse_args()
    ours = json.loads(subprocess.run(
        [a.pretext, "bench", "--gemm", "--json", "--shape", a.shape, "--threads", str(a.threads)],
        check=True, capture_output=True, text=True).stdout)
    print(f"{a.shape} shape, {a.threads} threads; torch {torch.__version__} "
          f"({torch.backends.cpu.get_cpu_capability()}), GFLOP/s")
    print(f"{'product':<24} {'m':>6} {'k':>6} {'n':>6}  {'pretext f32':>11} {'torch f32':>9} "
          f"{'ratio':>5}  {'pretext bf16':>12} {'torch bf16':>10} {'ratio':>5}")
    for t in ours:
        p = t["product"]
        m, k, n = p["m"], p["k"], p["n"]
        torch.set_num_threads(a.threads if p["parallel"] else 1)
        A = torch.randn(k, m).t() if p["a_t"] else torch.randn(m, k)
        B = torch.randn(n, k).t() if p["b_t"] else torch.randn(k, n)
        C = torch.empty(m, n)
        flops = 2 * m * k * n
        f32 = flops / timed(lambda: torch.matmul(A, B, out=C), a.seconds) / 1e9
        A16, B16 = A.bfloat16(), B.bfloat16()
        C16 = torch.empty(m, n, dtype=torch.bfloat16)
        bf = flops / timed(lambda: torch.matmul(A16, B16, out=C16), a.seconds) / 1e9
        ours16 = t.get("kept_gflops") or t["bf16_gflops"]
        r16 = f"{ours16 / bf:5.2f}" if ours16 else "    —"
        o16 = f"{ours16:12.0f}" if ours16 else f"{'—':>12}"
        print(f"{p['name']:<24} {m:>6} {k:>6} {n:>6}  {t['f32_gflops']:>11.0f} {f32:>9.0f} "
              f"{t['f32_gflops'] / f32:>5.2f}  {o16} {bf:>10.0f} {r16}")


if __name__ == "__main__":
    main()
