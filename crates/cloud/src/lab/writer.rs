//! Writes a target disk into a lab cloud: blocks go into a sparse raw file in
//! `staging/`; finishing links (raw) or converts (qcow2 and others) it into
//! `disks/`. The staging file stays until cleanup, so a run killed at any
//! point can reopen it.

use crate::inventory::DiskFormat;
use crate::local_disk;
use crate::staging::{FinishStaged, StagedWriter, check_staging_id};
use crate::units::Bytes;
use crate::{CloudError, TargetDiskSpec, WrittenDisk};
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// Opens (or reopens, on resume) the writer of one lab target disk.
pub fn open(root: &Path, spec: &TargetDiskSpec) -> Result<StagedWriter, CloudError> {
    // The disk's name becomes file names in `staging/` and `disks/`.
    let name = crate::fsutil::file_name(&spec.name).map_err(|why| {
        CloudError::Permanent(format!(
            "disk name '{}': {why}",
            crate::text::safe(&spec.name)
        ))
    })?;
    let staging_id = spec.resume.clone().unwrap_or_else(|| format!("{name}.raw"));
    check_staging_id(&staging_id)?;
    let finish = LabFinish {
        root: root.to_path_buf(),
        name,
        format: spec.format,
        virtual_size: spec.virtual_size,
    };
    let path = root.join("staging").join(&staging_id);
    StagedWriter::open(&path, staging_id, spec.virtual_size, Box::new(finish))
}

/// Links (raw) or converts the staging file into `disks/`.
struct LabFinish {
    root: PathBuf,
    name: String,
    format: DiskFormat,
    virtual_size: Bytes,
}

#[async_trait]
impl FinishStaged for LabFinish {
    async fn finish(self: Box<Self>, staging: PathBuf) -> Result<WrittenDisk, CloudError> {
        let id = format!("disks/{}.{}", self.name, self.format.extension());
        let target = self.root.join(&id);
        let format = self.format;
        tokio::task::spawn_blocking(move || finish_file(&staging, &target, format))
            .await
            .map_err(|e| CloudError::Permanent(format!("finish task failed: {e}")))??;
        Ok(WrittenDisk {
            id,
            format: self.format,
            virtual_size: self.virtual_size,
        })
    }
}

fn finish_file(staging: &Path, target: &Path, format: DiskFormat) -> Result<(), CloudError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| CloudError::from_io(dir.display(), e))?;
    let partial = target.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    match format {
        // A hard link: instant, and the staging name survives for a resume.
        DiskFormat::Raw => std::fs::hard_link(staging, &partial)
            .map_err(|e| CloudError::from_io(partial.display(), e))?,
        other => local_disk::convert(staging, DiskFormat::Raw, &partial, other)?,
    }
    std::fs::rename(&partial, target).map_err(|e| CloudError::from_io(target.display(), e))?;
    crate::fsutil::sync_dir(dir).map_err(|e| CloudError::from_io(dir.display(), e))
}
