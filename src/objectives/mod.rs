//! Pretraining objectives, one file each, found by name through the registry.
//!
//! An objective owns its head's parameters and turns the encoder's hidden states into a loss
//! and an accuracy. It is written once for both tapes (`TrainTape` in training, `NoneTape` in
//! evaluation) through `ObjectiveFor<T>`.

pub mod contrastive;
pub mod electra;
pub mod mlm;
pub mod nsp;
pub mod registry;
pub mod sentence_pair;
pub mod sop;

pub use registry::{find, names, Needs};

use crate::data::Batch;
use crate::model::{Act, Dev, Encoder, Inputs, Matrix, Params, Vector};
use crate::model::{Taped, TrainTape};
use crate::rng::Rng;
use dfdx::prelude::*;
use std::cell::RefCell;

/// What an objective may read besides the hidden states.
pub struct Ctx<'a> {
    pub dev: &'a Dev,
    pub encoder: &'a Encoder,
    pub batch: &'a Batch,
    pub inputs: &'a Inputs,
    /// The run's dropout stream (saved in checkpoints, so resume stays exact) in training, for
    /// objectives that sample or run the encoder again themselves (ELECTRA); `None` in
    /// evaluation, which must be deterministic.
    pub rng: Option<&'a RefCell<&'a mut Rng>>,
}

/// One objective's loss on one batch, with its accuracy counts.
pub struct Loss<T> {
    pub value: Tensor<Rank0, f32, Dev, T>,
    pub correct: usize,
    pub total: usize,
    /// Named components of a composite loss (ELECTRA's generator and discriminator), logged
    /// as `<objective>/<part>/loss` and `…/accuracy` beside the objective's own figures; they
    /// are already inside `value`.
    pub parts: Vec<Part>,
}

/// One component of a composite loss, for the logs only.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: &'static str,
    pub loss: f64,
    pub correct: usize,
    pub total: usize,
}

pub trait ObjectiveFor<T: Taped> {
    /// `hidden`: token rows `(B·S, H)`; `view2`: the second dropout view's hidden states, given
    /// only to objectives whose `Needs::two_views` is set.
    fn loss(&self, hidden: Act<T>, view2: Option<Act<T>>, ctx: &Ctx) -> Loss<T>;
}

pub trait Objective: ObjectiveFor<TrainTape> + ObjectiveFor<NoneTape> + Params {
    fn name(&self) -> &'static str;
    fn box_clone(&self) -> Box<dyn Objective>;
    /// The token rows (`b·S + s`, in any order) of the hidden states `loss` reads from this
    /// batch, when it reads only some: the encoder then computes its last block at those rows
    /// alone (`Encoder::forward_rows`) and leaves the others NaN. `None` (the default): every
    /// row.
    fn rows(&self, batch: &Batch, inputs: &Inputs) -> Option<Vec<usize>> {
        let _ = (batch, inputs);
        None
    }
}

/// The rows a run's objectives read together (`Objective::rows`), sorted and distinct; `None`
/// when one of them reads every row.
pub fn rows_read<'a>(
    objectives: impl IntoIterator<Item = &'a dyn Objective>,
    batch: &Batch,
    inputs: &Inputs,
) -> Option<Vec<usize>> {
    let mut all = Vec::new();
    for o in objectives {
        all.extend(o.rows(batch, inputs)?);
    }
    all.sort_unstable();
    all.dedup();
    Some(all)
}

/// The first token (`[CLS]`) of each sequence: what the pooler reads.
pub fn cls_rows(inputs: &Inputs) -> Vec<usize> {
    (0..inputs.batch).map(|b| b * inputs.seq).collect()
}

impl Clone for Box<dyn Objective> {
    fn clone(&self) -> Self {
        self.box_clone()
    }
}

/// Sizes a head needs from the encoder.
#[derive(Debug, Clone)]
pub struct HeadDims {
    pub hidden: usize,
    pub vocab: usize,
    pub layer_norm_eps: f32,
    pub init_std: f32,
    /// `model.tie_word_embeddings`: the MLM decoder is the word embeddings.
    pub tied_decoder: bool,
    /// The whole encoder's settings, for a head with a network of its own (ELECTRA's
    /// generator).
    pub model: crate::config::ModelConfig,
}

impl HeadDims {
    pub fn of(model: &crate::config::ModelConfig, vocab: usize) -> Self {
        Self {
            hidden: model.hidden,
            vocab,
            layer_norm_eps: model.layer_norm_eps,
            init_std: model.init_std,
            tied_decoder: model.tie_word_embeddings,
            model: model.clone(),
        }
    }
}

/// Mean cross-entropy of the logits `x Wᵀ + b` against class `labels`, and how many argmaxes
/// hit: `cross_entropy` of `ops::project`, as one op on the CPU, where the logits (MLM's are a
/// step's largest activation) never become a dfdx tensor (`model::fused::linear_cross_entropy`).
pub fn linear_cross_entropy<T: Taped>(
    dev: &Dev,
    x: Act<T>,
    weight: &Matrix,
    bias: Option<&Vector>,
    labels: &[usize],
) -> Loss<T> {
    #[cfg(not(feature = "cuda"))]
    {
        let _ = dev;
        let (value, correct) = crate::model::fused::linear_cross_entropy(x, weight, bias, labels);
        Loss {
            value,
            correct,
            total: labels.len(),
            parts: Vec::new(),
        }
    }
    #[cfg(feature = "cuda")]
    cross_entropy(dev, crate::model::ops::project(x, weight, bias), labels)
}

/// Mean cross-entropy of `logits` `(N, C)` against class `labels`, and how many argmaxes hit.
/// Fused on the CPU (`model::fused::cross_entropy`); dfdx's device ops on CUDA
/// (`model::ops::cross_entropy_device`).
pub fn cross_entropy<T: Taped>(dev: &Dev, logits: Act<T>, labels: &[usize]) -> Loss<T> {
    let _ = dev;
    #[cfg(not(feature = "cuda"))]
    let (value, correct) = crate::model::fused::cross_entropy(logits, labels);
    #[cfg(feature = "cuda")]
    let (value, correct) = crate::model::ops::cross_entropy_device(logits, labels);
    Loss {
        value,
        correct,
        total: labels.len(),
        parts: Vec::new(),
    }
}
