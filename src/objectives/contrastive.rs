//! SimCSE-style contrastive objective (Gao et al. 2021): each sequence goes through the shared
//! encoder twice with different dropout masks; the two pooled views are positives, the other
//! sequences of the batch are negatives; InfoNCE over cosine similarity / temperature.

use crate::model::Taped;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContrastiveOptions {
    pub temperature: f64,
    /// `cls` (the [CLS] hidden state) or `mean` (mean over real tokens).
    pub pooling: Pooling,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    Cls,
    Mean,
}

impl Default for ContrastiveOptions {
    fn default() -> Self {
        Self {
            temperature: 0.05,
            pooling: Pooling::Cls,
        }
    }
}

impl ContrastiveOptions {
    pub fn check(&self) -> Result<(), String> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "temperature: expected > 0, got {}",
                self.temperature
            ));
        }
        Ok(())
    }
}

use super::{cross_entropy, Ctx, Loss, Objective, ObjectiveFor};
use crate::model::params::named_params;
use crate::model::{Act, Dev};
use dfdx::prelude::*;

/// The objective itself: no parameters of its own (the pooler is SimCSE's MLP).
#[derive(Clone, Debug)]
pub struct Contrastive {
    pub options: ContrastiveOptions,
}

impl Contrastive {
    fn embed<T: Taped>(&self, hidden: Act<T>, ctx: &Ctx) -> Act<T> {
        let (b, s) = (ctx.inputs.batch, ctx.inputs.seq);
        let e = match self.options.pooling {
            Pooling::Cls => ctx.encoder.pool(ctx.dev, hidden, b, s),
            Pooling::Mean => {
                // Mean over real tokens: a (B, B·S) averaging matrix times the token rows.
                let mut avg = vec![0.0f32; b * b * s];
                for r in 0..b {
                    let real: Vec<usize> = (0..s)
                        .filter(|&j| ctx.inputs.mask[r * s + j] > 0.0)
                        .collect();
                    for &j in &real {
                        avg[r * b * s + r * s + j] = 1.0 / real.len() as f32;
                    }
                }
                let avg: Tensor<(usize, usize), f32, Dev> =
                    ctx.dev.tensor_from_vec(avg, (b, b * s));
                // (B, B·S) × (B·S, H), with the tape moved onto the left operand.
                let (h, tape) = hidden.split_tape();
                avg.put_tape(tape).matmul(h)
            }
        };
        // Unit length, so that dot products are cosine similarities.
        let (e, tape) = e.split_tape();
        let shape = *e.shape();
        let norm = e
            .clone()
            .put_tape(tape)
            .square()
            .sum::<(usize,), Axis<1>>()
            .sqrt()
            + 1e-8;
        norm.recip().broadcast_like::<_, Axis<1>>(&shape) * e
    }
}

impl<T: Taped> ObjectiveFor<T> for Contrastive {
    fn loss(&self, hidden: Act<T>, view2: Option<Act<T>>, ctx: &Ctx) -> Loss<T> {
        let b = ctx.inputs.batch;
        let a = self.embed(hidden, ctx);
        let sim = match view2 {
            Some(v) => a.matmul(self.embed(v, ctx).permute::<_, Axes2<1, 0>>()),
            // Without a second view (evaluation, no dropout) the positive is the view itself.
            None => {
                let (a, tape) = a.split_tape();
                a.clone()
                    .put_tape(tape)
                    .matmul(a.permute::<_, Axes2<1, 0>>())
            }
        };
        let sim = sim * (1.0 / self.options.temperature as f32);
        cross_entropy(ctx.dev, sim, &(0..b).collect::<Vec<_>>())
    }
}

impl Objective for Contrastive {
    fn name(&self) -> &'static str {
        "contrastive"
    }
    fn box_clone(&self) -> Box<dyn Objective> {
        Box::new(self.clone())
    }
    /// `[CLS]` pooling reads one row a sequence; mean pooling reads them all.
    fn rows(&self, _: &crate::data::Batch, inputs: &crate::model::Inputs) -> Option<Vec<usize>> {
        match self.options.pooling {
            Pooling::Cls => Some(super::cls_rows(inputs)),
            Pooling::Mean => None,
        }
    }
}

named_params!(Contrastive {});
