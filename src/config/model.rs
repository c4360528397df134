//! `[model]`: the encoder's sizes, normalisation, positions and initialisation.

use serde::{Deserialize, Serialize};

/// Where the normalisation sits in each block. The registry of norms: `NormKind::ALL`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    PostLn,
    PreLn,
    Powernorm,
}

impl NormKind {
    pub const ALL: [NormKind; 3] = [NormKind::PostLn, NormKind::PreLn, NormKind::Powernorm];

    pub fn name(self) -> &'static str {
        match self {
            NormKind::PostLn => "post-ln",
            NormKind::PreLn => "pre-ln",
            NormKind::Powernorm => "powernorm",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            NormKind::PostLn => "LayerNorm after each residual add (original BERT)",
            NormKind::PreLn => "LayerNorm before each sublayer, final LayerNorm (Xiong et al. 2020)",
            NormKind::Powernorm => {
                "PowerNorm after each residual add: batch quadratic mean, running statistics, approximate backward (Shen et al. 2020)"
            }
        }
    }
}

/// `model.positions`: where position information enters the encoder.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Positions {
    /// A learned embedding per position, added to the word embeddings (BERT).
    #[default]
    Learned,
    /// A fixed per-head linear penalty on query–key distance (ALiBi), no embeddings.
    Alibi,
}

impl Positions {
    fn is_learned(&self) -> bool {
        *self == Positions::Learned
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PowerNormConfig {
    /// Steps during which the batch statistic (not the running one) normalises the forward pass.
    pub warmup: u64,
    /// Momentum of the running quadratic mean used in the forward pass (paper: alpha_f).
    pub alpha_fwd: f32,
    /// Momentum of the running gradient statistic used in the backward pass (paper: alpha_b).
    pub alpha_bkw: f32,
    /// Channel groups of the per-token group scaling that precedes the batch statistic.
    pub groups: usize,
    pub eps: f32,
}

impl Default for PowerNormConfig {
    fn default() -> Self {
        Self {
            warmup: 100,
            alpha_fwd: 0.9,
            alpha_bkw: 0.9,
            groups: 1,
            eps: 1e-5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// A size preset (`config::preset`): fills the keys the file leaves out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub ffn: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub dropout: f32,
    pub attention_dropout: f32,
    pub norm: NormKind,
    pub layer_norm_eps: f32,
    pub init_std: f32,
    pub powernorm: PowerNormConfig,
    /// The MLM decoder is the word-embedding matrix (BERT, HF's `tie_word_embeddings`), or a
    /// matrix of its own when false: more parameters, but the input embeddings are no longer
    /// pulled towards what the output layer needs (Chung et al. 2021, "Rethinking embedding
    /// coupling"). Left out of the resolved settings when tied, as before the key existed.
    #[serde(skip_serializing_if = "is_true")]
    pub tie_word_embeddings: bool,
    /// Biases in the attention and feed-forward projections of every block. Cramming drops
    /// them (fewer parameters and a little less work per step, at no loss it could measure);
    /// the norms, the pooler and the heads keep theirs. Left out of the resolved settings
    /// when true, as before the key existed.
    #[serde(skip_serializing_if = "is_true")]
    pub linear_bias: bool,
    /// How the encoder knows where a token is: BERT's learned position embeddings, or ALiBi
    /// (Press et al. 2022; MosaicBERT's choice for a fast BERT): no position embeddings, and
    /// each head's scores penalised in proportion to the distance between query and key, so
    /// attention is local from the first step instead of after the positions are learned.
    /// Left out of the resolved settings when learned, as before the key existed.
    #[serde(skip_serializing_if = "Positions::is_learned")]
    pub positions: Positions,
    /// Start from the encoder of another pretraining run — its directory or checkpoint file,
    /// relative to the experiment file — instead of a fresh initialisation: continued
    /// pretraining, or a second stage (MLM first, then a contrastive objective, as SimCSE
    /// starts from BERT). An objective's head the source run also trained is loaded too (as
    /// HF's `from_pretrained`), the others start fresh; the run's tokenizer must be the source
    /// run's. Read when the run starts; a resumed run continues from its own checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            preset: None,
            layers: 2,
            hidden: 128,
            heads: 4,
            ffn: 512,
            max_positions: 128,
            type_vocab: 2,
            dropout: 0.1,
            attention_dropout: 0.1,
            norm: NormKind::PostLn,
            layer_norm_eps: 1e-12,
            init_std: 0.02,
            powernorm: PowerNormConfig::default(),
            tie_word_embeddings: true,
            linear_bias: true,
            positions: Positions::Learned,
            init: None,
        }
    }
}

fn is_true(b: &bool) -> bool {
    *b
}
