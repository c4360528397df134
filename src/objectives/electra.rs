//! ELECTRA replaced-token detection (Clark et al. 2020): a generator fills the masked
//! positions with tokens sampled from its MLM distribution, and a discriminator tells, at every
//! real position of the corrupted sequence, whether the token is the original or a
//! replacement. Loss = generator MLM + `discriminator_weight` × detection (the paper's λ = 50);
//! no gradient flows through the sampling.
//!
//! By default the generator shares the whole encoder with the discriminator — the paper's
//! "tying all weights" ablation (§3.2, Figure 3: GLUE 84.4 against 84.3 with only the
//! embeddings tied). One step then runs the encoder twice: over the masked input (the hidden
//! states the loop hands every objective: the generator's MLM head reads them) and over the
//! corrupted input (the discriminator's pass, which this objective runs itself through
//! `Ctx::encoder`, drawing dropout and samples from `Ctx::rng`, the run's saved dropout
//! stream, so resume stays exact). `generator_size = 0.25` instead gives the generator an
//! encoder of its own, that fraction of the discriminator's width, FFN and heads (the paper's
//! Table 6 multiplier: 1/4 for ELECTRA-Small and -Large, 1/3 for Base) at the same depth, with
//! untied embeddings (the paper ties them through an embedding projection pretext does not
//! have: its "untied" ablation, GLUE 83.6); it uses LayerNorm where the discriminator uses
//! PowerNorm, whose running statistics only the main encoder's checkpoint entries carry.
//! Fine-tuning reads the encoder, i.e. the discriminator, as the paper does.
//!
//! A token the generator happens to sample as the original counts as original (label 0), as
//! in the paper. The detection head is BERT-style (dense + GELU + a 2-way classifier): a
//! softmax over two logits is the paper's sigmoid on their difference.

use super::mlm::Mlm;
use super::registry::parse_options;
use super::{cross_entropy, Ctx, HeadDims, Loss, Objective, ObjectiveFor, Part};
use crate::config::{ModelConfig, NormKind};
use crate::data::MaskingConfig;
use crate::model::gelu::gelu;
use crate::model::ops::linear;
use crate::model::params::named_params;
use crate::model::params::Linear;
use crate::model::Taped;
use crate::model::{Act, Dev, Encoder, Inputs, Mode};
use crate::rng::{stream, Rng};
use dfdx::prelude::*;
use rand::Rng as _;

/// The options that are ELECTRA's own; every other key of its `options` is a masking option
/// (`mask_prob`, `max_ngram`, …), read as `mlm` reads them.
const WEIGHT_KEY: &str = "discriminator_weight";
const SIZE_KEY: &str = "generator_size";

/// The paper's λ.
pub const DEFAULT_WEIGHT: f64 = 50.0;

/// ELECTRA's own options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// λ, the detection loss's weight against the generator's MLM loss.
    pub discriminator_weight: f64,
    /// The generator's own encoder as a fraction of the discriminator's width; `None`: the
    /// generator is the shared encoder.
    pub generator_size: Option<f64>,
}

