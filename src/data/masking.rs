//! Masked-LM corruption as in BERT: choose `mask_prob` of the non-special tokens; of those,
//! 80% become [MASK], 10% a random token, 10% stay as they were. Optional whole-word masking
//! chooses whole words (a word start plus its `##` pieces) until the budget is met, and
//! optional n-gram masking (ALBERT's, Lan et al. 2019 §4.1: `max_ngram = 3`) chooses runs of
//! up to `max_ngram` consecutive units, a run of n with probability `(1/n) / Σₖ 1/k`.

use super::tokenizer::Special;
use rand::distributions::{Distribution, WeightedIndex};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskingConfig {
    pub mask_prob: f64,
    /// Share of the chosen tokens replaced by [MASK].
    pub mask_token: f64,
    /// Share of the chosen tokens replaced by a random non-special token; the rest stay.
    pub random_token: f64,
    pub whole_word: bool,
    /// Upper bound on predictions per sequence (BERT: 20 at length 128); 0 means no bound.
    pub max_predictions: usize,
    /// Longest run of consecutive units (tokens, or words with `whole_word`) masked together;
    /// 1 masks units independently, as BERT does.
    #[serde(skip_serializing_if = "is_one")]
    pub max_ngram: usize,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Default for MaskingConfig {
    fn default() -> Self {
        Self {
            mask_prob: 0.15,
            mask_token: 0.8,
            random_token: 0.1,
            whole_word: false,
            max_predictions: 0,
            max_ngram: 1,
        }
    }
}

impl MaskingConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(self.mask_prob > 0.0 && self.mask_prob < 1.0) {
            return Err(format!(
                "mask_prob: expected a probability in (0, 1), got {}",
                self.mask_prob
            ));
        }
        for (k, v) in [
            ("mask_token", self.mask_token),
            ("random_token", self.random_token),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{k}: expected a share in [0, 1], got {v}"));
            }
        }
        if !(1..=MAX_NGRAM).contains(&self.max_ngram) {
            return Err(format!(
                "max_ngram: expected a span length from 1 to {MAX_NGRAM}, got {}",
                self.max_ngram
            ));
        }
        if self.mask_token + self.random_token > 1.0 + 1e-9 {
            return Err(format!(
                "mask_token + random_token must be at most 1 (the rest stay unchanged), got {}",
                self.mask_token + self.random_token
            ));
        }
        Ok(())
    }
}

/// The longest n-gram `max_ngram` accepts (SpanBERT's longest span is 10).
pub const MAX_NGRAM: usize = 10;

/// The corruption of one sequence: positions (into the sequence) and their original tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Masked {
    pub positions: Vec<usize>,
    pub labels: Vec<u32>,
}

/// Corrupts `tokens` in place and returns what the model must predict. `is_continuation`
/// tells `##` pieces, for whole-word masking.
pub fn mask_tokens(
    tokens: &mut [u32],
    cfg: &MaskingConfig,
    special: &Special,
    vocab_size: usize,
    is_continuation: &dyn Fn(u32) -> bool,
    rng: &mut impl Rng,
) -> Masked {
    // Candidate units: single positions, or whole words when whole_word is on.
    let mut units: Vec<Vec<usize>> = Vec::new();
    for (i, &t) in tokens.iter().enumerate() {
        if special.contains(t) && t != special.unk {
            continue;
        }
        if cfg.whole_word && is_continuation(t) {
            if let Some(last) = units.last_mut() {
                if last.last() == Some(&(i - 1)) {
                    last.push(i);
                    continue;
                }
            }
        }
        units.push(vec![i]);
    }
    let candidates: usize = units.iter().map(Vec::len).sum();
    // Stochastic rounding keeps the expected share exactly `mask_prob`; BERT's round() would
    // give 9 of 62 tokens (14.5%) on every sequence of that length.
    let exact = candidates as f64 * cfg.mask_prob;
    let mut budget = exact.floor() as usize + usize::from(rng.gen::<f64>() < exact.fract());
    if candidates > 0 {
        budget = budget.max(1);
    }
    if cfg.max_predictions > 0 {
        budget = budget.min(cfg.max_predictions);
    }
    if cfg.max_ngram > 1 {
        units = ngrams(units, cfg.max_ngram, rng);
    }
    units.shuffle(rng);
    let mut chosen: Vec<usize> = Vec::with_capacity(budget);
    // Units are disjoint; n-gram spans overlap, and a span touching a chosen position is
    // skipped as one that no longer fits is.
    let mut taken = vec![false; tokens.len()];
    for u in units {
        if chosen.len() >= budget {
            break;
        }
        if chosen.len() + u.len() > budget || u.iter().any(|&p| taken[p]) {
            continue;
        }
        for &p in &u {
            taken[p] = true;
        }
        chosen.extend(u);
    }
    chosen.sort_unstable();
    let mut out = Masked::default();
    for &p in &chosen {
        out.positions.push(p);
        out.labels.push(tokens[p]);
        let r: f64 = rng.gen();
        if r < cfg.mask_token {
            tokens[p] = special.mask;
        } else if r < cfg.mask_token + cfg.random_token {
            tokens[p] = random_token(special, vocab_size, rng);
        }
    }
    out
}

/// One candidate span per unit: the unit and the next `n − 1` adjacent ones, with n drawn
/// from ALBERT's `(1/n) / Σₖ 1/k`. Spans overlap; the caller takes each position once. A span
/// stops early at a gap (a special token between two units).
fn ngrams(units: Vec<Vec<usize>>, max: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
    let length = WeightedIndex::new((1..=max).map(|n| 1.0 / n as f64))
        .expect("max_ngram ≥ 1 (MaskingConfig::check) gives positive, finite weights");
    let mut out = Vec::with_capacity(units.len());
    for start in 0..units.len() {
        let n = length.sample(rng) + 1;
        let mut span = units[start].clone();
        for next in units.iter().skip(start + 1).take(n - 1) {
            if next[0] != span[span.len() - 1] + 1 {
                break;
            }
            span.extend_from_slice(next);
        }
        out.push(span);
    }
    out
}

fn random_token(special: &Special, vocab_size: usize, rng: &mut impl Rng) -> u32 {
    loop {
        let t = rng.gen_range(0..vocab_size as u32);
        if !special.contains(t) {
            return t;
        }
    }
}
