//! A trained masked-language model put to use outside training: `pretext fill` (BERT's "fill
//! in the blank": the likeliest tokens for each [MASK] of a sentence) and `pretext eval`
//! (MLM loss, accuracy and pseudo-perplexity of a checkpoint on any text) and `pretext bias`
//! (the CrowS-Pairs stereotype score).
//!
//! All three read a pretraining checkpoint's encoder and its MLM head (`heads.mlm`), built
//! from the settings the checkpoint records, with the experiment's tokenizer beside the run —
//! or an HF BERT directory's (`config.json`, `model.safetensors`, its tokenizer).

pub mod bias;
pub mod downstream;
pub mod eval;
pub mod fill;

use crate::config::Experiment;
use crate::data::{Batch, Tokenizer};
use crate::model::{Dev, Encoder, Mode};
use crate::objectives::mlm::Mlm;
use crate::objectives::HeadDims;
use crate::train::checkpoint;
use anyhow::{bail, Context, Result};
use dfdx::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A pretraining run's encoder and MLM head, in evaluation mode.
pub struct MaskedLm {
    dev: Dev,
    encoder: Encoder,
    head: Mlm,
    pub tokenizer: Arc<Tokenizer>,
    /// The settings the checkpoint was trained with.
    pub config: Experiment,
    pub checkpoint: PathBuf,
    /// The training step the checkpoint was written at.
    pub step: u64,
}

impl MaskedLm {
    /// `target` is a pretraining run directory (its `checkpoints/latest.safetensors`) or a
    /// checkpoint file; the tokenizer defaults to the experiment's `tokenizer.json` beside
    /// the run directory.
    pub fn load(target: &Path, tokenizer: Option<&Path>) -> Result<Self> {
        if is_hf_dir(target) {
            return Self::load_hf(target, tokenizer);
        }
        let (run_dir, ckpt) = resolve(target)?;
        let saved = checkpoint::open(&ckpt)?;
        let config = saved_settings(&saved, &ckpt)?;
        // The MLM head: `mlm`'s, else ELECTRA's generator (an MLM head over the same encoder).
        let has = |name: &str| config.objectives.iter().any(|o| o.name == name);
        let own_generator = config
            .objectives
            .iter()
            .any(|o| o.name == "electra" && o.options.contains_key("generator_size"));
        let head_prefix = if has("mlm") {
            "heads.mlm"
        } else if has("electra") && !own_generator {
            "heads.electra.generator"
        } else if own_generator {
            bail!(
                "{}: this ELECTRA run's generator has an encoder of its own \
                 (generator_size), which fill and eval do not read; they read a run with \
                 `mlm`, or an ELECTRA generator that shares the encoder",
                ckpt.display()
            );
        } else {
            bail!(
                "{}: this checkpoint has no MLM head (it was trained with {}); \
                 fill and eval need a run whose objectives include `mlm` (or `electra`, \
                 whose generator is one)",
                ckpt.display(),
                config
                    .objectives
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" + ")
            );
        };
        let (tok_path, tokenizer) = Tokenizer::of_run(&run_dir, tokenizer, &config.tokenizer)?;
        let tokenizer = Arc::new(tokenizer);
        let dev = crate::model::device(0)?;
        let vocab = tokenizer.vocab_size();
        // Every weight is overwritten by the checkpoint; the seed only fills them first.
        let mut rng = crate::rng::stream(0, "predict.init");
        let mut encoder = Encoder::new(&dev, &config.model, vocab, &mut rng);
        let mismatch = || {
            format!(
                "loading {} with the tokenizer {} ({vocab} tokens): is it the run's tokenizer?",
                ckpt.display(),
                tok_path.display()
            )
        };
        let step = saved.load_encoder(&mut encoder).with_context(mismatch)?;
        let dims = HeadDims::of(&config.model, vocab);
        let mut head = Mlm::new(&dev, &dims, &mut rng);
        saved
            .load_head(head_prefix, &mut head)
            .with_context(mismatch)?;
        Ok(Self {
            dev,
            encoder,
            head,
            tokenizer,
            config,
            checkpoint: ckpt,
            step,
        })
    }

    /// An HF BERT directory (`BertForMaskedLM` or `BertForPreTraining` weights): the network
    /// its `config.json` describes, its own tokenizer (`tokenizer.json`, else `vocab.txt`
    /// lower-cased as its `tokenizer_config.json` says).
    fn load_hf(dir: &Path, tokenizer: Option<&Path>) -> Result<Self> {
        let hf = crate::hf::import::open(dir)?;
        let mut config: Experiment = toml::from_str("").expect("every key has a default");
        config.model = hf.config.model_config();
        config.tokenizer.lowercase = lowercases(dir);
        let tok_path = match tokenizer {
            Some(p) => p.to_path_buf(),
            None if dir.join("tokenizer.json").is_file() => dir.join("tokenizer.json"),
            None => dir.join("vocab.txt"),
        };
        let tokenizer = Arc::new(
            Tokenizer::load(&tok_path, config.tokenizer.lowercase)
                .context("pass the model's tokenizer with --tokenizer")?,
        );
        let vocab = tokenizer.vocab_size();
        if vocab != hf.config.vocab_size() {
            bail!(
                "{}: {vocab} tokens, but {} has vocab_size = {}: is it the model's tokenizer?",
                tok_path.display(),
                dir.join("config.json").display(),
                hf.config.vocab_size()
            );
        }
        let dev = crate::model::device(0)?;
        let mut rng = crate::rng::stream(0, "predict.init");
        let mut encoder = Encoder::new(&dev, &config.model, vocab, &mut rng);
        let mut head = Mlm::new(&dev, &HeadDims::of(&config.model, vocab), &mut rng);
        if !crate::hf::import::load_masked_lm(&hf, &mut encoder, &mut head)? {
            bail!(
                "{}: no MLM head (cls.predictions.*) in it — a BertModel's weights; fill, eval \
                 and bias need BertForMaskedLM or BertForPreTraining weights",
                hf.weights.display()
            );
        }
        Ok(Self {
            dev,
            encoder,
            head,
            tokenizer,
            config,
            checkpoint: hf.weights,
            step: 0,
        })
    }

    /// The longest sequence the model takes, special tokens included.
    pub fn max_len(&self) -> usize {
        self.config.model.max_positions
    }

    /// Natural-log probabilities over the vocabulary at each of `batch.mlm_positions`, in
    /// order (dropout off, PowerNorm on its running statistics).
    pub fn log_probs(&self, batch: &Batch) -> Result<Vec<Vec<f64>>> {
        if batch.mlm_positions.is_empty() {
            return Ok(vec![]);
        }
        let inputs = self.encoder.inputs(
            batch.size,
            batch.seq_len,
            &batch.input_ids,
            &batch.token_type_ids,
            &batch.attention_mask,
        )?;
        let hidden = self
            .encoder
            .forward(&self.dev, &inputs, NoneTape, Mode::Eval);
        let logits = self
            .head
            .logits(hidden, &batch.mlm_positions, &self.dev, &self.encoder)
            .as_vec();
        let vocab = logits.len() / batch.mlm_positions.len();
        Ok(logits.chunks(vocab).map(log_softmax).collect())
    }
}

