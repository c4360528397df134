//! The BERT encoder on dfdx tensors with runtime sizes, its three normalisation placements,
//! and weight files. Knows nothing about objectives or experiment files beyond `ModelConfig`.
//!
//! dfdx generics stay at this module's edge: activations are token rows `Act<T>` of shape
//! `(batch·seq, hidden)`, and `T` is either `NoneTape` (evaluation) or `OwnedTape` (training).

pub mod attention;
pub mod block;
pub mod encoder;
pub mod gelu;
pub mod io;
pub mod norm;
pub mod ops;
pub mod params;
pub mod powernorm;

pub use encoder::{Encoder, InputError, Inputs};
pub use norm::Norm;
pub use params::{Param, ParamMut, Params};
pub use powernorm::PowerNorm;

use crate::rng::Rng;
use dfdx::prelude::*;
use std::sync::Arc;

pub type Dev = Cpu;
pub type Vector = Tensor<(usize,), f32, Dev>;
pub type Matrix = Tensor<(usize, usize), f32, Dev>;
/// Token rows `(batch·seq, hidden)` carrying tape `T`.
pub type Act<T> = Tensor<(usize, usize), f32, Dev, T>;

/// What every layer of one forward pass shares.
pub struct Pass<'a> {
    pub batch: usize,
    pub seq: usize,
    /// Training: PowerNorm uses batch statistics and updates its running ones.
    pub train: bool,
    /// Dropout stream; `None` disables dropout.
    pub rng: Option<&'a mut Rng>,
    /// Which token rows are real (not padding).
    pub real: Arc<Vec<bool>>,
    /// `(batch, seq)`: 0 for real keys, a large negative number for padding.
    pub mask_bias: Matrix,
}
