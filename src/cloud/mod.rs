//! The `Cloud` trait: what a provider can do, in one shape for every cloud.
//!
//! Browsing (`inventory`, reading a snapshot) is free. Every method that
//! changes a cloud takes a [`Capability`], which only the approval of a plan
//! produces: without an approved plan such a call cannot be written.

pub mod aws;
pub mod body;
pub mod cloudstack;
pub mod configure;
pub mod digitalocean;
pub mod gcp;
pub mod http;
pub mod lab;
pub mod local_disk;
pub mod registry;
pub mod ssh;
pub mod staging;

use crate::block::BlockDigest;
use crate::config::ProviderKind;
use crate::inventory::{DiskFormat, Inventory};
pub use crate::plan::approval::Capability;
use crate::units::{BlockIndex, Bytes};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;

pub use registry::connect;

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// Worth retrying: 5xx, throttling, resets, timeouts.
    #[error("{0} (transient)")]
    Transient(String),
    /// Retrying will not help: bad request, missing resource, refused.
    #[error("{0}")]
    Permanent(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("not authorised: {0}")]
    Auth(String),
    #[error("{0}")]
    Unsupported(String),
}

impl CloudError {
    pub fn is_transient(&self) -> bool {
        matches!(self, CloudError::Transient(_))
    }

    /// Classifies an I/O error: interrupted or timed-out calls are transient.
    pub fn from_io(context: impl std::fmt::Display, err: std::io::Error) -> CloudError {
        use std::io::ErrorKind::*;
        match err.kind() {
            Interrupted | TimedOut | WouldBlock | ConnectionReset | ConnectionAborted
            | BrokenPipe => CloudError::Transient(format!("{context}: {err}")),
            NotFound => CloudError::NotFound(format!("{context} ({err})")),
            _ => CloudError::Permanent(format!("{context}: {err}")),
        }
    }
}

/// What a provider can be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    pub source: bool,
    pub target: bool,
}

/// A disk in the source cloud, as the plan names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskRef {
    pub instance_id: String,
    pub disk_id: String,
}

/// A point-in-time copy of a source disk that a reader can open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub id: String,
    pub virtual_size: Bytes,
    pub format: DiskFormat,
    /// True when this run made it (and so cleanup removes it).
    pub created_by_run: bool,
}

/// One block as read from a source.
pub struct BlockData {
    pub bytes: Vec<u8>,
    /// A digest the provider returned with the block (EBS does); the engine
    /// checks it against the bytes.
    pub provider_digest: Option<BlockDigest>,
}

/// Reads a disk snapshot block by block.
#[async_trait]
pub trait DiskReader: Send + Sync {
    fn virtual_size(&self) -> Bytes;
    /// Block ranges that may hold data, ascending; everything else is zero.
    async fn allocated_blocks(&self) -> Result<Vec<Range<u64>>, CloudError>;
    async fn read_block(&self, index: BlockIndex) -> Result<BlockData, CloudError>;
}

/// Whether a writer takes blocks in any order or needs them in sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOrder {
    Any,
    Sequential,
}

/// Where and how to write one target disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetDiskSpec {
    /// Stable name for the disk's resources, unique within the plan.
    pub name: String,
    pub virtual_size: Bytes,
    pub format: DiskFormat,
    pub region: String,
    /// The instance boots from this disk (some clouds import boot disks as
    /// templates or images and the rest as volumes).
    pub boot: bool,
    /// Staging id journaled by an earlier, interrupted run: reopen, not recreate.
    pub resume: Option<String>,
    /// The source's OS, boot mode and architecture, for clouds that declare
    /// them when a disk becomes an image (Compute Engine, DigitalOcean).
    #[serde(default)]
    pub platform: crate::inventory::Platform,
}

/// A finished target disk (volume, image, snapshot, file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenDisk {
    pub id: String,
    pub format: DiskFormat,
    pub virtual_size: Bytes,
}

/// Writes one target disk.
#[async_trait]
pub trait DiskWriter: Send + Sync {
    fn order(&self) -> WriteOrder;
    /// Staging id to journal so a resumed run can reopen this writer.
    fn staging_id(&self) -> String;
    async fn write_block(
        &self,
        index: BlockIndex,
        data: &[u8],
        digest: BlockDigest,
    ) -> Result<(), CloudError>;
    /// Makes every block written so far durable (called before the journal
    /// records them as done).
    async fn flush(&self) -> Result<(), CloudError>;
    /// True when reopening (`spec.resume`) could not keep what the interrupted
    /// run wrote (e.g. a compressed stream whose state died with the process):
    /// the engine then forgets the disk's journaled blocks and sends it again
    /// from block 0.
    fn restarted(&self) -> bool {
        false
    }
    /// Completes the disk: conversion, import, completion call.
    async fn finish(self: Box<Self>, blocks_written: u64) -> Result<WrittenDisk, CloudError>;
}

/// The target instance to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploySpec {
    pub name: String,
    pub size: String,
    pub region: String,
    /// Boot disk first.
    pub disks: Vec<WrittenDisk>,
    pub tags: std::collections::BTreeMap<String, String>,
    /// The source's boot mode, architecture and ENA, for the image to carry over.
    #[serde(default)]
    pub platform: crate::inventory::Platform,
    /// Network, firewalls, keys, user-data and public address from the
    /// plan's configuration, with the ids of what the run created.
    #[serde(default)]
    pub config: configure::DeployConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedInstance {
    pub id: String,
    pub name: String,
}

