//! What a provider can do, in one shape for every cloud: `Cloud` (identity,
//! inventory, cleanup) and the roles it takes where it can (`Source`,
//! `Target`, `CutoverSource`, in `roles.rs`).
//!
//! Browsing (`inventory`, reading a snapshot) is free. Every method that
//! changes a cloud takes a [`Capability`], which only the approval of a plan
//! produces: without an approved plan such a call cannot be written.

pub mod aws;
pub mod body;
pub mod cloudstack;
pub mod configure;
pub mod delta;
pub mod digitalocean;
pub mod gcp;
pub mod http;
pub mod lab;
pub mod local_disk;
pub mod profile;
pub mod registry;
mod roles;
pub mod ssh;
pub mod staging;
#[cfg(test)]
mod translation_tests;

// The floors below, under the names this crate's modules use (`crate::plan`…):
// the model, and the guest tools the lab's bootable guest is built with.
use altishift_guest as guest;
use altishift_model::{block, child, config, fsutil, inventory, plan, secret, text, units};

use crate::block::BlockDigest;
use crate::inventory::DiskFormat;
pub use crate::plan::approval::Capability;
use crate::units::{BlockIndex, Bytes};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::ops::Range;

pub use profile::{Profile, ProviderKind};
pub use registry::connect;
pub use roles::{Cloud, CutoverSource, Source, Target};

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

/// What a guest needs on a KVM cloud (the lab's QEMU too): a virtio disk
/// and network driver, and the cloud's cloud-init datasource.
pub(crate) fn virtio_guest(datasource: &str) -> crate::inventory::declared::GuestNeeds {
    crate::inventory::declared::GuestNeeds::new(
        &[&["virtio_blk", "virtio_scsi"], &["virtio_net"]],
        Some(datasource),
    )
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
    /// Shared, not copied: the engine hashes it, retries and SDK bodies
    /// take it by reference count.
    pub bytes: bytes::Bytes,
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
        data: bytes::Bytes,
        digest: BlockDigest,
    ) -> Result<(), CloudError>;
    /// Makes every block written so far durable (called before the journal
    /// records them as done).
    async fn flush(&self) -> Result<(), CloudError>;
    /// Before a pass: the block ranges about to be written (the source's
    /// allocated ones), so a local file can reserve them in one piece each.
    /// A hint: writers without a local file ignore it.
    async fn preallocate(&self, _ranges: &[std::ops::Range<u64>]) -> Result<(), CloudError> {
        Ok(())
    }
    /// After a pass: blocks of those ranges that were read as zeros and so
    /// never written; their reserved space is given back (they read as
    /// zeros either way).
    async fn discard(&self, _blocks: &[BlockIndex]) -> Result<(), CloudError> {
        Ok(())
    }
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
    /// Where the jump host reaches the instance (public address, else
    /// private), as the target's API answered at deploy; None when it has
    /// none (the lab boots its guests without a network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// One validation result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// What the check saw, line by line, for the report (the tail of a
    /// serial console, an HTTP status line); empty when the detail says all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

impl Check {
    /// A check whose detail says all (no evidence lines).
    pub fn new(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed,
            detail: detail.into(),
            evidence: Vec::new(),
        }
    }
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
