//! `pretext tokenizer train`: a WordPiece vocabulary trained on corpus files (patterns, gzip
//! and every layout as `data.corpus` reads them) and saved as an HF `tokenizer.json`, without
//! ever replacing one of its inputs or a file that is not a tokenizer.

use super::{corpus, sources, Tokenizer};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// `pretext tokenizer train`: refuses an `--out` that is one of the corpus files (it would be
/// replaced by JSON) or an existing file that is not a tokenizer.
pub fn train_to_file(
    sources: &[String],
    vocab_size: usize,
    cased: bool,
    min_frequency: u64,
    out: &Path,
) -> Result<()> {
    let sources = sources::expand(sources, Path::new("."))?;
    let inputs: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
    crate::rundir::refuse_overwriting_input(out, &inputs).map_err(anyhow::Error::msg)?;
    // Its folder is made if need be (below), unless a file stands in the way: found before
    // training, not after.
    if let Some(a) = out.parent().and_then(crate::files::file_in_the_way) {
        anyhow::bail!("--out {}: {} is not a folder", out.display(), a.display());
    }
    if out.exists() && Tokenizer::load(out, !cased).is_err() {
        anyhow::bail!(
            "{}: exists and is not a tokenizer file; refusing to replace it (remove it, or \
             choose another --out)",
            out.display()
        );
    }
    let mut sentences = Vec::new();
    for s in &sources {
        let docs = corpus::read_source(s, Path::new("."), Default::default(), 1)?;
        sentences.extend(docs.into_iter().flat_map(|d| d.sentences));
    }
    let tok = Tokenizer::train(
        sentences.iter().map(String::as_str),
        vocab_size,
        !cased,
        min_frequency,
    )?;
    // A new folder for the file is made, as HF's save_pretrained does.
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("--out {}: making its folder", out.display()))?;
    }
    tok.save(out)?;
    println!(
        "trained WordPiece on {} sentences: {} tokens → {}",
        sentences.len(),
        tok.vocab_size(),
        out.display()
    );
    Ok(())
}
