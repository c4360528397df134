//! The run directory: what lives in it, who may write it, and how files reach it.
//!
//! A run directory holds one run — a pretraining run (`checkpoints/`, `metrics.jsonl`,
//! events, `summary.json`, and `finetune/` below it) or a fine-tuning run (the same files
//! without checkpoints). Writing a run into a folder that holds another kind of run would
//! overwrite that run's logs and summary, so every run *claims* its folder first: it takes
//! the folder's lock ([`lock::RunLock`]), then checks the `.pretext-run` marker that names
//! the kind of run the folder holds (or, for folders written before the marker existed, the
//! files that give it away) and refuses a mismatch. Nothing is written before the claim.
//!
//! Files shared by every run of an experiment (the trained tokenizer) are made under the
//! experiment's blocking lock ([`lock::ExperimentLock`]) instead, so two processes started
//! together agree on one of them.

pub mod atomic;
pub mod lock;

pub use atomic::{write_atomically, write_shared};
pub use lock::{ExperimentLock, LockError, RunLock};

use std::path::{Path, PathBuf};

/// The kinds of run a folder can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Pretraining,
    Finetuning,
}

impl RunKind {
    pub fn name(self) -> &'static str {
        match self {
            RunKind::Pretraining => "pretraining",
            RunKind::Finetuning => "fine-tuning",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "pretraining" => Some(RunKind::Pretraining),
            "fine-tuning" => Some(RunKind::Finetuning),
            _ => None,
        }
    }
}

const MARKER: &str = ".pretext-run";

/// `summary.json`: written last, so its presence means the run finished.
pub fn summary_path(dir: &Path) -> PathBuf {
    dir.join("summary.json")
}

/// `checkpoints/latest.safetensors`: the one checkpoint a run keeps, rewritten in place.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoints").join("latest.safetensors")
}

/// The held-out set's fingerprint a finished run recorded in its summary, if any.
pub fn recorded_eval_fingerprint(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(summary_path(dir)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["eval_fingerprint"].as_str().map(str::to_string)
}

/// Whether the run in `dir` finished.
pub fn finished(dir: &Path) -> bool {
    summary_path(dir).exists()
}

/// The kind of run `dir` holds, if any: its marker, or for an older folder the files only
/// one kind writes (checkpoints and fine-tuning folders are pretraining's; logs without
/// them are a fine-tuning run's).
pub fn kind_of(dir: &Path) -> Option<RunKind> {
    if let Ok(s) = std::fs::read_to_string(dir.join(MARKER)) {
        return RunKind::parse(&s);
    }
    if dir.join("checkpoints").is_dir() || dir.join("finetune").is_dir() {
        return Some(RunKind::Pretraining);
    }
    if dir.join("metrics.jsonl").exists() || dir.join("config.resolved.toml").exists() {
        return Some(RunKind::Finetuning);
    }
    None
}

/// The run folder `path` is, or lies inside, if any (the nearest), with its kind: a runs
/// folder given there would put whole experiments among that run's files. Only the marker
/// counts here: `kind_of`'s reading of older folders (a `checkpoints/` or `finetune/`
/// folder) would take many a project folder above the runs for a run.
pub fn enclosing_run(path: &Path) -> Option<(PathBuf, RunKind)> {
    let abs = std::path::absolute(path).ok()?;
    abs.ancestors().find_map(|d| {
        let marker = std::fs::read_to_string(d.join(MARKER)).ok()?;
        RunKind::parse(&marker).map(|k| (d.to_path_buf(), k))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(
        "{dir}: this folder holds a {holds} run; a {wants} run written here would overwrite \
         its logs and summary. Choose another output folder"
    )]
    OtherKind {
        dir: PathBuf,
        holds: &'static str,
        wants: &'static str,
    },
    #[error("{dir}: cannot mark the run folder: {reason}")]
    Io { dir: PathBuf, reason: String },
}

/// Takes `dir` for a run of `kind`: creates it, locks it, and refuses it when it holds a run
/// of another kind. The lock is held until the returned value is dropped.
pub fn claim(dir: &Path, kind: RunKind) -> Result<RunLock, ClaimError> {
    let lock = RunLock::acquire(dir)?;
    match kind_of(dir) {
        Some(k) if k != kind => Err(ClaimError::OtherKind {
            dir: dir.into(),
            holds: k.name(),
            wants: kind.name(),
        }),
        Some(_) if dir.join(MARKER).exists() => Ok(lock),
        _ => {
            write_atomically(&dir.join(MARKER), kind.name().as_bytes()).map_err(|e| {
                ClaimError::Io {
                    dir: dir.into(),
                    reason: e.to_string(),
                }
            })?;
            Ok(lock)
        }
    }
}

/// Refuses an output file that is one of the command's inputs (compared as canonical paths,
/// so `./a.txt`, `a.txt` and a link to it are the same file).
pub fn refuse_overwriting_input(out: &Path, inputs: &[PathBuf]) -> Result<(), String> {
    let Ok(out_c) = std::fs::canonicalize(out) else {
        return Ok(()); // does not exist yet: it is no input
    };
    for input in inputs {
        if std::fs::canonicalize(input).is_ok_and(|i| i == out_c) {
            return Err(format!(
                "{}: the output is also an input ({}); writing it would destroy the input. \
                 Choose another output path",
                out.display(),
                input.display()
            ));
        }
    }
    Ok(())
}
