//! The embedded corpus, tokenized once per test binary, and a batch stream over it: what the
//! data pipeline's and the masking's tests read.

use pretext::config::CorpusFormat;
use pretext::data::corpus::{self, parse, EMBEDDED};
use pretext::data::instances::PairMode;
use pretext::data::{BatchStream, MaskingConfig, StreamSettings, TokenCorpus, Tokenizer};
use std::path::Path;
use std::sync::Arc;

/// The embedded corpus's documents.
pub fn embedded_docs() -> Vec<corpus::Document> {
    parse(EMBEDDED, Path::new("<embedded>"), CorpusFormat::Auto, 2).unwrap()
}

/// One tokenizer for every test (training it takes a while).
pub type Shared = (Arc<Tokenizer>, Arc<TokenCorpus>);

/// The tokenizer (800 words, trained on the embedded corpus) and the corpus in its ids.
pub fn setup() -> Shared {
    static SHARED: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let docs = embedded_docs();
            let tok = Tokenizer::train(
                docs.iter()
                    .flat_map(|d| d.sentences.iter().map(String::as_str)),
                800,
                true,
                2,
            )
            .unwrap();
            let ids: Vec<_> = docs
                .iter()
                .map(|d| tok.encode_batch(&d.sentences))
                .collect();
            (Arc::new(tok), Arc::new(ids.into()))
        })
        .clone()
}

/// Sequences of 64 from `setup`'s corpus, paired by `mode`, masked by `masking`.
pub fn stream(
    mode: PairMode,
    masking: Option<MaskingConfig>,
    seed: u64,
) -> (Arc<Tokenizer>, BatchStream) {
    let (tok, docs) = setup();
    let s = StreamSettings {
        seq_len: 64,
        short_seq_prob: 0.1,
        mode,
        masking,
    };
    let bs = BatchStream::new(docs, tok.clone(), s, seed, "data.train").unwrap();
    (tok, bs)
}
