//! Corpus sources as users have them: glob patterns (`wiki/*/wiki_*`, `books/*.txt`) expanded
//! into files in a stable order, and files opened through gzip when they are compressed, so
//! every reader (whole-file, block-wise for the shard cache, the tokenizer trainer) sees plain
//! text whatever the file on disk is.

use super::corpus::CorpusError;
use crate::config::DataConfig;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

/// Whether a corpus entry is a glob pattern rather than one file's path.
pub fn is_pattern(entry: &str) -> bool {
    entry.contains(['*', '?', '['])
}

/// The files `entries` name, in order: `embedded` and plain paths as they are, each pattern
/// (relative to `base_dir`) replaced by its matches, as absolute paths in lexical order. A
/// pattern that matches no file, or is malformed, is an error naming it.
pub fn expand(entries: &[String], base_dir: &Path) -> Result<Vec<String>, CorpusError> {
    let mut out = Vec::new();
    for entry in entries {
        if entry == "embedded" || !is_pattern(entry) {
            out.push(entry.clone());
            continue;
        }
        let full = base_dir.join(entry);
        let bad = |reason: String| CorpusError::Pattern {
            pattern: full.display().to_string(),
            reason,
        };
        let paths = glob::glob(&full.to_string_lossy()).map_err(|e| bad(e.to_string()))?;
        let mut files: Vec<PathBuf> = Vec::new();
        for p in paths {
            let p = p.map_err(|e| bad(e.to_string()))?;
            if p.is_file() {
                files.push(std::path::absolute(&p).unwrap_or(p));
            }
        }
        if files.is_empty() {
            return Err(bad("it matches no file".into()));
        }
        files.sort();
        out.extend(files.into_iter().map(|p| p.to_string_lossy().into_owned()));
    }
    Ok(out)
}

/// `data` with its corpus patterns expanded: what every reader and the shard cache's key use,
/// so a file that starts matching a pattern makes a new cache.
pub fn expanded(data: &DataConfig, base_dir: &Path) -> Result<DataConfig, CorpusError> {
    Ok(DataConfig {
        corpus: expand(&data.corpus, base_dir)?,
        ..data.clone()
    })
}

/// Whether `path` holds gzip data: its first two bytes are gzip's magic number.
fn is_gzip(path: &Path) -> std::io::Result<bool> {
    let mut magic = [0u8; 2];
    let mut f = std::fs::File::open(path)?;
    let mut got = 0;
    while got < 2 {
        match f.read(&mut magic[got..])? {
            0 => return Ok(false),
            n => got += n,
        }
    }
    Ok(magic == [0x1f, 0x8b])
}

/// A reader of `path`'s text: decompressed when the file is gzip (whatever its name), with
/// read errors naming the file.
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, CorpusError> {
    let unreadable = |e: std::io::Error| CorpusError::Unreadable {
        file: path.into(),
        reason: e.to_string(),
    };
    crate::files::regular(path).map_err(unreadable)?;
    let gz = is_gzip(path).map_err(unreadable)?;
    let f = std::fs::File::open(path).map_err(unreadable)?;
    Ok(if gz {
        Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
            f,
        )))
    } else {
        Box::new(std::io::BufReader::new(f))
    })
}

/// The whole (decompressed) content of `path`.
pub fn read_all(path: &Path) -> Result<Vec<u8>, CorpusError> {
    let mut bytes = Vec::new();
    open(path)?
        .read_to_end(&mut bytes)
        .map_err(|e| CorpusError::Unreadable {
            file: path.into(),
            reason: e.to_string(),
        })?;
    Ok(bytes)
}
