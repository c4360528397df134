//! Everything between text files and batches of token ids: corpus readers, the WordPiece
//! tokenizer, instance creation (segment pairs, NSP/SOP labels), MLM masking and batching.
//! Knows nothing about the model.

pub mod batch;
pub mod corpus;
pub mod instances;
pub mod masking;
pub mod tokenizer;

pub use batch::{Batch, BatchStream, StreamSettings, StreamState};
pub use corpus::{Corpus, CorpusError, Document};
pub use instances::{Instance, PairMode, TokenDoc};
pub use masking::MaskingConfig;
pub use tokenizer::{Special, Tokenizer, TokenizerError};

use crate::config::{DataConfig, TokenizerConfig};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    NoInstances(#[from] batch::NoInstances),
}

/// A corpus read, split and tokenised: what every run of a grid shares.
pub struct Prepared {
    pub tokenizer: Arc<Tokenizer>,
    pub train: Arc<Vec<TokenDoc>>,
    pub heldout: Arc<Vec<TokenDoc>>,
    /// Sentences in the training split, for the run summary.
    pub train_sentences: usize,
}

fn tokenize(tok: &Tokenizer, docs: &[Document]) -> Vec<TokenDoc> {
    docs.iter()
        .map(|d| tok.encode_batch(&d.sentences))
        .filter(|d: &TokenDoc| d.iter().any(|s| !s.is_empty()))
        .collect()
}

/// Reads the corpus, splits it by document, gets the tokenizer and tokenises both splits.
/// `base_dir` anchors relative paths in the experiment file.
///
/// The tokenizer is `tokenizer.path` when given; otherwise `trained` is loaded if it exists,
/// or WordPiece is trained on the training split and saved there. Training happens once per
/// experiment because the `tokenizers` trainer breaks frequency ties through randomly seeded
/// hash maps: two trainings on the same text can give different vocabularies, so every
/// variant and every resume must share the saved one to stay bit-identical.
pub fn prepare(
    data: &DataConfig,
    tok_cfg: &TokenizerConfig,
    seed: u64,
    base_dir: &Path,
    trained: Option<&Path>,
) -> Result<Prepared, DataError> {
    let corpus = Corpus::load(
        &data.corpus,
        base_dir,
        data.format,
        data.min_sentences,
        data.heldout_fraction,
        seed,
    )?;
    let tokenizer = match (&tok_cfg.path, trained) {
        (Some(p), _) => Tokenizer::load(&base_dir.join(p), tok_cfg.lowercase)?,
        (None, Some(saved)) if saved.exists() => Tokenizer::load(saved, tok_cfg.lowercase)?,
        (None, saved) => {
            let texts = corpus
                .train
                .iter()
                .flat_map(|d| d.sentences.iter().map(String::as_str));
            let tok = Tokenizer::train(
                texts,
                tok_cfg.vocab_size,
                tok_cfg.lowercase,
                tok_cfg.min_frequency,
            )?;
            if let Some(path) = saved {
                tok.save(path)?;
            }
            tok
        }
    };
    let train = tokenize(&tokenizer, &corpus.train);
    let heldout = tokenize(&tokenizer, &corpus.heldout);
    Ok(Prepared {
        tokenizer: Arc::new(tokenizer),
        train_sentences: corpus.train.iter().map(|d| d.sentences.len()).sum(),
        train: Arc::new(train),
        heldout: Arc::new(heldout),
    })
}
