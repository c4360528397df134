#!/usr/bin/env bash
# The HF side of the learning-curve parity study (reports/hf-parity), all runs at once: one
# process per (recipe, norm, seed), each small enough that several share one GPU (or many
# CPU cores).
#
#   benches/gpu_hf_parity.sh DIR OUT
#   NORMS=post-ln RECIPES="pretext:hf pretext:pretext" benches/gpu_hf_parity.sh DIR OUT
#
# DIR holds seed1.safetensors … (from `pretext batches`, optionally gzipped) and the
# experiment's tokenizer.json; HF seed s trains on pretext seed s's batches. RECIPES lists
# optimizer:masking pairs for benches/hf_parity.py (default torch:hf, HF's own recipe; the
# others swap in pretext's AdamW or masking, to find where a difference comes from). OUT
# receives hf-<norm>[-<optimizer>-<masking>]-seed<s>.jsonl (one line per evaluation; packed
# into hf-runs.tar.gz when there are more than 7) and hf-parity.log.
set -euo pipefail
dir=$1
out=$2
norms=${NORMS:-post-ln pre-ln}
recipes=${RECIPES:-torch:hf}
mkdir -p "$out"
data=$(mktemp -d)
for f in "$dir"/seed*.safetensors*; do
  base=$(basename "$f" .gz)
  case "$f" in *.gz) gunzip -c "$f" > "$data/$base" ;; *) ln -s "$(realpath "$f")" "$data/$base" ;; esac
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2> /dev/null || echo "no GPU: CPU"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
seeds=$(ls "$data" | sed -n 's/^seed\([0-9]*\)\.safetensors$/\1/p' | sort -n)
runs=$(mktemp -d)
pids=()
for recipe in $recipes; do
  opt=${recipe%%:*}
  mask=${recipe##*:}
  tag=$([ "$recipe" = torch:hf ] && echo "" || echo "-$opt-$mask")
  for norm in $norms; do
    for seed in $seeds; do
      name="hf-$norm$tag-seed$seed"
      PYTHONUNBUFFERED=1 python3 benches/hf_parity.py "$data/seed$seed.safetensors" "$dir/tokenizer.json" \
        --norm "$norm" --seed "$seed" --threads 1 --optimizer "$opt" --masking "$mask" \
        --out "$runs/$name.jsonl" > "$runs/$name.log" 2>&1 &
      pids+=($!)
    done
  done
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
for l in "$runs"/*.log; do echo "== $(basename "$l")"; cat "$l"; done > "$out/hf-parity.log"
grep -h -E "parameters|steps in|Error|error" "$out/hf-parity.log" || true
for j in "$runs"/*.jsonl; do echo "$(basename "$j"): $(tail -n 1 "$j")"; done
if [ "$(ls "$runs"/*.jsonl | wc -l)" -gt 7 ]; then
  tar -C "$runs" -czf "$out/hf-runs.tar.gz" $(cd "$runs" && ls *.jsonl)
else
  cp "$runs"/*.jsonl "$out/"
fi
exit $status
