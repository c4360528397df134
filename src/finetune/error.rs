//! What stops a fine-tuning run, each naming the task, step, file or setting.

use crate::model::InputError;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error(transparent)]
    Read(#[from] super::glue::ReadError),
    #[error(transparent)]
    Checkpoint(#[from] crate::train::checkpoint::CheckpointError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Claim(#[from] crate::rundir::ClaimError),
    #[error(transparent)]
    Device(#[from] crate::model::DeviceError),
    #[error("{task}, step {step}: the loss is {value}; fine-tuning stopped (lower lr)")]
    NonFinite { task: String, step: u64, value: f32 },
    #[error("{task}, step {step}: {what}; fine-tuning stopped")]
    Step {
        task: String,
        step: u64,
        what: String,
    },
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{0}")]
    Setup(String),
}

pub(super) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> FinetuneError + '_ {
    move |e| FinetuneError::Io {
        path: path.into(),
        reason: e.to_string(),
    }
}
