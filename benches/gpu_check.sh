#!/usr/bin/env bash
# One call on a lent GPU machine: does the CUDA build still compute what the CPU computes, and
# how fast? Run from the repository root there, after `benches/cuda_cross_build.sh 9.0
# device_step fused bench_trace encoder` here and with `.gpu` carried:
#
#   bash benches/gpu_check.sh OUT_DIR
#
# Writes into OUT_DIR (re-packed as results.tar.gz after each stage, so a cut-off call still
# returns what finished): the test binaries' results, bench traces to compare with the CPU's
# stored ones (`benches/compare_traces.py`), speed at BERT's dropout and without it, and the
# quickstart's metrics (run with this checkout's `runs/quickstart/tokenizer.json`, carried as
# `.gpu/quickstart-tokenizer.json`, so both devices see one vocabulary).
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR}
res=/tmp/gpu-check
rm -rf "$res" && mkdir -p "$res"
pack() { tar -C "$res" -czf "$out/results.tar.gz" . ; }
run() { bash .gpu/run.sh "$@"; }
bash .gpu/run.sh true
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$res/gpu.txt"

for t in device_step fused bench_trace encoder; do
    echo "== test $t" | tee -a "$res/tests.txt"
    run ".gpu/test-$t" 2>&1 | grep -E "^test |test result" | tee -a "$res/tests.txt"
done
pack

bench() { run .gpu/pretext bench --json "$@"; }
bench --shape reference --steps 300 >"$res/bench-reference-h100-300.json"
bench --shape large --steps 100 >"$res/bench-large-h100-100.json"
for f in reference large; do
    n=$([ $f = reference ] && echo 300 || echo 100)
    python3 benches/compare_traces.py "reports/gpu/bench-$f-cpu.json" "$res/bench-$f-h100-$n.json" |
        tee -a "$res/traces.txt"
done
pack

bench --shape reference --steps 30 --warmup 3 --peak-tflops 67 >"$res/speed-reference.json"
bench --shape large --steps 30 --warmup 3 --peak-tflops 67 >"$res/speed-large.json"
bench --shape reference --steps 30 --warmup 3 --batch 256 --dropout 0 --peak-tflops 67 \
    >"$res/speed-reference-batch-256-dropout-0.json"
bench --shape large --steps 30 --warmup 3 --batch 128 --dropout 0 --peak-tflops 67 \
    >"$res/speed-large-batch-128-dropout-0.json"
run .gpu/pretext bench --shape small --steps 3 --warmup 1 --precision bf16 2>&1 |
    tee "$res/bf16-request.txt"
pack

# The speed-minded PyTorch (SDPA, MLM head at the masked positions, foreach AdamW) on the same
# GPU, fp32 (no TF32, PyTorch's default) and bf16 autocast: the side-by-side ratio.
torch_ref() { PYTHONUNBUFFERED=1 python3 benches/reference.py --device cuda --impl speed --steps 30 --warmup 3 "$@"; }
torch_ref --shape reference >"$res/torch-speed-reference.json"
torch_ref --shape reference --bf16 >"$res/torch-speed-bf16-reference.json"
torch_ref --shape large >"$res/torch-speed-large.json"
torch_ref --shape large --bf16 >"$res/torch-speed-bf16-large.json"
torch_ref --shape reference --batch 256 --dropout 0 >"$res/torch-speed-reference-batch-256-dropout-0.json"
pack

rm -rf runs/quickstart && mkdir -p runs/quickstart
cp .gpu/quickstart-tokenizer.json runs/quickstart/tokenizer.json
run .gpu/pretext run experiments/quickstart.toml --no-report 2>&1 | tail -5 | tee "$res/quickstart.txt"
cp "$(find runs/quickstart -name metrics.jsonl | head -1)" "$res/quickstart-h100.metrics.jsonl"
pack
grep "test result" "$res/tests.txt"; cat "$res/traces.txt"
python3 - "$res" <<'EOF'
import json, pathlib, sys
res = pathlib.Path(sys.argv[1])
tps = lambda f: json.loads((res / f).read_text())["tokens_per_second"]
for f in sorted(res.glob("speed-*.json")):
    d = json.loads(f.read_text())
    line = (f"{f.stem:36s} {d['tokens_per_second']:9.0f} tokens/s {d['gflops_per_second']:7.0f} GFLOP/s"
            f"  MFU {d['gflops_per_second'] / 670:4.1f} % (67 TFLOP/s f32)")
    for ref in ("torch-" + f.name, "torch-" + f.name.replace("speed-", "speed-bf16-")):
        if (res / ref).exists():
            line += f" | {ref[:-5]} {tps(ref):9.0f} (ratio {d['tokens_per_second'] / tps(ref):.2f})"
    print(line)
EOF
