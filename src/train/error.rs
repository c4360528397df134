//! What stops a training run, each naming the step, objective, parameter or file.

use super::checkpoint::CheckpointError;
use crate::model::InputError;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("step {step}: the loss of objective `{objective}` is {value}; training stopped (lower optimizer.lr or raise optimizer.warmup_steps)")]
    NonFiniteLoss {
        step: u64,
        objective: String,
        value: f32,
    },
    #[error("step {step}: the gradient of `{param}` holds a non-finite value; training stopped")]
    NonFiniteGrad { step: u64, param: String },
    #[error("step {step}: {what}, after {rollbacks} roll-back(s) to the last checkpoint with a lower learning rate (training.max_rollbacks); training stopped")]
    Diverged {
        step: u64,
        what: String,
        rollbacks: u32,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A checkpoint that loaded but whose data position does not fit this run's data.
    #[error("{path}: {source}")]
    Resume {
        path: PathBuf,
        source: crate::data::DataError,
    },
    #[error(transparent)]
    Claim(#[from] crate::rundir::ClaimError),
    #[error(transparent)]
    Device(#[from] crate::model::DeviceError),
    #[error("step {step}: the device failed during the optimiser step: {message}")]
    DeviceStep { step: u64, message: String },
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

pub(super) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Io {
        path: path.into(),
        reason: e.to_string(),
    }
}
