#!/usr/bin/env bash
# The HF side of the learning-curve parity study (reports/hf-parity), all runs at once: one
# process per (norm, seed), each small enough that several share one GPU (or many CPU cores).
#
#   benches/gpu_hf_parity.sh DIR OUT
#
# DIR holds seed1.safetensors … (from `pretext batches`, optionally gzipped) and the
# experiment's tokenizer.json; HF seed s trains on pretext seed s's batches. OUT receives
# hf-<norm>-seed<s>.jsonl (one line per evaluation) and hf-parity.log.
set -euo pipefail
dir=$1
out=$2
mkdir -p "$out"
data=$(mktemp -d)
for f in "$dir"/seed*.safetensors*; do
  base=$(basename "$f" .gz)
  case "$f" in *.gz) gunzip -c "$f" > "$data/$base" ;; *) ln -s "$(realpath "$f")" "$data/$base" ;; esac
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2> /dev/null || echo "no GPU: CPU"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
seeds=$(ls "$data" | sed -n 's/^seed\([0-9]*\)\.safetensors$/\1/p' | sort -n)
pids=()
for norm in post-ln pre-ln; do
  for seed in $seeds; do
    PYTHONUNBUFFERED=1 python3 benches/hf_parity.py "$data/seed$seed.safetensors" "$dir/tokenizer.json" \
      --norm "$norm" --seed "$seed" --threads 2 --out "$out/hf-$norm-seed$seed.jsonl" \
      > "$data/hf-$norm-seed$seed.log" 2>&1 &
    pids+=($!)
  done
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
for l in "$data"/*.log; do echo "== $(basename "$l")"; cat "$l"; done > "$out/hf-parity.log"
grep -h -E "parameters|steps in|Error|error" "$out/hf-parity.log" || true
for j in "$out"/*.jsonl; do echo "$(basename "$j"): $(tail -n 1 "$j")"; done
exit $status
