//! The BERT encoder on dfdx tensors with runtime sizes, its three normalisation placements,
//! and weight files. Knows nothing about objectives or experiment files beyond `ModelConfig`.
//!
//! dfdx generics stay at this module's edge: activations are token rows `Act<T>` of shape
//! `(batch·seq, hidden)`, and `T` is either `NoneTape` (evaluation) or `OwnedTape` (training).

pub mod attention;
pub mod block;
pub mod encoder;
pub mod fused;
pub mod gelu;
pub mod host;
pub mod io;
pub mod norm;
pub mod ops;
pub mod params;
pub mod powernorm;
pub mod precision;

pub use encoder::{Encoder, InputError, Inputs};
pub use norm::Norm;
pub use params::{Param, ParamMut, Params};
pub use powernorm::PowerNorm;

use crate::rng::Rng;
use dfdx::prelude::*;
use std::sync::Arc;

/// The device every tensor lives on: the CPU, or with the `cuda` feature dfdx's CUDA device.
/// Our own ops (PowerNorm, dropout masks) move host vectors with `tensor_from_vec` and
/// `as_vec`, which both devices implement, so the model code is the same for both.
#[cfg(not(feature = "cuda"))]
pub type Dev = Cpu;
#[cfg(feature = "cuda")]
pub type Dev = Cuda;
/// `Dev` in words, for benchmark output and run summaries.
pub const DEVICE_NAME: &str = if cfg!(feature = "cuda") {
    "cuda"
} else {
    "cpu"
};
pub type Vector = Tensor<(usize,), f32, Dev>;
pub type Matrix = Tensor<(usize, usize), f32, Dev>;
/// The device a run trains on, seeded with the run's seed. On a CUDA build this is GPU 0,
/// and a machine without a usable GPU is an error rather than a panic.
pub fn device(seed: u64) -> Result<Dev, DeviceError> {
    #[cfg(not(feature = "cuda"))]
    return Ok(Dev::seed_from_u64(seed));
    #[cfg(feature = "cuda")]
    {
        Cuda::try_seed_from_u64(seed).map_err(|e| DeviceError(format!("{e:?}")))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open the CUDA device (this binary was built with the `cuda` feature): {0}")]
pub struct DeviceError(String);

/// Token rows `(batch·seq, hidden)` carrying tape `T`.
pub type Act<T> = Tensor<(usize, usize), f32, Dev, T>;

/// A tape pretext's ops accept: dfdx's `Tape` over f32 on this build's device. Objectives,
/// fine-tuning and the loop name this (and `TrainTape`, `Grads`) rather than dfdx's
/// generic forms, so dfdx's parameters stay inside `model`.
pub trait Taped: Tape<f32, Dev> {}
impl<T: Tape<f32, Dev>> Taped for T {}

/// The tape of a training forward pass (gradients recorded).
pub type TrainTape = OwnedTape<f32, Dev>;

/// The gradients a backward pass leaves, one buffer per parameter.
pub type Grads = Gradients<f32, Dev>;

/// What a forward pass is for. `Train` draws dropout masks from the run's stream (saved in
/// checkpoints, so resume is exact) and switches PowerNorm to batch statistics; `Eval` is
/// deterministic.
pub enum Mode<'a> {
    Train(&'a mut Rng),
    Eval,
}

impl<'a> Mode<'a> {
    /// `Train(rng)` when `training`, else `Eval`: for code that decides per call (fine-tuning,
    /// ELECTRA's second pass).
    pub fn new(training: bool, rng: &'a mut Rng) -> Self {
        match training {
            true => Mode::Train(rng),
            false => Mode::Eval,
        }
    }

    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train(_))
    }

    /// The same mode for one more pass, leaving this one usable after it.
    pub fn reborrow(&mut self) -> Mode<'_> {
        match self {
            Mode::Train(rng) => Mode::Train(rng),
            Mode::Eval => Mode::Eval,
        }
    }

    /// The dropout stream: `None` in evaluation.
    pub fn dropout_rng(self) -> Option<&'a mut Rng> {
        match self {
            Mode::Train(rng) => Some(rng),
            Mode::Eval => None,
        }
    }
}

/// What every layer of one forward pass shares.
pub struct Pass<'a> {
    pub batch: usize,
    pub seq: usize,
    /// Training (dropout, and PowerNorm's batch statistics with updates of its running ones)
    /// or evaluation.
    pub mode: Mode<'a>,
    /// Which token rows are real (not padding).
    pub real: Arc<Vec<bool>>,
    /// Added to every attention score: padding mask and ALiBi's distance penalty.
    pub bias: attention::ScoreBias,
}
