//! What `model.init` names — another pretext run, or an HF BERT directory (`hf:DIR`) —
//! checked before a run starts: it exists, the run reads its tokenizer, and (for HF) the
//! experiment's `[model]` describes the network the weights belong to.

use crate::config::Experiment;
use crate::data::Tokenizer;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// `model.init` as a checkpoint file, checked before training: it exists, and the run reads
/// the source run's tokenizer (the same vocabulary size with other ids would load silently).
pub fn init_checkpoint(cfg: &Experiment, base_dir: &Path) -> Result<Option<PathBuf>> {
    let Some(init) = &cfg.model.init else {
        return Ok(None);
    };
    if let Some(dir) = init.strip_prefix(crate::import::PREFIX) {
        return hf_init(cfg, base_dir, init, &base_dir.join(dir)).map(Some);
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
    Ok(Some(ckpt))
}

/// `model.init = "hf:DIR"`: the HF directory, once its config describes the file's `[model]`
/// and the run reads the model's own tokenizer (train::Options takes a directory as HF's).
fn hf_init(cfg: &Experiment, base_dir: &Path, key: &str, dir: &Path) -> Result<PathBuf> {
    let hf = crate::import::open(dir).with_context(|| format!("key model.init = {key:?}"))?;
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
