//! The stream of training batches: epochs of instances, dynamic masking (a fresh mask every
//! time a sequence is served, as RoBERTa does), and a position that a checkpoint can save.

use super::instances::{create_instances, Instance, PairMode};
use super::masking::{mask_tokens, MaskingConfig};
use super::shards::TokenCorpus;
use super::tokenizer::Tokenizer;
use crate::rng::{stream, Rng};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One batch, flattened row-major as `[batch, seq_len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub size: usize,
    pub seq_len: usize,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// 1.0 for real tokens, 0.0 for padding.
    pub attention_mask: Vec<f32>,
    /// Flat indices `b * seq_len + s` of the positions to predict, and their original tokens.
    pub mlm_positions: Vec<usize>,
    pub mlm_labels: Vec<u32>,
    /// One per sequence when the run has a pair objective (NSP/SOP).
    pub pair_labels: Vec<u32>,
}

impl Batch {
    /// Number of non-padding tokens, for throughput.
    pub fn real_tokens(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m > 0.0).count()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSettings {
    pub seq_len: usize,
    pub short_seq_prob: f64,
    pub mode: PairMode,
    /// `None` when no objective needs MLM labels: inputs are left uncorrupted.
    pub masking: Option<MaskingConfig>,
}

/// Where a stream stands: enough to continue it exactly after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamState {
    pub epoch: u64,
    /// Position in the epoch's shard order (always 0 for an in-memory corpus).
    #[serde(default)]
    pub shard: usize,
    /// Next instance to serve within the shard.
    pub index: usize,
    /// The sampler stream as it was when this epoch's shard order was drawn.
    pub epoch_rng: Rng,
    /// The sampler stream as it was when the current shard's instances were drawn. Absent in
    /// checkpoints from before shards, where it is the stream right after the shard order.
    #[serde(default)]
    pub shard_rng: Option<Rng>,
    pub mask_rng: Rng,
    /// The corpus's fingerprint: resuming on other data is refused. Absent in old checkpoints.
    #[serde(default)]
    pub corpus: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NoInstances {
    #[error("the corpus yields no training instances at seq_len {seq_len}: every document is empty after tokenisation")]
    Empty { seq_len: usize },
    #[error("the checkpoint's data position was saved on other data (corpus {saved}, now {now}); a resume needs the same corpus and tokenizer, or restart with --fresh")]
    OtherCorpus { saved: String, now: String },
    #[error("the checkpoint's data position (shard {shard}) does not exist in this corpus of {shards} shard(s)")]
    NoShard { shard: usize, shards: usize },
}

pub struct BatchStream {
    corpus: Arc<TokenCorpus>,
    tokenizer: Arc<Tokenizer>,
    settings: StreamSettings,
    state: StreamState,
    /// This epoch's order of shards.
    shard_order: Vec<usize>,
    /// The current shard's instances, in serving order.
    instances: Vec<Instance>,
    /// The sampler stream after drawing the current shard: it seeds the next one.
    next_rng: Rng,
}

impl BatchStream {
    /// A stream over `corpus`; `name` picks the random streams (`data.train`, `data.eval`).
    pub fn new(
        corpus: Arc<TokenCorpus>,
        tokenizer: Arc<Tokenizer>,
        settings: StreamSettings,
        seed: u64,
        name: &str,
    ) -> Result<Self, NoInstances> {
        let epoch_rng = stream(seed, &format!("{name}.sampler"));
        let state = StreamState {
            epoch: 0,
            shard: 0,
            index: 0,
            epoch_rng: epoch_rng.clone(),
            shard_rng: None,
            mask_rng: stream(seed, &format!("{name}.masking")),
            corpus: Some(corpus.fingerprint.clone()),
        };
        let mut s = Self {
            corpus,
            tokenizer,
            settings,
            state,
            shard_order: vec![],
            instances: vec![],
            next_rng: epoch_rng,
        };
        s.draw_epoch();
        s.draw_shard();
        s.skip_empty_shards()?;
        Ok(s)
    }

    /// Draws the epoch's shard order; the current shard starts right after it.
    fn draw_epoch(&mut self) {
        let mut rng = self.state.epoch_rng.clone();
        let mut order: Vec<usize> = (0..self.corpus.shards.len()).collect();
        order.shuffle(&mut rng);
        self.shard_order = order;
        if self.state.shard_rng.is_none() {
            self.state.shard_rng = Some(rng);
        }
    }

    /// Draws the current shard's instances from `shard_rng`: documents in a random order,
    /// then the instances shuffled.
    fn draw_shard(&mut self) {
        let mut rng = self
            .state
            .shard_rng
            .clone()
            .expect("draw_epoch sets the shard stream");
        let shard = &self.corpus.shards[self.shard_order[self.state.shard]];
        let mut order: Vec<usize> = (0..shard.documents()).collect();
        order.shuffle(&mut rng);
        let s = &self.settings;
        let mut inst =
            create_instances(shard, &order, s.seq_len, s.short_seq_prob, s.mode, &mut rng);
        inst.shuffle(&mut rng);
        self.instances = inst;
        self.next_rng = rng;
    }

    /// Moves to the next shard, and to the next epoch after the last one.
    fn advance_shard(&mut self) {
        let rng = self.next_rng.clone();
        self.state.index = 0;
        self.state.shard += 1;
        if self.state.shard >= self.shard_order.len() {
            self.state.epoch += 1;
            self.state.shard = 0;
            self.state.epoch_rng = rng;
            self.state.shard_rng = None;
            self.draw_epoch();
        } else {
            self.state.shard_rng = Some(rng);
        }
        self.draw_shard();
    }

    /// Passes over shards that yield no instance; a whole epoch of them is an error.
    fn skip_empty_shards(&mut self) -> Result<(), NoInstances> {
        let mut empty = 0;
        while self.state.index >= self.instances.len() {
            empty += 1;
            if empty > self.shard_order.len() {
                return Err(NoInstances::Empty {
                    seq_len: self.settings.seq_len,
                });
            }
            self.advance_shard();
        }
        Ok(())
    }

    pub fn state(&self) -> StreamState {
        self.state.clone()
    }

    /// Continues from a saved position: the epoch's shard order and the shard's instances are
    /// re-drawn from their saved streams, so the same instances follow in the same order.
    pub fn restore(&mut self, state: StreamState) -> Result<(), NoInstances> {
        let now = &self.corpus.fingerprint;
        if let Some(saved) = &state.corpus {
            if saved != now {
                return Err(NoInstances::OtherCorpus {
                    saved: saved.clone(),
                    now: now.clone(),
                });
            }
        }
        if state.shard >= self.corpus.shards.len() {
            return Err(NoInstances::NoShard {
                shard: state.shard,
                shards: self.corpus.shards.len(),
            });
        }
        self.state = state;
        self.state.corpus = Some(now.clone());
        self.draw_epoch();
        self.draw_shard();
        Ok(())
    }

    /// Instances of the current shard (of the whole epoch for an in-memory corpus).
    pub fn instances_per_epoch(&self) -> usize {
        self.instances.len()
    }

    fn next_instance(&mut self) -> Result<Instance, NoInstances> {
        self.skip_empty_shards()?;
        let i = self.state.index;
        self.state.index += 1;
        Ok(self.instances[i].clone())
    }

    pub fn next_batch(&mut self, size: usize) -> Result<Batch, NoInstances> {
        let seq_len = self.settings.seq_len;
        let sp = self.tokenizer.special;
        let mut b = Batch {
            size,
            seq_len,
            input_ids: vec![sp.pad; size * seq_len],
            token_type_ids: vec![0; size * seq_len],
            attention_mask: vec![0.0; size * seq_len],
            mlm_positions: vec![],
            mlm_labels: vec![],
            pair_labels: vec![],
        };
        for row in 0..size {
            let inst = self.next_instance()?;
            let mut tokens = Vec::with_capacity(inst.len());
            let mut types = Vec::with_capacity(inst.len());
            tokens.push(sp.cls);
            tokens.extend_from_slice(&inst.a);
            tokens.push(sp.sep);
            types.resize(tokens.len(), 0);
            if !inst.b.is_empty() {
                tokens.extend_from_slice(&inst.b);
                tokens.push(sp.sep);
                types.resize(tokens.len(), 1);
            }
            tokens.truncate(seq_len);
            types.truncate(seq_len);
            if let Some(cfg) = &self.settings.masking {
                let tok = &self.tokenizer;
                let m = mask_tokens(
                    &mut tokens,
                    cfg,
                    &sp,
                    tok.vocab_size(),
                    &|t| tok.is_continuation(t),
                    &mut self.state.mask_rng,
                );
                b.mlm_positions
                    .extend(m.positions.iter().map(|p| row * seq_len + p));
                b.mlm_labels.extend(m.labels);
            }
            if let Some(l) = inst.pair_label {
                b.pair_labels.push(l);
            }
            let off = row * seq_len;
            b.input_ids[off..off + tokens.len()].copy_from_slice(&tokens);
            b.token_type_ids[off..off + types.len()].copy_from_slice(&types);
            b.attention_mask[off..off + tokens.len()].fill(1.0);
        }
        Ok(b)
    }
}
