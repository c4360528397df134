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
    write_via(&path.with_extension("tmp"), path, bytes)
}

/// [`write_atomically`] for a file that several processes may write at once (the experiment
/// folder's `command.txt`, written by every array task of a Slurm sweep): each writes its own
/// temporary file (named after its process and a counter) and the last rename wins, so no writer can rename
/// away another's temporary file.
pub fn write_shared(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    write_via(&tmp, path, bytes)
}

fn write_via(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // The rename replaces whatever `path` is. Over a device or a FIFO that would take it out
    // of the file system: `--out /dev/null` run as root replaced the machine's /dev/null
    // with a regular file. Only a regular file (or a link, which is replaced itself) is.
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.is_file() && !m.file_type().is_symlink() {
            let what = if m.is_dir() {
                "a folder"
            } else {
                "a device, a FIFO or a socket"
            };
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{what}, not a file: pretext writes files whole and would replace it"),
            ));
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // "File exists" is what making a folder under a file says; name the file instead.
    if let Some(file) = crate::files::file_in_the_way(dir) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a folder", file.display()),
        ));
    }
    std::fs::create_dir_all(dir)?;
    let written = (|| {
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A FIFO (as a device would be, run as root) is refused, not renamed over; a regular
    /// file is replaced whole.
    #[test]
    fn only_a_regular_file_is_replaced() {
        let dir = std::env::temp_dir().join(format!("pretext-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        crate::files::mkfifo(&fifo);
        let e = super::write_atomically(&fifo, b"x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a device, a FIFO or a socket"), "{e}");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        let e = super::write_atomically(&dir, b"x").unwrap_err().to_string();
        assert!(e.contains("a folder"), "{e}");
        let file = dir.join("f");
        std::fs::write(&file, "old").unwrap();
        let e = super::write_atomically(&file.join("g"), b"x")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("/f is not a folder"), "{e}");
        super::write_atomically(&file, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Writers of one shared file never break each other (the fixed temporary name of
    /// `write_atomically` made the second rename fail when Slurm tasks started together).
    #[test]
    fn concurrent_shared_writers_all_succeed() {
        let dir = std::env::temp_dir().join(format!("pretext-shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("command.txt");
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let path = &path;
                    s.spawn(move || {
                        for _ in 0..50 {
                            super::write_shared(path, format!("writer {i}").as_bytes()).unwrap();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        });
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("writer "));
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary files were left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
