//! The shard cache (`data.cache = true`): a corpus read in blocks, tokenised once and written
//! as memory-mapped shards (see `shards`) that every run of a grid and every resume reads,
//! so a corpus larger than memory can be trained on and no run re-tokenises it.
//!
//! A cache folder is named after a CRC-32 of its key — the sources (path, size, modification
//! time), the reading settings, the shard size and the tokenizer's vocabulary — so a changed
//! corpus or tokenizer gets a new cache instead of stale data. It is built under a temporary
//! name and renamed into place with its `manifest.json` inside, so a cache folder is either
//! whole or absent; two runs that build it at once both succeed and one copy wins.
//!
//! The held-out split is by document, decided while streaming: the k-th usable document is
//! held out when `round((k + 1)·f)` exceeds `round(k·f)`, which spreads exactly a fraction `f`
//! evenly over the corpus. It depends on no seed, so every run of a grid (seeds included)
//! shares one cache and is evaluated on the same documents.

use super::corpus::{Blocks, CorpusError, Document};
use super::shards::{write_shard, MappedShard, Shard, ShardError, TokenCorpus};
use super::tokenizer::Tokenizer;
use super::TokenDoc;
use crate::config::{CorpusFormat, DataConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Bytes of text parsed at a time while streaming a source.
const BLOCK_BYTES: usize = 1 << 20;
/// 2: sentences longer than `layouts::MAX_SENTENCE_BYTES` are cut into pieces.
const VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> CacheError + '_ {
    move |e| CacheError::Io {
        path: path.into(),
        reason: e.to_string(),
    }
}

/// What a cache is built from; two caches with equal keys hold the same shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Key {
    version: u32,
    sources: Vec<SourceId>,
    format: CorpusFormat,
    min_sentences: usize,
    heldout_fraction: f64,
    shard_tokens: usize,
    tokenizer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SourceId {
    path: String,
    bytes: u64,
    modified_ns: u128,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardEntry {
    file: String,
    documents: usize,
    sentences: usize,
    tokens: usize,
    bytes: u64,
    crc32: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    key: Key,
    train: Vec<ShardEntry>,
    heldout: Vec<ShardEntry>,
}

/// A corpus from the cache.
pub struct Cached {
    pub train: TokenCorpus,
    pub heldout: TokenCorpus,
    pub train_sentences: usize,
    /// The cache folder, and whether this call built it.
    pub dir: PathBuf,
    pub built: bool,
}

/// Whether the k-th usable document is held out (see the module doc).
pub fn held_out(k: usize, fraction: f64) -> bool {
    ((k + 1) as f64 * fraction).round() > (k as f64 * fraction).round()
}

fn key(data: &DataConfig, base_dir: &Path, tokenizer: &Tokenizer) -> Result<Key, CacheError> {
    let mut sources = Vec::new();
    for s in &data.corpus {
        if s == "embedded" {
            sources.push(SourceId {
                path: format!(
                    "embedded:{:08x}",
                    crc32fast::hash(super::corpus::EMBEDDED.as_bytes())
                ),
                bytes: super::corpus::EMBEDDED.len() as u64,
                modified_ns: 0,
            });
            continue;
        }
        let path = base_dir.join(s);
        let meta = std::fs::metadata(&path).map_err(|e| CorpusError::Unreadable {
            file: path.clone(),
            reason: e.to_string(),
        })?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        sources.push(SourceId {
            path: path.display().to_string(),
            bytes: meta.len(),
            modified_ns,
        });
    }
    Ok(Key {
        version: VERSION,
        sources,
        format: data.format,
        min_sentences: data.min_sentences,
        heldout_fraction: data.heldout_fraction,
        shard_tokens: data.shard_tokens,
        tokenizer: tokenizer.fingerprint(),
    })
}

/// A source read in blocks with the experiment's settings: the two passes over a cached
/// corpus (tokenizer training, then shards) must see the same documents in the same order,
/// since the held-out rule counts them.
fn open_source(source: &str, data: &DataConfig, base_dir: &Path) -> Result<Blocks, CorpusError> {
    Blocks::open(
        source,
        base_dir,
        data.format,
        data.min_sentences,
        BLOCK_BYTES,
    )
}

/// The training split's sentences, streamed: what WordPiece is trained on when the corpus is
/// cached and no tokenizer is given. A read error ends the stream and is kept for the caller,
/// since the tokenizer trainer takes a plain iterator.
pub struct TrainingText<'a> {
    data: &'a DataConfig,
    base_dir: &'a Path,
    source: usize,
    blocks: Option<Blocks>,
    pending: std::vec::IntoIter<String>,
    documents: usize,
    pub error: Option<CorpusError>,
}

