//! Corpus readers: files → documents → sentences, and the held-out split by document.
//!
//! A file is read whole (`read_source`) or in blocks cut at document boundaries (`Blocks`, for
//! the shard cache); either way it goes through `sources::open` (gzip is decompressed) and is
//! parsed by its layout (`layouts`), decided per file.

use super::layouts::{detect, is_doc_start, is_wiki_title, parse_all};
use super::sources;
use crate::config::CorpusFormat;
use std::path::{Path, PathBuf};

pub use super::layouts::sentences;

/// The small corpus compiled into the binary, so `pretext run experiments/quickstart.toml`
/// works without any download.
pub const EMBEDDED: &str = include_str!("embedded/corpus.txt");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Where it came from, for messages: `file:line` of its first line.
    pub origin: String,
    pub sentences: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CorpusError {
    #[error("{file}: cannot read the corpus file: {reason}")]
    Unreadable { file: PathBuf, reason: String },
    #[error("{file}: the corpus file is empty")]
    Empty { file: PathBuf },
    #[error("{file}: invalid UTF-8 at byte offset {offset}; the corpus must be UTF-8 text")]
    InvalidUtf8 { file: PathBuf, offset: usize },
    #[error(
        "{file}: no document has at least {min_sentences} sentences ({documents} documents read); \
         check data.format (a blank line separates documents in the `text` layout) or lower data.min_sentences"
    )]
    NoUsableDocuments {
        file: PathBuf,
        documents: usize,
        min_sentences: usize,
    },
    #[error("corpus pattern {pattern}: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("{file}:{line}: {reason}")]
    BadLine {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("the held-out split left no training documents ({total} documents, data.heldout_fraction = {fraction})")]
    NoTrainingDocuments { total: usize, fraction: f64 },
}

/// Reads one corpus source: the word `embedded` or a path.
pub fn read_source(
    source: &str,
    base_dir: &Path,
    format: CorpusFormat,
    min_sentences: usize,
) -> Result<Vec<Document>, CorpusError> {
    if source == "embedded" {
        return parse(EMBEDDED, Path::new("<embedded>"), format, min_sentences);
    }
    let path = base_dir.join(source);
    let bytes = sources::read_all(&path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| CorpusError::InvalidUtf8 {
        file: path.clone(),
        offset: e.valid_up_to(),
    })?;
    parse(text, &path, format, min_sentences)
}

/// Parses a corpus held in memory; `file` names it in documents' origins and in errors.
pub fn parse(
    text: &str,
    file: &Path,
    format: CorpusFormat,
    min_sentences: usize,
) -> Result<Vec<Document>, CorpusError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(CorpusError::Empty { file: file.into() });
    }
    let raw = parse_all(text, file, format)?;
    let total = raw.len();
    let docs: Vec<Document> = raw
        .into_iter()
        .filter(|d| d.sentences.len() >= min_sentences)
        .collect();
    if docs.is_empty() {
        return Err(CorpusError::NoUsableDocuments {
            file: file.into(),
            documents: total,
            min_sentences,
        });
    }
    Ok(docs)
}

/// A corpus source read in blocks of whole documents, for corpora larger than memory: each
/// block is cut at a document boundary of the layout and parsed as `parse` parses a file, so
/// the documents are the ones `read_source` gives. The layout is detected on the first block.
/// Gutenberg books are never cut (their framing spans the file; a book fits in memory).
pub struct Blocks {
    reader: Box<dyn std::io::BufRead + Send>,
    file: PathBuf,
    format: CorpusFormat,
    min_sentences: usize,
    block_bytes: usize,
    /// A line read past the end of the last block: it starts the next one.
    carry: String,
    /// Bytes read so far, for the offset of invalid UTF-8.
    offset: usize,
    /// Lines read so far, so that errors in a block name the file's line.
    lines: usize,
    /// Documents read, and those long enough to keep.
    pub documents: usize,
    pub usable: usize,
    seen_text: bool,
    done: bool,
}

