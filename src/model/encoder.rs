//! The BERT encoder: embeddings → N blocks (→ final LayerNorm for pre-LN) and a pooler.

use super::attention::{alibi_slopes, ScoreBias};
use super::block::Block;
use super::ops::{dropout, embed, layer_norm, linear};
use super::params::{normal_matrix, Affine, Linear};
use super::{Act, Dev, Matrix, Mode, Pass};
use crate::config::{ModelConfig, NormKind, Positions};
use crate::model::params::named_params;
use crate::rng::Rng;
use dfdx::prelude::*;
use std::sync::Arc;

/// Padding keys get this added to their attention scores: exp() of it is exactly 0 in f32.
pub const MASKED_SCORE: f32 = -1.0e9;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error("token id {id} at position {pos} is outside the model's vocabulary of {vocab}")]
    TokenOutOfRange { id: usize, pos: usize, vocab: usize },
    #[error("token type {id} at position {pos} is outside model.type_vocab = {limit}")]
    TypeOutOfRange { id: usize, pos: usize, limit: usize },
    #[error("sequence length {seq} exceeds model.max_positions = {max}")]
    TooLong { seq: usize, max: usize },
    #[error("inputs of {got} tokens do not fill a batch of {batch} × {seq}")]
    Shape {
        got: usize,
        batch: usize,
        seq: usize,
    },
}

/// A batch as the encoder reads it, checked against the model's sizes.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub batch: usize,
    pub seq: usize,
    pub ids: Vec<usize>,
    pub types: Vec<usize>,
    /// 1 for real tokens, 0 for padding.
    pub mask: Vec<f32>,
}

#[derive(Clone, Debug)]
pub struct Embeddings {
    pub word: Matrix,
    /// BERT's learned positions; `None` with ALiBi, where attention sees distances instead.
    pub position: Option<Matrix>,
    pub token_type: Matrix,
    pub norm: Affine,
}

#[derive(Clone, Debug)]
pub struct Encoder {
    pub cfg: ModelConfig,
    pub vocab: usize,
    pub embeddings: Embeddings,
    pub layers: Vec<Block>,
    /// Only pre-LN has it: the residual stream is never normalised inside the blocks.
    pub final_norm: Option<Affine>,
    pub pooler: Linear,
}

impl Encoder {
    /// BERT initialisation: N(0, init_std) weights and embeddings, zero biases, unit norms.
    pub fn new(dev: &Dev, cfg: &ModelConfig, vocab: usize, rng: &mut Rng) -> Self {
        let std = cfg.init_std;
        let embeddings = Embeddings {
            word: normal_matrix(dev, vocab, cfg.hidden, std, rng),
            position: (cfg.positions == Positions::Learned)
                .then(|| normal_matrix(dev, cfg.max_positions, cfg.hidden, std, rng)),
            token_type: normal_matrix(dev, cfg.type_vocab, cfg.hidden, std, rng),
            norm: Affine::new(dev, cfg.hidden),
        };
        let layers = (0..cfg.layers).map(|_| Block::new(dev, cfg, rng)).collect();
        Self {
            cfg: cfg.clone(),
            vocab,
            embeddings,
            layers,
            final_norm: (cfg.norm == NormKind::PreLn).then(|| Affine::new(dev, cfg.hidden)),
            pooler: Linear::new(dev, cfg.hidden, cfg.hidden, std, rng),
        }
    }

