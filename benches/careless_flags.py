#!/usr/bin/env python3
"""Issue 19's sweep of the command line: every numeric flag of every command at its extremes
(0, 1, -1, 2^32 - 1, 2^63 - 1, 2^64; nan, inf, 1e308, 1e-320 where it is a number with a
fraction), every file or folder argument it reads given as something it is not (missing,
/dev/null, a folder, an empty file, 4 KiB of random bytes, a FIFO with nobody writing,
/dev/zero, a path with spaces and non-ASCII), and every output given as an existing file, a
path under a file, /dev/null or a FIFO. Each case runs against a tiny finished pretraining run
made first. A run (exit 0) or a refusal (exit 1 or clap's 2) whose message names the flag, its
value or the path is fine; a panic (101), an abort (134), a signal, a refusal naming none of
them, a hang (60 s) or a folder flag that touched the file it was given is listed. The
experiment file may be a pipe (`pretext run <(generate)`), so there a FIFO nobody writes to is
waited for, and fine when a line on stderr says so.

    benches/careless_flags.py target/release/pretext [WORK_DIR]
"""
import os
import pathlib
import shutil
import subprocess
import sys

P = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/pretext")
WORK = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/pretext-careless-flags")
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)

TINY = """name = "t"
[data]
corpus = ["embedded"]
[tokenizer]
vocab_size = 300
[model]
layers = 1
hidden = 16
heads = 2
ffn = 32
max_positions = 32
[[objectives]]
name = "mlm"
[optimizer]
warmup_steps = 1
[training]
steps = 4
batch_size = 4
seq_len = 32
eval_every = 2
eval_batches = 2
log_every = 2
checkpoint_every = 4
"""
(WORK / "t.toml").write_text(TINY)
subprocess.run([P, "run", "t.toml", "--runs-dir", "runs", "--reports-dir", "reports", "--quiet"],
               cwd=WORK, check=True)
RUN = str(WORK / "runs/t/base")
TOK = str(WORK / "runs/t/tokenizer.json")
sst2 = WORK / "sst2"
sst2.mkdir()
rows = "".join(f"the film was {['bad', 'good'][i % 2]} .\t{i % 2}\n" for i in range(40))
for f in ["train.tsv", "dev.tsv"]:
    (sst2 / f).write_text("sentence\tlabel\n" + rows)
crows = WORK / "crows.csv"
crows.write_text(",sent_more,sent_less,stereo_antistereo,bias_type,annotations,anon_writer,anon_annotators\n"
                 "0,the man was strong .,the woman was strong .,stereo,gender,[],a,[]\n")
corpus = WORK / "corpus.txt"
corpus.write_text("the film was good . it was long .\n\nthe book was bad . it was short .\n" * 20)

# The commands, each with its working arguments; a case replaces one of them.
base = {
    "bench": ["bench", "--shape", "small", "--warmup", "0", "--steps", "1", "--batch", "2"],
    "run": ["run", "t.toml", "--runs-dir", "runs2", "--reports-dir", "reports2", "--quiet", "--stop-at", "2"],
    "report": ["report", "runs/t", "--out", "rep"],
    "finetune": ["finetune", "--checkpoint", RUN, "--task", "sst2", "--data", str(sst2), "--epochs", "1",
                 "--batch-size", "8", "--max-seq-len", "16", "--out", "ft"],
    "gradnorms": ["gradnorms", "t.toml", "--batches", "1", "--runs-dir", "runs", "--out", "gn"],
    "batches": ["batches", "t.toml", "--steps", "2", "--runs-dir", "runs", "--out", "b.safetensors"],
    "fill": ["fill", RUN, "the film was [MASK] .", "--top-k", "3"],
    "eval": ["eval", RUN, "--corpus", str(corpus), "--batches", "2", "--pppl-sequences", "2"],
    "bias": ["bias", RUN, "--data", str(crows)],
    "export": ["export", RUN, "--hf", "hf"],
    "validate": ["validate", "t.toml"],
    "tokenizer": ["tokenizer", "train", "--corpus", str(corpus), "--vocab-size", "100", "--out", "tok.json"],
    "sweep": ["sweep", "t.toml", "--slurm", "--out", "sweep.sh"],
}
ints = ["0", "1", "-1", "4294967295", "9223372036854775807", "18446744073709551616"]
floats = ["0", "-1", "nan", "inf", "1e308", "1e-320"]
numeric = {
    "bench": {"--warmup": ints, "--steps": ints, "--threads": ints + ["65535"], "--batch": ints,
              "--dropout": floats, "--peak-tflops": floats},
    "run": {"--stop-at": ints, "--jobs": ints + ["65535"]},
    "finetune": {"--seed": ints, "--epochs": ints, "--lr": floats, "--batch-size": ints,
                 "--max-seq-len": ints, "--max-train-examples": ints},
    "gradnorms": {"--batches": ints},
    "batches": {"--steps": ints},
    "fill": {"--top-k": ints},
    "eval": {"--seq-len": ints, "--batches": ints, "--pppl-sequences": ints, "--seed": ints},
    "tokenizer": {"--vocab-size": ints, "--min-frequency": ints},
    "sweep": {"--cpus-per-task": ints, "--gpus": ints, "--max-parallel": ints, "--jobs": ints},
}
# File and folder arguments: (command, flag or positional index).
paths = [("run", 1), ("report", 1), ("finetune", "--checkpoint"), ("finetune", "--data"),
         ("finetune", "--tokenizer"), ("gradnorms", 1), ("batches", 1), ("fill", 1), ("fill", "--tokenizer"),
         ("eval", 1), ("eval", "--corpus"), ("eval", "--tokenizer"), ("eval", "--heldout"), ("bias", 1),
         ("bias", "--data"), ("bias", "--tokenizer"), ("export", 1), ("export", "--tokenizer"),
         ("validate", 1), ("tokenizer", "--corpus"), ("sweep", 1)]
