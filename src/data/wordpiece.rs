//! WordPiece training that gives the same vocabulary for the same text in every process.
//!
//! The `tokenizers` crate's `Tokenizer::train` with a `WordPieceTrainer` does not
//! (huggingface/tokenizers#1794): its BPE trainer gives the continuing-subword pieces (`##x`)
//! their ids in the iteration order of the word counts, a hash map seeded at random in every
//! process, and breaks ties between equally frequent merges by those ids — so two runs of one
//! experiment on two machines could train on slightly different vocabularies. Here the same
//! trainer (`BpeTrainer::do_train`, what `WordPieceTrainer` wraps) is handed word counts in a
//! map with fixed hash seeds, filled in sorted order, so its iteration order — and with it every
//! id and every tie — is a function of the text alone. Everything else is the crate's: the
//! words are split by the same normaliser and pre-tokeniser as `Tokenizer::train` splits them,
//! and the vocabulary is BPE's with `##` pieces, as `WordPiece::from_bpe` makes it.

use ahash::{AHashMap, RandomState};
use compact_str::CompactString;
use rayon::prelude::*;
use std::collections::BTreeMap;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::{
    AddedToken, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
};

/// Any fixed seeds do: they only have to be the same in every process.
const SEEDS: [u64; 4] = [0x7072_6574_6578_7400, 1, 2, 3];

/// The WordPiece model trained on `texts`, split by `normalizer` and `pre_tokenizer`, and the
/// special tokens to add to the tokenizer (first in the vocabulary, as the trainer puts them).
pub fn train<S: AsRef<str> + Send>(
    texts: impl Iterator<Item = S> + Send,
    normalizer: &(impl Normalizer + Sync),
    pre_tokenizer: &(impl PreTokenizer + Sync),
    vocab_size: usize,
    min_frequency: u64,
    special_tokens: Vec<AddedToken>,
) -> tokenizers::Result<(WordPiece, Vec<AddedToken>)> {
    let counts = texts
        .par_bridge()
        .map(|text| -> tokenizers::Result<BTreeMap<String, u64>> {
            let mut counts = BTreeMap::new();
            for word in words(text.as_ref(), normalizer, pre_tokenizer)? {
                *counts.entry(word).or_default() += 1;
            }
            Ok(counts)
        })
        .try_reduce(BTreeMap::new, |mut a, b| {
            for (word, n) in b {
                *a.entry(word).or_default() += n;
            }
            Ok(a)
        })?;
    let [k0, k1, k2, k3] = SEEDS;
    let mut word_counts: AHashMap<CompactString, u64> =
        AHashMap::with_capacity_and_hasher(counts.len(), RandomState::with_seeds(k0, k1, k2, k3));
    for (word, n) in counts {
        word_counts.insert(CompactString::from(word), n);
    }
    let trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(min_frequency)
        .show_progress(false)
        .special_tokens(special_tokens)
        .continuing_subword_prefix("##".into())
        .build();
    let mut bpe = BPE::default();
    let special = trainer.do_train(&word_counts, &mut bpe)?;
    let vocab: AHashMap<String, u32> = bpe.get_vocab().into_iter().collect();
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .build()?;
    Ok((model, special))
}

/// The words of `text` as `tokenizers::Tokenizer::train` counts them (no added tokens exist
/// while the vocabulary is trained, so the whole text is normalised as one piece).
fn words(
    text: &str,
    normalizer: &impl Normalizer,
    pre_tokenizer: &impl PreTokenizer,
) -> tokenizers::Result<Vec<String>> {
    let mut normalized = tokenizers::NormalizedString::from(text);
    normalizer.normalize(&mut normalized)?;
    let mut pre = PreTokenizedString::from(normalized);
    pre_tokenizer.pre_tokenize(&mut pre)?;
    Ok(pre
        .get_splits(OffsetReferential::Original, OffsetType::Byte)
        .into_iter()
        .map(|(s, _, _)| s.to_owned())
        .collect())
}
