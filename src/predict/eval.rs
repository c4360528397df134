//! `pretext eval TARGET --corpus FILE…`: how well a checkpoint's masked-LM predicts any text.
//!
//! - MLM loss and accuracy with BERT's standard masking (15 %, 80/10/10) drawn from a fixed
//!   seed, over single segments of `seq_len` tokens built as training builds them: two
//!   checkpoints that share a tokenizer are scored on the same token ids and the same masked
//!   positions. The loss is the mean over masked tokens (a run's held-out loss is the mean of
//!   per-batch means: equal up to how masks fall into batches).
//! - Pseudo-perplexity (Salazar et al. 2020, "Masked Language Model Scoring"): every real
//!   token of the first `pppl_sequences` segments masked in turn, one at a time,
//!   `exp(−mean log p(token | the rest))` — the masked-LM analogue of perplexity, comparable
//!   between models that share a tokenizer.

use super::MaskedLm;
use crate::config::CorpusFormat;
use crate::data::{corpus, sources, Batch, BatchStream, MaskingConfig, PairMode, StreamSettings};
use crate::data::{TokenCorpus, TokenDoc};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// Sequences per forward pass.
const BATCH: usize = 32;

pub struct Options {
    /// Files or glob patterns, read as `data.corpus` reads them.
    pub corpus: Vec<String>,
    pub format: CorpusFormat,
    /// Segment length (default: the checkpoint's `training.seq_len`).
    pub seq_len: Option<usize>,
    /// At most this many masked batches of 32 segments (the corpus once at most).
    pub batches: usize,
    /// Segments scored by pseudo-perplexity (0: skip it; it costs a forward pass per token).
    pub pppl_sequences: usize,
    /// The masking seed.
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub checkpoint: String,
    pub step: u64,
    pub documents: usize,
    pub sequences: usize,
    pub seq_len: usize,
    /// Masked (predicted) tokens.
    pub masked: usize,
    pub loss: f64,
    pub accuracy: f64,
    /// `None` when `pppl_sequences` is 0.
    pub pseudo_perplexity: Option<f64>,
    pub pppl_tokens: usize,
}

/// `pretext eval`: prints the scores, as text or one JSON object; paths are relative to the
/// working directory.
pub fn command(target: &Path, tokenizer: Option<&Path>, o: &Options, json: bool) -> Result<()> {
    let lm = MaskedLm::load(target, tokenizer)?;
    let s = evaluate(&lm, o, Path::new("."))?;
    if json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!("{}", s.describe());
    }
    Ok(())
}

pub fn evaluate(lm: &MaskedLm, o: &Options, base_dir: &Path) -> Result<Scores> {
    let seq_len = o.seq_len.unwrap_or(lm.config.training.seq_len);
    if seq_len < 3 || seq_len > lm.max_len() {
        bail!(
            "--seq-len {seq_len}: expected 3 … {} (the model's max_positions)",
            lm.max_len()
        );
    }
    let files = sources::expand(&o.corpus, base_dir).context("--corpus")?;
    let mut docs: Vec<TokenDoc> = Vec::new();
    for f in &files {
        // Every document counts: the masked-token score reads single segments, so the
        // pretraining's `data.min_sentences` (sentence pairs) does not apply, and a file of one
        // sentence is text to score, not an error pointing at a key `eval` has no flag for.
        for d in corpus::read_source(f, base_dir, o.format, 1)? {
            let ids = lm.tokenizer.encode_batch(&d.sentences);
            if ids.iter().any(|s| !s.is_empty()) {
                docs.push(ids);
            }
        }
    }
    if docs.is_empty() {
        bail!("--corpus: no document with text in {}", files.join(", "));
    }
    let documents = docs.len();
    let corpus: Arc<TokenCorpus> = Arc::new(docs.into());
    let stream = |masking| {
        let settings = StreamSettings {
            seq_len,
            short_seq_prob: 0.0,
            mode: PairMode::Single,
            masking,
        };
        BatchStream::new(
            corpus.clone(),
            lm.tokenizer.clone(),
            settings,
            o.seed,
            "eval",
        )
        .map_err(crate::data::DataError::from)
    };

    let mut masked = stream(Some(MaskingConfig::default()))?;
    let mut left = masked
        .instances_per_epoch()
        .min(o.batches.saturating_mul(BATCH));
    let (mut sequences, mut total, mut correct, mut nll) = (0, 0usize, 0usize, 0.0f64);
    while left > 0 {
        let b = masked.next_batch(left.min(BATCH))?;
        left -= b.size;
        sequences += b.size;
        for (row, &label) in lm.log_probs(&b)?.iter().zip(&b.mlm_labels) {
            nll -= row[label as usize];
            correct += usize::from(argmax(row) == label as usize);
            total += 1;
        }
    }
    if total == 0 {
        bail!("--corpus: no token to predict (every segment is too short)");
    }

    let (mut pppl_nll, mut pppl_tokens) = (0.0, 0);
    if o.pppl_sequences > 0 {
        let mut plain = stream(None)?;
        let n = plain.instances_per_epoch().min(o.pppl_sequences);
        for _ in 0..n {
            let (sum, count) = pseudo_log_likelihood(lm, &plain.next_batch(1)?)?;
            pppl_nll -= sum;
            pppl_tokens += count;
        }
    }
    Ok(Scores {
        checkpoint: lm.checkpoint.display().to_string(),
        step: lm.step,
        documents,
        sequences,
        seq_len,
        masked: total,
        loss: nll / total as f64,
        accuracy: correct as f64 / total as f64,
        pseudo_perplexity: (pppl_tokens > 0).then(|| (pppl_nll / pppl_tokens as f64).exp()),
        pppl_tokens,
    })
}

