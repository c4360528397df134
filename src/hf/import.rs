//! `model.init = "hf:DIR"`: an HF transformers BERT directory (`config.json`,
//! `model.safetensors`, and `tokenizer.json` or `vocab.txt`) as the start of a run —
//! continued pretraining, or, with `training.steps = 0`, the encoder that the file's
//! `[[finetune]]` entries fine-tune (HF's `from_pretrained` followed by a task head).
//! A `RobertaPreLayerNorm` directory (what `export` writes for a pre-LN run) is read as a
//! pre-LN BERT, an ELECTRA one as a post-LN BERT whose MLM head is the generator's: their
//! tensors are first renamed to BERT's (`hf::roberta_prelayernorm`, `hf::electra`).
//!
//! The inverse of `export`: the encoder's tensors are found through `model::io`'s HF names,
//! an objective's head through `export::hf_pretraining_name` (MLM as `cls.predictions.`, NSP
//! as `cls.seq_relationship`); a head the file lacks starts fresh, as `from_pretrained`
//! leaves it. The experiment's `[model]` must describe the same network: every size is
//! compared with `config.json`, and what the HF class cannot be (the other norm placement,
//! PowerNorm, ALiBi, projections without biases) is refused, since the weights would load
//! into another computation without any error.

use crate::config::{ModelConfig, Positions};
use crate::hf::roberta_prelayernorm as prelayernorm;
use crate::hf::{electra, Class};
use crate::model::io::{self, Naming, WeightsError};
use crate::model::Params;
use anyhow::{bail, Context, Result};
use safetensors::SafeTensors;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What marks `model.init` as an HF directory rather than a pretext run.
pub const PREFIX: &str = "hf:";

/// The keys of an HF BERT `config.json` that decide the network.
#[derive(Debug, Deserialize)]
pub struct HfConfig {
    model_type: Option<String>,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "two")]
    type_vocab_size: usize,
    vocab_size: usize,
    #[serde(default = "gelu")]
    hidden_act: String,
    #[serde(default = "eps")]
    layer_norm_eps: f64,
    #[serde(default = "absolute")]
    position_embedding_type: String,
    #[serde(default = "yes")]
    tie_word_embeddings: bool,
    #[serde(default = "tenth")]
    hidden_dropout_prob: f32,
    #[serde(default = "tenth")]
    attention_probs_dropout_prob: f32,
    #[serde(default = "range")]
    initializer_range: f32,
    /// ELECTRA's embedding width, when it says one; pretext reads only `hidden_size`.
    #[serde(default)]
    embedding_size: Option<usize>,
    /// RoBERTa numbers positions from here + 1 (its default is 1); BERT ignores it.
    #[serde(default = "roberta_pad")]
    pad_token_id: usize,
}

fn roberta_pad() -> usize {
    1
}

fn tenth() -> f32 {
    0.1
}
fn range() -> f32 {
    0.02
}

fn two() -> usize {
    2
}
fn gelu() -> String {
    "gelu".into()
}
fn eps() -> f64 {
    1e-12
}
fn absolute() -> String {
    "absolute".into()
}
fn yes() -> bool {
    true
}

/// An HF BERT directory, read and checked.
#[derive(Debug)]
pub struct HfBert {
    pub dir: PathBuf,
    pub weights: PathBuf,
    pub config: HfConfig,
}

/// Reads `DIR/config.json` and finds the weights; refuses what is not a BERT pretext can run.
pub fn open(dir: &Path) -> Result<HfBert> {
    if !dir.is_dir() {
        bail!("{}: no such HF model directory", dir.display());
    }
    let file = dir.join("config.json");
    let text = crate::files::read_to_string(&file)
        .with_context(|| format!("{}: cannot read the model's config", file.display()))?;
    let config = parse_config(&text, &file)?;
    let weights = dir.join("model.safetensors");
    if !weights.is_file() {
        let hint = if dir.join("pytorch_model.bin").is_file() {
            " (only pytorch_model.bin is there: save it with \
             `model.save_pretrained(DIR, safe_serialization=True)`)"
        } else {
            ""
        };
        bail!("{}: no model.safetensors{hint}", dir.display());
    }
    Ok(HfBert {
        dir: dir.to_path_buf(),
        weights,
        config,
    })
}

