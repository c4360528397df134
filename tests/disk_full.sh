#!/usr/bin/env bash
# Disk full: a checkpoint write that the kernel refuses must stop the run with an error that
# names the file, leave the previous checkpoint intact (no temporary file left), and the run
# must then continue from that checkpoint to the same final weights as an uninterrupted run.
# A per-file size limit (`ulimit -f`, with SIGXFSZ ignored) makes large writes fail the way a
# full disk does, without root or a small filesystem.
# Usage: tests/disk_full.sh PRETEXT_BINARY
set -euo pipefail
bin=$(realpath "$1")
work=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT

"$bin" tokenizer train --corpus embedded --vocab-size 400 --out "$work/tokenizer.json" > /dev/null
cat > "$work/full.toml" <<TOML
name = "full"
[tokenizer]
path = "tokenizer.json"
[model]
layers = 1
hidden = 32
heads = 2
ffn = 64
max_positions = 32
[optimizer]
warmup_steps = 5
[training]
steps = 40
batch_size = 8
seq_len = 32
log_every = 1
eval_every = 20
checkpoint_every = 10
TOML
run() { "$bin" run "$work/full.toml" --reports-dir "$work/rep" --quiet "$@"; }

run --runs-dir "$work/reference" > /dev/null
ckpt="$work/runs/full/base/checkpoints/latest.safetensors"
run --runs-dir "$work/runs" --stop-at 10 > /dev/null
before=$(sha256sum "$ckpt" | cut -d' ' -f1)
size_kb=$(( $(stat -c %s "$ckpt") / 1024 ))

# Every file may grow to half a checkpoint: the logs fit, the next checkpoint does not.
set +e
( trap '' XFSZ; ulimit -f $((size_kb / 2)); run --runs-dir "$work/runs" ) > "$work/out.txt" 2>&1
status=$?
set -e
if [ "$status" -eq 0 ]; then echo "FAIL: the run succeeded although its checkpoint could not be written"; exit 1; fi
if grep -q "panicked" "$work/out.txt"; then echo "FAIL: panic:"; cat "$work/out.txt"; exit 1; fi
if ! grep -q "latest.safetensors: cannot write the checkpoint" "$work/out.txt"; then
  echo "FAIL: the error does not name the checkpoint:"; cat "$work/out.txt"; exit 1
fi
[ "$(sha256sum "$ckpt" | cut -d' ' -f1)" = "$before" ] || { echo "FAIL: the step-10 checkpoint changed"; exit 1; }
[ ! -e "${ckpt%.safetensors}.tmp" ] || { echo "FAIL: a temporary checkpoint was left behind"; exit 1; }
echo "refused as: $(grep -m1 "cannot write" "$work/out.txt")"

# Space again: the run continues from step 10 and ends where the uninterrupted one did.
run --runs-dir "$work/runs" > /dev/null
python3 - "$work/reference/full/base" "$work/runs/full/base" <<'PY'
import json, struct, sys

def tensors(path):
    b = open(path + "/checkpoints/latest.safetensors", "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    data = b[8 + n:]
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]]
            for k, v in header.items() if k != "__metadata__"}

def rows(path):
    return [json.loads(l) for l in open(path + "/metrics.jsonl")]

ref, got = sys.argv[1], sys.argv[2]
assert tensors(ref) == tensors(got), "final weights and optimiser state differ"
r = [(x["step"], x["split"], x.get("loss")) for x in rows(ref)]
g = [(x["step"], x["split"], x.get("loss")) for x in rows(got)]
assert r == g, "logged losses differ"
print(f"disk-full test passed: {len(r)} logged rows and every tensor equal to the uninterrupted run")
PY