/// One validation result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// What kind of thing a run created, so cleanup knows how to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Snapshot,
    StagingDisk,
    Disk,
    Image,
    Instance,
    AccessKey,
    /// A firewall / security group made from a source rule set.
    Firewall,
    /// An imported SSH public key (AWS key pair).
    SshKey,
}

/// A resource a run created, journaled the moment it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedResource {
    pub cloud: String,
    pub kind: ResourceKind,
    pub id: String,
    /// Temporary resources are removed at cleanup; the rest is the result.
    pub temporary: bool,
}

#[async_trait]
pub trait Cloud: Send + Sync {
    /// The profile name (`lab-east`, `prod`).
    fn name(&self) -> &str;
    fn provider(&self) -> ProviderKind;
    fn roles(&self) -> Roles;
    /// Jurisdiction from the profile, when it sets one for the whole cloud.
    fn jurisdiction(&self) -> Option<String>;
    /// Target: the region a plan deploys into when the operator names none
    /// (the profile's). `Ok(None)`: the provider's inventory decides; `Err`:
    /// no safe default exists (an API's first-listed region is none).
    fn default_region(&self) -> Result<Option<String>, CloudError> {
        Ok(None)
    }
    /// Blocks in flight per disk this provider works well with.
    fn default_in_flight(&self) -> usize {
        16
    }
    /// Target, read-only: the order its writers for `format` take blocks in,
    /// when known before opening one (a cutover needs `Any`: delta passes
    /// write blocks again). None: only an opened writer can tell.
    fn write_order(&self, _format: DiskFormat) -> Option<WriteOrder> {
        None
    }

    /// Read-only: instances, disks, sizes, regions, paginated to the end.
    async fn inventory(&self) -> Result<Inventory, CloudError>;

    /// Source: takes a point-in-time copy of a disk.
    async fn snapshot_disk(
        &self,
        cap: &Capability,
        disk: &DiskRef,
        name: &str,
    ) -> Result<SnapshotRef, CloudError>;
    /// Source: opens a snapshot for reading (read-only).
    async fn open_disk_reader(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn DiskReader>, CloudError>;

    /// Target: opens (or reopens, when `spec.resume` is set) a disk writer.
    async fn open_disk_writer(
        &self,
        cap: &Capability,
        spec: &TargetDiskSpec,
    ) -> Result<Box<dyn DiskWriter>, CloudError>;
    /// Target: creates a firewall or imports a key the approved plan lists,
    /// tagged with the plan; one this plan already created (same name, same
    /// plan tag) is found and returned. Returns its id on the target.
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
    /// Target: creates the instance from written disks.
    async fn deploy(
        &self,
        cap: &Capability,
        spec: &DeploySpec,
    ) -> Result<DeployedInstance, CloudError>;
    /// Target: reads a written disk back for digest comparison, when the cloud can.
    async fn read_back(
        &self,
        disk: &WrittenDisk,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError>;
    /// Target: checks the deployed instance (state, size, image health).
    async fn probe(
        &self,
        instance: &DeployedInstance,
        spec: &DeploySpec,
    ) -> Result<Vec<Check>, CloudError>;

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

    // Cutover (a source that keeps running while it is copied). The defaults
    // say "cannot", so a provider without these hooks is refused at preflight.

    /// Source, read-only: Ok when this instance can take part in a cutover
    /// (delta passes, quiesce, power-off); otherwise why not.
    async fn cutover_support(&self, instance: &str) -> Result<(), CloudError> {
        Err(CloudError::Unsupported(format!(
            "{} ({}) cannot send only changed blocks, so it cannot be a cutover source (instance {instance})",
            self.name(),
            self.provider()
        )))
    }
    /// Source, read-only: a reader of the blocks that differ from `previous`
    /// (block → digest of what the target holds). Its `allocated_blocks` are
    /// exactly those blocks, including blocks that became zero (they read as
    /// zeros). None when the provider cannot compute a delta.
    async fn open_delta_reader(
        &self,
        _snapshot: &SnapshotRef,
        _previous: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        Ok(None)
    }
    /// Source: quiesces a running instance before the final delta pass (the
    /// operator's `command`, or the provider's own way, e.g. fsfreeze);
    /// `thaw` is the command that undoes `command`.
    async fn quiesce(
        &self,
        _cap: &Capability,
        instance: &str,
        _command: Option<&str>,
        _thaw: Option<&str>,
    ) -> Result<(), CloudError> {
        Err(CloudError::Unsupported(format!(
            "{} cannot quiesce {instance}",
            self.name()
        )))
    }
    /// Source: undoes [`Cloud::quiesce`] (the source keeps running).
    /// `command` is the plan's thaw command, for a quiesce that an earlier,
    /// interrupted process did.
    async fn thaw(
        &self,
        _cap: &Capability,
        instance: &str,
        _command: Option<&str>,
    ) -> Result<(), CloudError> {
        Err(CloudError::Unsupported(format!(
            "{} cannot thaw {instance}",
            self.name()
        )))
    }
    /// Source: powers the instance off after the final pass.
    async fn power_off(&self, _cap: &Capability, instance: &str) -> Result<(), CloudError> {
        Err(CloudError::Unsupported(format!(
            "{} cannot power off {instance}",
            self.name()
        )))
    }
}
