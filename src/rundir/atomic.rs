//! Whole-file writes that never leave a half-written file behind: the bytes go to a temporary
//! file beside the target (`name.tmp`; one writer per run directory is guaranteed by its
//! lock, and a temporary left by a killed writer is simply overwritten next time), are
//! synced, and are renamed over the target; a failed write removes its temporary file.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` so that `path` holds either its old content or all of `bytes`
/// (creating its folder if needed). A failed write (a full disk) removes its temporary file
/// and leaves `path` as it was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
