//! Reading an experiment file: what a careless path gets instead of a hang or an abort. A
//! device (`/dev/zero` never ends, `/dev/null` would pass for an empty experiment of
//! defaults) or a socket is refused; a pipe (`pretext run <(generate-experiment)`) is read,
//! and a named one that nobody writes to yet is waited for with a line that says so (opening
//! it would otherwise wait in silence); anything is read only up to [`MAX_BYTES`], far above
//! any real experiment.

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
    let open: fn(&Path) -> std::io::Result<std::fs::File> = if pipe {
        open_pipe
    } else {
        |p| std::fs::File::open(p)
    };
    open(path)
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

/// How long a pipe may stay silent before the wait is announced.
const QUIET_WAIT_MS: i32 = 2000;

/// Opens a FIFO for reading without blocking in `open` (which waits for a writer), says so on
/// stderr if nothing arrives within [`QUIET_WAIT_MS`], then waits and returns it in blocking
/// mode.
#[cfg(unix)]
fn open_pipe(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let mut poll = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let mut timeout = QUIET_WAIT_MS;
    loop {
        // SAFETY: one valid pollfd for an open descriptor.
        match unsafe { libc::poll(&mut poll, 1, timeout) } {
            0 => {
                eprintln!(
                    "{}: a pipe nobody writes to yet; waiting for its writer (Ctrl-C to stop)",
                    path.display()
                );
                timeout = -1;
            }
            n if n > 0 => break,
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    // SAFETY: fcntl on an open descriptor, clearing one status flag.
    unsafe {
        let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
    Ok(f)
}

#[cfg(not(unix))]
fn open_pipe(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}