/// The sum of `log p(token | the rest)` over the real, non-special tokens of a one-sequence
/// batch, each masked in turn, and how many there were.
pub fn pseudo_log_likelihood(lm: &MaskedLm, seq: &Batch) -> Result<(f64, usize)> {
    let sp = lm.tokenizer.special;
    let targets: Vec<usize> = (0..seq.seq_len)
        .filter(|&i| seq.attention_mask[i] > 0.0 && !sp.contains(seq.input_ids[i]))
        .collect();
    Ok((masked_log_likelihood(lm, seq, &targets)?, targets.len()))
}

/// The sum over `positions` of `log p(token at i | every other token)`, masking one position
/// at a time (a row per position, in batches of 32): the pseudo-log-likelihood of Salazar et
/// al. 2020, and CrowS-Pairs' score over the tokens two sentences share.
pub fn masked_log_likelihood(lm: &MaskedLm, seq: &Batch, positions: &[usize]) -> Result<f64> {
    let mask = lm.tokenizer.special.mask;
    let n = seq.seq_len;
    let mut sum = 0.0;
    for chunk in positions.chunks(BATCH) {
        let rows = chunk.len();
        let mut b = Batch {
            size: rows,
            seq_len: n,
            input_ids: seq.input_ids[..n].repeat(rows),
            token_type_ids: seq.token_type_ids[..n].repeat(rows),
            attention_mask: seq.attention_mask[..n].repeat(rows),
            mlm_positions: Vec::with_capacity(rows),
            mlm_labels: Vec::with_capacity(rows),
            pair_labels: vec![],
        };
        for (r, &i) in chunk.iter().enumerate() {
            b.mlm_labels.push(b.input_ids[r * n + i]);
            b.input_ids[r * n + i] = mask;
            b.mlm_positions.push(r * n + i);
        }
        for (row, &label) in lm.log_probs(&b)?.iter().zip(&b.mlm_labels) {
            sum += row[label as usize];
        }
    }
    Ok(sum)
}

fn argmax(row: &[f64]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
        .unwrap_or(0)
}

impl Scores {
    pub fn describe(&self) -> String {
        let pppl = match self.pseudo_perplexity {
            Some(p) => format!("pseudo-perplexity {p:.2} over {} tokens", self.pppl_tokens),
            None => "pseudo-perplexity not computed (--pppl-sequences 0)".into(),
        };
        format!(
            "{} (step {}): {} document(s), {} segment(s) of ≤ {} tokens, {} masked tokens: \
             MLM loss {:.4}, accuracy {:.4}; {pppl}",
            self.checkpoint,
            self.step,
            self.documents,
            self.sequences,
            self.seq_len,
            self.masked,
            self.loss,
            self.accuracy
        )
    }
}
