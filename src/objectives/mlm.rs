//! Masked language modelling (BERT): predict the original token at the masked positions
//! only, through a dense + GELU + LayerNorm transform and a decoder tied to the word
//! embeddings (plus its own output bias), or untied (`model.tie_word_embeddings = false`).

use super::{linear_cross_entropy, Ctx, HeadDims, Loss, Objective, ObjectiveFor};
use crate::model::gelu::gelu;
use crate::model::ops::{layer_norm, linear, project};
use crate::model::params::named_params;
use crate::model::params::{normal_matrix, Affine, Linear};
use crate::model::Taped;
use crate::model::{Act, Dev, Matrix, Vector};
use crate::rng::Rng;
use dfdx::prelude::*;

#[derive(Clone, Debug)]
pub struct Mlm {
    pub transform: Linear,
    pub norm: Affine,
    pub bias: Vector,
    /// The decoder's own `(vocab, hidden)` matrix when untied; `None` reads the word
    /// embeddings.
    pub decoder: Option<Matrix>,
    pub eps: f32,
}

impl Mlm {
    /// Vocabulary logits `(positions, vocab)` at the flat token rows `positions` of `hidden`:
    /// what the loss scores in training and what `pretext fill` / `pretext eval` read.
    pub fn logits<T: Taped>(
        &self,
        hidden: Act<T>,
        positions: &[usize],
        dev: &Dev,
        encoder: &crate::model::Encoder,
    ) -> Act<T> {
        let x = self.transformed(hidden, positions, dev);
        project(x, self.decoder(encoder), Some(&self.bias))
    }

    /// The transform's output at `positions`: what the decoder reads.
    fn transformed<T: Taped>(&self, hidden: Act<T>, positions: &[usize], dev: &Dev) -> Act<T> {
        let idx: Tensor<(usize,), usize, Dev> =
            dev.tensor_from_vec(positions.to_vec(), (positions.len(),));
        layer_norm(
            gelu(linear(hidden.gather(idx), &self.transform)),
            &self.norm,
            self.eps,
        )
    }

    /// The decoder's weight: its own, or the word embeddings when tied.
    fn decoder<'a>(&'a self, encoder: &'a crate::model::Encoder) -> &'a Matrix {
        self.decoder.as_ref().unwrap_or(&encoder.embeddings.word)
    }

    pub fn new(dev: &Dev, d: &HeadDims, rng: &mut Rng) -> Self {
        Self {
            transform: Linear::new(dev, d.hidden, d.hidden, d.init_std, rng),
            norm: Affine::new(dev, d.hidden),
            bias: dev.tensor_from_vec(vec![0.0; d.vocab], (d.vocab,)),
            decoder: (!d.tied_decoder)
                .then(|| normal_matrix(dev, d.vocab, d.hidden, d.init_std, rng)),
            eps: d.layer_norm_eps,
        }
    }
}

impl<T: Taped> ObjectiveFor<T> for Mlm {
    fn loss(&self, hidden: Act<T>, _: Option<Act<T>>, ctx: &Ctx) -> Loss<T> {
        let b = ctx.batch;
        let m = b.mlm_positions.len();
        if m == 0 {
            return Loss {
                value: hidden.sum::<Rank0, _>() * 0.0,
                correct: 0,
                total: 0,
                parts: Vec::new(),
            };
        }
        let x = self.transformed(hidden, &b.mlm_positions, ctx.dev);
        let labels: Vec<usize> = b.mlm_labels.iter().map(|&l| l as usize).collect();
        let decoder = self.decoder(ctx.encoder);
        linear_cross_entropy(ctx.dev, x, decoder, Some(&self.bias), &labels)
    }
}

impl Objective for Mlm {
    fn name(&self) -> &'static str {
        "mlm"
    }
    fn box_clone(&self) -> Box<dyn Objective> {
        Box::new(self.clone())
    }
    /// The masked positions; every row when there are none (the loss is then `0 · Σ hidden`,
    /// kept on the tape).
    fn rows(&self, batch: &crate::data::Batch, _: &crate::model::Inputs) -> Option<Vec<usize>> {
        let rows = &batch.mlm_positions;
        (!rows.is_empty()).then(|| rows.clone())
    }
}

named_params!(Mlm {
    transform => "transform",
    norm => "norm",
    bias => "bias",
    decoder => "decoder.weight",
});
