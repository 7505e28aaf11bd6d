//! A throwaway qcow2 overlay over a disk: writes (preparation for a
//! rehearsal) land in the overlay, the disk under it is only read. The
//! overlay file is removed when the value is dropped.

use super::{GuestError, require, run};
use crate::inventory::DiskFormat;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Overlay {
    path: PathBuf,
}

impl Overlay {
    /// Creates `path` as a qcow2 overlay backed by `base` (read-only to it).
    pub fn create(base: &Path, format: DiskFormat, path: &Path) -> Result<Overlay, GuestError> {
        let qemu_img = require("qemu-img", "qemu-utils")?;
        // The backing path is stored in the overlay: absolute, so it resolves
        // from anywhere.
        let base = std::fs::canonicalize(base).map_err(super::io(base))?;
        let _ = std::fs::remove_file(path);
        let overlay = Overlay {
            path: path.to_path_buf(),
        };
        run(std::process::Command::new(qemu_img)
            .args([
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                format.qemu_name(),
                "-b",
            ])
            .arg(&base)
            .arg(path))?;
        Ok(overlay)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        // Best effort: a leftover overlay in the rehearsal folder is harmless.
        let _ = std::fs::remove_file(&self.path);
    }
}