impl<'a> TrainingText<'a> {
    pub fn new(data: &'a DataConfig, base_dir: &'a Path) -> Self {
        Self {
            data,
            base_dir,
            source: 0,
            blocks: None,
            pending: Vec::new().into_iter(),
            documents: 0,
            error: None,
        }
    }

    fn refill(&mut self) -> Result<bool, CorpusError> {
        loop {
            if self.blocks.is_none() {
                let Some(s) = self.data.corpus.get(self.source) else {
                    return Ok(false);
                };
                self.source += 1;
                self.blocks = Some(open_source(s, self.data, self.base_dir)?);
            }
            let blocks = self.blocks.as_mut().expect("opened above");
            match blocks.next_block()? {
                None => self.blocks = None,
                Some(docs) => {
                    let mut text = Vec::new();
                    for d in docs {
                        if !held_out(self.documents, self.data.heldout_fraction) {
                            text.extend(d.sentences);
                        }
                        self.documents += 1;
                    }
                    self.pending = text.into_iter();
                    return Ok(true);
                }
            }
        }
    }
}

impl Iterator for TrainingText<'_> {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        loop {
            if let Some(s) = self.pending.next() {
                return Some(s);
            }
            if self.error.is_some() {
                return None;
            }
            match self.refill() {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(e) => {
                    self.error = Some(e);
                    return None;
                }
            }
        }
    }
}

/// Opens the cache of `data` under `root`, building it first if it does not exist.
pub fn open_or_build(
    data: &DataConfig,
    base_dir: &Path,
    root: &Path,
    tokenizer: &Tokenizer,
) -> Result<Cached, CacheError> {
    let key = key(data, base_dir, tokenizer)?;
    let name = format!(
        "{:08x}",
        crc32fast::hash(
            serde_json::to_string(&key)
                .expect("a key serialises")
                .as_bytes()
        )
    );
    let dir = root.join(&name);
    let mut built = false;
    if !dir.join("manifest.json").exists() {
        build(data, base_dir, root, &dir, &key, tokenizer)?;
        built = true;
    }
    let mut cached = open(&dir, &key)?;
    cached.built = built;
    Ok(cached)
}

fn open(dir: &Path, key: &Key) -> Result<Cached, CacheError> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| CacheError::Io {
        path: path.clone(),
        reason: format!("not a cache manifest ({e}); delete the cache folder to rebuild it"),
    })?;
    if &manifest.key != key {
        return Err(CacheError::Io {
            path,
            reason: "this folder holds the cache of other data (a CRC-32 collision of two cache \
                     keys); delete it to rebuild"
                .into(),
        });
    }
    let corpus = |entries: &[ShardEntry], split: &str| -> Result<TokenCorpus, CacheError> {
        let mut shards = Vec::new();
        let mut h = crc32fast::Hasher::new();
        for e in entries {
            let s = MappedShard::open(&dir.join(&e.file), e.crc32)?;
            h.update(&e.crc32.to_le_bytes());
            shards.push(Shard::Mapped(s));
        }
        Ok(TokenCorpus {
            shards,
            fingerprint: format!("cache:{split}:{:08x}", h.finalize()),
        })
    };
    Ok(Cached {
        train: corpus(&manifest.train, "train")?,
        heldout: corpus(&manifest.heldout, "heldout")?,
        train_sentences: manifest.train.iter().map(|e| e.sentences).sum(),
        dir: dir.into(),
        built: false,
    })
}

