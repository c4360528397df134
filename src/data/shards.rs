//! Tokenised documents in shards. An in-memory corpus is one shard; a cached corpus
//! (`data.cache`) is many memory-mapped ones. The sampler draws instances one shard at a time,
//! so only one shard's instances are ever in memory, whatever the size of the corpus.
//!
//! A shard file is little-endian and laid out so that its arrays can be used in place:
//!
//! ```text
//! b"PTXSHRD1"                      magic, 8 bytes
//! u64 documents, sentences, tokens
//! u64 doc_start[documents + 1]     first sentence of each document
//! u64 sent_start[sentences + 1]    first token of each sentence
//! u32 tokens[tokens]
//! ```
//!
//! Every array starts at a multiple of 8 bytes, and a mapping starts on a page, so the arrays
//! are read as `&[u64]` / `&[u32]` without copying. The file's CRC-32 lives in the cache's
//! manifest (see `cache`).

use super::instances::TokenDoc;
use memmap2::Mmap;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"PTXSHRD1";
const HEADER: usize = 32;

/// One shard's documents, in memory or mapped from a file.
pub enum Shard {
    Memory(Vec<TokenDoc>),
    Mapped(MappedShard),
}

impl Shard {
    pub fn documents(&self) -> usize {
        match self {
            Shard::Memory(d) => d.len(),
            Shard::Mapped(m) => m.documents,
        }
    }

    /// Number of sentences of document `doc`.
    pub fn sentences(&self, doc: usize) -> usize {
        match self {
            Shard::Memory(d) => d[doc].len(),
            Shard::Mapped(m) => {
                let s = m.doc_start();
                (s[doc + 1] - s[doc]) as usize
            }
        }
    }

    /// Sentence `i` of document `doc`.
    pub fn sentence(&self, doc: usize, i: usize) -> &[u32] {
        match self {
            Shard::Memory(d) => &d[doc][i],
            Shard::Mapped(m) => {
                let first = m.doc_start()[doc] as usize + i;
                let s = m.sent_start();
                &m.tokens()[s[first] as usize..s[first + 1] as usize]
            }
        }
    }

    pub fn tokens(&self) -> usize {
        match self {
            Shard::Memory(d) => d.iter().flatten().map(Vec::len).sum(),
            Shard::Mapped(m) => m.tokens,
        }
    }
}

/// The shards of one split of a corpus, and a fingerprint that names its content: a resumed
/// run checks that it continues on the same data.
pub struct TokenCorpus {
    pub shards: Vec<Shard>,
    pub fingerprint: String,
}

impl TokenCorpus {
    pub fn documents(&self) -> usize {
        self.shards.iter().map(Shard::documents).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.documents() == 0
    }
    pub fn tokens(&self) -> usize {
        self.shards.iter().map(Shard::tokens).sum()
    }
}

impl From<Vec<TokenDoc>> for TokenCorpus {
    /// One in-memory shard, fingerprinted by a CRC-32 of its token ids and boundaries.
    fn from(docs: Vec<TokenDoc>) -> Self {
        let mut h = crc32fast::Hasher::new();
        for d in &docs {
            h.update(&(d.len() as u64).to_le_bytes());
            for s in d {
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(bytemuck::cast_slice(s));
            }
        }
        Self {
            fingerprint: format!("memory:{:08x}", h.finalize()),
            shards: vec![Shard::Memory(docs)],
        }
    }
}

/// A shard file mapped into memory, its header and offsets checked when opened.
pub struct MappedShard {
    map: Mmap,
    documents: usize,
    sentences: usize,
    tokens: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}; delete the cache folder to rebuild it")]
pub struct ShardError {
    pub file: PathBuf,
    pub reason: String,
}

impl MappedShard {
    fn doc_start(&self) -> &[u64] {
        bytemuck::cast_slice(&self.map[HEADER..HEADER + 8 * (self.documents + 1)])
    }
    fn sent_start(&self) -> &[u64] {
        let at = HEADER + 8 * (self.documents + 1);
        bytemuck::cast_slice(&self.map[at..at + 8 * (self.sentences + 1)])
    }
    fn tokens(&self) -> &[u32] {
        let at = HEADER + 8 * (self.documents + 1) + 8 * (self.sentences + 1);
        bytemuck::cast_slice(&self.map[at..at + 4 * self.tokens])
    }

