#!/usr/bin/env bash
# Two pretext binaries side by side: `pretext bench` from A, then from B, in alternation,
# PAIRS rounds per shape and precision, and B's speed-up over A per round — how a change's own
# effect is measured on a host whose speed drifts between runs (compare ratios, not absolutes).
# Usage: benches/ab.sh A B [PAIRS] [THREADS] [SHAPE:PRECISION ...]
#   benches/ab.sh /tmp/pretext-before target/release/pretext 3 2 small:fp32 reference:fp32 reference:bf16
set -euo pipefail
a=$1
b=$2
pairs=${3:-3}
threads=${4:-$(nproc)}
shift $(($# < 4 ? $# : 4))
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(small:fp32 reference:fp32 reference:bf16)
tps() { python3 -c 'import json,sys; print(round(json.load(sys.stdin)["tokens_per_second"]))'; }
for i in $(seq 1 "$pairs"); do
  for c in "${cases[@]}"; do
    shape=${c%%:*}
    precision=${c##*:}
    run() { "$1" bench --shape "$shape" --precision "$precision" --threads "$threads" --steps 10 --json 2>/dev/null | tps; }
    x=$(run "$a")
    y=$(run "$b")
    echo "pair $i $shape $precision: A $x B $y tokens/s, B/A $(python3 -c "print(round($y / $x, 3))")"
  done
done