/// Documents of one split on their way into shard files.
struct SplitWriter {
    prefix: &'static str,
    docs: Vec<TokenDoc>,
    tokens: usize,
    entries: Vec<ShardEntry>,
}

impl SplitWriter {
    fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            docs: vec![],
            tokens: 0,
            entries: vec![],
        }
    }

    fn push(&mut self, doc: TokenDoc, dir: &Path, shard_tokens: usize) -> Result<(), CacheError> {
        self.tokens += doc.iter().map(Vec::len).sum::<usize>();
        self.docs.push(doc);
        if self.tokens >= shard_tokens {
            self.flush(dir)?;
        }
        Ok(())
    }

    fn flush(&mut self, dir: &Path) -> Result<(), CacheError> {
        if self.docs.is_empty() {
            return Ok(());
        }
        let file = format!("{}-{:05}.bin", self.prefix, self.entries.len());
        let path = dir.join(&file);
        let (crc32, bytes) = write_shard(&path, &self.docs).map_err(io_err(&path))?;
        self.entries.push(ShardEntry {
            file,
            documents: self.docs.len(),
            sentences: self.docs.iter().map(Vec::len).sum(),
            tokens: self.tokens,
            bytes,
            crc32,
        });
        self.docs.clear();
        self.tokens = 0;
        Ok(())
    }
}

/// Tokenises one block's documents in one batch (the tokenizer parallelises a batch) and
/// drops empty sentences and documents.
fn tokenize_block(tokenizer: &Tokenizer, docs: &[Document]) -> Vec<TokenDoc> {
    let sentences: Vec<String> = docs.iter().flat_map(|d| d.sentences.clone()).collect();
    let mut ids = tokenizer.encode_batch(&sentences).into_iter();
    docs.iter()
        .map(|d| {
            ids.by_ref()
                .take(d.sentences.len())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .collect()
}

fn build(
    data: &DataConfig,
    base_dir: &Path,
    root: &Path,
    dir: &Path,
    key: &Key,
    tokenizer: &Tokenizer,
) -> Result<(), CacheError> {
    std::fs::create_dir_all(root).map_err(io_err(root))?;
    static BUILDERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BUILDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root.join(format!(
        "{}.building-{}-{n}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = build_into(data, base_dir, &tmp, key, tokenizer).and_then(|()| {
        match std::fs::rename(&tmp, dir) {
            Ok(()) => Ok(()),
            // Another run finished the same cache first: theirs is as good as ours.
            Err(_) if dir.join("manifest.json").exists() => Ok(()),
            Err(e) => Err(io_err(dir)(e)),
        }
    });
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn build_into(
    data: &DataConfig,
    base_dir: &Path,
    tmp: &Path,
    key: &Key,
    tokenizer: &Tokenizer,
) -> Result<(), CacheError> {
    std::fs::create_dir_all(tmp).map_err(io_err(tmp))?;
    let mut train = SplitWriter::new("train");
    let mut heldout = SplitWriter::new("heldout");
    let mut k = 0;
    for source in &data.corpus {
        let mut blocks = open_source(source, data, base_dir)?;
        while let Some(docs) = blocks.next_block()? {
            for doc in tokenize_block(tokenizer, &docs) {
                let split = if held_out(k, data.heldout_fraction) {
                    &mut heldout
                } else {
                    &mut train
                };
                k += 1;
                if !doc.is_empty() {
                    split.push(doc, tmp, data.shard_tokens)?;
                }
            }
        }
    }
    train.flush(tmp)?;
    heldout.flush(tmp)?;
    if train.entries.is_empty() {
        return Err(CorpusError::NoTrainingDocuments {
            total: k,
            fraction: data.heldout_fraction,
        }
        .into());
    }
    let manifest = Manifest {
        key: key.clone(),
        train: train.entries,
        heldout: heldout.entries,
    };
    let path = tmp.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    let mut f = std::fs::File::create(&path).map_err(io_err(&path))?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io_err(&path))?;
    f.sync_all().map_err(io_err(&path))?;
    Ok(())
}
