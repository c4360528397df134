#!/usr/bin/env bash
# pretext versus PyTorch (issue 16): `pretext bench` and benches/reference.py in alternation,
# PAIRS rounds, each round one pretext run and one run of each PyTorch implementation:
#   dense       HF BertForPreTraining as its examples run it (eager attention, dense MLM head)
#   speed       speed-minded PyTorch: SDPA, MLM head only at masked positions, foreach AdamW
#   speed-bf16  the same under bf16 autocast (run only where the CPU has native bf16
#               instructions, AMX or AVX512-BF16; elsewhere it is emulated and says nothing),
#               held against `pretext bench --precision bf16`, run in the same round
# and prints the median ratio of tokens/s (pretext / PyTorch) against each, with peak memories.
# Usage: benches/compare.sh [small|reference|large] [PAIRS] [THREADS] [STEPS]
#   PYTHON=path/to/python with torch + transformers (default: python3)
#   REFS="dense speed speed-bf16" to choose the PyTorch implementations (default: all three)
#   PRETEXT_FLAGS="--dense-last-layer" for more `pretext bench` flags: that one computes the
#   last block at every token, as PyTorch does (equal work; by default pretext computes its
#   attention queries and feed-forward at the masked and [CLS] rows only, all the losses read)
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${1:-reference}
pairs=${2:-5}
threads=${3:-$(nproc)}
steps=${4:-10}
py=${PYTHON:-python3}
refs=${REFS:-dense speed speed-bf16}
read -r -a extra <<< "${PRETEXT_FLAGS:-}"
cargo build --release --quiet
if [[ " $refs " == *" speed-bf16 "* ]] && ! "$py" -c 'import sys, torch; sys.exit(0 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 1)'; then
  echo "speed-bf16 skipped: this CPU has no native bf16 matrix instructions (autocast would emulate them)"
  refs=${refs//speed-bf16/}
fi
tps() { "$py" -c 'import json,sys; print(round(json.load(sys.stdin)["tokens_per_second"]))'; }
out=$(mktemp)
for i in $(seq 1 "$pairs"); do
  ours=$(target/release/pretext bench --shape "$shape" --threads "$threads" --steps "$steps" "${extra[@]}" --json)
  line="pair $i: pretext $(echo "$ours" | tps)"
  row="{\"pair\": $i, \"pretext\": $ours"
  if [[ " $refs " == *" speed-bf16 "* ]]; then
    ours16=$(target/release/pretext bench --shape "$shape" --threads "$threads" --steps "$steps" --precision bf16 "${extra[@]}" --json)
    line="$line, pretext-bf16 $(echo "$ours16" | tps)"
    row="$row, \"pretext-bf16\": $ours16"
  fi
  for ref in $refs; do
    case $ref in
      dense) flags=(--impl dense) ;;
      speed) flags=(--impl speed) ;;
      speed-bf16) flags=(--impl speed --bf16) ;;
      *) echo "unknown PyTorch implementation '$ref' in REFS (dense, speed, speed-bf16)" >&2; exit 2 ;;
    esac
    theirs=$("$py" benches/reference.py --shape "$shape" --threads "$threads" --steps "$steps" "${flags[@]}")
    line="$line, $ref $(echo "$theirs" | tps)"
    row="$row, \"$ref\": $theirs"
  done
  echo "$row}" >> "$out"
  echo "$line tokens/s"
done
"$py" - "$out" "$shape" "$threads" $refs <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
shape, threads, refs = sys.argv[2], sys.argv[3], sys.argv[4:]
med = lambda side, k: statistics.median(r[side][k] for r in rows)
p = rows[0]
print(f"{shape} shape, {threads} threads, {len(rows)} pairs (medians)")
for side in [s for s in ("pretext", "pretext-bf16") if s in p]:
    print(f"  {side}: {med(side, 'tokens_per_second'):.0f} tokens/s, {med(side, 'gflops_per_second'):.1f} GFLOP/s, peak RSS {med(side, 'peak_rss_mib'):.0f} MiB, {p[side]['simd']} kernels, products in {p[side].get('precision', 'fp32')}{' on ' + p[side]['bf16_kernel'] if 'bf16_kernel' in p[side] else ''}, last block at {p[side].get('last_layer', 'every-row')}")
for ref in refs:
    t = rows[0][ref]
    side = "pretext-bf16" if ref == "speed-bf16" else "pretext"
    ratios = [r[side]["tokens_per_second"] / r[ref]["tokens_per_second"] for r in rows]
    print(f"  PyTorch {ref:<10} {med(ref, 'tokens_per_second'):.0f} tokens/s, peak RSS {med(ref, 'peak_rss_mib'):.0f} MiB "
          f"(torch {t['torch']}, {t['simd']}, {t['attention']} attention, {t['precision']})")
    print(f"    ratio {side} / {ref}: {statistics.median(ratios):.2f}  (all: {', '.join(f'{x:.2f}' for x in ratios)})")
PY
rm -f "$out"
