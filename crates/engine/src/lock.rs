//! One engine per run folder: an exclusive `flock` on `engine.lock`, held for
//! the run's whole life. A second `apply` (or a console, or `cleanup`) for
//! the same plan is refused instead of writing the same journal twice; the
//! kernel drops the lock when the holder dies, even by `kill -9`.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Held while a run is being carried out; released on drop.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the run in {dir} is being carried out by another process (see `altishift runs`; `altishift attach` shows it)"
    )]
    Busy { dir: String },
    #[error("{path}: cannot lock: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub fn lock_path(run_dir: &Path) -> PathBuf {
    run_dir.join("engine.lock")
}

impl RunLock {
    /// Takes the run folder's lock without waiting.
    pub fn acquire(run_dir: &Path) -> Result<RunLock, LockError> {
        let path = lock_path(run_dir);
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        crate::fsutil::create_private_dir_all(run_dir).map_err(io)?;
        let file = crate::fsutil::open_private_append(&path).map_err(io)?;
        // SAFETY: flock on a descriptor we own and keep open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                LockError::Busy {
                    dir: run_dir.display().to_string(),
                }
            } else {
                io(err)
            });
        }
        Ok(RunLock { _file: file })
    }

    /// Whether some process holds the run folder's lock right now.
    pub fn held(run_dir: &Path) -> bool {
        let Ok(file) = File::open(lock_path(run_dir)) else {
            return false;
        };
        // SAFETY: as above; a successful probe is released at once.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if taken {
            // SAFETY: unlocking what this call just locked.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        }
        !taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!RunLock::held(dir.path()));
        let first = RunLock::acquire(dir.path()).unwrap();
        assert!(RunLock::held(dir.path()));
        let second = RunLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(second, LockError::Busy { .. }), "{second}");
        assert!(second.to_string().contains("altishift runs"));
        drop(first);
        assert!(!RunLock::held(dir.path()));
        RunLock::acquire(dir.path()).unwrap();
    }
}
