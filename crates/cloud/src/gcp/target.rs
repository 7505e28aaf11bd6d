//! Google Cloud as a target disk: blocks arrive in order and stream, gzip
//! members compressed in parallel, into a resumable Cloud Storage upload.
//! At the end the sparse tar header (which needs the whole map) and the
//! trailer are uploaded, composed in front of and behind the data into
//! `disk.tar.gz`, the object is checked against the blocks we sent, and
//! `images.insert` imports it (rawDisk.source, TAR container).

use super::client::Client;
use super::client::last_segment;
use super::deploy::{disk_size_gb, label, split_instance};
use super::pipe::{self, Uploader};
use super::readback::ReadBack;
use super::upload;
use super::{GcpCloud, tar, verify};
use crate::block::BlockDigest;
use crate::inventory::DiskFormat;
use crate::local_disk::LocalDiskReader;
use crate::secret::Secret;
use crate::units::{BLOCK_SIZE, BlockIndex, Bytes};
use crate::{Capability, CloudError, DiskWriter, TargetDiskSpec, WriteOrder, WrittenDisk};
use crate::{Check, DeploySpec, DeployedInstance, DiskReader, Target};
use async_trait::async_trait;
use serde_json::Value;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Raw bytes per gzip member (compressed on a blocking thread).
pub const MEMBER_BYTES: usize = 8 << 20;
/// Default upload chunk (a multiple of 256 KiB). Larger chunks mean fewer
/// requests (Google advises at least 8 MiB); each costs its size in memory.
pub const UPLOAD_CHUNK: usize = 64 << 20;

/// A name Compute Engine accepts: `[a-z]([-a-z0-9]*[a-z0-9])?`, ≤ 63.
pub fn resource_name(text: &str) -> String {
    let mut name: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "d-");
    }
    name.truncate(63);
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// Upload sessions open in this process, by staging prefix, so that a
/// writer reopened here can cancel its predecessor's session. Never
/// journaled: a session URI authorises the upload by itself.
pub type Sessions = Arc<std::sync::Mutex<HashMap<String, Secret>>>;

pub struct GcpDiskWriter {
    client: Arc<Client>,
    sessions: Sessions,
    /// Reopened after an interruption and started again from block 0.
    restarted: bool,
    bucket: String,
    /// `altishift/<plan>/<disk>/`: every staging object of this disk.
    prefix: String,
    image: String,
    spec: TargetDiskSpec,
    level: u32,
    parallel: usize,
    chunk: usize,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    uploader: Option<Uploader>,
    map: tar::SparseMap,
    batch: Vec<u8>,
    compressing: VecDeque<JoinHandle<Vec<u8>>>,
    digests: BTreeMap<u64, BlockDigest>,
}

