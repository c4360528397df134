//! Training instances as google-research/bert's `create_pretraining_data.py` makes them:
//! contiguous sentences fill a target length (shorter with `short_seq_prob`), split into
//! segment A and segment B, then labelled for the run's pair objective.
//!
//! One deliberate difference: BERT forces a random-next B whenever a chunk holds a single
//! sentence, which tilts NSP labels away from 50/50. Here the 50% coin is always flipped
//! first, and a single-sentence chunk that needs a real continuation is split inside the
//! sentence, so the labels stay balanced.

use super::shards::Shard;
use rand::Rng;

/// What segment B is, decided by the run's objectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PairMode {
    /// One segment per sequence (MLM alone, contrastive): no B, no pair label.
    Single,
    /// Next sentence prediction: label 1 when B comes from another document.
    Nsp,
    /// Sentence order prediction (ALBERT): label 1 when A and B are swapped.
    Sop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub a: Vec<u32>,
    pub b: Vec<u32>,
    /// 0 = B follows A in the text; 1 = random document (NSP) or swapped (SOP).
    pub pair_label: Option<u32>,
}

impl Instance {
    /// Length with [CLS] A [SEP] (B [SEP]).
    pub fn len(&self) -> usize {
        self.a.len() + self.b.len() + if self.b.is_empty() { 2 } else { 3 }
    }
    pub fn is_empty(&self) -> bool {
        self.a.is_empty() && self.b.is_empty()
    }
}

/// A tokenised document: one id list per sentence.
pub type TokenDoc = Vec<Vec<u32>>;

/// Makes the instances of one pass over the documents of `shard`, visiting them in `order`.
/// A random next segment (NSP) comes from another document of the same shard.
pub fn create_instances(
    shard: &Shard,
    order: &[usize],
    seq_len: usize,
    short_seq_prob: f64,
    mode: PairMode,
    rng: &mut impl Rng,
) -> Vec<Instance> {
    let mut out = Vec::new();
    for &d in order {
        instances_from_document(shard, d, seq_len, short_seq_prob, mode, rng, &mut out);
    }
    out
}

fn instances_from_document(
    shard: &Shard,
    index: usize,
    seq_len: usize,
    short_seq_prob: f64,
    mode: PairMode,
    rng: &mut impl Rng,
    out: &mut Vec<Instance>,
) {
    let n_sentences = shard.sentences(index);
    let max_tokens = seq_len - if mode == PairMode::Single { 2 } else { 3 };
    let mut target = max_tokens;
    if rng.gen::<f64>() < short_seq_prob {
        target = rng.gen_range(2..=max_tokens.max(2));
    }
    let mut chunk: Vec<&[u32]> = Vec::new();
    let mut chunk_len = 0;
    let mut i = 0;
    while i < n_sentences {
        let seg = shard.sentence(index, i);
        if !seg.is_empty() {
            chunk.push(seg);
            chunk_len += seg.len();
        }
        if (i + 1 == n_sentences || chunk_len >= target) && !chunk.is_empty() {
            if mode == PairMode::Single {
                let mut a: Vec<u32> = chunk.iter().flat_map(|s| s.iter().copied()).collect();
                a.truncate(max_tokens);
                out.push(Instance {
                    a,
                    b: vec![],
                    pair_label: None,
                });
            } else {
                let label = u32::from(rng.gen::<bool>());
                let (mut a, mut b, unused) = split_chunk(&chunk, rng);
                let mut pair_label = label;
                let documents = shard.documents();
                if mode == PairMode::Nsp && label == 1 && documents > 1 {
                    // B from another document, starting at a random sentence.
                    let target_b = target.saturating_sub(a.len()).max(1);
                    let mut other = rng.gen_range(0..documents - 1);
                    if other >= index {
                        other += 1;
                    }
                    let other_len = shard.sentences(other);
                    b.clear();
                    let start = rng.gen_range(0..other_len);
                    for j in start..other_len {
                        b.extend_from_slice(shard.sentence(other, j));
                        if b.len() >= target_b {
                            break;
                        }
                    }
                    // The sentences that were to be B go back to the pool, as in BERT.
                    i -= unused;
                } else if mode == PairMode::Nsp && label == 1 {
                    pair_label = 0; // a one-document corpus has no random next; keep it honest
                }
                if mode == PairMode::Sop && label == 1 {
                    std::mem::swap(&mut a, &mut b);
                }
                truncate_pair(&mut a, &mut b, max_tokens, rng);
                if !a.is_empty() && !b.is_empty() {
                    out.push(Instance {
                        a,
                        b,
                        pair_label: Some(pair_label),
                    });
                }
            }
            chunk.clear();
            chunk_len = 0;
        }
        i += 1;
    }
}

/// Splits a chunk into A and B at a sentence boundary (or inside the sentence when the chunk
/// has only one); returns also how many sentences went to B.
fn split_chunk(chunk: &[&[u32]], rng: &mut impl Rng) -> (Vec<u32>, Vec<u32>, usize) {
    if chunk.len() >= 2 {
        let a_end = rng.gen_range(1..chunk.len());
        let a = chunk[..a_end]
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        let b = chunk[a_end..]
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        (a, b, chunk.len() - a_end)
    } else {
        let s = chunk[0];
        if s.len() < 2 {
            return (s.to_vec(), vec![], 0);
        }
        let cut = rng.gen_range(1..s.len());
        (s[..cut].to_vec(), s[cut..].to_vec(), 0)
    }
}

/// BERT's `truncate_seq_pair`: trim the longer segment, from the front or the back at random,
/// until the pair fits.
pub fn truncate_pair(a: &mut Vec<u32>, b: &mut Vec<u32>, max_tokens: usize, rng: &mut impl Rng) {
    while a.len() + b.len() > max_tokens {
        let longer = if a.len() > b.len() { &mut *a } else { &mut *b };
        if longer.is_empty() {
            break;
        }
        if rng.gen::<bool>() {
            longer.remove(0);
        } else {
            longer.pop();
        }
    }
}