    pub fn inputs(
        &self,
        batch: usize,
        seq: usize,
        ids: &[u32],
        types: &[u32],
        mask: &[f32],
    ) -> Result<Inputs, InputError> {
        if ids.len() != batch * seq || types.len() != ids.len() || mask.len() != ids.len() {
            return Err(InputError::Shape {
                got: ids.len(),
                batch,
                seq,
            });
        }
        if seq > self.cfg.max_positions {
            return Err(InputError::TooLong {
                seq,
                max: self.cfg.max_positions,
            });
        }
        if let Some((pos, &id)) = ids
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= self.vocab)
        {
            return Err(InputError::TokenOutOfRange {
                id: id as usize,
                pos,
                vocab: self.vocab,
            });
        }
        if let Some((pos, &id)) = types
            .iter()
            .enumerate()
            .find(|(_, &t)| t as usize >= self.cfg.type_vocab)
        {
            return Err(InputError::TypeOutOfRange {
                id: id as usize,
                pos,
                limit: self.cfg.type_vocab,
            });
        }
        Ok(Inputs {
            batch,
            seq,
            ids: ids.iter().map(|&i| i as usize).collect(),
            types: types.iter().map(|&i| i as usize).collect(),
            mask: mask.to_vec(),
        })
    }

    /// Hidden states as token rows `(B·S, H)`, with dropout and PowerNorm's batch statistics in
    /// `Mode::Train`.
    pub fn forward<T: Tape<f32, Dev>>(
        &self,
        dev: &Dev,
        inp: &Inputs,
        tape: T,
        mode: Mode<'_>,
    ) -> Act<T> {
        self.forward_rows(dev, inp, tape, mode, None)
    }

    /// `forward` when only the token rows `rows` (sorted, distinct) will be read, as MLM reads
    /// the masked positions: in the last block only those rows query the attention (the keys
    /// and values are still every token's) and go through the feed-forward — on the reference
    /// shape a sixth of a step's matrix products left out — and the other rows come back NaN
    /// (`fused::scatter_rows`). The rows read are those `forward` gives and the dropout masks
    /// the same, up to the order of float sums in the products. PowerNorm (whose training
    /// statistics take every row) and the CUDA build compute every row.
    pub fn forward_rows<T: Tape<f32, Dev>>(
        &self,
        dev: &Dev,
        inp: &Inputs,
        tape: T,
        mode: Mode<'_>,
        rows: Option<&[usize]>,
    ) -> Act<T> {
        let rows = rows.filter(|_| self.computes_some_rows());
        if let Some(rows) = rows {
            assert!(
                rows.windows(2).all(|w| w[0] < w[1])
                    && rows.last().is_none_or(|&r| r < inp.ids.len()),
                "forward_rows: rows must be sorted, distinct token rows"
            );
        }
        let (b, s) = (inp.batch, inp.seq);
        let n = b * s;
        let mask_bias: Vec<f32> = inp
            .mask
            .iter()
            .map(|&m| if m > 0.0 { 0.0 } else { MASKED_SCORE })
            .collect();
        let mut pass = Pass {
            batch: b,
            seq: s,
            mode,
            real: Arc::new(inp.mask.iter().map(|&m| m > 0.0).collect()),
            bias: ScoreBias {
                padding: dev.tensor_from_vec(mask_bias, (b, s)),
                slopes: match self.cfg.positions {
                    Positions::Learned => Vec::new(),
                    Positions::Alibi => alibi_slopes(self.cfg.heads),
                },
            },
        };
        let e = &self.embeddings;
        let positions: Vec<usize>;
        let mut tables = vec![(&e.word, &inp.ids[..])];
        if let Some(position) = &e.position {
            positions = (0..n).map(|i| i % s).collect();
            tables.push((position, &positions[..]));
        }
        tables.push((&e.token_type, &inp.types[..]));
        let x = embed(tape, dev, &tables);
        let x = layer_norm(x, &e.norm, self.cfg.layer_norm_eps);
        let mut x = dropout(x, self.cfg.dropout, pass.mode.reborrow().dropout_rng());
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, &mut pass, rows.filter(|_| i == last));
        }
        let x = match &self.final_norm {
            Some(norm) => layer_norm(x, norm, self.cfg.layer_norm_eps),
            None => x,
        };
        match rows {
            Some(rows) => super::fused::scatter_rows(x, rows, n),
            None => x,
        }
    }

    /// Whether `forward_rows` computes only the rows asked for: not with PowerNorm (whose
    /// training statistics take every row), not in the CUDA build, not without blocks.
    pub fn computes_some_rows(&self) -> bool {
        !cfg!(feature = "cuda") && self.cfg.norm != NormKind::Powernorm && !self.layers.is_empty()
    }

    /// BERT's pooler: `tanh(W h_[CLS] + b)`, one row per sequence.
    pub fn pool<T: Tape<f32, Dev>>(
        &self,
        dev: &Dev,
        hidden: Act<T>,
        batch: usize,
        seq: usize,
    ) -> Act<T> {
        let cls: Tensor<(usize,), usize, Dev> =
            dev.tensor_from_vec((0..batch).map(|b| b * seq).collect(), (batch,));
        linear(hidden.gather(cls), &self.pooler).tanh()
    }
}

named_params!(Encoder {
    embeddings.word => "embeddings.word.weight",
    embeddings.position => "embeddings.position.weight",
    embeddings.token_type => "embeddings.token_type.weight",
    embeddings.norm => "embeddings.norm",
    layers => "encoder.layers",
    final_norm => "encoder.final_norm",
    pooler => "pooler.dense",
});
