#!/usr/bin/env python3
"""Issue 19's sweep of numeric keys: every integer and float key of a tiny experiment set in
turn to 0, 1, 2^63 - 1 and -1 (integers) or 0, -1, 1e308, nan, inf and 1e-320 (floats), and
`pretext run --stop-at 2` on it. A run (exit 0) or a refusal that names the key (exit 1) is
fine; a panic (101), an abort (134), a refusal without the key or a hang (60 s) is listed.

    benches/careless_keys.py target/release/pretext [WORK_DIR]
"""
import pathlib
import shutil
import subprocess
import sys

P = sys.argv[1] if len(sys.argv) > 1 else "target/release/pretext"
WORK = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/pretext-careless-keys")
base = {
 "data": {"corpus": '["embedded"]', "heldout_fraction": "0.1", "min_sentences": "2", "shard_tokens": "4000000"},
 "tokenizer": {"vocab_size": "300", "min_frequency": "2"},
 "model": {"layers": "1", "hidden": "16", "heads": "2", "ffn": "32", "max_positions": "32", "type_vocab": "2",
           "dropout": "0.1", "attention_dropout": "0.1", "layer_norm_eps": "1e-12", "init_std": "0.02"},
 "model.powernorm": {"warmup": "100", "alpha_fwd": "0.9", "alpha_bkw": "0.9", "groups": "1", "eps": "1e-5"},
 "optimizer": {"lr": "0.0005", "eps": "1e-6", "weight_decay": "0.01", "warmup_steps": "1", "clip": "1.0"},
 "training": {"steps": "4", "batch_size": "4", "seq_len": "32", "grad_accum": "1", "short_seq_prob": "0.1",
              "eval_every": "2", "eval_batches": "2", "log_every": "2", "checkpoint_every": "2", "seed": "42",
              "threads": "1", "rollback_lr_factor": "0.5", "max_rollbacks": "3"},
}
ints = ["0", "1", "9223372036854775807", "-1"]
floats = ["0.0", "-1.0", "1e308", "nan", "inf", "1e-320"]
def text(over):
    out = ['name = "s"']
    for sec, kv in base.items():
        out.append(f"[{sec}]")
        for k, v in kv.items():
            out.append(f"{k} = {over.get((sec, k), v)}")
        if sec == "model.powernorm":
            out.append('[[objectives]]\nname = "mlm"')
    return "\n".join(out) + "\n"
bad = []
n = 0
for sec, kv in base.items():
    for k, v in kv.items():
        if k == "corpus": continue
        vals = floats if ("." in v or "e" in v) else ints
        for x in vals:
            d = WORK; shutil.rmtree(d, ignore_errors=True); d.mkdir(parents=True)
            (d / "s.toml").write_text(text({(sec, k): x}))
            try:
                r = subprocess.run([P, "run", str(d / "s.toml"), "--runs-dir", str(d / "runs"), "--no-report", "--quiet", "--stop-at", "2"],
                                   capture_output=True, text=True, timeout=60)
                code = r.returncode; msg = (r.stderr or r.stdout).strip().splitlines()
                msg = msg[-1] if msg else ""
            except subprocess.TimeoutExpired:
                code, msg = "HANG", ""
            n += 1
            named = f"{sec}.{k}" in msg or f"{k}" in msg
            flag = "" if code == 0 or (code == 1 and named) else "  <-- CHECK"
            if flag: bad.append((sec, k, x, code, msg[:200]))
            print(f"{sec}.{k} = {x}: exit {code}{flag}  {msg[:150] if code != 0 else ''}", flush=True)
print(f"\n{n} cases, {len(bad)} to check")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
