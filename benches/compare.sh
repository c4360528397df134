#!/usr/bin/env bash
# pretext versus PyTorch on issue 7's configuration: the two benchmarks in alternation, PAIRS
# pairs, and the median ratio of tokens/s (pretext / PyTorch) with both peak memories.
# Usage: benches/compare.sh [reference|large] [PAIRS] [THREADS] [STEPS]
#   PYTHON=path/to/python with torch + transformers (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${1:-reference}
pairs=${2:-5}
threads=${3:-$(nproc)}
steps=${4:-10}
py=${PYTHON:-python3}
cargo build --release --quiet
out=$(mktemp)
for i in $(seq 1 "$pairs"); do
  ours=$(target/release/pretext bench --shape "$shape" --threads "$threads" --steps "$steps" --json)
  theirs=$("$py" benches/reference.py --shape "$shape" --threads "$threads" --steps "$steps")
  echo "{\"pair\": $i, \"pretext\": $ours, \"pytorch\": $theirs}" >> "$out"
  echo "pair $i: pretext $(echo "$ours" | "$py" -c 'import json,sys; print(round(json.load(sys.stdin)["tokens_per_second"]))') tokens/s, PyTorch $(echo "$theirs" | "$py" -c 'import json,sys; print(round(json.load(sys.stdin)["tokens_per_second"]))') tokens/s"
done
"$py" - "$out" "$shape" "$threads" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ratios = [r["pretext"]["tokens_per_second"] / r["pytorch"]["tokens_per_second"] for r in rows]
med = lambda k, side: statistics.median(r[side][k] for r in rows)
print(f"{sys.argv[2]} config, {sys.argv[3]} threads, {len(rows)} pairs")
print(f"  pretext: {med('tokens_per_second', 'pretext'):.0f} tokens/s, {med('gflops_per_second', 'pretext'):.1f} GFLOP/s, peak RSS {med('peak_rss_mib', 'pretext'):.0f} MiB, {rows[0]['pretext']['simd']} kernels")
print(f"  PyTorch: {med('tokens_per_second', 'pytorch'):.0f} tokens/s, peak RSS {med('peak_rss_mib', 'pytorch'):.0f} MiB (torch {rows[0]['pytorch']['torch']}, {rows[0]['pytorch']['simd']})")
print(f"  ratio pretext / PyTorch (median of pairs): {statistics.median(ratios):.2f}  (all: {', '.join(f'{x:.2f}' for x in ratios)})")
PY
rm -f "$out"