/// An HF BERT `config.json` (its text read from `file`), refused where pretext's BERT
/// cannot compute what HF's does.
pub fn parse_config(text: &str, file: &Path) -> Result<HfConfig> {
    let config: HfConfig = serde_json::from_str(text)
        .with_context(|| format!("{}: not an HF BERT config", file.display()))?;
    if let Some(t) = config
        .model_type
        .as_deref()
        .filter(|t| Class::from_model_type(t).is_none())
    {
        bail!(
            "{}: model_type {t:?}; pretext reads HF BERT models (model_type \"bert\"), pre-LN \
             ones (\"{}\") and ELECTRA's (\"{}\")",
            file.display(),
            Class::RobertaPreLayerNorm.model_type(),
            Class::Electra.model_type()
        );
    }
    if let Some(e) = config.embedding_size.filter(|&e| e != config.hidden_size) {
        bail!(
            "{}: embedding_size = {e} differs from hidden_size = {}; pretext's embeddings are as \
             wide as its layers (ELECTRA's embedding projection has no counterpart)",
            file.display(),
            config.hidden_size
        );
    }
    if config.pre_ln() && config.position_offset() >= config.max_position_embeddings {
        bail!(
            "{}: max_position_embeddings = {} leaves no position for a token (RoBERTa numbers \
             them from pad_token_id + 1 = {})",
            file.display(),
            config.max_position_embeddings,
            config.position_offset()
        );
    }
    if config.hidden_act != "gelu" {
        bail!(
            "{}: hidden_act {:?}; pretext's feed-forward uses BERT's exact GELU (\"gelu\")",
            file.display(),
            config.hidden_act
        );
    }
    if config.position_embedding_type != "absolute" {
        bail!(
            "{}: position_embedding_type {:?}; pretext's BERT learns absolute positions",
            file.display(),
            config.position_embedding_type
        );
    }
    Ok(config)
}

impl HfConfig {
    /// The HF class (`parse_config` refused any other `model_type`; none is BERT).
    pub fn class(&self) -> Class {
        self.model_type
            .as_deref()
            .and_then(Class::from_model_type)
            .unwrap_or(Class::Bert)
    }

    /// A `RobertaPreLayerNorm` directory, whose positions start at `pad_token_id + 1`.
    fn pre_ln(&self) -> bool {
        self.class() == Class::RobertaPreLayerNorm
    }

    /// Rows of the HF position table before the first real token's (0 for BERT).
    fn position_offset(&self) -> usize {
        if self.pre_ln() {
            prelayernorm::position_offset(self.pad_token_id)
        } else {
            0
        }
    }

    /// The positions a sequence may use (pretext's `model.max_positions`).
    fn max_positions(&self) -> usize {
        self.max_position_embeddings - self.position_offset()
    }

    /// The `[model]` that computes what this HF model computes (post-LN for BERT, pre-LN for
    /// RobertaPreLayerNorm; learned positions, biases everywhere, BERT's GELU), with its
    /// dropouts and initialisation range.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            layers: self.num_hidden_layers,
            hidden: self.hidden_size,
            heads: self.num_attention_heads,
            ffn: self.intermediate_size,
            max_positions: self.max_positions(),
            norm: self.class().norm(),
            type_vocab: self.type_vocab_size,
            layer_norm_eps: self.layer_norm_eps as f32,
            tie_word_embeddings: self.tie_word_embeddings,
            dropout: self.hidden_dropout_prob,
            attention_dropout: self.attention_probs_dropout_prob,
            init_std: self.initializer_range,
            ..ModelConfig::default()
        }
    }

    /// The vocabulary size the embeddings were trained for.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Where the experiment's `[model]` (and its tokenizer's vocabulary) differ from the HF
    /// model, each as `key: ours, theirs`; empty when the weights mean what they meant in HF.
    pub fn mismatches(&self, m: &ModelConfig, vocab: Option<usize>) -> Vec<String> {
        let c = self;
        let mut out = Vec::new();
        for (key, ours, theirs, hf) in [
            (
                "model.layers",
                m.layers,
                c.num_hidden_layers,
                "num_hidden_layers",
            ),
            ("model.hidden", m.hidden, c.hidden_size, "hidden_size"),
            (
                "model.heads",
                m.heads,
                c.num_attention_heads,
                "num_attention_heads",
            ),
            ("model.ffn", m.ffn, c.intermediate_size, "intermediate_size"),
            (
                "model.max_positions",
                m.max_positions,
                c.max_positions(),
                if c.pre_ln() {
                    "max_position_embeddings - pad_token_id - 1"
                } else {
                    "max_position_embeddings"
                },
            ),
            (
                "model.type_vocab",
                m.type_vocab,
                c.type_vocab_size,
                "type_vocab_size",
            ),
        ] {
            if ours != theirs {
                out.push(format!("{key} = {ours}, the HF model has {hf} = {theirs}"));
            }
        }
        if let Some(v) = vocab.filter(|&v| v != c.vocab_size) {
            out.push(format!(
                "the tokenizer has {v} tokens, the HF model vocab_size = {}",
                c.vocab_size
            ));
        }
        if (f64::from(m.layer_norm_eps) - c.layer_norm_eps).abs() > 1e-3 * c.layer_norm_eps {
            out.push(format!(
                "model.layer_norm_eps = {:e}, the HF model has layer_norm_eps = {:e}",
                m.layer_norm_eps, c.layer_norm_eps
            ));
        }
        let class = c.class();
        if m.norm != class.norm() {
            out.push(format!(
                "model.norm = \"{}\"; HF's {} is model.norm = \"{}\"",
                m.norm.name(),
                class.name(),
                class.norm().name()
            ));
        }
        if m.positions != Positions::Learned {
            out.push("model.positions = \"alibi\"; HF's BERT learns its positions".into());
        }
        if !m.linear_bias {
            out.push("model.linear_bias = false; HF's BERT has biases in every projection".into());
        }
        if m.tie_word_embeddings != c.tie_word_embeddings {
            out.push(format!(
                "model.tie_word_embeddings = {}, the HF model has tie_word_embeddings = {}",
                m.tie_word_embeddings, c.tie_word_embeddings
            ));
        }
        out
    }
}

