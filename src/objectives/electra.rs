//! ELECTRA replaced-token detection (Clark et al. 2020): a generator fills the masked
//! positions with tokens sampled from its MLM distribution, and a discriminator tells, at every
//! real position of the corrupted sequence, whether the token is the original or a
//! replacement. Loss = generator MLM + `discriminator_weight` × detection (the paper's λ = 50);
//! no gradient flows through the sampling.
//!
//! The generator here shares the whole encoder with the discriminator — the paper's
//! "tying all weights" ablation (§3.2, Figure 3: GLUE 84.4 against 84.3 with only the
//! embeddings tied); the paper's default, a generator a quarter to a half as wide, is not
//! built. So one step runs the encoder twice: over the masked input (the hidden states the
//! loop hands every objective: the generator's MLM head reads them) and over the corrupted
//! input (the discriminator's pass, which this objective runs itself through `Ctx::encoder`,
//! drawing dropout and samples from `Ctx::rng`, the run's saved dropout stream, so resume stays
//! exact). Fine-tuning reads the encoder, i.e. the discriminator, as the paper does.
//!
//! A token the generator happens to sample as the original counts as original (label 0), as
//! in the paper. The detection head is BERT-style (dense + GELU + a 2-way classifier): a
//! softmax over two logits is the paper's sigmoid on their difference.

use super::mlm::Mlm;
use super::registry::parse_options;
use super::{cross_entropy, Ctx, HeadDims, Loss, Objective, ObjectiveFor, Part};
use crate::data::MaskingConfig;
use crate::model::gelu::gelu;
use crate::model::ops::linear;
use crate::model::params::named_params;
use crate::model::params::Linear;
use crate::model::{Act, Dev, Inputs};
use crate::rng::{stream, Rng};
use dfdx::prelude::*;
use rand::Rng as _;

/// The option that is ELECTRA's own; every other key of its `options` is a masking option
/// (`mask_prob`, `max_ngram`, …), read as `mlm` reads them.
const WEIGHT_KEY: &str = "discriminator_weight";

/// The paper's λ.
pub const DEFAULT_WEIGHT: f64 = 50.0;

/// Splits an `[[objectives]]` options table into the detection weight and the masking options,
/// naming the offending key on failure.
pub fn options(o: &toml::Table) -> Result<(f64, MaskingConfig), String> {
    let mut rest = o.clone();
    let weight = match rest.remove(WEIGHT_KEY) {
        None => DEFAULT_WEIGHT,
        Some(v) => match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
            Some(w) if w.is_finite() && w > 0.0 && w <= 1e6 => w,
            _ => {
                return Err(format!(
                "`{WEIGHT_KEY}`: expected a positive number up to 1e6 (the paper uses 50), got {v}"
            ))
            }
        },
    };
    let masking: MaskingConfig = parse_options(&rest)?;
    masking.check()?;
    Ok((weight, masking))
}

#[derive(Clone, Debug)]
pub struct Electra {
    /// The generator's MLM head over the shared encoder.
    pub generator: Mlm,
    /// The discriminator's head: dense + GELU, then two logits (original, replaced).
    pub dense: Linear,
    pub classifier: Linear,
    pub weight: f32,
}

impl Electra {
    pub fn new(dev: &Dev, d: &HeadDims, weight: f64, rng: &mut Rng) -> Self {
        Self {
            generator: Mlm::new(dev, d, rng),
            dense: Linear::new(dev, d.hidden, d.hidden, d.init_std, rng),
            classifier: Linear::new(dev, d.hidden, 2, d.init_std, rng),
            weight: weight as f32,
        }
    }

    /// Detection logits `(rows, 2)` (original, replaced) at the token rows `rows` of the hidden
    /// states of a corrupted input.
    pub fn detect<T: Tape<f32, Dev>>(&self, hidden: Act<T>, rows: &[usize], dev: &Dev) -> Act<T> {
        let idx: Tensor<(usize,), usize, Dev> = dev.tensor_from_vec(rows.to_vec(), (rows.len(),));
        linear(
            gelu(linear(hidden.gather(idx), &self.dense)),
            &self.classifier,
        )
    }
}

/// The corrupted token ids and, per position, whether it now differs from the original: each
/// masked position `positions[i]` of `ids` (whose original token is `originals[i]`) receives a
/// token drawn from the softmax of `logits` row `i` (`vocab` columns).
pub fn corrupt(
    ids: &[usize],
    positions: &[usize],
    originals: &[u32],
    logits: &[f32],
    vocab: usize,
    rng: &mut Rng,
) -> (Vec<usize>, Vec<bool>) {
    let mut out = ids.to_vec();
    let mut replaced = vec![false; ids.len()];
    let mut weights = vec![0.0f64; vocab];
    for ((&p, &orig), row) in positions
        .iter()
        .zip(originals)
        .zip(logits.chunks_exact(vocab))
    {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for (w, &z) in weights.iter_mut().zip(row) {
            *w = ((z - max) as f64).exp();
            total += *w;
        }
        // Inverse CDF: one uniform draw per position, so the stream advances by a fixed
        // amount whatever the logits are.
        let mut u = rng.gen::<f64>() * total;
        let mut token = vocab - 1;
        for (t, w) in weights.iter().enumerate() {
            if u < *w {
                token = t;
                break;
            }
            u -= w;
        }
        out[p] = token;
        replaced[p] = token != orig as usize;
    }
    (out, replaced)
}

