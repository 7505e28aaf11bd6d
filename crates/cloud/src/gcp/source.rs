//! Google Cloud as a source. Compute Engine has no API that returns disk
//! bytes, so a disk is read by a worker VM: snapshot the disk, create a
//! temporary disk from the snapshot, boot a small worker with that disk
//! attached read-only, and stream it over SSH (the SSH source) from the
//! path Google's guest images give attached disks,
//! `/dev/disk/by-id/google-<deviceName>`.
//!
//! The three resources share one name and are journaled as the snapshot's
//! id, `ZONE/NAME`: the snapshot is `NAME`, the disk `NAME-d`, the worker
//! `NAME-w`. Cleanup of that id removes the worker, then the disk (it cannot
//! go while attached), then the snapshot. Names carry the plan hash, so an
//! `alreadyExists` answer means an earlier attempt of this run made it and
//! it is adopted, not an error.
//!
//! The worker's SSH host key is pinned when the guest publishes its keys as
//! guest attributes (`hostkeys/`, enabled by the worker's metadata);
//! otherwise the operator's `ssh_options`/ssh config decide (e.g.
//! `StrictHostKeyChecking=accept-new`).

use super::{GcpCloud, resource_name};
use crate::Source;
use crate::inventory::DiskFormat;
use crate::ssh::{AgentPolicy, SshCloud, SshSettings, SshTarget};
use crate::units::Bytes;
use crate::{Capability, Cloud, CloudError, DiskReader, DiskRef, SnapshotRef};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The worker VM that reads source disks, from the profile.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub machine_type: String,
    /// `projects/debian-cloud/global/images/family/debian-12` or a project image.
    pub image: String,
    /// Where the worker's OS lists attached disks by id.
    pub device_dir: String,
    pub user: Option<String>,
    pub ssh_options: Vec<String>,
    pub sudo: bool,
    /// A public key (`ssh-ed25519 AAAA… comment`) for the worker's `ssh-keys` metadata.
    pub ssh_public_key: Option<String>,
    /// The agent binary copied to the worker (default: `$ALTISHIFT_AGENT`, else
    /// `altishift-agent` next to this executable).
    pub agent_binary: Option<PathBuf>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            machine_type: "e2-small".into(),
            image: "projects/debian-cloud/global/images/family/debian-12".into(),
            device_dir: "/dev/disk/by-id".into(),
            user: None,
            ssh_options: Vec::new(),
            sudo: true,
            ssh_public_key: None,
            agent_binary: None,
        }
    }
}

/// The login the worker's `ssh-keys` metadata names when the profile sets no `user`.
const METADATA_USER: &str = "altishift";

/// The resources of one source read, from the journaled id `ZONE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSet {
    pub zone: String,
    pub snapshot: String,
    pub disk: String,
    pub worker: String,
}

impl WorkerSet {
    /// From the name the engine gives the snapshot (kept ≤ 61 so the
    /// suffixes fit Compute Engine's 63).
    /// A name too long to fit keeps its first 52 characters and gains a
    /// digest of the whole: names that differ only at the end (a cutover's
    /// `-p2`, `-p3` pass snapshots of a long disk key) stay distinct.
    fn new(zone: &str, name: &str) -> WorkerSet {
        use sha2::Digest as _;
        let mut base = resource_name(name);
        if base.len() > 61 || name.len() > 61 {
            let digest = sha2::Sha256::digest(name.as_bytes());
            let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            base.truncate(52);
            while base.ends_with('-') {
                base.pop();
            }
            base = format!("{base}-{tag}");
        }
        WorkerSet::from_base(zone, &base)
    }

    fn from_base(zone: &str, base: &str) -> WorkerSet {
        WorkerSet {
            zone: zone.to_string(),
            snapshot: base.to_string(),
            disk: format!("{base}-d"),
            worker: format!("{base}-w"),
        }
    }

    pub fn id(&self) -> String {
        format!("{}/{}", self.zone, self.snapshot)
    }

    /// None for ids that are not `ZONE/NAME` (a bare snapshot name).
    pub fn parse(id: &str) -> Option<WorkerSet> {
        let (zone, base) = id.split_once('/')?;
        if zone.is_empty() || base.is_empty() || base.contains('/') {
            return None;
        }
        Some(WorkerSet::from_base(zone, base))
    }

    /// The attached disk's `deviceName` (the temporary disk's name: unique,
    /// so one worker-disk folder never holds two of them).
    pub fn device_name(&self) -> &str {
        &self.disk
    }
}

/// An `alreadyExists` refusal (409).
fn already_exists(err: &CloudError) -> bool {
    matches!(err, CloudError::Permanent(text) if text.contains("(alreadyExists)"))
}

