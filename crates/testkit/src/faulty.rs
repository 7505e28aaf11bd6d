//! A lab wrapper that injects faults into the target side: failing writes
//! (transient or permanent), writers that lose what they held on reopen,
//! writers that claim to need blocks in order. Every other method of every
//! role, those with default bodies included, goes to the wrapped cloud, so a test
//! through the wrapper exercises the lab and not the trait's defaults.

use altishift::block::BlockDigest;
use altishift::cloud::ProviderKind;
use altishift::cloud::{
    Capability, Check, Cloud, CloudError, CreatedResource, CutoverSource, DeploySpec,
    DeployedInstance, DiskReader, DiskRef, DiskWriter, SnapshotRef, Source, Target, TargetDiskSpec,
    WriteOrder, WrittenDisk,
};
use altishift::inventory::Inventory;
use altishift::units::BlockIndex;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// A lab wrapper whose writer fails: transiently every third write, or
/// permanently for one named disk (or after some writes); whose reopened
/// writers may lose what was written before; which may claim its writers
/// take blocks only in order.
#[derive(Default)]
pub struct Faulty {
    pub inner: Option<Arc<dyn Cloud>>,
    pub broken_disk: String,
    pub transient_failures: Arc<AtomicU32>,
    /// Fail transiently every third write.
    pub flaky: bool,
    /// Fail permanently after this many writes per writer.
    pub fail_after: Option<u32>,
    /// The lab's staging folder: a reopened writer starts from an empty file
    /// and says it restarted (like a compressed stream whose state died).
    pub forget_on_reopen: Option<std::path::PathBuf>,
    /// Block indices written, in order.
    pub written: Arc<std::sync::Mutex<Vec<u64>>>,
    pub order: Option<WriteOrder>,
    /// The run's audit log: once an instance is deployed, a folder takes
    /// its place, so the next audit write fails.
    pub break_audit_after_deploy: Option<std::path::PathBuf>,
    /// Every call that changes a cloud (and `probe`, the last step of
    /// validation), in order: `snapshot_disk NAME`, `write_block NAME`…
    pub calls: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Faulty {
    fn inner(&self) -> &Arc<dyn Cloud> {
        self.inner.as_ref().expect("a wrapped cloud")
    }

    fn note(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

pub struct FaultyWriter {
    inner: Box<dyn DiskWriter>,
    broken: bool,
    flaky: bool,
    fail_after: Option<u32>,
    restarted: bool,
    written: Arc<std::sync::Mutex<Vec<u64>>>,
    calls: AtomicU32,
    failures: Arc<AtomicU32>,
    /// The target disk's name and the wrapper's call log.
    name: String,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait]
impl DiskWriter for FaultyWriter {
    fn order(&self) -> WriteOrder {
        self.inner.order()
    }
    fn staging_id(&self) -> String {
        self.inner.staging_id()
    }
    fn restarted(&self) -> bool {
        self.restarted
    }
    async fn write_block(
        &self,
        index: BlockIndex,
        data: bytes::Bytes,
        digest: BlockDigest,
    ) -> Result<(), CloudError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("write_block {}", self.name));
        if self.broken {
            return Err(CloudError::Permanent(
                "403 quota exceeded for this volume".into(),
            ));
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        if self.fail_after.is_some_and(|n| call >= n) {
            return Err(CloudError::Permanent("the upload stream died".into()));
        }
        if self.flaky && call.is_multiple_of(3) {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(CloudError::Transient("503 slow down".into()));
        }
        self.inner.write_block(index, data, digest).await?;
        self.written.lock().unwrap().push(index.0);
        Ok(())
    }
    async fn preallocate(&self, ranges: &[std::ops::Range<u64>]) -> Result<(), CloudError> {
        self.inner.preallocate(ranges).await
    }
    async fn discard(&self, blocks: &[BlockIndex]) -> Result<(), CloudError> {
        self.inner.discard(blocks).await
    }
    async fn flush(&self) -> Result<(), CloudError> {
        self.inner.flush().await
    }
    async fn finish(self: Box<Self>, blocks: u64) -> Result<WrittenDisk, CloudError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("finish {}", self.name));
        self.inner.finish(blocks).await
    }
}

#[async_trait]
impl Cloud for Faulty {
    fn name(&self) -> &str {
        self.inner().name()
    }
    fn provider(&self) -> ProviderKind {
        self.inner().provider()
    }
    fn jurisdiction(&self) -> Option<String> {
        self.inner().jurisdiction()
    }
    fn default_in_flight(&self) -> usize {
        self.inner().default_in_flight()
    }
    async fn inventory(&self) -> Result<Inventory, CloudError> {
        self.inner().inventory().await
    }
    async fn find_leftovers(
        &self,
        tag: &(String, String),
    ) -> Result<Vec<CreatedResource>, CloudError> {
        self.inner().find_leftovers(tag).await
    }
    async fn account(&self) -> Result<Option<String>, CloudError> {
        self.inner().account().await
    }
    async fn delete(&self, cap: &Capability, resource: &CreatedResource) -> Result<(), CloudError> {
        self.note(format!("delete {}", resource.id));
        self.inner().delete(cap, resource).await
    }
    async fn revoke(&self) -> Result<Vec<String>, CloudError> {
        self.note("revoke".into());
        self.inner().revoke().await
    }
    fn as_source(&self) -> Option<&dyn Source> {
        self.inner().as_source().map(|_| self as &dyn Source)
    }
    fn as_target(&self) -> Option<&dyn Target> {
        self.inner().as_target().map(|_| self as &dyn Target)
    }
    fn as_cutover(&self) -> Option<&dyn CutoverSource> {
        self.inner()
            .as_cutover()
            .map(|_| self as &dyn CutoverSource)
    }
}