impl<T: Tape<f32, Dev>> ObjectiveFor<T> for Electra {
    fn loss(&self, hidden: Act<T>, _: Option<Act<T>>, ctx: &Ctx) -> Loss<T> {
        let b = ctx.batch;
        if b.mlm_positions.is_empty() {
            return Loss {
                value: hidden.sum::<Rank0, _>() * 0.0,
                correct: 0,
                total: 0,
                parts: Vec::new(),
            };
        }
        let logits = self
            .generator
            .logits(hidden, &b.mlm_positions, ctx.dev, ctx.encoder);
        let vocab = logits.shape().1;
        let scores = logits.as_vec();
        let labels: Vec<usize> = b.mlm_labels.iter().map(|&l| l as usize).collect();
        let generated = cross_entropy(ctx.dev, logits, &labels);

        // Evaluation samples from a fixed stream, so every variant's held-out score sees the
        // same draws.
        let mut fixed = stream(0, "objectives.electra.evaluation");
        let mut cell = ctx.rng.map(|r| r.borrow_mut());
        let rng: &mut Rng = match cell.as_deref_mut() {
            Some(r) => r,
            None => &mut fixed,
        };
        let (ids, replaced) = corrupt(
            &ctx.inputs.ids,
            &b.mlm_positions,
            &b.mlm_labels,
            &scores,
            vocab,
            rng,
        );
        let corrupted = Inputs {
            ids,
            ..ctx.inputs.clone()
        };
        let dropout = ctx.rng.is_some().then_some(rng);
        let hidden = ctx
            .encoder
            .forward(ctx.dev, &corrupted, T::default(), dropout);
        let rows: Vec<usize> = (0..corrupted.mask.len())
            .filter(|&i| corrupted.mask[i] > 0.0)
            .collect();
        let targets: Vec<usize> = rows.iter().map(|&i| replaced[i] as usize).collect();
        let detected = cross_entropy(ctx.dev, self.detect(hidden, &rows, ctx.dev), &targets);
        let parts = vec![
            Part {
                name: "generator",
                loss: generated.value.array() as f64,
                correct: generated.correct,
                total: generated.total,
            },
            Part {
                name: "discriminator",
                loss: detected.value.array() as f64,
                correct: detected.correct,
                total: detected.total,
            },
        ];
        Loss {
            value: generated.value + detected.value * self.weight,
            correct: detected.correct,
            total: detected.total,
            parts,
        }
    }
}

impl Objective for Electra {
    fn name(&self) -> &'static str {
        "electra"
    }
    fn box_clone(&self) -> Box<dyn Objective> {
        Box::new(self.clone())
    }
}

named_params!(Electra { generator => "generator", dense => "dense", classifier => "classifier" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_the_weight_from_the_masking() {
        let t: toml::Table = toml::from_str("discriminator_weight = 20\nmask_prob = 0.25").unwrap();
        let (w, m) = options(&t).unwrap();
        assert_eq!(w, 20.0);
        assert_eq!(m.mask_prob, 0.25);
        let (w, m) = options(&toml::Table::new()).unwrap();
        assert_eq!((w, m), (DEFAULT_WEIGHT, MaskingConfig::default()));
        for (text, named) in [
            ("discriminator_weight = -1", "discriminator_weight"),
            ("discriminator_weight = \"big\"", "discriminator_weight"),
            ("mask_prob = 1.5", "mask_prob"),
            ("generator_size = 0.25", "generator_size"),
        ] {
            let t: toml::Table = toml::from_str(text).unwrap();
            let e = options(&t).unwrap_err();
            assert!(e.contains(named), "{text}: {e}");
        }
    }

    #[test]
    fn corruption_touches_only_masked_positions_and_labels_true_changes() {
        let vocab = 4;
        let ids = vec![0, 1, 2, 3, 1, 2];
        // Position 1 gets a row certain of token 1 (its original), position 4 one certain of 3.
        let logits = [
            -1e4, 1e4, -1e4, -1e4, //
            -1e4, -1e4, -1e4, 1e4,
        ];
        let mut rng = stream(1, "test");
        let (out, replaced) = corrupt(&ids, &[1, 4], &[1, 1], &logits, vocab, &mut rng);
        assert_eq!(out, vec![0, 1, 2, 3, 3, 2]);
        assert_eq!(replaced, vec![false, false, false, false, true, false]);
    }

    #[test]
    fn samples_follow_the_generator_softmax() {
        // logits ln(1), ln(2), ln(3), ln(4): probabilities 0.1, 0.2, 0.3, 0.4.
        let vocab = 4;
        let row: Vec<f32> = (1..=4).map(|k| (k as f32).ln()).collect();
        let n = 20_000;
        let logits: Vec<f32> = row.iter().copied().cycle().take(n * vocab).collect();
        let positions: Vec<usize> = (0..n).collect();
        let originals = vec![0u32; n];
        let mut rng = stream(2, "test");
        let (out, replaced) = corrupt(
            &vec![0; n],
            &positions,
            &originals,
            &logits,
            vocab,
            &mut rng,
        );
        for (k, expected) in [0.1, 0.2, 0.3, 0.4].iter().enumerate() {
            let share = out.iter().filter(|&&t| t == k).count() as f64 / n as f64;
            // Binomial std at n = 20,000 is at most 0.0035: 4 std.
            assert!(
                (share - expected).abs() < 0.014,
                "token {k}: {share} vs {expected}"
            );
        }
        let kept = replaced.iter().filter(|&&r| !r).count();
        assert_eq!(kept, out.iter().filter(|&&t| t == 0).count());
    }
}
