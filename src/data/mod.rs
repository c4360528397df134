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
    docs.iter().map(|d| tok.encode_batch(&d.sentences)).filter(|d: &TokenDoc| d.iter().any(|s| !s.is_empty())).collect()
}

/// Reads the corpus, splits it by document, trains (or loads) the tokenizer on the training
/// split and tokenises both splits. `base_dir` anchors relative paths in the experiment file.
pub fn prepare(data: &DataConfig, tok_cfg: &TokenizerConfig, seed: u64, base_dir: &Path) -> Result<Prepared, DataError> {
    let corpus = Corpus::load(&data.corpus, base_dir, data.format, data.min_sentences, data.heldout_fraction, seed)?;
    let tokenizer = match &tok_cfg.path {
        Some(p) => Tokenizer::load(&base_dir.join(p), tok_cfg.lowercase)?,
        None => {
            let texts = corpus.train.iter().flat_map(|d| d.sentences.iter().map(String::as_str));
            Tokenizer::train(texts, tok_cfg.vocab_size, tok_cfg.lowercase, tok_cfg.min_frequency)?
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