impl GcpCloud {
    /// The gzip stream and sparse map of an interrupted writer died with it
    /// and cannot be rebuilt from the journal: cancel its upload session
    /// (when this process still knows it; otherwise it expires unused after
    /// a week and never becomes an object), remove its partial objects and
    /// an image it may have imported, so the disk is sent again from block 0.
    async fn restart_upload(
        &self,
        _cap: &Capability,
        bucket: &str,
        prefix: &str,
        image: &str,
    ) -> Result<(), CloudError> {
        let held = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(prefix);
        if let Some(session) = held {
            upload::cancel(&self.client, &session, prefix).await?;
        }
        for object in upload::list(&self.client, bucket, prefix).await? {
            upload::delete(&self.client, bucket, &object).await?;
        }
        match self.client.delete(&format!("global/images/{image}")).await {
            Ok(op) if op.is_object() => self.client.wait(op).await.map(|_| ()),
            Ok(_) | Err(CloudError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl GcpDiskWriter {
    fn object(&self, part: &str) -> String {
        format!("{}{part}", self.prefix)
    }

    /// Hands the batch to a compressor thread; keeps at most `parallel` busy.
    async fn seal_batch(&self, state: &mut State) -> Result<(), CloudError> {
        if !state.batch.is_empty() {
            let data = std::mem::take(&mut state.batch);
            let level = self.level;
            state
                .compressing
                .push_back(tokio::task::spawn_blocking(move || {
                    tar::gzip_member(&data, level)
                }));
        }
        while state.compressing.len() > self.parallel {
            self.upload_oldest(state).await?;
        }
        Ok(())
    }

    async fn upload_oldest(&self, state: &mut State) -> Result<(), CloudError> {
        let Some(job) = state.compressing.pop_front() else {
            return Ok(());
        };
        let member = job
            .await
            .map_err(|e| CloudError::Permanent(format!("gzip worker: {e}")))?;
        let uploader = state.uploader.get_or_insert_with(|| {
            Uploader::start(pipe::Target {
                client: self.client.clone(),
                bucket: self.bucket.clone(),
                object: self.object("data"),
                chunk: self.chunk,
                sessions: self.sessions.clone(),
                prefix: self.prefix.clone(),
            })
        });
        // Handed over, the member is the upload task's to send (and resend).
        uploader.send(member).await
    }

    async fn drain(&self, state: &mut State) -> Result<(), CloudError> {
        self.seal_batch(state).await?;
        while !state.compressing.is_empty() {
            self.upload_oldest(state).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl DiskWriter for GcpDiskWriter {
    fn order(&self) -> WriteOrder {
        WriteOrder::Sequential
    }

    fn staging_id(&self) -> String {
        self.prefix.clone()
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
        let mut state = self.state.lock().await;
        let offset = index.0 * BLOCK_SIZE;
        // A retry of a block we already hold (its upload failed after it was
        // taken): the bytes are queued; the next write or flush sends them.
        if state.digests.get(&index.0) == Some(&digest) {
            return Ok(());
        }
        if offset < state.map.end() {
            return Err(CloudError::Permanent(format!(
                "{}: block {} arrived after a later one (a tar stream needs order)",
                self.spec.name, index.0
            )));
        }
        if offset + data.len() as u64 > self.spec.virtual_size.0 {
            return Err(CloudError::Permanent(format!(
                "{}: block {} lies past the disk's end",
                self.spec.name, index.0
            )));
        }
        state.map.push(offset, data.len() as u64);
        state.digests.insert(index.0, digest);
        state.batch.extend_from_slice(&data);
        if state.batch.len() >= MEMBER_BYTES {
            self.seal_batch(&mut state).await?;
        }
        Ok(())
    }

    /// Compresses and uploads everything received; all of it that fills
    /// whole 256 KiB quanta is committed by the server.
    async fn flush(&self) -> Result<(), CloudError> {
        let mut state = self.state.lock().await;
        self.drain(&mut state).await?;
        if let Some(uploader) = &state.uploader {
            uploader.flush().await?;
        }
        Ok(())
    }

    async fn finish(self: Box<Self>, _blocks_written: u64) -> Result<WrittenDisk, CloudError> {
        let mut state = self.state.lock().await;
        let started = std::time::Instant::now();
        self.drain(&mut state).await?;
        let real_size = tar::round_up_gib(self.spec.virtual_size.0);
        let stored = state.map.stored();
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let head = tar::sparse_header("disk.raw", real_size, &state.map, mtime);
        let tail = tar::trailer(stored);
        let mut parts = vec![self.object("head")];
        upload::put_object(
            &self.client,
            &self.bucket,
            &parts[0],
            tar::gzip_member(&head, self.level),
        )
        .await?;
        let upload = match state.uploader.take() {
            Some(uploader) => uploader.close().await?,
            None => None,
        };
        if let Some(data) = upload {
            parts.push(data.object.clone());
            data.finish(&self.client).await?;
            self.sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.prefix);
        }
        parts.push(self.object("tail"));
        upload::put_object(
            &self.client,
            &self.bucket,
            &self.object("tail"),
            tar::gzip_member(&tail, self.level),
        )
        .await?;
        let archive = self.object("disk.tar.gz");
        upload::compose(&self.client, &self.bucket, &archive, &parts).await?;
        for part in &parts {
            upload::delete(&self.client, &self.bucket, part).await?;
        }
        let uploaded = started.elapsed();
        // Import only what we meant to send.
        verify::check_archive(
            &self.client,
            &self.bucket,
            &archive,
            real_size,
            &state.digests,
        )
        .await?;
        let body = image_body(
            &self.image,
            &self.spec,
            &upload::public_url(&self.bucket, &archive),
        );
        let verified = started.elapsed();
        let op = self.client.post("global/images", &body).await?;
        self.client.wait(op).await?;
        tracing::info!(
            disk = %self.spec.name,
            uploaded_ms = uploaded.as_millis() as u64,
            verified_ms = (verified - uploaded).as_millis() as u64,
            imported_ms = (started.elapsed() - verified).as_millis() as u64,
            "finished: rest of the stream, compose; read-back check; images.insert"
        );
        Ok(WrittenDisk {
            id: self.image.clone(),
            format: DiskFormat::Raw,
            virtual_size: Bytes(real_size),
        })
    }
}

/// The `images.insert` body: the archive as a TAR raw disk, and what the
/// source says of its boot (UEFI guests need `UEFI_COMPATIBLE` to boot with
/// Secure Boot/Shielded VM; the architecture when the source names one).
fn image_body(image: &str, spec: &TargetDiskSpec, source_url: &str) -> serde_json::Value {
    let mut body = json!({
        "name": image,
        "description": format!("altishift import of {}", spec.name),
        "rawDisk": {"source": source_url, "containerType": "TAR"},
        "labels": {"altishift": "import"},
    });
    let platform = &spec.platform;
    if platform.boot_mode.as_deref() == Some("uefi") {
        body["guestOsFeatures"] = json!([{"type": "UEFI_COMPATIBLE"}]);
    }
    match platform.architecture.as_deref() {
        Some("x86_64") => body["architecture"] = json!("X86_64"),
        Some("arm64") => body["architecture"] = json!("ARM64"),
        _ => {}
    }
    body
}

#[async_trait]
impl Target for GcpCloud {
    /// The disk is streamed as one sparse tar.gz: blocks in order, once. A
    /// cutover (which writes blocks again) onto Google Cloud is refused at
    /// preflight, before any staging exists.
    fn write_order(&self, _format: crate::inventory::DiskFormat) -> Option<crate::WriteOrder> {
        Some(crate::WriteOrder::Sequential)
    }

    async fn open_disk_writer(
        &self,
        cap: &Capability,
        spec: &TargetDiskSpec,
    ) -> Result<Box<dyn DiskWriter>, CloudError> {
        let bucket = self.bucket()?.to_string();
        let short = cap.plan_hash().short().to_string();
        let disk = resource_name(&spec.name);
        let prefix = format!("altishift/{short}/{disk}/");
        let image = resource_name(&format!("{disk}-{short}"));
        let restarted = match &spec.resume {
            None => false,
            Some(staging) if *staging == prefix => {
                self.restart_upload(cap, &bucket, &prefix, &image).await?;
                true
            }
            Some(staging) => {
                return Err(CloudError::Permanent(format!(
                    "{}: the journal names staging '{staging}', this disk stages under \
                     '{prefix}' (a different plan?)",
                    spec.name
                )));
            }
        };
        Ok(Box::new(GcpDiskWriter {
            client: self.client.clone(),
            sessions: self.sessions.clone(),
            restarted,
            bucket,
            prefix,
            image,
            spec: spec.clone(),
            level: self.gzip_level,
            parallel: self.compress_threads,
            chunk: self.upload_chunk,
            state: tokio::sync::Mutex::new(State::default()),
        }))
    }

    async fn deploy(
        &self,
        _cap: &Capability,
        spec: &DeploySpec,
    ) -> Result<DeployedInstance, CloudError> {
        let zone = self.deploy_zone(&spec.region)?;
        let name = resource_name(&spec.name);
        let disks: Vec<Value> = spec
            .disks
            .iter()
            .enumerate()
            .map(|(i, disk)| {
                json!({
                    "boot": i == 0,
                    "autoDelete": true,
                    "deviceName": format!("disk{i}"),
                    "initializeParams": {
                        "sourceImage": format!("global/images/{}", disk.id),
                        "diskSizeGb": disk_size_gb(disk.virtual_size.0).to_string(),
                    },
                })
            })
            .collect();
        let labels: serde_json::Map<String, Value> = spec
            .tags
            .iter()
            .map(|(k, v)| (label(k), Value::from(label(v))))
            .filter(|(k, _)| !k.is_empty())
            .collect();
        let mut body = json!({
            "name": name,
            "machineType": format!("zones/{zone}/machineTypes/{}", spec.size),
            "disks": disks,
            "networkInterfaces": [self.interface(&spec.config).await?],
            "labels": labels,
        });
        super::config::instance_parts(&spec.config, &mut body);
        let op = self
            .client
            .post(&format!("zones/{zone}/instances"), &body)
            .await?;
        self.client.wait(op).await?;
        let running = self.wait_running(&zone, &name).await?;
        Ok(DeployedInstance {
            id: format!("{zone}/{name}"),
            name: name.clone(),
            address: super::deploy::address_of(&running),
        })
    }

    async fn read_back(
        &self,
        disk: &WrittenDisk,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        let image = self
            .client
            .get(&format!("global/images/{}", disk.id))
            .await?;
        let Some((bucket, object)) = image["rawDisk"]["source"]
            .as_str()
            .and_then(|s| s.strip_prefix("https://storage.googleapis.com/"))
            .and_then(|s| s.split_once('/'))
            .map(|(b, o)| (b.to_string(), o.to_string()))
        else {
            return Ok(None);
        };
        let path = std::env::temp_dir().join(format!(
            "altishift-gcp-readback-{}-{}.raw",
            crate::fsutil::file_name(&disk.id).map_err(CloudError::Permanent)?,
            std::process::id()
        ));
        match verify::unpack_to(&self.client, &bucket, &object, &path).await {
            Ok(_) => {}
            // Cleaned up already: honestly unverifiable.
            Err(CloudError::NotFound(_)) => {
                let _ = std::fs::remove_file(&path);
                return Ok(None);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        }
        let inner = LocalDiskReader::open(&path, DiskFormat::Raw)?;
        Ok(Some(Box::new(ReadBack { inner, path })))
    }

    async fn probe(
        &self,
        deployed: &DeployedInstance,
        spec: &DeploySpec,
    ) -> Result<Vec<Check>, CloudError> {
        let (zone, name) = split_instance(&deployed.id)?;
        let instance = self
            .client
            .get(&format!("zones/{zone}/instances/{name}"))
            .await?;
        let status = instance["status"].as_str().unwrap_or("?").to_string();
        let machine = last_segment(instance["machineType"].as_str().unwrap_or_default());
        let disks = instance["disks"].as_array().map(Vec::len).unwrap_or(0);
        let config = self.config_checks(&instance, &spec.config).await?;
        let mut checks = vec![
            Check::new("running", status == "RUNNING", format!("status {status}")),
            Check::new(
                "size",
                machine == spec.size,
                format!("machine type {machine} (planned {})", spec.size),
            ),
            Check::new(
                "disks",
                disks == spec.disks.len(),
                format!("{disks} attached (planned {})", spec.disks.len()),
            ),
        ];
        checks.extend(config);
        Ok(checks)
    }

    async fn serial_console(
        &self,
        deployed: &DeployedInstance,
    ) -> Result<Option<String>, CloudError> {
        let (zone, name) = split_instance(&deployed.id)?;
        self.serial_output(zone, name).await.map(Some)
    }

    async fn create_config_object(
        &self,
        cap: &Capability,
        object: &crate::configure::ConfigObject,
    ) -> Result<String, CloudError> {
        self.create_config(cap, object).await
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_image_carries_the_source_boot_mode_and_architecture() {
        let mut spec = TargetDiskSpec {
            name: "web-root".into(),
            virtual_size: Bytes::gib(1),
            format: DiskFormat::Raw,
            region: "europe-west1-b".into(),
            boot: true,
            resume: None,
            platform: Default::default(),
        };
        let plain = image_body("img", &spec, "https://storage.googleapis.com/b/o");
        assert_eq!(plain["rawDisk"]["containerType"], "TAR");
        assert!(plain.get("guestOsFeatures").is_none() && plain.get("architecture").is_none());
        spec.platform.boot_mode = Some("uefi".into());
        spec.platform.architecture = Some("arm64".into());
        let uefi = image_body("img", &spec, "https://storage.googleapis.com/b/o");
        assert_eq!(uefi["guestOsFeatures"][0]["type"], "UEFI_COMPATIBLE");
        assert_eq!(uefi["architecture"], "ARM64");
    }

    use super::*;

    #[test]
    fn names_follow_compute_rules() {
        assert_eq!(resource_name("web-2-disk0"), "web-2-disk0");
        assert_eq!(resource_name("Web_2/Root"), "web-2-root");
        assert_eq!(resource_name("9lives"), "d-9lives");
        assert!(resource_name(&"x".repeat(80)).len() <= 63);
        assert_eq!(resource_name("a-----"), "a");
    }
}
