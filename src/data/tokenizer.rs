//! WordPiece tokenisation through the `tokenizers` crate: BERT normaliser and pre-tokeniser,
//! trained on the run's training split or loaded from an HF `tokenizer.json` / BERT `vocab.txt`.

use std::path::{Path, PathBuf};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Model};

pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{file}: cannot load the tokenizer: {reason}")]
    Load { file: PathBuf, reason: String },
    #[error("{file}: the vocabulary has no `{token}` token; BERT-style runs need all of [PAD] [UNK] [CLS] [SEP] [MASK]")]
    MissingSpecial { file: PathBuf, token: &'static str },
    #[error("{file}: {reason}; a token's id is its row of the embedding, so the ids must be 0, 1, … up to the vocabulary's size, each once")]
    BadIds { file: PathBuf, reason: String },
    #[error("training the WordPiece vocabulary failed: {0}")]
    Train(String),
    #[error("{file}: cannot save the tokenizer: {reason}")]
    Save { file: PathBuf, reason: String },
}

/// A `tokenizer.json` through the `tokenizers` crate, which panics on some broken files (an
/// `expect` in its decoder's deserialiser met a raw line break inside a string, found by
/// `tests/fuzz.rs`): the text must parse as JSON first, which names the line and column, and
/// a panic left on a crafted but well-formed file is turned into this error.
fn read_json(path: &Path) -> Result<tokenizers::Tokenizer, String> {
    use std::str::FromStr;
    let text = crate::files::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| format!("not JSON: {e}"))?;
    std::panic::catch_unwind(|| tokenizers::Tokenizer::from_str(&text))
        .map_err(|_| "the tokenizers crate failed on it (its message is above)".to_string())?
        .map_err(|e| e.to_string())
}

/// Refuses a vocabulary whose ids are not each row of the embedding once: an id past the
/// size (a hand-edited `tokenizer.json`, a `vocab.txt` with a repeated line) failed only at
/// the first batch, without naming the file; two tokens on one id (`the` on `[PAD]`'s) trained
/// silently on the wrong rows.
fn check_ids(inner: &tokenizers::Tokenizer, file: &Path) -> Result<(), TokenizerError> {
    let n = inner.get_vocab_size(true);
    let mut vocab: Vec<(u32, String)> = inner
        .get_vocab(true)
        .into_iter()
        .map(|(t, id)| (id, t))
        .collect();
    vocab.sort();
    let bad = |reason: String| TokenizerError::BadIds {
        file: file.into(),
        reason,
    };
    if let Some((id, tok)) = vocab.iter().find(|(id, _)| *id as usize >= n) {
        return Err(bad(format!(
            "token `{tok}` has id {id}, past the vocabulary of {n} tokens"
        )));
    }
    if let Some(w) = vocab.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(bad(format!(
            "tokens `{}` and `{}` share id {}",
            w[0].1, w[1].1, w[0].0
        )));
    }
    Ok(())
}

/// Ids of the special tokens, looked up once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Special {
    pub pad: u32,
    pub unk: u32,
    pub cls: u32,
    pub sep: u32,
    pub mask: u32,
}

impl Special {
    pub fn contains(&self, id: u32) -> bool {
        id == self.pad || id == self.unk || id == self.cls || id == self.sep || id == self.mask
    }
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    pub special: Special,
    /// `true` for `##` continuation pieces: whole-word masking groups them with the word start.
    /// One entry per id of the vocabulary (added tokens included), so its length is the size.
    continuation: Vec<bool>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("special", &self.special)
            .finish()
    }
}

fn bert_pipeline(model: WordPiece, lowercase: bool) -> Result<tokenizers::Tokenizer, String> {
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_decoder(Some(WordPieceDecoder::default()));
    Ok(tok)
}

impl Tokenizer {
    /// Trains BERT-style WordPiece on `texts` (the training split only, so the held-out set
    /// stays unseen). The same texts give the same vocabulary in every process
    /// (`data::wordpiece`; the crate's own training does not).
    pub fn train<S: AsRef<str> + Send>(
        texts: impl Iterator<Item = S> + Send,
        vocab_size: usize,
        lowercase: bool,
        min_frequency: u64,
    ) -> Result<Self, TokenizerError> {
        let specials = SPECIAL_TOKENS
            .iter()
            .map(|t| AddedToken::from(t.to_string(), true))
            .collect();
        let (model, specials) = super::wordpiece::train(
            texts,
            &BertNormalizer::new(true, true, None, lowercase),
            &BertPreTokenizer,
            vocab_size,
            min_frequency,
            specials,
        )
        .map_err(|e| TokenizerError::Train(e.to_string()))?;
        let mut tok = bert_pipeline(model, lowercase).map_err(TokenizerError::Train)?;
        tok.add_special_tokens(&specials);
        Self::wrap(tok, Path::new("<trained>"))
    }