    /// Maps `file`, checks its CRC-32 against `crc` and its offsets against its own counts,
    /// so that no later access can fall outside the file.
    pub fn open(file: &Path, crc: u32) -> Result<Self, ShardError> {
        let bad = |reason: String| ShardError {
            file: file.into(),
            reason,
        };
        if cfg!(target_endian = "big") {
            return Err(bad(
                "shard files are little-endian; this machine is not".into()
            ));
        }
        let f = std::fs::File::open(file).map_err(|e| bad(e.to_string()))?;
        // SAFETY: the cache's files are written once, renamed into place and never modified;
        // a file truncated by another process would be a bug outside this program, as with
        // any memory-mapped reader.
        let map = unsafe { Mmap::map(&f) }.map_err(|e| bad(format!("cannot map: {e}")))?;
        let actual = crc32fast::hash(&map);
        if actual != crc {
            return Err(bad(format!(
                "checksum mismatch (CRC-32 {actual:08x}, manifest says {crc:08x})"
            )));
        }
        if map.len() < HEADER || &map[..8] != MAGIC {
            return Err(bad("not a pretext shard file".into()));
        }
        let count = |i: usize| u64::from_le_bytes(map[8 + 8 * i..16 + 8 * i].try_into().unwrap());
        let (documents, sentences, tokens) = (count(0), count(1), count(2));
        let expected = (HEADER as u64)
            .checked_add(8u64.saturating_mul(documents.saturating_add(1)))
            .and_then(|n| n.checked_add(8u64.saturating_mul(sentences.saturating_add(1))))
            .and_then(|n| n.checked_add(4u64.saturating_mul(tokens)));
        if expected != Some(map.len() as u64) {
            return Err(bad(format!(
                "{} bytes for {documents} documents, {sentences} sentences and {tokens} tokens",
                map.len()
            )));
        }
        let shard = Self {
            map,
            documents: documents as usize,
            sentences: sentences as usize,
            tokens: tokens as usize,
        };
        let monotone = |v: &[u64], last: u64| {
            v.first() == Some(&0) && v.last() == Some(&last) && v.windows(2).all(|w| w[0] <= w[1])
        };
        if !monotone(shard.doc_start(), sentences) || !monotone(shard.sent_start(), tokens) {
            return Err(bad("its offsets are out of order".into()));
        }
        // The checks above touched every page. Hand them back, so the process holds only the
        // shard being sampled, not the whole cache (they stay in the page cache).
        #[cfg(unix)]
        // SAFETY: the mapping is shared and read-only, so dropping its pages loses nothing:
        // the next access reads the file again.
        let _ = unsafe {
            shard
                .map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
        Ok(shard)
    }
}

/// Writes documents as one shard file and returns its CRC-32 and size in bytes.
pub fn write_shard(file: &Path, docs: &[TokenDoc]) -> std::io::Result<(u32, u64)> {
    let sentences: usize = docs.iter().map(Vec::len).sum();
    let tokens: usize = docs.iter().flatten().map(Vec::len).sum();
    let mut out = CrcWriter {
        inner: std::io::BufWriter::new(std::fs::File::create(file)?),
        crc: crc32fast::Hasher::new(),
        bytes: 0,
    };
    out.write_all(MAGIC)?;
    for n in [docs.len(), sentences, tokens] {
        out.write_all(&(n as u64).to_le_bytes())?;
    }
    let mut at = 0u64;
    out.write_all(&at.to_le_bytes())?;
    for d in docs {
        at += d.len() as u64;
        out.write_all(&at.to_le_bytes())?;
    }
    at = 0;
    out.write_all(&at.to_le_bytes())?;
    for s in docs.iter().flatten() {
        at += s.len() as u64;
        out.write_all(&at.to_le_bytes())?;
    }
    for s in docs.iter().flatten() {
        for t in s {
            out.write_all(&t.to_le_bytes())?;
        }
    }
    let file = out.inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((out.crc.finalize(), out.bytes))
}

struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
