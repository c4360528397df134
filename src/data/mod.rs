//! Everything between text files and batches of token ids: corpus readers, the WordPiece
//! tokenizer, instance creation (segment pairs, NSP/SOP labels), MLM masking and batching.
//! Knows nothing about the model.

pub mod batch;
pub mod cache;
pub mod corpus;
pub mod instances;
pub mod layouts;
pub mod masking;
pub mod shards;
pub mod sources;
pub mod tokenizer;
pub mod vocab;
pub mod wordpiece;

pub use batch::{Batch, BatchStream, NoInstances, StreamSettings, StreamState};
pub use corpus::{Corpus, CorpusError, Document};
pub use instances::{Instance, PairMode, TokenDoc};
pub use masking::MaskingConfig;
pub use shards::{Shard, TokenCorpus};
pub use tokenizer::{Special, Tokenizer, TokenizerError};

use crate::config::{DataConfig, TokenizerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    NoInstances(#[from] batch::NoInstances),
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    #[error("data.cache needs a folder: set data.cache_dir (no run directory here)")]
    NoCacheDir,
    #[error(transparent)]
    Lock(#[from] crate::rundir::LockError),
}

/// A corpus read, split and tokenised: what every run of a grid shares.
pub struct Prepared {
    pub tokenizer: Arc<Tokenizer>,
    pub train: Arc<TokenCorpus>,
    pub heldout: Arc<TokenCorpus>,
    /// Sentences in the training split, for the run summary.
    pub train_sentences: usize,
    /// The shard cache's folder when `data.cache` is on, and whether this call built it.
    pub cache: Option<(PathBuf, bool)>,
}

fn tokenize(tok: &Tokenizer, docs: &[Document]) -> Vec<TokenDoc> {
    docs.iter()
        .map(|d| tok.encode_batch(&d.sentences))
        .filter(|d: &TokenDoc| d.iter().any(|s| !s.is_empty()))
        .collect()
}

/// Reads the corpus, splits it by document, gets the tokenizer and tokenises both splits.
/// `base_dir` anchors relative paths in the experiment file; `exp_dir`, the experiment's run
/// folder, holds what its runs share: `tokenizer.json` and, by default, the shard cache.
///
/// The tokenizer is `tokenizer.path` when given; otherwise `exp_dir/tokenizer.json` is loaded
/// if it exists, or WordPiece is trained on the training split and saved there, once per
/// experiment: training is deterministic (`wordpiece`: the same text gives the same vocabulary
/// in every process), but it takes time, and a saved file keeps the runs of an experiment on
/// one vocabulary even if the corpus files change under them.
///
/// With `data.cache`, the corpus is streamed instead of read whole (see `cache`): WordPiece
/// trains on a stream of the training split, and the splits come from the shard cache.
pub fn prepare(
    data: &DataConfig,
    tok_cfg: &TokenizerConfig,
    base_dir: &Path,
    exp_dir: Option<&Path>,
) -> Result<Prepared, DataError> {
    let saved = exp_dir.map(|d| d.join("tokenizer.json"));
    let data = &sources::expanded(data, base_dir)?;
    if data.cache {
        return prepare_cached(data, tok_cfg, base_dir, exp_dir, saved.as_deref());
    }
    let corpus = Corpus::load(
        &data.corpus,
        base_dir,
        data.format,
        data.min_sentences,
        data.heldout_fraction,
    )?;
    let texts = corpus
        .train
        .iter()
        .flat_map(|d| d.sentences.iter().map(String::as_str));
    let tokenizer = tokenizer(tok_cfg, base_dir, saved.as_deref(), texts)?;
    let train = tokenize(&tokenizer, &corpus.train);
    let heldout = tokenize(&tokenizer, &corpus.heldout);
    Ok(Prepared {
        tokenizer: Arc::new(tokenizer),
        train_sentences: corpus.train.iter().map(|d| d.sentences.len()).sum(),
        train: Arc::new(train.into()),
        heldout: Arc::new(heldout.into()),
        cache: None,
    })
}

/// The experiment's tokenizer file: `tokenizer.path`, or the one trained into `exp_dir`.
pub fn tokenizer_path(cfg: &TokenizerConfig, base_dir: &Path, exp_dir: &Path) -> PathBuf {
    match &cfg.path {
        Some(p) => base_dir.join(p),
        None => exp_dir.join("tokenizer.json"),
    }
}

/// The experiment's tokenizer: given, saved earlier, or trained on `texts` (and saved).
/// Looking for the saved file and training it happen under the experiment's lock, so two
/// processes started together train one vocabulary, not two that replace each other.
fn tokenizer<S: AsRef<str> + Send>(
    cfg: &TokenizerConfig,
    base_dir: &Path,
    saved: Option<&Path>,
    texts: impl Iterator<Item = S> + Send,
) -> Result<Tokenizer, DataError> {
    let _shared = match (&cfg.path, saved.and_then(Path::parent)) {
        (None, Some(exp_dir)) => Some(crate::rundir::ExperimentLock::acquire(exp_dir)?),
        _ => None,
    };
    Ok(match (&cfg.path, saved) {
        (Some(p), _) => Tokenizer::load(&base_dir.join(p), cfg.lowercase)?,
        (None, Some(saved)) if saved.exists() => Tokenizer::load(saved, cfg.lowercase)?,
        (None, saved) => {
            let tok = Tokenizer::train(texts, cfg.vocab_size, cfg.lowercase, cfg.min_frequency)?;
            if let Some(path) = saved {
                tok.save(path)?;
            }
            tok
        }
    })
}

fn prepare_cached(
    data: &DataConfig,
    tok_cfg: &TokenizerConfig,
    base_dir: &Path,
    exp_dir: Option<&Path>,
    saved: Option<&Path>,
) -> Result<Prepared, DataError> {
    let root = match (&data.cache_dir, exp_dir) {
        (Some(d), _) => base_dir.join(d),
        (None, Some(e)) => e.join("cache"),
        (None, None) => return Err(DataError::NoCacheDir),
    };
    let mut text = cache::TrainingText::new(data, base_dir);
    let tokenizer = tokenizer(tok_cfg, base_dir, saved, &mut text)?;
    if let Some(e) = text.error {
        return Err(e.into());
    }
    let c = cache::open_or_build(data, base_dir, &root, &tokenizer)?;
    Ok(Prepared {
        tokenizer: Arc::new(tokenizer),
        train: Arc::new(c.train),
        heldout: Arc::new(c.heldout),
        train_sentences: c.train_sentences,
        cache: Some((c.dir, c.built)),
    })
}