fn number(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

/// Splits an `[[objectives]]` options table into ELECTRA's settings and the masking options,
/// naming the offending key on failure.
pub fn options(o: &toml::Table) -> Result<(Settings, MaskingConfig), String> {
    let mut rest = o.clone();
    let discriminator_weight = match rest.remove(WEIGHT_KEY) {
        None => DEFAULT_WEIGHT,
        Some(v) => match number(&v) {
            Some(w) if w.is_finite() && w > 0.0 && w <= 1e6 => w,
            _ => {
                return Err(format!(
                "`{WEIGHT_KEY}`: expected a positive number up to 1e6 (the paper uses 50), got {v}"
            ))
            }
        },
    };
    let generator_size = match rest.remove(SIZE_KEY) {
        None => None,
        Some(v) => match number(&v) {
            Some(f) if f > 0.0 && f < 1.0 => Some(f),
            _ => {
                return Err(format!(
                    "`{SIZE_KEY}`: expected a fraction of the encoder's width in (0, 1) (the \
                     paper uses 1/4 to 1/3; leave it out to share the encoder), got {v}"
                ))
            }
        },
    };
    let masking: MaskingConfig = parse_options(&rest)?;
    masking.check()?;
    let settings = Settings {
        discriminator_weight,
        generator_size,
    };
    Ok((settings, masking))
}

/// The parameters `Electra::new` creates: the generator's MLM head (and its own encoder with
/// `generator_size`) and the discriminator's dense layer and 2-way classifier.
pub fn parameters(d: &HeadDims, settings: &Settings) -> f64 {
    use crate::config::memory::{
        encoder_parameters, linear_parameters, mlm_head_parameters, pair_head_parameters,
    };
    let (h, v) = (d.hidden as f64, d.vocab as f64);
    let generator = match settings.generator_size {
        None => mlm_head_parameters(h, v, d.tied_decoder),
        Some(size) => {
            let g = generator_config(&d.model, size);
            encoder_parameters(&g, v) + mlm_head_parameters(g.hidden as f64, v, d.tied_decoder)
        }
    };
    generator + linear_parameters(h, h) + pair_head_parameters(h)
}

/// The generator's encoder: `size` of the discriminator's heads, width and FFN (at least one
/// head of one unit each), the same depth, LayerNorm in place of PowerNorm.
pub fn generator_config(model: &ModelConfig, size: f64) -> ModelConfig {
    let heads = ((model.heads as f64 * size).round() as usize).max(1);
    let per_head = ((model.hidden as f64 * size / heads as f64).round() as usize).max(1);
    let mut g = model.clone();
    g.heads = heads;
    g.hidden = per_head * heads;
    g.ffn = ((model.ffn as f64 * size).round() as usize).max(1);
    if g.norm == NormKind::Powernorm {
        g.norm = NormKind::PostLn;
    }
    g
}

#[derive(Clone, Debug)]
pub struct Electra {
    /// The generator's MLM head, over the shared encoder or `generator_encoder`.
    pub generator: Mlm,
    /// The generator's own, narrower encoder (`generator_size`); `None` shares the encoder.
    pub generator_encoder: Option<Encoder>,
    /// The discriminator's head: dense + GELU, then two logits (original, replaced).
    pub dense: Linear,
    pub classifier: Linear,
    pub weight: f32,
}

impl Electra {
    pub fn new(dev: &Dev, d: &HeadDims, settings: &Settings, rng: &mut Rng) -> Self {
        let generator_encoder = settings
            .generator_size
            .map(|size| Encoder::new(dev, &generator_config(&d.model, size), d.vocab, rng));
        let generator = match &generator_encoder {
            None => Mlm::new(dev, d, rng),
            Some(g) => Mlm::new(
                dev,
                &HeadDims {
                    hidden: g.cfg.hidden,
                    ..d.clone()
                },
                rng,
            ),
        };
        Self {
            generator,
            generator_encoder,
            dense: Linear::new(dev, d.hidden, d.hidden, d.init_std, rng),
            classifier: Linear::new(dev, d.hidden, 2, d.init_std, rng),
            weight: settings.discriminator_weight as f32,
        }
    }

    /// Detection logits `(rows, 2)` (original, replaced) at the token rows `rows` of the hidden
    /// states of a corrupted input.
    pub fn detect<T: Taped>(&self, hidden: Act<T>, rows: &[usize], dev: &Dev) -> Act<T> {
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

impl<T: Taped> ObjectiveFor<T> for Electra {
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
        // Evaluation samples from a fixed stream, so every variant's held-out score sees the
        // same draws.
        let mut fixed = stream(0, "objectives.electra.evaluation");
        let mut cell = ctx.rng.map(|r| r.borrow_mut());
        let rng: &mut Rng = match cell.as_deref_mut() {
            Some(r) => r,
            None => &mut fixed,
        };
        let training = ctx.rng.is_some();
        let logits = match &self.generator_encoder {
            None => self
                .generator
                .logits(hidden, &b.mlm_positions, ctx.dev, ctx.encoder),
            Some(g) => {
                // The shared pass over the masked input is not the generator's here, but its
                // tape may hold that pass's backward for the objectives after this one (the
                // loop hands the first objective the tape): it travels on through the
                // generator's pass into this loss.
                let (_, tape) = hidden.split_tape();
                // Its own pass computes the masked rows alone (`forward_rows` wants them
                // sorted; whole-word masking draws a sequence's spans in any order).
                let mut read = b.mlm_positions.clone();
                read.sort_unstable();
                let mode = Mode::new(training, &mut *rng);
                let own = g.forward_rows(ctx.dev, ctx.inputs, tape, mode, Some(&read));
                self.generator.logits(own, &b.mlm_positions, ctx.dev, g)
            }
        };
        let vocab = logits.shape().1;
        let scores = logits.as_vec();
        let labels: Vec<usize> = b.mlm_labels.iter().map(|&l| l as usize).collect();
        let generated = cross_entropy(ctx.dev, logits, &labels);

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
        let hidden =
            ctx.encoder
                .forward(ctx.dev, &corrupted, T::default(), Mode::new(training, rng));
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
    /// A generator sharing the encoder reads the masked positions of the shared pass; the
    /// discriminator reads a pass of its own.
    fn rows(&self, batch: &crate::data::Batch, _: &Inputs) -> Option<Vec<usize>> {
        let shared = self.generator_encoder.is_none() && !batch.mlm_positions.is_empty();
        shared.then(|| batch.mlm_positions.clone())
    }
}

named_params!(Electra {
    generator => "generator",
    generator_encoder => "generator_encoder",
    dense => "dense",
    classifier => "classifier",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_the_weight_from_the_masking() {
        let t: toml::Table = toml::from_str("discriminator_weight = 20\nmask_prob = 0.25").unwrap();
        let (w, m) = options(&t).unwrap();
        assert_eq!(w.discriminator_weight, 20.0);
        assert_eq!(w.generator_size, None);
        assert_eq!(m.mask_prob, 0.25);
        let (w, m) = options(&toml::Table::new()).unwrap();
        assert_eq!(w.discriminator_weight, DEFAULT_WEIGHT);
        assert_eq!(m, MaskingConfig::default());
        let t: toml::Table = toml::from_str("generator_size = 0.25").unwrap();
        assert_eq!(options(&t).unwrap().0.generator_size, Some(0.25));
        for (text, named) in [
            ("discriminator_weight = -1", "discriminator_weight"),
            ("discriminator_weight = \"big\"", "discriminator_weight"),
            ("mask_prob = 1.5", "mask_prob"),
            ("generator_size = 1", "generator_size"),
            ("generator_size = 0", "generator_size"),
            ("generator_layers = 2", "generator_layers"),
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

    #[test]
    fn the_generator_is_a_fraction_of_the_encoder() {
        let mut m = ModelConfig {
            hidden: 128,
            heads: 4,
            ffn: 512,
            norm: NormKind::Powernorm,
            ..ModelConfig::default()
        };
        let g = generator_config(&m, 0.25);
        assert_eq!((g.hidden, g.heads, g.ffn, g.layers), (32, 1, 128, m.layers));
        assert_eq!(g.norm, NormKind::PostLn);
        m.norm = NormKind::PreLn;
        let g = generator_config(&m, 1.0 / 3.0);
        assert_eq!(
            (g.hidden, g.heads, g.ffn, g.norm),
            (43, 1, 171, NormKind::PreLn)
        );
        assert_eq!(g.hidden % g.heads, 0);
    }
}
