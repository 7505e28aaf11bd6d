//! The provider traits. `Cloud` is what every provider is (identity,
//! inventory, removal of what a run created, revocation); `Source`, `Target`
//! and `CutoverSource` are roles a provider takes where its API can, reached
//! through `as_source()`, `as_target()` and `as_cutover()`. A provider
//! without a role simply does not implement it: no stubs, and the plan and
//! the engine ask for the role and say clearly when it is missing.

use super::{
    Capability, Check, CloudError, CreatedResource, DeploySpec, DeployedInstance, DiskReader,
    DiskRef, DiskWriter, Roles, SnapshotRef, TargetDiskSpec, WriteOrder, WrittenDisk, configure,
};
use crate::ProviderKind;
use crate::block::BlockDigest;
use crate::inventory::{DiskFormat, Inventory};
use crate::units::BlockIndex;
use async_trait::async_trait;
use std::collections::BTreeMap;

#[async_trait]
pub trait Cloud: Send + Sync {
    /// The profile name (`lab-east`, `prod`).
    fn name(&self) -> &str;
    fn provider(&self) -> ProviderKind;
    /// Jurisdiction from the profile, when it sets one for the whole cloud.
    fn jurisdiction(&self) -> Option<String>;
    /// Blocks in flight per disk this provider works well with.
    fn default_in_flight(&self) -> usize {
        16
    }

    /// This provider as a source, when it can be one.
    fn as_source(&self) -> Option<&dyn Source> {
        None
    }
    /// This provider as a target, when it can be one.
    fn as_target(&self) -> Option<&dyn Target> {
        None
    }
    /// This provider as a cutover source (delta passes while the instance
    /// runs), when it can be one.
    fn as_cutover(&self) -> Option<&dyn CutoverSource> {
        None
    }
    /// What this provider can be used for, from the roles it implements.
    fn roles(&self) -> Roles {
        Roles {
            source: self.as_source().is_some(),
            target: self.as_target().is_some(),
        }
    }

    /// Read-only: instances, disks, sizes, regions, paginated to the end.
    async fn inventory(&self) -> Result<Inventory, CloudError>;

    /// Read-only: the account the credentials act in, as the provider
    /// reports it (an AWS account id), so an approval covers it: the same
    /// profile name resolving to other credentials is refused at apply. None
    /// when the profile's own settings already say it (a project, a folder).
    async fn account(&self) -> Result<Option<String>, CloudError> {
        Ok(None)
    }

    /// Read-only: temporary resources this cloud holds for the plan whose
    /// `tag` (`altishift:plan`, short hash) they carry — what a run killed
    /// between creating one and journaling it leaves behind. Cleanup removes
    /// those its journal does not list.
    async fn find_leftovers(
        &self,
        _tag: &(String, String),
    ) -> Result<Vec<CreatedResource>, CloudError> {
        Ok(Vec::new())
    }

    /// Removes a resource this run created.
    async fn delete(&self, cap: &Capability, resource: &CreatedResource) -> Result<(), CloudError>;
    /// Ends the temporary access this tool created and wipes held secrets.
    /// Returns what was revoked, for the report.
    async fn revoke(&self) -> Result<Vec<String>, CloudError>;
}

impl<'a> dyn Cloud + 'a {
    /// The source role, or why this cloud cannot be read from.
    pub fn source_role(&self) -> Result<&dyn Source, CloudError> {
        self.as_source().ok_or_else(|| {
            CloudError::Unsupported(format!(
                "{} ({}) cannot be a migration source",
                self.name(),
                self.provider()
            ))
        })
    }

    /// The target role, or why nothing can be migrated into this cloud.
    pub fn target_role(&self) -> Result<&dyn Target, CloudError> {
        self.as_target().ok_or_else(|| {
            CloudError::Unsupported(format!(
                "{} ({}) cannot be a migration target",
                self.name(),
                self.provider()
            ))
        })
    }

    /// The cutover role, or why this cloud cannot send only changed blocks.
    pub fn cutover_role(&self) -> Result<&dyn CutoverSource, CloudError> {
        self.as_cutover().ok_or_else(|| {
            CloudError::Unsupported(format!(
                "{} ({}) cannot send only changed blocks, so it cannot be a cutover source",
                self.name(),
                self.provider()
            ))
        })
    }
}