impl HfBert {
    /// Whether `tokenizer` (the run's `tokenizer.path`) is this model's own: its
    /// `tokenizer.json` or `vocab.txt`.
    pub fn owns_tokenizer(&self, tokenizer: &Path) -> bool {
        let canon = |p: &Path| std::fs::canonicalize(p).ok();
        ["tokenizer.json", "vocab.txt"]
            .iter()
            .any(|f| canon(&self.dir.join(f)).is_some_and(|c| Some(c) == canon(tokenizer)))
    }
}

/// Loads the HF model's encoder into `encoder` and every head of `objectives` the file holds
/// whole; returns the names of the objectives whose heads came along. Every tensor is
/// checked (name, shape, dtype, finiteness) before any is copied.
pub fn load(
    hf: &HfBert,
    encoder: &mut crate::model::Encoder,
    objectives: &mut [(f64, Box<dyn crate::objectives::Objective>)],
) -> Result<Vec<String>, WeightsError> {
    let bytes = bert_named(hf)?;
    let st = deserialize(&bytes, &hf.weights)?;
    load_encoder(encoder, &st, &hf.weights)?;
    let mut loaded = Vec::new();
    for (_, o) in objectives.iter_mut() {
        let name = o.name().to_string();
        if load_head(&st, &hf.weights, &name, o.as_mut())? {
            loaded.push(name);
        }
    }
    Ok(loaded)
}

/// The encoder and the MLM head (`cls.predictions.`), for fill, eval and bias; `false` when
/// the file has no MLM head (a `BertModel` without `cls.`).
pub fn load_masked_lm(
    hf: &HfBert,
    encoder: &mut crate::model::Encoder,
    head: &mut dyn Params,
) -> Result<bool, WeightsError> {
    let bytes = bert_named(hf)?;
    let st = deserialize(&bytes, &hf.weights)?;
    load_encoder(encoder, &st, &hf.weights)?;
    load_head(&st, &hf.weights, "mlm", head)
}

/// The encoder's tensors under HF BERT's names. HF builds its `*ForMaskedLM` classes without
/// the pooler, so a file without one leaves the encoder's fresh pooler, as `from_pretrained`
/// leaves it (nothing but sentence-level heads reads it).
fn load_encoder(
    encoder: &mut crate::model::Encoder,
    st: &SafeTensors,
    file: &Path,
) -> Result<(), WeightsError> {
    let has_pooler = io::candidates("pooler.dense.weight", Naming::HfBert)
        .iter()
        .any(|n| st.tensor(n).is_ok());
    io::load_into(encoder, st, file, &|ours| {
        if ours.starts_with("pooler.") && !has_pooler {
            Vec::new()
        } else {
            io::candidates(ours, Naming::HfBert)
        }
    })?;
    Ok(())
}

/// The weight file's bytes with BERT's names: as they are for BERT, renamed (and the position
/// table trimmed) for RobertaPreLayerNorm, renamed for ELECTRA (the generator's head as the
/// MLM head).
fn bert_named(hf: &HfBert) -> Result<Vec<u8>, WeightsError> {
    let bytes = read(&hf.weights)?;
    let file = &hf.weights;
    let tensors = match hf.config.class() {
        Class::Bert => return Ok(bytes),
        Class::RobertaPreLayerNorm => {
            let st = deserialize(&bytes, file)?;
            prelayernorm::to_bert_tensors(&st, file, hf.config.pad_token_id)?
        }
        Class::Electra => electra::to_bert_tensors(&deserialize(&bytes, file)?, file)?,
    };
    Ok(io::serialize(&io::encode(tensors), None))
}

fn read(file: &Path) -> Result<Vec<u8>, WeightsError> {
    crate::files::read(file).map_err(|e| WeightsError::Io {
        file: file.into(),
        reason: e.to_string(),
    })
}

fn deserialize<'a>(bytes: &'a [u8], file: &Path) -> Result<SafeTensors<'a>, WeightsError> {
    SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Format {
        file: file.into(),
        reason: e.to_string(),
    })
}

/// Loads objective `name`'s head when the file holds all of it under HF's names; a head the
/// file lacks starts fresh, as `from_pretrained` leaves it.
fn load_head(
    st: &SafeTensors,
    file: &Path,
    name: &str,
    head: &mut dyn Params,
) -> Result<bool, WeightsError> {
    let prefix = format!("heads.{name}.");
    let hf_of = |n: &str| crate::hf::export::hf_pretraining_name(&format!("{prefix}{n}"));
    let whole = head
        .named_params()
        .iter()
        .all(|(n, _)| hf_of(n).is_some_and(|h| st.tensor(&h).is_ok()));
    if whole {
        io::load_into(head, st, file, &|n| hf_of(n).into_iter().collect())?;
    }
    Ok(whole)
}
