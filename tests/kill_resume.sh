#!/usr/bin/env bash
# Kill test: SIGKILL a training run at random moments (including during checkpoint writes),
# restart it each time, and check that the final weights and the logged losses equal those of
# an uninterrupted run. Usage: tests/kill_resume.sh PRETEXT_BINARY [TRIALS]
# With CACHE=1 the corpus goes through the shard cache (data.cache, small shards): kills also
# land while the cache is built, and resumes restore positions inside shards.
set -euo pipefail
bin=$(realpath "$1")
trials=${2:-10}
max_kills=12  # per trial; then the run is let finish
work=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT; echo "work: $work"

# One fixed tokenizer for every run: WordPiece training is not deterministic (see README).
"$bin" tokenizer train --corpus embedded --vocab-size 400 --out "$work/tokenizer.json" > /dev/null
cat > "$work/kill.toml" <<TOML
name = "kill"
$( [ -n "${CACHE:-}" ] && printf '[data]\ncache = true\nshard_tokens = 1000\n' )
[tokenizer]
path = "tokenizer.json"
[model]
layers = 1
hidden = 32
heads = 2
ffn = 64
max_positions = 32
[[objectives]]
name = "mlm"
[[objectives]]
name = "sop"
[optimizer]
warmup_steps = 5
[training]
steps = 500
batch_size = 8
seq_len = 32
log_every = 1
eval_every = 50
checkpoint_every = 3
TOML

# The uninterrupted run, timed: kill moments are drawn relative to its length, so the test
# kills at the same points of a run on a fast machine and on a slow, busy one.
start=$(date +%s.%N)
"$bin" run "$work/kill.toml" --runs-dir "$work/reference" --reports-dir "$work/rep" --quiet > /dev/null
span=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(date +%s.%N)")
echo "uninterrupted run: ${span%.*} s"

restarts=0
resumed=0  # starts that found a checkpoint to continue from
mid_write=0
planted=0
for trial in $(seq 1 "$trials"); do
  dir="$work/trial-$trial"
  attempts=0
  while [ ! -f "$dir/kill/base/summary.json" ]; do
    attempts=$((attempts + 1))
    if [ -f "$dir/kill/base/checkpoints/latest.safetensors" ]; then resumed=$((resumed + 1)); fi
    "$bin" run "$work/kill.toml" --runs-dir "$dir" --reports-dir "$work/rep" --quiet > /dev/null 2> "$dir.err" &
    pid=$!
    if [ "$attempts" -le "$max_kills" ]; then
      # Anywhere in the first 80% of a run's length (start-up, cache build, training, writes).
      sleep "$(python3 -c "import random, sys; print(random.uniform(0.02, 0.8) * float(sys.argv[1]))" "$span")"
      kill -9 "$pid" 2> /dev/null || true
      wait "$pid" 2> /dev/null || true
    else
      # Enough kills: the last start runs to the end, so a trial always finishes.
      wait "$pid" || { echo "trial $trial: the run after $max_kills kills failed:"; cat "$dir.err"; exit 1; }
    fi
    # A temporary checkpoint left behind means the kill landed during a checkpoint write.
    if [ -f "$dir/kill/base/checkpoints/latest.tmp" ]; then mid_write=$((mid_write + 1)); fi
    # Such writes take under a millisecond here, so random kills rarely hit one: after the
    # first kill, leave what one would leave (a half-written temporary file) on purpose.
    if [ "$attempts" -eq 1 ] && [ -d "$dir/kill/base/checkpoints" ]; then
      head -c 3000 /dev/urandom > "$dir/kill/base/checkpoints/latest.tmp"
      planted=$((planted + 1))
    fi
  done
  restarts=$((restarts + attempts - 1))
  if [ -n "${CACHE:-}" ]; then
    shards=$(ls "$dir"/kill/cache/*/train-*.bin | wc -l)
    [ "$shards" -ge 3 ] || { echo "trial $trial: $shards shard(s); the cache test needs several"; exit 1; }
  fi
  python3 - "$work/reference/kill/base" "$dir/kill/base" "$trial" <<'PY'
import json, struct, sys
ref, got, trial = sys.argv[1], sys.argv[2], sys.argv[3]

def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    data = b[8 + n:]
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]]
            for k, v in header.items() if k.startswith("model.")}

def losses(path):
    rows = [json.loads(l) for l in open(path + "/metrics.jsonl")]
    return [(r["step"], r["split"], {k: v for k, v in r.items() if "loss" in k or "accuracy" in k}) for r in rows]

a, b = tensors(ref + "/checkpoints/latest.safetensors"), tensors(got + "/checkpoints/latest.safetensors")
assert a.keys() == b.keys() and a, f"trial {trial}: tensor names differ"
bad = [k for k in a if a[k] != b[k]]
assert not bad, f"trial {trial}: final weights differ in {bad[:3]}"
la, lb = losses(ref), losses(got)
steps = [(s, sp) for s, sp, _ in lb]
assert len(steps) == len(set(steps)), f"trial {trial}: duplicated steps in metrics.jsonl"
assert la == lb, f"trial {trial}: logged losses differ from the uninterrupted run"
PY
  echo "trial $trial: equal to the uninterrupted run after $((attempts - 1)) restart(s)"
done
if [ "$restarts" -lt "$trials" ] || [ "$resumed" -lt "$trials" ]; then
  echo "kill test inconclusive: $restarts interrupted runs, $resumed resumed from a checkpoint, in $trials trials"; exit 1
fi
echo "kill test passed: $trials trials, $restarts runs killed and continued, $resumed from a checkpoint ($mid_write during a checkpoint write, $planted half-written checkpoints planted), final weights and logged losses identical"
