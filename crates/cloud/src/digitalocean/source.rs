//! DigitalOcean as a source: a droplet's disks are read live over SSH
//! (DigitalOcean has no snapshot download), each volume through its own
//! device link. Cutover: the delta passes and the quiesce go through the
//! droplet's SSH source; the power-off is DigitalOcean's own `shutdown`
//! action, which the API confirms (an SSH `poweroff` would only cut the
//! connection).

use super::volumes::parse_snapshot_id;
use super::{DigitalOceanCloud, snapshot_id};
use crate::block::BlockDigest;
use crate::inventory::DiskFormat;
use crate::units::BlockIndex;
use crate::{
    Capability, Cloud, CloudError, CutoverSource, DiskReader, DiskRef, SnapshotRef, Source,
};
use async_trait::async_trait;
use std::collections::BTreeMap;

#[async_trait]
impl Source for DigitalOceanCloud {
    /// No snapshot download exists: the disk is read live over SSH.
    async fn snapshot_disk(
        &self,
        _cap: &Capability,
        disk: &DiskRef,
        _name: &str,
    ) -> Result<SnapshotRef, CloudError> {
        let device = self.device_of(disk).await?;
        let source = self.source_for(&disk.instance_id, &device).await?;
        let facts = source.inventory().await?;
        let size = facts
            .instances
            .first()
            .and_then(|i| i.disks.first())
            .map(|d| d.virtual_size)
            .unwrap_or_default();
        Ok(SnapshotRef {
            id: snapshot_id(&disk.instance_id, &device, &self.boot_device()),
            virtual_size: size,
            format: DiskFormat::Raw,
            created_by_run: false,
        })
    }

    async fn open_disk_reader(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn DiskReader>, CloudError> {
        let Some((instance, device)) = parse_snapshot_id(&snapshot.id, &self.boot_device()) else {
            return Err(CloudError::Unsupported(format!(
                "DigitalOcean snapshots cannot be downloaded ({}); read the droplet over SSH",
                snapshot.id
            )));
        };
        let source = self.source_for(instance, &device).await?;
        Ok(Box::new(source.open_stream_reader().await?))
    }
}

#[async_trait]
impl CutoverSource for DigitalOceanCloud {
    async fn cutover_support(&self, instance: &str) -> Result<(), CloudError> {
        self.source_for(instance, &self.boot_device())
            .await?
            .cutover_support(instance)
            .await
    }

    async fn open_delta_reader(
        &self,
        snapshot: &SnapshotRef,
        previous: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        let Some((instance, device)) = parse_snapshot_id(&snapshot.id, &self.boot_device()) else {
            return Ok(None);
        };
        let source = self.source_for(instance, &device).await?;
        CutoverSource::open_delta_reader(&*source, snapshot, previous).await
    }

    async fn quiesce(
        &self,
        cap: &Capability,
        instance: &str,
        command: Option<&str>,
        thaw: Option<&str>,
    ) -> Result<(), CloudError> {
        let source = self.source_for(instance, &self.boot_device()).await?;
        CutoverSource::quiesce(&*source, cap, instance, command, thaw).await
    }

    async fn thaw(
        &self,
        cap: &Capability,
        instance: &str,
        command: Option<&str>,
    ) -> Result<(), CloudError> {
        let source = self.source_for(instance, &self.boot_device()).await?;
        CutoverSource::thaw(&*source, cap, instance, command).await
    }

    async fn power_off(&self, cap: &Capability, instance: &str) -> Result<(), CloudError> {
        let source = self.source_for(instance, &self.boot_device()).await?;
        source.remove_agent_before_power_off().await?;
        self.shutdown_droplet(cap, instance).await
    }
}