special = WORK / "special"
special.mkdir()
(special / "empty").write_text("")
(special / "random").write_bytes(os.urandom(4096))
os.mkfifo(special / "fifo")
odd = special / "a folder é"
odd.mkdir()
kinds = {"missing": str(special / "missing"), "devnull": "/dev/null", "folder": str(special),
         "empty": str(special / "empty"), "random": str(special / "random"),
         "fifo": str(special / "fifo"), "zero": "/dev/zero", "odd-name": str(odd / "missing")}


def with_value(args, flag, value):
    args = list(args)
    if isinstance(flag, int):
        args[flag] = value
    elif flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    if args[0] == "eval" and flag == "--heldout":  # --heldout excludes --corpus and its flags
        args = ["eval", args[1], "--heldout", value]
    return args


def case(args, expect, setup=None):
    d = WORK / "case"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(WORK, d, ignore=shutil.ignore_patterns("case", "special"), symlinks=True)
    if setup:
        setup(d)
    try:
        # A FIFO is given only as a path; 15 s is plenty to see whether it is waited on.
        wait = 15 if str(special / "fifo") in args or "fifo" in args else 60
        r = subprocess.run([P] + args, cwd=d, capture_output=True, text=True, timeout=wait,
                           env={**os.environ, "RAYON_NUM_THREADS": "2"})
        code, msg = r.returncode, (r.stderr + r.stdout).strip()
    except subprocess.TimeoutExpired as e:
        err = e.stderr or b""
        code, msg = "HANG", err.decode() if isinstance(err, bytes) else err
        if "waiting for its writer" in msg:
            return True, "waits, saying so", msg.strip().splitlines()[-1]
    named = any(e in msg for e in expect)
    ok = code == 0 or (code in (1, 2) and named)
    last = msg.splitlines()[-1] if msg else ""
    return ok, code, last


bad, n = [], 0
for cmd, flags in numeric.items():
    for flag, values in flags.items():
        for v in values:
            ok, code, last = case(with_value(base[cmd], flag, v), [flag, flag.strip("-").replace("-", "_"), v])
            n += 1
            print(f"{cmd} {flag} {v}: exit {code}{'' if ok else '  <-- CHECK'}  {last[:140] if code else ''}",
                  flush=True)
            if not ok:
                bad.append((cmd, flag, v, code, last[:200]))
for cmd, flag in paths:
    for kind, p in kinds.items():
        ok, code, last = case(with_value(base[cmd], flag, p), [p, pathlib.Path(p).name, str(flag)])
        n += 1
        print(f"{cmd} {flag} {kind}: exit {code}{'' if ok else '  <-- CHECK'}  {last[:140] if code else ''}",
              flush=True)
        if not ok:
            bad.append((cmd, flag, kind, code, last[:200]))
# Output arguments: (command, flag, whether it names a folder). Given an existing file, a path
# under a file, /dev/null or a FIFO: a folder flag must refuse and leave the file as it was; a
# file flag may replace a regular file (as cp does), never hang on a FIFO.
outputs = [("run", "--runs-dir", True), ("run", "--reports-dir", True), ("report", "--out", True),
           ("finetune", "--out", True), ("gradnorms", "--out", True), ("export", "--hf", True),
           ("batches", "--out", False), ("tokenizer", "--out", False), ("sweep", "--out", False),
           ("finetune", "--predict", False)]
for cmd, flag, folder in outputs:
    for kind in ["file", "under-file", "devnull", "fifo"]:
        p = {"file": "notes.txt", "under-file": "notes.txt/x", "devnull": "/dev/null", "fifo": "fifo"}[kind]
        args = with_value(base[cmd], flag, p)
        ok, code, last = case(args, [p, "notes.txt", flag], setup=lambda c: (
            (c / "notes.txt").write_text("mine"), os.mkfifo(c / "fifo")))
        intact = (WORK / "case" / "notes.txt").read_bytes() == b"mine"
        if folder:  # a folder flag on anything but a folder: refused, the file untouched
            ok = ok and code != 0 and intact
        n += 1
        print(f"{cmd} {flag} {kind}: exit {code}{'' if ok else '  <-- CHECK'}{'' if intact else ' (notes.txt changed)'}"
              f"  {last[:140] if code else ''}", flush=True)
        if not ok:
            bad.append((cmd, flag, kind, code, last[:200]))
print(f"\n{n} cases, {len(bad)} to check")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
