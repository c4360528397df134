//! Locks. One process per run directory ([`RunLock`]); one process at a time making what an
//! experiment's runs share ([`ExperimentLock`]).
//!
//! One process per run directory. Two processes training the same run would interleave their
//! writes to metrics.jsonl, the event files and the checkpoint; the second one is refused.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Held while a run trains; the lock file is removed on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{dir}: another pretext process (pid {pid}) is training this run; wait for it or stop it"
    )]
    Busy { dir: PathBuf, pid: u32 },
    #[error("{dir}: cannot take the run lock: {reason}")]
    Io { dir: PathBuf, reason: String },
}

fn alive(pid: u32) -> bool {
    // Linux: a live process has /proc/<pid>. Elsewhere, assume alive (refuse rather than risk).
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

impl RunLock {
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(".lock");
        let io = |e: std::io::Error| LockError::Io {
            dir: dir.into(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id()).map_err(io)?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match pid {
                        Some(pid) if pid != std::process::id() && alive(pid) => {
                            return Err(LockError::Busy {
                                dir: dir.into(),
                                pid,
                            })
                        }
                        // A stale lock from a process that died (killed, crashed): take it over.
                        _ => std::fs::remove_file(&path).map_err(io)?,
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(LockError::Io {
            dir: dir.into(),
            reason: "the lock file keeps reappearing".into(),
        })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The experiment folder's lock for what its runs share (`tokenizer.json`): held while one
/// process looks for the shared file and, if it is missing, makes it. A second process waits
/// rather than failing, then finds the file made. It is an advisory `flock` on
/// `<experiment>/.shared.lock`, which the kernel releases when the holder dies, so a killed
/// run never leaves it stuck.
#[derive(Debug)]
pub struct ExperimentLock {
    _file: std::fs::File,
}

impl ExperimentLock {
    /// Blocks until the lock of `exp_dir` is ours.
    pub fn acquire(exp_dir: &Path) -> Result<Self, LockError> {
        let io = |e: std::io::Error| LockError::Io {
            dir: exp_dir.into(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(exp_dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(exp_dir.join(".shared.lock"))
            .map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            loop {
                // SAFETY: flock on a descriptor this function owns; no memory is involved.
                let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
                if r == 0 {
                    break;
                }
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(io(e));
                }
            }
        }
        Ok(Self { _file: file })
    }
}
