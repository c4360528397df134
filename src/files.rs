//! Reading a file whose path the user gave: `std::fs::read` and friends, but refusing what is
//! not a regular file before opening it. Opening a FIFO waits for a writer that may never
//! come (a hang), `/dev/zero` and `/dev/urandom` never end (memory runs out and the process
//! aborts), and a folder's error ("Is a directory") depends on the call. Each wrapper fails
//! with an `io::Error` saying what the path is instead, so the callers' messages, which name
//! the file, stay as they are.
//!
//! The experiment file is read by `config::file`, which accepts a pipe on purpose
//! (`pretext run <(generate-experiment)`); corpora by `data::sources::open`.

use std::io;
use std::path::Path;

/// `Ok` for a regular file (or a link to one); an error naming what the path is otherwise.
pub fn regular(path: &Path) -> io::Result<()> {
    let kind = std::fs::metadata(path)?.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "a folder"
    } else if is_fifo(&kind) {
        "a FIFO (pretext reads files, not streams: save it to a file first)"
    } else {
        "a device or a socket"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file: {what}"),
    ))
}

#[cfg(unix)]
fn is_fifo(kind: &std::fs::FileType) -> bool {
    std::os::unix::fs::FileTypeExt::is_fifo(kind)
}

#[cfg(not(unix))]
fn is_fifo(_: &std::fs::FileType) -> bool {
    false
}

/// `std::fs::read`, for a regular file only.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    regular(path)?;
    std::fs::read(path)
}

/// `std::fs::read_to_string`, for a regular file only.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    regular(path)?;
    std::fs::read_to_string(path)
}

/// Checks, before any work, that `path` can be (or already is) a folder: the nearest part
/// of it that exists must be a folder. `--reports-dir notes.txt` was found out only after
/// training, as "notes.txt/exp: Not a directory"; `report --out notes.txt` said "File exists".
/// The error is the reason, for the caller to put after the path.
pub fn folder_possible(path: &Path, flag: &str) -> Result<(), String> {
    match file_in_the_way(path) {
        Some(a) => Err(if a == path {
            format!("not a folder; {flag} takes a folder")
        } else {
            format!(
                "{} is not a folder, so {flag} cannot be one inside it",
                a.display()
            )
        }),
        _ => Ok(()),
    }
}

/// The nearest part of `path` (itself or a folder above it) that exists, if it is not a
/// folder: what stops `path` from being made as a folder. The one search behind
/// [`folder_possible`], `tokenizer train --out`'s check and the whole-file writes'.
pub fn file_in_the_way(path: &Path) -> Option<&Path> {
    path.ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.exists())
        .filter(|a| !a.is_dir())
}

/// [`folder_possible`] as an error that names the path.
pub fn need_folder(path: &Path, flag: &str) -> anyhow::Result<()> {
    folder_possible(path, flag).map_err(|r| anyhow::anyhow!("{}: {r}", path.display()))
}

/// Makes a FIFO at `path`, for the tests of what must never open one.
#[cfg(all(test, unix))]
pub(crate) fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file_without_opening_it() {
        let dir = std::env::temp_dir().join(format!("pretext-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, "text").unwrap();
        assert_eq!(read_to_string(&file).unwrap(), "text");
        let folder = read(&dir).unwrap_err().to_string();
        assert!(folder.contains("a folder"), "{folder}");
        let dev = read(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(dev.contains("a device"), "{dev}");
        assert_eq!(
            read(&dir.join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        #[cfg(unix)]
        {
            let fifo = dir.join("fifo");
            mkfifo(&fifo);
            // Would wait for a writer forever if it were opened.
            let e = read(&fifo).unwrap_err().to_string();
            assert!(e.contains("a FIFO"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_folder_under_a_file_is_impossible() {
        let dir = std::env::temp_dir().join(format!("pretext-folders-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("notes.txt");
        std::fs::write(&file, "x").unwrap();
        assert!(folder_possible(&dir, "--out").is_ok());
        assert!(folder_possible(&dir.join("new/deeper"), "--out").is_ok());
        assert!(folder_possible(Path::new("relative-new"), "--out").is_ok());
        let e = folder_possible(&file, "--out").unwrap_err();
        assert_eq!(e, "not a folder; --out takes a folder");
        let e = need_folder(&file.join("exp"), "--reports-dir")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("notes.txt/exp: ")
                && e.contains("notes.txt is not a folder, so --reports-dir"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
