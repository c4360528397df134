//! Task heads and the sequence representations they read: BERT's pooled [CLS] or the mean of
//! the last hidden states for classification and regression, token rows for spans.

use super::data::Target;
use super::task::Kind;
use crate::model::encoder::MASKED_SCORE;
use crate::model::ops::linear;
use crate::model::params::named_params;
use crate::model::params::Linear;
use crate::model::Taped;
use crate::model::{Act, Dev, Encoder, Inputs};
use crate::objectives::cross_entropy;
use crate::rng::Rng;
use dfdx::prelude::*;

#[derive(Clone, Debug)]
pub enum Head {
    /// Pooled vector → class logits.
    Classifier(Linear),
    /// Pooled vector → one score.
    Regressor(Linear),
    /// Token row → start logit and end logit.
    Span { start: Linear, end: Linear },
    /// Sentence embeddings have nothing to train.
    None,
}

impl Head {
    pub fn new(dev: &Dev, kind: Kind, hidden: usize, std: f32, rng: &mut Rng) -> Self {
        match kind {
            Kind::Classify { classes } => {
                Head::Classifier(Linear::new(dev, hidden, classes, std, rng))
            }
            Kind::Regress => Head::Regressor(Linear::new(dev, hidden, 1, std, rng)),
            Kind::Span => Head::Span {
                start: Linear::new(dev, hidden, 1, std, rng),
                end: Linear::new(dev, hidden, 1, std, rng),
            },
            // The MLM probe never reaches fine-tuning (predict::downstream runs it).
            Kind::Embed | Kind::MlmProbe => Head::None,
        }
    }

    /// Whether the head reads one vector per sequence (else one per token).
    pub fn pooled(&self) -> bool {
        matches!(self, Head::Classifier(_) | Head::Regressor(_) | Head::None)
    }

    /// The loss of `rep` against `targets`, and the raw outputs per sequence: class logits,
    /// the score, or start logits followed by end logits (`2·seq` values).
    pub fn loss<T: Taped>(
        &self,
        dev: &Dev,
        rep: Act<T>,
        targets: &[Target],
        inp: &Inputs,
    ) -> (Tensor<Rank0, f32, Dev, T>, Vec<Vec<f32>>) {
        let (b, s) = (inp.batch, inp.seq);
        match self {
            Head::Classifier(l) => {
                let logits = linear(rep, l);
                let c = logits.shape().1;
                let out = logits.as_vec().chunks(c).map(<[f32]>::to_vec).collect();
                let labels: Vec<usize> = targets
                    .iter()
                    .map(|t| match t {
                        Target::Class(c) => *c,
                        _ => 0,
                    })
                    .collect();
                (cross_entropy(dev, logits, &labels).value, out)
            }
            Head::Regressor(l) => {
                let pred = linear(rep, l);
                let out = pred.as_vec().into_iter().map(|v| vec![v]).collect();
                let gold: Vec<f32> = targets
                    .iter()
                    .map(|t| match t {
                        Target::Score(x) => *x,
                        _ => 0.0,
                    })
                    .collect();
                let gold: Tensor<(usize, usize), f32, Dev> = dev.tensor_from_vec(gold, (b, 1));
                (mse_loss(pred, gold), out)
            }
            Head::Span { start, end } => {
                let bias: Vec<f32> = inp
                    .mask
                    .iter()
                    .map(|&m| if m > 0.0 { 0.0 } else { MASKED_SCORE })
                    .collect();
                let bias: Tensor<(usize, usize), f32, Dev> = dev.tensor_from_vec(bias, (b, s));
                let (h, tape) = rep.split_tape();
                let st =
                    linear(h.clone().put_tape(tape), start).reshape_like(&(b, s)) + bias.clone();
                let en = linear(h.retaped::<T>(), end).reshape_like(&(b, s)) + bias;
                let (sv, ev) = (st.as_vec(), en.as_vec());
                let out = sv
                    .chunks(s)
                    .zip(ev.chunks(s))
                    .map(|(a, e)| [a, e].concat())
                    .collect();
                let (gs, ge): (Vec<usize>, Vec<usize>) = targets
                    .iter()
                    .map(|t| match t {
                        Target::Span(a, e) => (*a, *e),
                        _ => (0, 0),
                    })
                    .unzip();
                let loss =
                    (cross_entropy(dev, st, &gs).value + cross_entropy(dev, en, &ge).value) * 0.5;
                (loss, out)
            }
            Head::None => (dev.zeros::<Rank0>().retaped::<T>(), vec![]),
        }
    }
}

/// One vector per sequence `(B, H)` from token rows `(B·S, H)`.
pub fn pool<T: Taped>(
    dev: &Dev,
    enc: &Encoder,
    hidden: Act<T>,
    inp: &Inputs,
    mean: bool,
) -> Act<T> {
    let (b, s) = (inp.batch, inp.seq);
    if !mean {
        return enc.pool(dev, hidden, b, s);
    }
    // (B·S, H)ᵀ · P with P[b·S + s, b] = mask / (real tokens of b): a masked mean as a matmul.
    let mut p = vec![0.0f32; b * s * b];
    for i in 0..b {
        let row = &inp.mask[i * s..(i + 1) * s];
        let n: f32 = row.iter().sum::<f32>().max(1.0);
        for (j, &m) in row.iter().enumerate() {
            p[(i * s + j) * b + i] = m / n;
        }
    }
    let p: Tensor<(usize, usize), f32, Dev> = dev.tensor_from_vec(p, (b * s, b));
    hidden
        .permute::<_, Axes2<1, 0>>()
        .matmul(p)
        .permute::<_, Axes2<1, 0>>()
}

named_params!(enum Head {
    Head::Classifier(l) | Head::Regressor(l) => { l => "out" },
    Head::Span { start, end } => { start => "start", end => "end" },
    Head::None => {},
});

/// Encoder and head, trained together in `mode = "finetune"`.
pub struct Finetuned<'a> {
    pub encoder: &'a mut Encoder,
    pub head: &'a mut Head,
}

named_params!(Finetuned<'_> { encoder => "", head => "head" });