/// A private folder for the pinned known_hosts file, removed on drop.
pub(super) struct KnownHosts {
    dir: PathBuf,
}

impl KnownHosts {
    fn write(alias: &str, keys: &[(String, String)]) -> Result<KnownHosts, CloudError> {
        use std::os::unix::fs::PermissionsExt;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("altishift-gce-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| CloudError::from_io("known_hosts folder", e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| CloudError::from_io("known_hosts folder", e))?;
        let text: String = keys
            .iter()
            .map(|(kind, key)| format!("{alias} {kind} {key}\n"))
            .collect();
        let hosts = KnownHosts { dir };
        std::fs::write(hosts.file(), text).map_err(|e| CloudError::from_io("known_hosts", e))?;
        Ok(hosts)
    }

    fn file(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
}

impl Drop for KnownHosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An SSH source opened on a worker, with what keeps it usable.
pub(super) struct WorkerSource {
    pub ssh: Arc<SshCloud>,
    _known_hosts: Option<KnownHosts>,
}

impl GcpCloud {
    /// (zone, disk name) from the inventory's `NAME@ZONE`.
    fn worker_zone(&self, disk: &DiskRef) -> Result<(String, String), CloudError> {
        match disk.disk_id.rsplit_once('@') {
            Some((name, zone)) if !zone.is_empty() && !name.is_empty() => {
                Ok((zone.to_string(), name.to_string()))
            }
            _ => Err(CloudError::Permanent(format!(
                "{}: disk id '{}' is not NAME@ZONE",
                self.name, disk.disk_id
            ))),
        }
    }

    /// POSTs a create and waits for its operation; adopts what already exists.
    async fn create(&self, _cap: &Capability, path: &str, body: &Value) -> Result<(), CloudError> {
        match self.client.post(path, body).await {
            Ok(op) => self.client.wait(op).await.map(|_| ()),
            Err(e) if already_exists(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn make_worker_set(
        &self,
        cap: &Capability,
        set: &WorkerSet,
        disk_name: &str,
    ) -> Result<SnapshotRef, CloudError> {
        let zone = &set.zone;
        let labels = json!({"altishift": "source-read", "altishift-plan": cap.plan_hash().short()});
        self.create(
            cap,
            &format!("zones/{zone}/disks/{disk_name}/createSnapshot"),
            &json!({"name": set.snapshot, "labels": labels}),
        )
        .await?;
        let snapshot = self
            .client
            .get(&format!("global/snapshots/{}", set.snapshot))
            .await?;
        let size_gb = super::client::int64(&snapshot["diskSizeGb"]).ok_or_else(|| {
            CloudError::Permanent(format!("snapshot {} has no diskSizeGb", set.snapshot))
        })?;
        self.create(
            cap,
            &format!("zones/{zone}/disks"),
            &json!({
                "name": set.disk,
                "sourceSnapshot": format!("global/snapshots/{}", set.snapshot),
                "sizeGb": size_gb.to_string(),
                "labels": labels,
            }),
        )
        .await?;
        let worker = &self.worker;
        let mut metadata = vec![json!({"key": "enable-guest-attributes", "value": "TRUE"})];
        if let Some(key) = &worker.ssh_public_key {
            let user = worker.user.as_deref().unwrap_or(METADATA_USER);
            metadata.push(json!({"key": "ssh-keys", "value": format!("{user}:{}", key.trim())}));
        }
        let body = json!({
            "name": set.worker,
            "description": format!("altishift: reads {disk_name} over SSH; removed at cleanup"),
            "machineType": format!("zones/{zone}/machineTypes/{}", worker.machine_type),
            "disks": [
                {
                    "boot": true,
                    "autoDelete": true,
                    "deviceName": "boot",
                    "initializeParams": {"sourceImage": worker.image},
                },
                {
                    "boot": false,
                    "autoDelete": false,
                    "mode": "READ_ONLY",
                    "deviceName": set.device_name(),
                    "source": format!("zones/{zone}/disks/{}", set.disk),
                },
            ],
            "networkInterfaces": [{
                "network": format!("global/networks/{}", self.network),
                "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}],
            }],
            "metadata": {"items": metadata},
            "labels": labels,
        });
        self.create(cap, &format!("zones/{zone}/instances"), &body)
            .await?;
        self.wait_running(zone, &set.worker).await?;
        Ok(SnapshotRef {
            id: set.id(),
            virtual_size: Bytes(size_gb << 30),
            format: DiskFormat::Raw,
            created_by_run: true,
        })
    }

    /// The worker's SSH host keys from its guest attributes, waiting a while
    /// for the guest to publish them; empty when it does not.
    async fn host_keys(&self, set: &WorkerSet) -> Vec<(String, String)> {
        let path = format!(
            "zones/{}/instances/{}/getGuestAttributes?queryPath=hostkeys%2F",
            set.zone, set.worker
        );
        let started = Instant::now();
        let wait = self.client.poll.deadline.min(Duration::from_secs(120));
        let mut attempt = 0;
        loop {
            if let Ok(answer) = self.client.get(&path).await {
                let keys: Vec<(String, String)> = answer["queryValue"]["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|i| i["namespace"] == "hostkeys")
                    .filter_map(|i| {
                        let kind = i["key"].as_str()?;
                        let key = i["value"].as_str()?;
                        let clean = |s: &str| {
                            !s.is_empty()
                                && s.chars()
                                    .all(|c| c.is_ascii_alphanumeric() || "+/=-@.".contains(c))
                        };
                        (clean(kind) && clean(key)).then(|| (kind.to_string(), key.to_string()))
                    })
                    .collect();
                if !keys.is_empty() {
                    return keys;
                }
            }
            if started.elapsed() > wait {
                tracing::warn!(
                    worker = %set.worker,
                    "the worker published no SSH host keys; the ssh config decides whether to trust it"
                );
                return Vec::new();
            }
            tokio::time::sleep(self.client.poll.delay(attempt)).await;
            attempt += 1;
        }
    }

    /// The SSH source on the worker of `set` (opened once, then reused).
    async fn worker_source(&self, set: &WorkerSet) -> Result<Arc<SshCloud>, CloudError> {
        let id = set.id();
        if let Some(open) = self.sources.lock().await.get(&id) {
            return Ok(open.ssh.clone());
        }
        let vm = self
            .client
            .get(&format!("zones/{}/instances/{}", set.zone, set.worker))
            .await?;
        let address = vm["networkInterfaces"][0]["accessConfigs"][0]["natIP"]
            .as_str()
            .ok_or_else(|| {
                CloudError::Permanent(format!(
                    "worker {} in {} has no external address",
                    set.worker, set.zone
                ))
            })?
            .to_string();
        let keys = self.host_keys(set).await;
        let alias = format!("altishift-worker-{}", set.worker);
        let known_hosts = if keys.is_empty() {
            None
        } else {
            Some(KnownHosts::write(&alias, &keys)?)
        };
        // Ours first: for `ssh`, the first value given for an option wins.
        let mut options = Vec::new();
        if let Some(hosts) = &known_hosts {
            for option in [
                format!("UserKnownHostsFile={}", hosts.file().display()),
                "GlobalKnownHostsFile=/dev/null".to_string(),
                "StrictHostKeyChecking=yes".to_string(),
                format!("HostKeyAlias={alias}"),
            ] {
                options.push("-o".to_string());
                options.push(option);
            }
        }
        options.extend(self.worker.ssh_options.iter().cloned());
        let settings = SshSettings {
            target: SshTarget {
                host: address,
                // The metadata key was put there for this user.
                user: self.worker.user.clone().or_else(|| {
                    self.worker
                        .ssh_public_key
                        .as_ref()
                        .map(|_| METADATA_USER.to_string())
                }),
                options,
                sudo: self.worker.sudo,
            },
            device: format!(
                "{}/google-{}",
                self.worker.device_dir.trim_end_matches('/'),
                set.device_name()
            ),
            instance_name: Some(set.worker.clone()),
            agent: AgentPolicy::Auto,
            agent_binary: self.worker.agent_binary.clone(),
            jurisdiction: self.jurisdiction.clone(),
        };
        let ssh = Arc::new(SshCloud::new(&self.name, settings)?);
        self.sources.lock().await.insert(
            id,
            WorkerSource {
                ssh: ssh.clone(),
                _known_hosts: known_hosts,
            },
        );
        Ok(ssh)
    }

    /// Removes the worker, the temporary disk and the snapshot of `set`
    /// (each already gone is fine), closing the SSH source first.
    pub(super) async fn delete_worker_set(
        &self,
        _cap: &Capability,
        set: &WorkerSet,
    ) -> Result<(), CloudError> {
        if let Some(open) = self.sources.lock().await.remove(&set.id()) {
            // The agent's folder dies with the worker; the connection is ours.
            if let Err(e) = open.ssh.revoke().await {
                tracing::warn!(worker = %set.worker, "closing the ssh source: {e}");
            }
        }
        for path in [
            format!("zones/{}/instances/{}", set.zone, set.worker),
            format!("zones/{}/disks/{}", set.zone, set.disk),
            format!("global/snapshots/{}", set.snapshot),
        ] {
            match self.client.delete(&path).await {
                Ok(op) if op.is_object() => self.client.wait(op).await.map(|_| ())?,
                Ok(_) | Err(CloudError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Closes every SSH source still open (at revoke).
    pub(super) async fn close_sources(&self) -> Vec<String> {
        let open: Vec<(String, WorkerSource)> = self.sources.lock().await.drain().collect();
        let mut done = Vec::new();
        for (id, source) in open {
            match source.ssh.revoke().await {
                Ok(lines) => done.extend(lines),
                Err(e) => done.push(format!("{}: closing the worker {id}: {e}", self.name)),
            }
        }
        done
    }
}

#[async_trait]
impl Source for GcpCloud {
    /// Snapshot → temporary disk → worker with the disk attached, running.
    /// The engine journals the result only when all three exist, so a
    /// failure half-way removes what was made before it is reported.
    async fn snapshot_disk(
        &self,
        cap: &Capability,
        disk: &DiskRef,
        name: &str,
    ) -> Result<SnapshotRef, CloudError> {
        let (zone, disk_name) = self.worker_zone(disk)?;
        let set = WorkerSet::new(&zone, name);
        match self.make_worker_set(cap, &set, &disk_name).await {
            Ok(snapshot) => Ok(snapshot),
            Err(e) => {
                if let Err(undo) = self.delete_worker_set(cap, &set).await {
                    tracing::warn!(snapshot = %set.id(), "removing a half-made worker set: {undo}");
                }
                Err(e)
            }
        }
    }

    /// Reads the temporary disk on the worker over SSH (waiting for its
    /// sshd after boot).
    async fn open_disk_reader(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn DiskReader>, CloudError> {
        let reader = self
            .on_worker(
                snapshot,
                |ssh| async move { ssh.open_stream_reader().await },
            )
            .await?;
        Ok(Box::new(reader))
    }
}

impl GcpCloud {
    /// Runs `open` against the SSH source on the worker of `snapshot`,
    /// again while the worker is not reachable yet (its sshd after boot).
    pub(super) async fn on_worker<T, F, Fut>(
        &self,
        snapshot: &SnapshotRef,
        open: F,
    ) -> Result<T, CloudError>
    where
        F: Fn(Arc<SshCloud>) -> Fut,
        Fut: std::future::Future<Output = Result<T, CloudError>>,
    {
        let set = WorkerSet::parse(&snapshot.id).ok_or_else(|| {
            CloudError::Permanent(format!(
                "{}: '{}' is not a snapshot this provider made for reading (ZONE/NAME)",
                self.name, snapshot.id
            ))
        })?;
        let ssh = self.worker_source(&set).await?;
        let started = Instant::now();
        let wait = self.client.poll.deadline.min(Duration::from_secs(300));
        let mut attempt = 0;
        loop {
            match open(ssh.clone()).await {
                Ok(done) => return Ok(done),
                Err(e) if e.is_transient() && started.elapsed() < wait => {
                    tracing::debug!(worker = %set.worker, "worker not reachable yet: {e}");
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(self.client.poll.delay(attempt)).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_sets_name_three_resources_from_one_id() {
        let set = WorkerSet::new(
            "europe-west1-b",
            "altishift-abc123-src-vm-europe-west1-b/src",
        );
        assert_eq!(set.snapshot, "altishift-abc123-src-vm-europe-west1-b-src");
        assert_eq!(set.disk, format!("{}-d", set.snapshot));
        assert_eq!(set.worker, format!("{}-w", set.snapshot));
        assert_eq!(WorkerSet::parse(&set.id()), Some(set.clone()));
        assert_eq!(WorkerSet::parse("plain-snapshot"), None);
        let long = WorkerSet::new("z", &"x".repeat(90));
        assert!(long.worker.len() <= 63 && long.disk.len() <= 63);
        // A cutover's pass snapshots of a long disk key differ only at the
        // end: they must not name one snapshot (the final pass would adopt
        // the delta pass's and miss the writes made since).
        let key = "altishift-0123abcd-gce-to-lab-cut-gce-to-lab-cut-europe-west1-b";
        let p2 = WorkerSet::new("z", &format!("{key}-p2"));
        let p3 = WorkerSet::new("z", &format!("{key}-p3"));
        assert_ne!(p2.snapshot, p3.snapshot);
        assert!(p3.worker.len() <= 63, "{}", p3.worker);
        assert_eq!(p3, WorkerSet::new("z", &format!("{key}-p3")), "stable");
    }

    #[test]
    fn already_exists_is_recognised() {
        assert!(already_exists(&CloudError::Permanent(
            "POST zones/z/disks: The resource 'd' already exists (alreadyExists)".into()
        )));
        assert!(!already_exists(&CloudError::Permanent(
            "nope (invalid)".into()
        )));
    }
}
