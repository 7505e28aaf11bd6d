//! Writes a target disk into a lab cloud: blocks go into a sparse raw file in
//! `staging/`; finishing links (raw) or converts (qcow2 and others) it into
//! `disks/`. The staging file stays until cleanup, so a run killed at any
//! point can reopen it.

use crate::block::BlockDigest;
use crate::cloud::local_disk::{self, SparseFileWriter};
use crate::cloud::{CloudError, DiskWriter, TargetDiskSpec, WriteOrder, WrittenDisk};
use crate::inventory::DiskFormat;
use crate::units::{BlockIndex, Bytes};
use async_trait::async_trait;
use std::path::{Path, PathBuf};

pub struct LabDiskWriter {
    staging_id: String,
    staging: SparseFileWriter,
    root: PathBuf,
    name: String,
    format: DiskFormat,
    virtual_size: Bytes,
}

impl LabDiskWriter {
    pub fn open(root: &Path, spec: &TargetDiskSpec) -> Result<LabDiskWriter, CloudError> {
        if spec.name.contains('/') || spec.name.contains("..") {
            return Err(CloudError::Permanent(format!(
                "invalid disk name '{}'",
                spec.name
            )));
        }
        let staging_id = spec
            .resume
            .clone()
            .unwrap_or_else(|| format!("{}.raw", spec.name));
        let path = root.join("staging").join(&staging_id);
        let staging = SparseFileWriter::create_or_open(&path, spec.virtual_size)
            .map_err(|e| CloudError::from_io(format!("staging {}", path.display()), e))?;
        Ok(LabDiskWriter {
            staging_id,
            staging,
            root: root.to_path_buf(),
            name: spec.name.clone(),
            format: spec.format,
            virtual_size: spec.virtual_size,
        })
    }
}

#[async_trait]
impl DiskWriter for LabDiskWriter {
    fn order(&self) -> WriteOrder {
        WriteOrder::Any
    }

    fn staging_id(&self) -> String {
        self.staging_id.clone()
    }

    async fn write_block(
        &self,
        index: BlockIndex,
        data: &[u8],
        _digest: BlockDigest,
    ) -> Result<(), CloudError> {
        self.staging.write_block(index, data).await
    }

    async fn flush(&self) -> Result<(), CloudError> {
        self.staging.sync().await
    }

    async fn finish(self: Box<Self>, _blocks_written: u64) -> Result<WrittenDisk, CloudError> {
        self.staging.sync().await?;
        let id = format!("disks/{}.{}", self.name, self.format.extension());
        let target = self.root.join(&id);
        let staging = self.staging.path().to_path_buf();
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
