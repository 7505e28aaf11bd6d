//! Cutover on a Compute Engine source: the instance keeps running while
//! successive snapshots of its disks are read, each by its own worker VM
//! (source.rs). Compute Engine lists no changed blocks between snapshots,
//! so a delta pass compares block digests with what the target holds: the
//! worker's agent hashes the snapshot's blocks where it reads them and only
//! the digests cross the network (the SSH delta reader); where the agent
//! cannot run, the blocks are streamed and hashed here. Before the final
//! snapshot the instance is stopped through `instances.stop` (an approved
//! step): nothing here reaches the guest to freeze its filesystems.

use super::GcpCloud;
use super::client::{int64, last_segment};
use crate::block::BlockDigest;
use crate::delta::HashedDelta;
use crate::units::BlockIndex;
use crate::{Capability, CloudError, CutoverSource, DiskReader, SnapshotRef};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Instant;

/// How the quiesce reads in plans (the instance is stopped).
pub const QUIESCE: &str =
    "stops the instance (Compute Engine instances.stop) so the final snapshot holds every write";

impl GcpCloud {
    /// (zone, name, resource) of the instance the inventory calls `id` (its
    /// numeric id, or its name).
    async fn locate(&self, id: &str) -> Result<(String, String, Value), CloudError> {
        let all = self
            .client
            .aggregated("aggregated/instances", "instances")
            .await?;
        let found = all
            .into_iter()
            .find(|i| {
                int64(&i["id"]).map(|n| n.to_string()).as_deref() == Some(id) || i["name"] == id
            })
            .ok_or_else(|| CloudError::NotFound(format!("instance {id} in {}", self.name)))?;
        let zone = last_segment(found["zone"].as_str().unwrap_or_default()).to_string();
        let name = found["name"].as_str().unwrap_or_default().to_string();
        if zone.is_empty() || name.is_empty() {
            return Err(CloudError::Permanent(format!(
                "instance {id} in {}: the answer names no zone or name",
                self.name
            )));
        }
        Ok((zone, name, found))
    }

    /// Read-only: whether `instance` can be a cutover source: it exists and
    /// has only persistent disks (a local SSD has no snapshots).
    pub async fn cutover_check(&self, instance: &str) -> Result<(), CloudError> {
        let (_, name, found) = self.locate(instance).await?;
        let scratch = found["disks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["type"] == "SCRATCH");
        if scratch {
            return Err(CloudError::Unsupported(format!(
                "{name} has a local SSD (SCRATCH disk): only persistent disks can be \
                 snapshotted for delta passes"
            )));
        }
        Ok(())
    }

    /// The instance's status as Compute Engine reports it.
    async fn status(&self, zone: &str, name: &str) -> Result<String, CloudError> {
        let vm = self
            .client
            .get(&format!("zones/{zone}/instances/{name}"))
            .await?;
        Ok(vm["status"].as_str().unwrap_or_default().to_string())
    }

    /// Source: stops the instance (`instances.stop`) and waits until it is
    /// TERMINATED, so the next snapshot holds everything it wrote. A
    /// stopped instance is left alone.
    pub async fn stop_instance(&self, _cap: &Capability, instance: &str) -> Result<(), CloudError> {
        let (zone, name, _) = self.locate(instance).await?;
        if matches!(
            self.status(&zone, &name).await?.as_str(),
            "TERMINATED" | "STOPPED"
        ) {
            return Ok(());
        }
        let op = self
            .client
            .post(&format!("zones/{zone}/instances/{name}/stop"), &json!({}))
            .await?;
        self.client.wait(op).await?;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match self.status(&zone, &name).await?.as_str() {
                "TERMINATED" | "STOPPED" => return Ok(()),
                _ if started.elapsed() > self.client.poll.deadline => {
                    return Err(CloudError::Transient(format!(
                        "instance {name} in {zone} not TERMINATED after {:?}",
                        self.client.poll.deadline
                    )));
                }
                _ => {}
            }
            tokio::time::sleep(self.client.poll.delay(attempt)).await;
            attempt += 1;
        }
    }

    /// Source: starts a stopped instance again (`instances.start`), for a
    /// cutover that leaves the source running or failed after the stop.
    pub async fn start_instance(
        &self,
        _cap: &Capability,
        instance: &str,
    ) -> Result<(), CloudError> {
        let (zone, name, _) = self.locate(instance).await?;
        if self.status(&zone, &name).await? == "RUNNING" {
            return Ok(());
        }
        let op = self
            .client
            .post(&format!("zones/{zone}/instances/{name}/start"), &json!({}))
            .await?;
        self.client.wait(op).await?;
        self.wait_running(&zone, &name).await.map(|_| ())
    }

    /// Source: a reader of the blocks of snapshot `fresh` that differ from
    /// what the target holds; true when the worker's agent hashed them.
    pub async fn open_changed_reader(
        &self,
        fresh: &SnapshotRef,
        held: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<(Box<dyn DiskReader>, bool), CloudError> {
        let remote = self
            .on_worker(fresh, |ssh| async move {
                match ssh.open_delta_stream(held).await {
                    Ok((reader, _)) => Ok(Some(reader)),
                    // The agent could not run on the worker: hash here.
                    Err(CloudError::Unsupported(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if let Some(reader) = remote {
            return Ok((Box::new(reader), true));
        }
        let stream = self
            .on_worker(fresh, |ssh| async move { ssh.open_stream_reader().await })
            .await?;
        let delta = HashedDelta::new(stream, held).await?;
        Ok((Box::new(delta), false))
    }
}

/// The cutover role: each delta pass reads a fresh snapshot through its own
/// worker; the stop is Compute Engine's.
#[async_trait]
impl CutoverSource for GcpCloud {
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
        let (reader, on_worker) = self.open_changed_reader(fresh, held).await?;
        tracing::info!(snapshot = %fresh.id, hashed_on_worker = on_worker, "gcp: delta pass");
        Ok(reader)
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
                "{}: a Compute Engine source is stopped through instances.stop for the final \
                 pass and cannot run the quiesce command `{command}` (no shell on the guest): \
                 plan without --quiesce",
                self.name
            )));
        }
        self.stop_instance(cap, instance).await
    }

    async fn thaw(
        &self,
        cap: &Capability,
        instance: &str,
        _command: Option<&str>,
    ) -> Result<(), CloudError> {
        self.start_instance(cap, instance).await
    }

    async fn power_off(&self, cap: &Capability, instance: &str) -> Result<(), CloudError> {
        // Stopped at the quiesce already; a stopped instance is left alone.
        self.stop_instance(cap, instance).await
    }
}