    /// The tokenizer of a pretraining run in `run_dir`, trained with `cfg`: `given` (the
    /// user's `--tokenizer`), else the experiment's `tokenizer.json` beside the run. An
    /// experiment that named its tokenizer file (`tokenizer.path`, relative to the experiment
    /// file, which a run folder does not record) is told so, with the path to pass.
    pub fn of_run(
        run_dir: &Path,
        given: Option<&Path>,
        cfg: &crate::config::TokenizerConfig,
    ) -> anyhow::Result<(PathBuf, Self)> {
        use anyhow::Context;
        let path = given.map(Path::to_path_buf).unwrap_or_else(|| {
            run_dir
                .parent()
                .unwrap_or(Path::new("."))
                .join("tokenizer.json")
        });
        let hint = match (&cfg.path, given) {
            (Some(named), None) if !path.is_file() => format!(
                "the run's experiment names its tokenizer file (tokenizer.path = \"{named}\", \
                 relative to the experiment file): pass that file with --tokenizer"
            ),
            (_, None) => "pass the pretraining run's tokenizer with --tokenizer".into(),
            // The user's own file: the error names it, and the advice would be circular.
            (_, Some(_)) => return Ok((path.clone(), Self::load(&path, cfg.lowercase)?)),
        };
        let tok = Self::load(&path, cfg.lowercase).context(hint)?;
        Ok((path, tok))
    }

    /// Loads an HF `tokenizer.json`, or a BERT `vocab.txt` (one token a line) with the BERT
    /// normaliser (`lowercase` applies only to `vocab.txt`; a `tokenizer.json` carries its own).
    pub fn load(path: &Path, lowercase: bool) -> Result<Self, TokenizerError> {
        let load_err = |reason: String| TokenizerError::Load {
            file: path.into(),
            reason,
        };
        crate::files::regular(path).map_err(|e| load_err(e.to_string()))?;
        let tok = if path.extension().is_some_and(|e| e == "txt") {
            let model = WordPiece::from_file(&path.to_string_lossy())
                .unk_token("[UNK]".into())
                .build()
                .map_err(|e| load_err(e.to_string()))?;
            bert_pipeline(model, lowercase).map_err(load_err)?
        } else {
            read_json(path).map_err(load_err)?
        };
        Self::wrap(tok, path)
    }

