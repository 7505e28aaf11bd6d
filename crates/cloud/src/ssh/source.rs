//! An SSH host as a source: its device is read live (no snapshot exists on
//! a plain host), through the agent or `dd`.

use super::SshCloud;
use crate::inventory::DiskFormat;
use crate::units::Bytes;
use crate::{Capability, CloudError, DiskReader, DiskRef, SnapshotRef, Source};
use async_trait::async_trait;

#[async_trait]
impl Source for SshCloud {
    /// A live device has no snapshot here: the pass reads it as it is (a
    /// delta pass after quiescing makes the copy consistent).
    /// The approved plan's first change on the host happens here: the agent
    /// is copied (the plan lists it as "install agent"), in a folder named
    /// after the plan.
    async fn snapshot_disk(
        &self,
        cap: &Capability,
        disk: &DiskRef,
        _name: &str,
    ) -> Result<SnapshotRef, CloudError> {
        if disk.disk_id != "disk-0" {
            return Err(CloudError::NotFound(format!(
                "disk {} of {}",
                disk.disk_id, disk.instance_id
            )));
        }
        self.note_plan(cap);
        let facts = self.facts().await?;
        self.stream_mode().await?;
        Ok(SnapshotRef {
            id: self.settings.device.clone(),
            virtual_size: Bytes(facts.size),
            format: DiskFormat::Raw,
            created_by_run: false,
        })
    }

    async fn open_disk_reader(
        &self,
        _snapshot: &SnapshotRef,
    ) -> Result<Box<dyn DiskReader>, CloudError> {
        Ok(Box::new(self.open_stream_reader().await?))
    }
}