#[async_trait]
impl Source for Faulty {
    async fn snapshot_disk(
        &self,
        cap: &Capability,
        disk: &DiskRef,
        name: &str,
    ) -> Result<SnapshotRef, CloudError> {
        self.note(format!("snapshot_disk {name}"));
        self.inner()
            .source_role()?
            .snapshot_disk(cap, disk, name)
            .await
    }
    async fn open_disk_reader(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn DiskReader>, CloudError> {
        self.inner().source_role()?.open_disk_reader(snapshot).await
    }
}

#[async_trait]
impl Target for Faulty {
    fn default_region(&self) -> Result<Option<String>, CloudError> {
        self.inner().target_role()?.default_region()
    }
    fn write_order(&self, format: altishift::inventory::DiskFormat) -> Option<WriteOrder> {
        self.order
            .or(self.inner().as_target().and_then(|t| t.write_order(format)))
    }
    async fn open_disk_writer(
        &self,
        cap: &Capability,
        spec: &TargetDiskSpec,
    ) -> Result<Box<dyn DiskWriter>, CloudError> {
        self.note(format!("open_disk_writer {}", spec.name));
        let mut restarted = false;
        if let (Some(staging), Some(id)) = (&self.forget_on_reopen, &spec.resume) {
            std::fs::remove_file(staging.join(id)).unwrap();
            restarted = true;
        }
        Ok(Box::new(FaultyWriter {
            inner: self
                .inner()
                .target_role()?
                .open_disk_writer(cap, spec)
                .await?,
            broken: spec.name == self.broken_disk,
            flaky: self.flaky,
            fail_after: self.fail_after,
            restarted,
            written: self.written.clone(),
            calls: AtomicU32::new(0),
            failures: self.transient_failures.clone(),
            name: spec.name.clone(),
            log: self.calls.clone(),
        }))
    }
    async fn create_config_object(
        &self,
        cap: &Capability,
        object: &altishift::cloud::configure::ConfigObject,
    ) -> Result<String, CloudError> {
        self.inner()
            .target_role()?
            .create_config_object(cap, object)
            .await
    }
    async fn deploy(
        &self,
        cap: &Capability,
        spec: &DeploySpec,
    ) -> Result<DeployedInstance, CloudError> {
        self.note(format!("deploy {}", spec.name));
        let deployed = self.inner().target_role()?.deploy(cap, spec).await?;
        if let Some(audit) = &self.break_audit_after_deploy {
            std::fs::remove_file(audit).unwrap();
            std::fs::create_dir(audit).unwrap();
        }
        Ok(deployed)
    }
    async fn read_back(
        &self,
        disk: &WrittenDisk,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        self.inner().target_role()?.read_back(disk).await
    }
    async fn probe(
        &self,
        instance: &DeployedInstance,
        spec: &DeploySpec,
    ) -> Result<Vec<Check>, CloudError> {
        self.note(format!("probe {}", spec.name));
        self.inner().target_role()?.probe(instance, spec).await
    }
    async fn serial_console(
        &self,
        instance: &DeployedInstance,
    ) -> Result<Option<String>, CloudError> {
        self.inner().target_role()?.serial_console(instance).await
    }
}

#[async_trait]
impl CutoverSource for Faulty {
    async fn cutover_support(&self, instance: &str) -> Result<(), CloudError> {
        self.inner().cutover_role()?.cutover_support(instance).await
    }
    async fn open_delta_reader(
        &self,
        snapshot: &SnapshotRef,
        previous: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        self.inner()
            .cutover_role()?
            .open_delta_reader(snapshot, previous)
            .await
    }
    async fn quiesce(
        &self,
        cap: &Capability,
        instance: &str,
        command: Option<&str>,
        thaw: Option<&str>,
    ) -> Result<(), CloudError> {
        self.note(format!("quiesce {instance}"));
        self.inner()
            .cutover_role()?
            .quiesce(cap, instance, command, thaw)
            .await
    }
    async fn thaw(
        &self,
        cap: &Capability,
        instance: &str,
        command: Option<&str>,
    ) -> Result<(), CloudError> {
        self.note(format!("thaw {instance}"));
        self.inner()
            .cutover_role()?
            .thaw(cap, instance, command)
            .await
    }
    async fn power_off(&self, cap: &Capability, instance: &str) -> Result<(), CloudError> {
        self.note(format!("power_off {instance}"));
        self.inner().cutover_role()?.power_off(cap, instance).await
    }
}
