//! Reading an experiment file: what a careless path gets instead of a hang or an abort. A
//! device (`/dev/zero` never ends, `/dev/null` would pass for an empty experiment of
//! defaults) or a socket is refused; a pipe (`pretext run <(generate-experiment)`) is read;
//! anything is read only up to [`MAX_BYTES`], far above any real experiment.

use std::io::Read;
use std::path::Path;

/// The largest experiment file read (the committed ones are a few KiB).
pub const MAX_BYTES: u64 = 16 << 20;

/// The file's text, or why it cannot be an experiment file.
pub fn read(path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read the experiment file: {e}"))?;
    let kind = meta.file_type();
    #[cfg(unix)]
    let pipe = std::os::unix::fs::FileTypeExt::is_fifo(&kind);
    #[cfg(not(unix))]
    let pipe = false;
    if kind.is_dir() {
        return Err("is a directory; give the experiment's .toml file".into());
    }
    if !kind.is_file() && !pipe {
        return Err(
            "not a regular file (a device or a socket); give the experiment's .toml file".into(),
        );
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read the experiment file: {e}"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!(
            "more than {} MiB: not an experiment file (they are a few KiB)",
            MAX_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (byte {} of the file): an experiment file is TOML",
            e.utf8_error().valid_up_to()
        )
    })
}
