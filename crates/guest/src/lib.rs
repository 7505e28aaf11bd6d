//! What is inside a boot disk, and whether it boots: the lab's bootable
//! guest (`build`), a local boot rehearsal in QEMU (`rehearse`), read-only
//! inspection (`inspect`) and preparation for the target (`prepare`), the
//! last two through libguestfs.

pub mod build;
pub mod cpio;
pub mod fish;
pub mod inspect;
pub mod overlay;
mod parse;
pub mod prepare;
pub mod rehearse;
pub mod verify;

// The model, under the names this crate's modules use (`crate::inventory`…).
use altishift_model::{child, inventory, plan, text, units};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// A program or file the work needs is not on this machine.
    #[error("{what} not found: install the Debian package {package}")]
    Missing { what: String, package: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed: {detail}")]
    Command { program: String, detail: String },
    #[error("{0}")]
    Other(String),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GuestError + '_ {
    move |source| GuestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The full path of `program` on PATH (or in the sbin folders, which a
/// non-login root shell may lack), or an error naming its Debian package.
pub fn require(program: &str, package: &'static str) -> Result<PathBuf, GuestError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(GuestError::Missing {
        what: format!("program '{program}'"),
        package,
    })
}

/// Runs a command to completion; a non-zero exit is an error carrying its
/// stderr.
pub(crate) fn run(command: &mut std::process::Command) -> Result<Vec<u8>, GuestError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().map_err(|e| GuestError::Command {
        program: program.clone(),
        detail: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(GuestError::Command {
            program,
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(output.stdout)
}