    fn wrap(mut inner: tokenizers::Tokenizer, file: &Path) -> Result<Self, TokenizerError> {
        check_ids(&inner, file)?;
        let id = |t: &'static str| {
            inner.token_to_id(t).ok_or(TokenizerError::MissingSpecial {
                file: file.into(),
                token: t,
            })
        };
        let special = Special {
            pad: id("[PAD]")?,
            unk: id("[UNK]")?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            mask: id("[MASK]")?,
        };
        inner.with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), special.sep),
            ("[CLS]".into(), special.cls),
        )));
        let n = inner.get_vocab_size(true);
        let mut continuation = vec![false; n];
        for (tok, id) in inner.get_model().get_vocab() {
            if let Some(c) = continuation.get_mut(id as usize) {
                *c = tok.starts_with("##");
            }
        }
        Ok(Self {
            inner,
            special,
            continuation,
        })
    }

    /// Saves as an HF `tokenizer.json`, atomically: a run killed mid-write must not leave a
    /// truncated file that every later run of the experiment would fail to load.
    pub fn save(&self, path: &Path) -> Result<(), TokenizerError> {
        let err = |reason: String| TokenizerError::Save {
            file: path.into(),
            reason,
        };
        // A temporary name of this writer's own: two writers racing to save the same file
        // (parallel tests, two runs of one experiment starting together) must not rename each
        // other's temporary file away; the last rename wins and every rename is whole.
        static WRITERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("json.{}.{n}.tmp", std::process::id()));
        let saved = self
            .inner
            .save(&tmp, true)
            .map_err(|e| e.to_string())
            .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string()));
        if saved.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        saved.map_err(err)
    }

    /// A CRC-32 of the vocabulary in id order: names the tokenizer in cache keys, whatever file
    /// it was loaded from.
    pub fn fingerprint(&self) -> String {
        let mut h = crc32fast::Hasher::new();
        for id in 0..self.model_vocab() as u32 {
            h.update(self.id_to_token(id).unwrap_or_default().as_bytes());
            h.update(b"\n");
        }
        format!("{:08x}", h.finalize())
    }

    /// The vocabulary's size with added tokens. Read once when the tokenizer is made (it is
    /// immutable afterwards): `tokenizers` answers it by building a map of the whole
    /// vocabulary, which the masker, asking once per sequence, paid on every batch.
    pub fn vocab_size(&self) -> usize {
        self.continuation.len()
    }

    pub fn is_continuation(&self, id: u32) -> bool {
        self.continuation.get(id as usize).copied().unwrap_or(false)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Token ids of each text, without special tokens (instances add their own).
    pub fn encode_batch(&self, texts: &[String]) -> Vec<Vec<u32>> {
        // `tokenizers` holds each text's whole `Encoding` (tokens as strings, offsets, masks:
        // some 40 bytes per byte of text) until the batch is done; a few MiB of text at a time
        // keeps that bounded (a 36 MB document took 1.6 GB at once) and the threads busy.
        const BATCH_BYTES: usize = 4 << 20;
        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < texts.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < texts.len() && (end == start || bytes + texts[end].len() <= BATCH_BYTES) {
                bytes += texts[end].len();
                end += 1;
            }
            out.extend(self.encode_all(&texts[start..end]));
            start = end;
        }
        out
    }

    fn encode_all(&self, texts: &[String]) -> Vec<Vec<u32>> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        match self.inner.encode_batch(inputs, false) {
            Ok(encs) => encs.into_iter().map(|e| e.get_ids().to_vec()).collect(),
            // Encoding plain text with a WordPiece model only fails on a broken model; fall
            // back to one at a time so one bad text becomes [UNK] instead of an abort.
            Err(_) => texts
                .iter()
                .map(|t| {
                    self.inner
                        .encode(t.as_str(), false)
                        .map(|e| e.get_ids().to_vec())
                        .unwrap_or_else(|_| vec![self.special.unk])
                })
                .collect(),
        }
    }

    /// Token ids with the character span each covers in `text` (for mapping answer spans
    /// back to text); an unencodable text gives no tokens.
    pub fn encode_with_offsets(&self, text: &str) -> Vec<(u32, usize, usize)> {
        self.inner
            .encode_char_offsets(text, false)
            .map(|e| {
                e.get_ids()
                    .iter()
                    .zip(e.get_offsets())
                    .map(|(&id, &(a, b))| (id, a, b))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_batch(&[text.to_string()])
            .pop()
            .unwrap_or_default()
    }

    /// The underlying WordPiece vocabulary size as the model sees it (max id + 1).
    pub fn model_vocab(&self) -> usize {
        self.inner
            .get_model()
            .get_vocab_size()
            .max(self.vocab_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run whose experiment named its tokenizer file is told to pass that file; one whose
    /// experiment saved it beside the runs gets the general hint.
    #[test]
    fn a_run_without_its_tokenizer_beside_it_is_told_which_file_to_pass() {
        let run = std::env::temp_dir()
            .join(format!("pretext-of-run-{}", std::process::id()))
            .join("base");
        std::fs::create_dir_all(&run).unwrap();
        let mut cfg = crate::config::TokenizerConfig {
            path: Some("../shared/tok.json".into()),
            ..Default::default()
        };
        let e = format!("{:#}", Tokenizer::of_run(&run, None, &cfg).err().unwrap());
        assert!(
            e.contains("tokenizer.path = \"../shared/tok.json\"") && e.contains("--tokenizer"),
            "{e}"
        );
        cfg.path = None;
        let e = format!("{:#}", Tokenizer::of_run(&run, None, &cfg).err().unwrap());
        assert!(
            e.starts_with("pass the pretraining run's tokenizer with --tokenizer")
                && e.contains("tokenizer.json"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(run.parent().unwrap());
    }

    /// A repeated line of a `vocab.txt` leaves an id past the size; a `tokenizer.json` edited
    /// to put a word on `[PAD]`'s id has two tokens on one row. Both refused by file.
    #[test]
    fn ids_that_are_not_each_row_once_are_refused() {
        let dir = std::env::temp_dir().join(format!("pretext-tok-ids-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vocab = dir.join("vocab.txt");
        let words = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nfilm\n";
        std::fs::write(&vocab, words).unwrap();
        let good = Tokenizer::load(&vocab, true).unwrap();
        std::fs::write(&vocab, format!("{words}the\n")).unwrap();
        let e = Tokenizer::load(&vocab, true).err().unwrap().to_string();
        assert!(
            e.contains("vocab.txt: token `the` has id 7, past the vocabulary of 7"),
            "{e}"
        );

        let json = dir.join("tokenizer.json");
        good.save(&json).unwrap();
        let text = std::fs::read_to_string(&json).unwrap();
        assert!(text.contains("\"the\": 5"), "{text}");
        std::fs::write(&json, text.replace("\"the\": 5", "\"the\": 0")).unwrap();
        let e = Tokenizer::load(&json, true).err().unwrap().to_string();
        assert!(e.contains("tokens `[PAD]` and `the` share id 0"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
