//! The stream of training batches: epochs of instances, dynamic masking (a fresh mask every
//! time a sequence is served, as RoBERTa does), and a position that a checkpoint can save.

use super::instances::{create_instances, Instance, PairMode, TokenDoc};
use super::masking::{mask_tokens, MaskingConfig};
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
    /// Next instance to serve within the epoch.
    pub index: usize,
    /// The sampler stream as it was when this epoch's instances were drawn.
    pub epoch_rng: Rng,
    pub mask_rng: Rng,
}

#[derive(Debug, thiserror::Error)]
#[error("the corpus yields no training instances at seq_len {seq_len}: every document is empty after tokenisation")]
pub struct NoInstances {
    pub seq_len: usize,
}

pub struct BatchStream {
    docs: Arc<Vec<TokenDoc>>,
    tokenizer: Arc<Tokenizer>,
    settings: StreamSettings,
    state: StreamState,
    instances: Vec<Instance>,
    /// The sampler stream after drawing the current epoch: it seeds the next one.
    next_epoch_rng: Rng,
}

impl BatchStream {
    /// A stream over `docs`; `name` picks the random streams (`data.train`, `data.eval`).
    pub fn new(
        docs: Arc<Vec<TokenDoc>>,
        tokenizer: Arc<Tokenizer>,
        settings: StreamSettings,
        seed: u64,
        name: &str,
    ) -> Result<Self, NoInstances> {
        let epoch_rng = stream(seed, &format!("{name}.sampler"));
        let state = StreamState {
            epoch: 0,
            index: 0,
            epoch_rng: epoch_rng.clone(),
            mask_rng: stream(seed, &format!("{name}.masking")),
        };
        let mut s = Self {
            docs,
            tokenizer,
            settings,
            state,
            instances: vec![],
            next_epoch_rng: epoch_rng,
        };
        s.draw_epoch();
        if s.instances.is_empty() {
            return Err(NoInstances {
                seq_len: s.settings.seq_len,
            });
        }
        Ok(s)
    }

    fn draw_epoch(&mut self) {
        let mut rng = self.state.epoch_rng.clone();
        let mut order: Vec<usize> = (0..self.docs.len()).collect();
        order.shuffle(&mut rng);
        let s = &self.settings;
        let mut inst = create_instances(
            &self.docs,
            &order,
            s.seq_len,
            s.short_seq_prob,
            s.mode,
            &mut rng,
        );
        inst.shuffle(&mut rng);
        self.instances = inst;
        self.next_epoch_rng = rng;
    }

    pub fn state(&self) -> StreamState {
        self.state.clone()
    }

    /// Continues from a saved position: the epoch is re-drawn from its saved stream, so the
    /// same instances follow in the same order.
    pub fn restore(&mut self, state: StreamState) {
        self.state = state;
        self.draw_epoch();
    }

    pub fn instances_per_epoch(&self) -> usize {
        self.instances.len()
    }

    fn next_instance(&mut self) -> Instance {
        if self.state.index >= self.instances.len() {
            self.state.epoch_rng = self.next_epoch_rng.clone();
            self.state.epoch += 1;
            self.state.index = 0;
            self.draw_epoch();
        }
        let i = self.state.index;
        self.state.index += 1;
        self.instances[i].clone()
    }

    pub fn next_batch(&mut self, size: usize) -> Batch {
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
            let inst = self.next_instance();
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
        b
    }
}