/// A cloud disks are read from. Read-only except for the snapshot it takes.
#[async_trait]
pub trait Source: Cloud {
    /// Takes a point-in-time copy of a disk.
    async fn snapshot_disk(
        &self,
        cap: &Capability,
        disk: &DiskRef,
        name: &str,
    ) -> Result<SnapshotRef, CloudError>;
    /// Opens a snapshot for reading (read-only).
    async fn open_disk_reader(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn DiskReader>, CloudError>;
    /// A disk this machine reads as a file (the lab's), for a local boot
    /// rehearsal at plan time; None where disks live in a remote cloud.
    fn local_disk(
        &self,
        _instance_id: &str,
        _disk_id: &str,
    ) -> Option<(std::path::PathBuf, crate::inventory::DiskFormat)> {
        None
    }
    /// Whether the snapshots a run takes are files on this machine, its own
    /// copies, that guest preparation may change before they are read (the
    /// lab): the plan then prepares guests for targets that take the disk
    /// into the cloud before deploy.
    fn prepares_snapshots(&self) -> bool {
        false
    }
    /// The snapshot as a file the run may change: only one the run made.
    fn local_snapshot(&self, _snapshot: &SnapshotRef) -> Option<std::path::PathBuf> {
        None
    }
}

/// A cloud disks are written to and instances deployed in.
#[async_trait]
pub trait Target: Cloud {
    /// The region a plan deploys into when the operator names none (the
    /// profile's). `Ok(None)`: the provider's inventory decides; `Err`: no
    /// safe default exists (an API's first-listed region is none).
    fn default_region(&self) -> Result<Option<String>, CloudError> {
        Ok(None)
    }
    /// Read-only: the order its writers for `format` take blocks in, when
    /// known before opening one (a cutover needs `Any`: delta passes write
    /// blocks again). Most targets take blocks anywhere (they stage them or
    /// write by offset); a streaming target says `Sequential`. None: only an
    /// opened writer can tell.
    fn write_order(&self, _format: DiskFormat) -> Option<WriteOrder> {
        Some(WriteOrder::Any)
    }
    /// Whether a written disk is a file on this machine until deploy (the
    /// lab), so guest preparation can be applied to it: the plan refuses
    /// preparation a target cannot take.
    fn prepares_written_disks(&self) -> bool {
        false
    }
    /// The written disk as a file on this machine, for guest preparation
    /// before deploy; None where it lives in the cloud.
    fn local_written_disk(&self, _disk: &WrittenDisk) -> Option<std::path::PathBuf> {
        None
    }
    /// Opens (or reopens, when `spec.resume` is set) a disk writer.
    async fn open_disk_writer(
        &self,
        cap: &Capability,
        spec: &TargetDiskSpec,
    ) -> Result<Box<dyn DiskWriter>, CloudError>;
    /// Creates a firewall or imports a key the approved plan lists, tagged
    /// with the plan; one this plan already created (same name, same plan
    /// tag) is found and returned. Returns its id on the target.
    async fn create_config_object(
        &self,
        _cap: &Capability,
        object: &configure::ConfigObject,
    ) -> Result<String, CloudError> {
        Err(CloudError::Unsupported(format!(
            "{} ({}) cannot create {} yet",
            self.name(),
            self.provider(),
            object.describe()
        )))
    }
    /// Creates the instance from written disks.
    async fn deploy(
        &self,
        cap: &Capability,
        spec: &DeploySpec,
    ) -> Result<DeployedInstance, CloudError>;
    /// Reads a written disk back for digest comparison, when the cloud can.
    async fn read_back(
        &self,
        disk: &WrittenDisk,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError>;
    /// Checks the deployed instance (state, size, image health).
    async fn probe(
        &self,
        instance: &DeployedInstance,
        spec: &DeploySpec,
    ) -> Result<Vec<Check>, CloudError>;
    /// Read-only: what the instance wrote to its serial console so far (the
    /// latest output the provider keeps). `Ok(None)`: this provider offers
    /// no console output through its API.
    async fn serial_console(
        &self,
        _instance: &DeployedInstance,
    ) -> Result<Option<String>, CloudError> {
        Ok(None)
    }
}

/// A source that keeps running while it is copied: delta passes, then a
/// short stop.
#[async_trait]
pub trait CutoverSource: Source {
    /// Read-only: Ok when this instance can take part in a cutover (delta
    /// passes, quiesce, power-off); otherwise why not.
    async fn cutover_support(&self, instance: &str) -> Result<(), CloudError>;
    /// Read-only: a reader of the blocks that differ from `previous` (block →
    /// digest of what the target holds). Its `allocated_blocks` are exactly
    /// those blocks, including blocks that became zero (they read as zeros).
    /// None when the provider cannot compute one from the live disk — the
    /// default, right for sources whose snapshots are points in time and
    /// whose deltas come between snapshots ([`CutoverSource::delta_snapshots`]).
    async fn open_delta_reader(
        &self,
        _snapshot: &SnapshotRef,
        _previous: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        Ok(None)
    }
    /// Read-only: true when each delta pass reads a new snapshot (taken by
    /// the engine with [`Source::snapshot_disk`], journaled and removed at
    /// cleanup) rather than the live disk: a cloud snapshot is a point in
    /// time. Such a source answers [`CutoverSource::open_snapshot_delta`].
    fn delta_snapshots(&self) -> bool {
        false
    }
    /// Read-only: with [`CutoverSource::delta_snapshots`], a reader of the
    /// blocks of `fresh` that differ from what the target holds (`held`,
    /// which is the content of `base` when `base` is given: the snapshot the
    /// previous pass of this process sent whole). Blocks that became zero
    /// are included and read as zeros.
    async fn open_snapshot_delta(
        &self,
        _base: Option<&SnapshotRef>,
        fresh: &SnapshotRef,
        _held: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<Box<dyn DiskReader>, CloudError> {
        Err(CloudError::Unsupported(format!(
            "no delta between snapshots here (snapshot {})",
            fresh.id
        )))
    }
    /// Quiesces a running instance before the final delta pass (the
    /// operator's `command`, or the provider's own way, e.g. fsfreeze);
    /// `thaw` is the command that undoes `command`.
    async fn quiesce(
        &self,
        cap: &Capability,
        instance: &str,
        command: Option<&str>,
        thaw: Option<&str>,
    ) -> Result<(), CloudError>;
    /// Undoes [`CutoverSource::quiesce`] (the source keeps running).
    /// `command` is the plan's thaw command, for a quiesce that an earlier,
    /// interrupted process did.
    async fn thaw(
        &self,
        cap: &Capability,
        instance: &str,
        command: Option<&str>,
    ) -> Result<(), CloudError>;
    /// Powers the instance off after the final pass.
    async fn power_off(&self, cap: &Capability, instance: &str) -> Result<(), CloudError>;
}