impl Blocks {
    /// Opens a source (`embedded` or a path relative to `base_dir`) to read blocks of about
    /// `block_bytes` bytes.
    pub fn open(
        source: &str,
        base_dir: &Path,
        format: CorpusFormat,
        min_sentences: usize,
        block_bytes: usize,
    ) -> Result<Self, CorpusError> {
        let (reader, file): (Box<dyn std::io::BufRead + Send>, PathBuf) = if source == "embedded" {
            (Box::new(EMBEDDED.as_bytes()), "<embedded>".into())
        } else {
            let path = base_dir.join(source);
            (sources::open(&path)?, path)
        };
        Ok(Self {
            reader,
            file,
            format,
            min_sentences,
            block_bytes,
            carry: String::new(),
            offset: 0,
            lines: 0,
            documents: 0,
            usable: 0,
            seen_text: false,
            done: false,
        })
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The next line with its end, or `None` at the end of the file.
    fn line(&mut self, buf: &mut Vec<u8>) -> Result<Option<String>, CorpusError> {
        buf.clear();
        let n = self
            .reader
            .read_until(b'\n', buf)
            .map_err(|e| CorpusError::Unreadable {
                file: self.file.clone(),
                reason: e.to_string(),
            })?;
        if n == 0 {
            return Ok(None);
        }
        let line = std::str::from_utf8(buf).map_err(|e| CorpusError::InvalidUtf8 {
            file: self.file.clone(),
            offset: self.offset + e.valid_up_to(),
        })?;
        self.offset += n;
        self.lines += 1;
        Ok(Some(line.to_string()))
    }

    /// Whether `line` may start a block: it starts a document, or follows a blank line.
    fn starts_document(&self, previous_blank: bool, line: &str) -> bool {
        match self.format {
            CorpusFormat::Wikitext => is_wiki_title(line),
            CorpusFormat::Wikiextractor => is_doc_start(line),
            CorpusFormat::Jsonl => true,
            CorpusFormat::Gutenberg => false,
            _ => previous_blank && !line.trim().is_empty(),
        }
    }

    /// The documents of the next block (those with at least `min_sentences` sentences), or
    /// `None` when the source is exhausted. An empty source, or one without a usable document,
    /// is an error naming the file.
    pub fn next_block(&mut self) -> Result<Option<Vec<Document>>, CorpusError> {
        if self.done {
            return Ok(None);
        }
        let mut text = std::mem::take(&mut self.carry);
        // The carried line was counted when it was read: the block starts there.
        let first_line = self.lines - usize::from(!text.is_empty());
        let mut buf = Vec::new();
        let mut previous_blank = false;
        loop {
            let Some(line) = self.line(&mut buf)? else {
                self.done = true;
                break;
            };
            if self.offset == line.len() {
                // The first line: drop a byte-order mark as `parse` does.
                let l = line.strip_prefix('\u{feff}').unwrap_or(&line).to_string();
                text.push_str(&l);
                continue;
            }
            if text.len() >= self.block_bytes {
                if self.format == CorpusFormat::Auto {
                    self.format = detect(&text);
                }
                if self.starts_document(previous_blank, &line) {
                    self.carry = line;
                    break;
                }
            }
            previous_blank = line.trim().is_empty();
            text.push_str(&line);
        }
        if self.format == CorpusFormat::Auto {
            self.format = detect(&text);
        }
        self.seen_text |= !text.trim().is_empty();
        if self.done && !self.seen_text {
            return Err(CorpusError::Empty {
                file: self.file.clone(),
            });
        }
        let raw = match self.format {
            CorpusFormat::Jsonl => super::layouts::jsonl(&text, &self.file, first_line)?,
            f => parse_all(&text, &self.file, f)?,
        };
        self.documents += raw.len();
        let docs: Vec<Document> = raw
            .into_iter()
            .filter(|d| d.sentences.len() >= self.min_sentences)
            .collect();
        self.usable += docs.len();
        if self.done && self.usable == 0 {
            return Err(CorpusError::NoUsableDocuments {
                file: self.file.clone(),
                documents: self.documents,
                min_sentences: self.min_sentences,
            });
        }
        Ok(Some(docs))
    }
}

/// Documents split into training and held-out sets, by document.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub train: Vec<Document>,
    pub heldout: Vec<Document>,
}

impl Corpus {
    /// Reads every source and splits by document. The split depends on the documents alone
    /// (the rule of `split`), not on a seed, so every variant and every seed of a grid is
    /// evaluated on the same held-out documents.
    pub fn load(
        sources: &[String],
        base_dir: &Path,
        format: CorpusFormat,
        min_sentences: usize,
        heldout_fraction: f64,
    ) -> Result<Self, CorpusError> {
        let mut docs = Vec::new();
        for s in sources {
            docs.extend(read_source(s, base_dir, format, min_sentences)?);
        }
        Self::split(docs, heldout_fraction)
    }

    /// Holds out an evenly spread fraction of the documents in reading order — the k-th when
    /// `round((k+1)·f) > round(k·f)`, the shard cache's rule (`cache::held_out`), so a corpus
    /// is split the same way read whole or cached — and at least one when `f > 0` and there
    /// are two or more documents. A document is never on both sides.
    pub fn split(docs: Vec<Document>, heldout_fraction: f64) -> Result<Self, CorpusError> {
        let total = docs.len();
        let mut held: Vec<bool> = (0..total)
            .map(|k| super::cache::held_out(k, heldout_fraction))
            .collect();
        if heldout_fraction > 0.0 && total >= 2 && !held.contains(&true) {
            held[total - 1] = true;
        }
        if held.iter().all(|&h| h) {
            return Err(CorpusError::NoTrainingDocuments {
                total,
                fraction: heldout_fraction,
            });
        }
        let (mut train, mut heldout) = (Vec::new(), Vec::new());
        for (d, h) in docs.into_iter().zip(held) {
            if h {
                heldout.push(d);
            } else {
                train.push(d);
            }
        }
        Ok(Self { train, heldout })
    }
}
