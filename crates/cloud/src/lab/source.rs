//! The lab as a source: a snapshot is a copy of the disk image in
//! `snapshots/`, read back like any local image.

use super::LabCloud;
use crate::local_disk::{self, LocalDiskReader};
use crate::{Capability, CloudError, DiskReader, DiskRef, SnapshotRef, Source};
use async_trait::async_trait;

#[async_trait]
impl Source for LabCloud {
    fn local_disk(
        &self,
        instance_id: &str,
        disk_id: &str,
    ) -> Option<(std::path::PathBuf, crate::inventory::DiskFormat)> {
        let instance = self
            .instances()
            .ok()?
            .into_iter()
            .find(|i| i.id == instance_id)?;
        let disk = instance.disks.into_iter().find(|d| d.id == disk_id)?;
        Some((self.root.join(disk.file), disk.format))
    }

    fn prepares_snapshots(&self) -> bool {
        true
    }

    fn local_snapshot(&self, snapshot: &SnapshotRef) -> Option<std::path::PathBuf> {
        // One the operator made (`source_snapshot`) is theirs, not ours.
        if !snapshot.created_by_run {
            return None;
        }
        self.resource_path("snapshots", &snapshot.id).ok()
    }

    async fn snapshot_disk(
        &self,
        _cap: &Capability,
        disk: &DiskRef,
        name: &str,
    ) -> Result<SnapshotRef, CloudError> {
        let manifest = self.find_disk(disk)?;
        let source = self.root.join(&manifest.file);
        let file = crate::fsutil::file_name(name).map_err(|why| {
            CloudError::Permanent(format!(
                "snapshot name '{}': {why}",
                crate::text::safe(name)
            ))
        })?;
        let id = format!("{file}.{}", manifest.format.extension());
        let target = self.resource_path("snapshots", &id)?;
        if !target.exists() {
            std::fs::create_dir_all(self.root.join("snapshots"))
                .map_err(|e| CloudError::from_io("snapshots", e))?;
            let (src, dst) = (source.clone(), target.clone());
            let copied = tokio::task::spawn_blocking(move || local_disk::sparse_copy(&src, &dst))
                .await
                .map_err(|e| CloudError::Permanent(format!("snapshot task failed: {e}")))?
                .map_err(|e| {
                    CloudError::from_io(format!("snapshot of disk {}", source.display()), e)
                })?;
            tracing::debug!(snapshot = %id, data = %copied.bytes, method = ?copied.method, "lab snapshot");
        }
        Ok(SnapshotRef {
            id,
            virtual_size: manifest.virtual_size,
            format: manifest.format,
            created_by_run: true,
        })
    }

    async fn open_disk_reader(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn DiskReader>, CloudError> {
        let path = self.resource_path("snapshots", &snapshot.id)?;
        Ok(Box::new(LocalDiskReader::open(&path, snapshot.format)?))
    }
}
