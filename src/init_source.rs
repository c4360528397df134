//! What `model.init` names — another pretext run, or an HF BERT directory (`hf:DIR`) —
//! checked before a run starts: it exists, the run reads its tokenizer, and (for HF) the
//! experiment's `[model]` describes the network the weights belong to.

use crate::config::Experiment;
use crate::data::Tokenizer;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where a fresh run's weights come from (`model.init`), once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// Another pretext run's checkpoint file: its encoder, and the heads it shares by name.
    Checkpoint(PathBuf),
    /// An HF BERT directory (`hf:DIR`): its encoder and the MLM/NSP heads it holds.
    Hf(PathBuf),
}

impl Init {
    pub fn path(&self) -> &Path {
        match self {
            Init::Checkpoint(p) | Init::Hf(p) => p,
        }
    }
}

/// `model.init`, checked before training: it exists, and the run reads the source's tokenizer
/// (the same vocabulary size with other ids would load silently).
pub fn init_checkpoint(cfg: &Experiment, base_dir: &Path) -> Result<Option<Init>> {
    let Some(init) = &cfg.model.init else {
        return Ok(None);
    };
    if let Some(dir) = init.strip_prefix(crate::hf::import::PREFIX) {
        return hf_init(cfg, base_dir, init, &base_dir.join(dir)).map(|d| Some(Init::Hf(d)));
    }
    let (source, ckpt) = crate::predict::resolve(&base_dir.join(init))
        .with_context(|| format!("key model.init = {init:?}"))?;
    let theirs = source.parent().map(|p| p.join("tokenizer.json"));
    let ours = cfg.tokenizer.path.as_ref().map(|p| base_dir.join(p));
    if let (Some(theirs), Some(ours)) = (theirs.filter(|p| p.is_file()), &ours) {
        let same = std::fs::read(&theirs).ok() == std::fs::read(ours).ok();
        anyhow::ensure!(
            same,
            "key model.init: the source run's tokenizer {} differs from this run's {} \
             (tokenizer.path); the encoder's embeddings only fit the tokenizer it was trained with",
            theirs.display(),
            ours.display()
        );
    }
    Ok(Some(Init::Checkpoint(ckpt)))
}

/// `model.init = "hf:DIR"`: the HF directory, once its config describes the file's `[model]`
/// and the run reads the model's own tokenizer.
fn hf_init(cfg: &Experiment, base_dir: &Path, key: &str, dir: &Path) -> Result<PathBuf> {
    let hf = crate::hf::import::open(dir).with_context(|| format!("key model.init = {key:?}"))?;
    let tok = cfg.tokenizer.path.as_ref().map(|p| base_dir.join(p));
    let Some(tok) = tok.filter(|t| hf.owns_tokenizer(t)) else {
        bail!(
            "key model.init = {key:?}: set tokenizer.path to the HF model's own tokenizer \
             ({}/tokenizer.json or vocab.txt); another would give its embeddings other ids",
            dir.display()
        );
    };
    let vocab = Tokenizer::load(&tok, cfg.tokenizer.lowercase)
        .with_context(|| format!("key tokenizer.path = {:?}", tok.display()))?
        .vocab_size();
    let problems = hf.config.mismatches(&cfg.model, Some(vocab));
    if !problems.is_empty() {
        bail!(
            "key model.init = {key:?}: the experiment's [model] is not the HF model: {}",
            problems.join("; ")
        );
    }
    Ok(dir.to_path_buf())
}
