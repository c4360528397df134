#!/usr/bin/env bash
# `pretext sweep --slurm` on a real (local, one-node) Slurm cluster: the generated job-array
# script passes `sbatch --test-only`, runs every variant as an array task, a dependent job
# writes the report, and the runs equal those of `pretext sweep --local`.
# Usage: tests/slurm_sweep.sh PRETEXT_BINARY   (needs sbatch; .ci/slurm-local-cluster.sh
# starts a cluster on a Debian machine with slurm-wlm installed)
set -euo pipefail
bin=$(realpath "$1")
command -v sbatch > /dev/null || { echo "skipped: no sbatch here"; exit 0; }
work=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
cd "$work"

"$bin" tokenizer train --corpus embedded --vocab-size 300 --out tokenizer.json > /dev/null
cat > sweep.toml <<TOML
name = "sweep"
[tokenizer]
path = "tokenizer.json"
[model]
layers = 1
hidden = 32
heads = 2
ffn = 64
max_positions = 32
[optimizer]
warmup_steps = 2
[training]
steps = 12
batch_size = 4
seq_len = 32
checkpoint_every = 4
eval_every = 6
threads = 1
[slurm]
time = "00:10:00"
cpus_per_task = 1
mem = "500M"
[ablation]
"model.norm" = ["post-ln", "pre-ln"]
"training.seed" = [1, 2]
TOML

"$bin" sweep sweep.toml --slurm --runs-dir cluster --reports-dir cluster-reports > /dev/null
script=cluster/sweep/slurm/sweep.sbatch
grep -q -- "--array=0-3" "$script"
sbatch --test-only "$script" 2>&1 | grep -q "to start at" || { echo "FAIL: sbatch --test-only refused the script"; sbatch --test-only "$script"; exit 1; }

out=$("$bin" sweep sweep.toml --slurm --submit --runs-dir cluster --reports-dir cluster-reports)
echo "$out" | tail -1
job=$(echo "$out" | sed -n 's/^submitted: array job \([0-9]*\).*/\1/p')
report=$(echo "$out" | sed -n 's/.*report job \([0-9]*\).*/\1/p')
for _ in $(seq 1 900); do
  if [ -z "$(squeue -h -j "$job,$report" 2>/dev/null)" ]; then break; fi
  sleep 1
done
[ -z "$(squeue -h -j "$job,$report" 2>/dev/null)" ] || { echo "FAIL: jobs still queued after 900 s"; squeue; exit 1; }
for v in "norm=post-ln,seed=1" "norm=post-ln,seed=2" "norm=pre-ln,seed=1" "norm=pre-ln,seed=2"; do
  [ -f "cluster/sweep/$v/summary.json" ] || { echo "FAIL: array task for $v did not finish"; cat cluster/sweep/slurm/*.out; exit 1; }
done
[ -f cluster-reports/sweep/README.md ] || { echo "FAIL: the dependent report job wrote no report"; cat cluster/sweep/slurm/report-*.out; exit 1; }

"$bin" sweep sweep.toml --local --jobs 2 --runs-dir local --reports-dir local-reports > /dev/null
# Same tensors and training state (the files' bytes may differ: safetensors writes its
# metadata map in hash order), all but `train_seconds`: the time the steps took, measured.
python3 - <<'PY'
import json, struct
def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__")
    state = json.loads(meta["pretext.state"])
    state.pop("train_seconds", None)
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items()}, state
for v in ["norm=post-ln,seed=1", "norm=post-ln,seed=2", "norm=pre-ln,seed=1", "norm=pre-ln,seed=2"]:
    f = f"sweep/{v}/checkpoints/latest.safetensors"
    assert load("cluster/" + f) == load("local/" + f), f"{v} differs between the cluster and the local sweep"
PY
echo "slurm sweep test passed: 4 array tasks and a report job; runs identical to --local"
