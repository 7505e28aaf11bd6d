//! Cutover on a CloudStack source: the VM keeps running while successive
//! volume snapshots are taken, each turned into a volume and extracted
//! (source.rs). CloudStack lists no changed blocks between snapshots, so a
//! delta pass reads the extracted copy and sends the blocks whose digest
//! differs from what the target holds. Before the final snapshot the VM is
//! stopped with `stopVirtualMachine` (an approved step): the API reaches no
//! guest to freeze its filesystems.

use super::CloudStackCloud;
use super::inventory::text;
use crate::block::BlockDigest;
use crate::delta::HashedDelta;
use crate::inventory::declared::{ProviderRules, SourceRules, TargetRules};
use crate::units::BlockIndex;
use crate::{Capability, CloudError, CutoverSource, DiskReader, SnapshotRef, Source};
use async_trait::async_trait;
use std::collections::BTreeMap;

/// What CloudStack declares for plans: a cutover stops the VM.
pub fn rules() -> ProviderRules {
    ProviderRules {
        source: SourceRules {
            quiesce: Some(
                "stops the VM (CloudStack stopVirtualMachine) so the final snapshot holds every \
                 write"
                    .into(),
            ),
            ..SourceRules::default()
        },
        target: TargetRules {
            guest: crate::virtio_guest("CloudStack"),
            ..TargetRules::default()
        },
    }
}

impl CloudStackCloud {
    /// The VM's `state` (Running, Stopped, …) from listVirtualMachines.
    async fn vm_state(&self, id: &str) -> Result<String, CloudError> {
        let list = self
            .client
            .list_all(
                "listVirtualMachines",
                "virtualmachine",
                &[("id", id.to_string()), ("listall", "true".into())],
            )
            .await?;
        let vm = list.into_iter().next().ok_or_else(|| {
            CloudError::NotFound(format!("virtual machine {id} in {}", self.name))
        })?;
        Ok(text(&vm, "state"))
    }

    /// Read-only: whether the VM can be a cutover source (it exists).
    pub async fn cutover_check(&self, instance: &str) -> Result<(), CloudError> {
        self.vm_state(instance).await.map(|_| ())
    }

    /// Source: stops the VM (stopVirtualMachine, not forced: the guest
    /// shuts down cleanly) and checks that it is Stopped. A stopped VM is
    /// left alone.
    pub async fn stop_vm(&self, _cap: &Capability, instance: &str) -> Result<(), CloudError> {
        if self.vm_state(instance).await? == "Stopped" {
            return Ok(());
        }
        self.client
            .call_async("stopVirtualMachine", &[("id", instance.to_string())])
            .await?;
        match self.vm_state(instance).await?.as_str() {
            "Stopped" => Ok(()),
            other => Err(CloudError::Permanent(format!(
                "{}: stopVirtualMachine {instance} finished but the VM is {other}",
                self.name
            ))),
        }
    }

    /// Source: starts a stopped VM again (a cutover that leaves the source
    /// running, or one that failed after the stop).
    pub async fn start_vm(&self, _cap: &Capability, instance: &str) -> Result<(), CloudError> {
        if self.vm_state(instance).await? == "Running" {
            return Ok(());
        }
        self.client
            .call_async("startVirtualMachine", &[("id", instance.to_string())])
            .await?;
        Ok(())
    }

    /// Source: the blocks of the snapshot `fresh` (its volume copy,
    /// extracted) that differ from what the target holds.
    pub async fn open_changed_reader(
        &self,
        fresh: &SnapshotRef,
        held: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<HashedDelta<Box<dyn DiskReader>>, CloudError> {
        let copy = self.open_disk_reader(fresh).await?;
        HashedDelta::new(copy, held).await
    }
}

/// The cutover role: each delta pass extracts a fresh snapshot's volume;
/// the stop is CloudStack's.
#[async_trait]
impl CutoverSource for CloudStackCloud {
    async fn cutover_support(&self, instance: &str) -> Result<(), CloudError> {
        self.cutover_check(instance).await
    }

    fn delta_snapshots(&self) -> bool {
        true
    }

    async fn open_snapshot_delta(
        &self,
        _base: Option<&SnapshotRef>,
        fresh: &SnapshotRef,
        held: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<Box<dyn DiskReader>, CloudError> {
        let delta = self.open_changed_reader(fresh, held).await?;
        tracing::info!(
            snapshot = %fresh.id,
            hashed = delta.summary.hashed,
            changed = delta.summary.changed,
            "cloudstack: delta pass"
        );
        Ok(Box::new(delta))
    }

    async fn quiesce(
        &self,
        cap: &Capability,
        instance: &str,
        command: Option<&str>,
        _thaw: Option<&str>,
    ) -> Result<(), CloudError> {
        if let Some(command) = command {
            return Err(CloudError::Unsupported(format!(
                "{}: a CloudStack source is stopped through stopVirtualMachine for the final \
                 pass and cannot run the quiesce command `{command}` (no shell on the guest): \
                 plan without --quiesce",
                self.name
            )));
        }
        self.stop_vm(cap, instance).await
    }

    async fn thaw(
        &self,
        cap: &Capability,
        instance: &str,
        _command: Option<&str>,
    ) -> Result<(), CloudError> {
        self.start_vm(cap, instance).await
    }

    async fn power_off(&self, cap: &Capability, instance: &str) -> Result<(), CloudError> {
        // Stopped at the quiesce already; a stopped VM is left alone.
        self.stop_vm(cap, instance).await
    }
}