/// `log softmax(row)` in f64, so that sums over many tokens keep their precision.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let log_sum = row
        .iter()
        .map(|&x| (x as f64 - max).exp())
        .sum::<f64>()
        .ln();
    row.iter().map(|&x| x as f64 - max - log_sum).collect()
}

/// A folder holding an HF model (`config.json`) rather than a pretext run.
fn is_hf_dir(target: &Path) -> bool {
    target.is_dir()
        && target.join("config.json").is_file()
        && !crate::rundir::checkpoint_path(target).is_file()
}

/// `do_lower_case` of an HF folder's `tokenizer_config.json` (BERT's default, true, without).
fn lowercases(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["do_lower_case"].as_bool())
        .unwrap_or(true)
}

/// The settings a checkpoint records (`ckpt` is its file, for the message).
pub fn saved_settings(saved: &checkpoint::Opened, ckpt: &Path) -> Result<Experiment> {
    toml::from_str(saved.config()).with_context(|| {
        format!(
            "{}: the checkpoint's settings are unreadable",
            ckpt.display()
        )
    })
}

/// The run directory and checkpoint file a TARGET names.
pub fn resolve(target: &Path) -> Result<(PathBuf, PathBuf)> {
    if target.is_dir() {
        let ckpt = crate::rundir::checkpoint_path(target);
        if ckpt.is_file() {
            return Ok((target.to_path_buf(), ckpt));
        }
        if target.join("config.json").is_file() {
            bail!(
                "{}: an HF model directory, not a pretext run (model.init takes it as \
                 \"hf:DIR\"; fill, eval and bias read it as it is)",
                target.display()
            );
        }
        bail!(
            "{}: not a pretraining run directory (no checkpoints/latest.safetensors in it)",
            target.display()
        );
    }
    if target.is_file() {
        let run = target
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."))
            .to_path_buf();
        return Ok((run, target.to_path_buf()));
    }
    match crate::files::regular(target) {
        Err(e) if target.exists() => bail!(
            "{}: {e}; give a run directory or a checkpoint file",
            target.display()
        ),
        _ => bail!(
            "{}: no such run directory or checkpoint file",
            target.display()
        ),
    }
}

/// One sequence `[CLS] ids [SEP]` as a batch of one, predicting at `positions`.
fn single(ids: &[u32], positions: Vec<usize>, tok: &Tokenizer) -> Batch {
    let sp = tok.special;
    let mut input_ids = Vec::with_capacity(ids.len() + 2);
    input_ids.push(sp.cls);
    input_ids.extend_from_slice(ids);
    input_ids.push(sp.sep);
    let n = input_ids.len();
    Batch {
        size: 1,
        seq_len: n,
        input_ids,
        token_type_ids: vec![0; n],
        attention_mask: vec![1.0; n],
        mlm_labels: vec![0; positions.len()],
        mlm_positions: positions,
        pair_labels: vec![],
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_softmax_is_normalised_and_ordered() {
        let p = super::log_softmax(&[1.0, 3.0, -2.0, 3.0]);
        let total: f64 = p.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        assert!(p[1] == p[3] && p[1] > p[0] && p[0] > p[2]);
        // Large logits do not overflow.
        let q = super::log_softmax(&[1e4, 0.0]);
        assert!(q[0].abs() < 1e-12 && q[1] < -9e3);
    }
}
