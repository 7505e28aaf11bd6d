//! Google Cloud provider: service-account auth (RS256 JWT → OAuth token),
//! Compute Engine inventory to the last page, disks in as a sparse
//! `disk.raw` tar.gz through a resumable Cloud Storage upload and
//! `images.insert`, instances from those images.

mod applied;
pub mod auth;
mod catalog;
pub mod client;
pub mod config;
pub mod cutover;
mod deploy;
pub mod inventory;
mod pipe;
pub mod profile;
mod readback;
mod source;
pub mod tar;
mod target;
pub mod upload;
pub mod verify;

use crate::ProviderKind;
use crate::inventory::Inventory;
use crate::inventory::declared::{GuestNeeds, ProviderRules, SourceRules, TargetRules};
use crate::{Capability, Cloud, CloudError, CreatedResource};
use crate::{CutoverSource, ResourceKind, Source, Target};
use async_trait::async_trait;
use auth::{ServiceAccount, TokenSource};
use client::{Client, PollPolicy};
use profile::GcpProfile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use source::{WorkerSet, WorkerSettings};
pub use target::resource_name;

/// Where the provider talks to (overridable for tests).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `https://compute.googleapis.com`
    pub compute: String,
    /// `https://storage.googleapis.com`
    pub storage: String,
    /// None: the key file's `token_uri`.
    pub token_uri: Option<String>,
}

/// What Compute Engine declares for plans: it has no API that returns disk
/// bytes, so a source disk is read from a snapshot through a temporary disk
/// and a worker VM (see source.rs).
pub fn rules() -> ProviderRules {
    ProviderRules {
        source: SourceRules {
            snapshot: Some(
                "point-in-time copy of {device}; creates a temporary disk from it and a worker \
                 VM (the profile's worker_machine_type) that reads it over SSH; all three are \
                 removed at cleanup"
                    .into(),
            ),
            agent_host: Some("the worker VM".into()),
            quiesce: Some(cutover::QUIESCE.into()),
        },
        // Disks on virtio-scsi or NVMe, network on virtio-net or gVNIC.
        target: TargetRules {
            guest: GuestNeeds::new(
                &[&["virtio_scsi", "nvme"], &["virtio_net", "gve"]],
                Some("GCE"),
            ),
            ..TargetRules::default()
        },
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            compute: "https://compute.googleapis.com".into(),
            storage: "https://storage.googleapis.com".into(),
            token_uri: None,
        }
    }
}

pub struct GcpCloud {
    name: String,
    client: Arc<Client>,
    zone: Option<String>,
    bucket: Option<String>,
    network: String,
    jurisdiction: Option<String>,
    in_flight: usize,
    /// gzip level of the image stream (1: fast; the data is mostly blocks).
    pub gzip_level: u32,
    /// gzip members compressed at once.
    pub compress_threads: usize,
    /// Bytes per resumable-upload request.
    pub upload_chunk: usize,
    /// The worker VM that reads source disks.
    worker: WorkerSettings,
    /// Upload sessions open in this process (cancelled when a writer is reopened).
    sessions: target::Sessions,
    /// SSH sources opened on workers, by the journaled snapshot id.
    sources: tokio::sync::Mutex<HashMap<String, source::WorkerSource>>,
}

impl GcpCloud {
    /// A provider for `project` with a loaded service account.
    pub fn new(
        name: &str,
        project: &str,
        account: ServiceAccount,
        endpoints: Endpoints,
    ) -> Result<GcpCloud, CloudError> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| CloudError::Permanent(format!("HTTP client: {e}")))?;
        let compute = endpoints.compute.trim_end_matches('/');
        let client = Client::new(
            http.clone(),
            TokenSource::new(http, account, endpoints.token_uri),
            format!("{compute}/compute/v1/projects/{project}"),
            endpoints.storage.trim_end_matches('/').to_string(),
            project.to_string(),
        )?;
        Ok(GcpCloud {
            name: name.to_string(),
            client: Arc::new(client),
            zone: None,
            bucket: None,
            network: "default".into(),
            jurisdiction: None,
            in_flight: 16,
            gzip_level: 1,
            compress_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .clamp(1, 8),
            upload_chunk: target::UPLOAD_CHUNK,
            worker: WorkerSettings::default(),
            sessions: Default::default(),
            sources: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// From a `[clouds.NAME]` profile: project, credentials_file (else
    /// `GOOGLE_APPLICATION_CREDENTIALS`), zone, bucket, network, endpoints.
    pub fn from_profile(
        name: &str,
        profile: &GcpProfile,
        base_dir: &Path,
    ) -> Result<GcpCloud, CloudError> {
        let key_path: PathBuf = match &profile.credentials_file {
            Some(path) if path.is_absolute() => path.clone(),
            Some(path) => base_dir.join(path),
            None => std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
                .map(PathBuf::from)
                .ok_or_else(|| {
                    CloudError::Auth(format!(
                        "[clouds.{name}] set 'credentials_file' or GOOGLE_APPLICATION_CREDENTIALS \
                         to a service-account key file"
                    ))
                })?,
        };
        let account = ServiceAccount::from_file(&key_path)?;
        let project = profile
            .project
            .clone()
            .or_else(|| account.project_id.clone())
            .ok_or_else(|| {
                CloudError::Permanent(format!(
                    "[clouds.{name}] a gcp cloud needs 'project' (the key file names none)"
                ))
            })?;
        let mut endpoints = Endpoints::default();
        if let Some(e) = &profile.endpoint {
            endpoints.compute = e.clone();
        }
        if let Some(e) = &profile.storage_endpoint {
            endpoints.storage = e.clone();
        }
        endpoints.token_uri = profile.token_uri.clone();
        let mut cloud = GcpCloud::new(name, &project, account, endpoints)?;
        cloud.zone = profile.zone.clone();
        cloud.bucket = profile.bucket.clone();
        if let Some(n) = &profile.network {
            cloud.network = n.clone();
        }
        cloud.jurisdiction = profile.jurisdiction.clone();
        if let Some(n) = profile.in_flight {
            cloud.in_flight = n.max(1);
        }
        let mut worker = WorkerSettings::default();
        if let Some(t) = &profile.worker_machine_type {
            worker.machine_type = t.clone();
        }
        if let Some(i) = &profile.worker_image {
            worker.image = i.clone();
        }
        if let Some(d) = &profile.worker_device_dir {
            worker.device_dir = d.clone();
        }
        if let Some(path) = &profile.worker_ssh_public_key {
            let path = if path.is_absolute() {
                path.clone()
            } else {
                base_dir.join(path)
            };
            let key = std::fs::read_to_string(&path).map_err(|e| {
                CloudError::Permanent(format!(
                    "[clouds.{name}] worker_ssh_public_key {}: {e}",
                    path.display()
                ))
            })?;
            worker.ssh_public_key = Some(key.trim().to_string());
        }
        worker.user = profile.user.clone();
        worker.ssh_options = profile.ssh_options.clone().unwrap_or_default();
        worker.sudo = profile.sudo.unwrap_or(true);
        cloud.worker = worker;
        Ok(cloud)
    }

    pub fn with_zone(mut self, zone: &str) -> Self {
        self.zone = Some(zone.to_string());
        self
    }

    pub fn with_bucket(mut self, bucket: &str) -> Self {
        self.bucket = Some(bucket.to_string());
        self
    }

    /// The worker VM (and its SSH login) that reads source disks.
    pub fn with_worker(mut self, worker: WorkerSettings) -> Self {
        self.worker = worker;
        self
    }

    pub fn with_jurisdiction(mut self, jurisdiction: &str) -> Self {
        self.jurisdiction = Some(jurisdiction.to_string());
        self
    }

    /// Tests shorten polling.
    pub fn with_poll(mut self, poll: PollPolicy) -> Self {
        if let Some(client) = Arc::get_mut(&mut self.client) {
            client.poll = poll;
        }
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn bucket(&self) -> Result<&str, CloudError> {
        self.bucket.as_deref().ok_or_else(|| {
            CloudError::Permanent(format!(
                "[clouds.{}] set 'bucket': disks reach Compute Engine through a Cloud Storage bucket",
                self.name
            ))
        })
    }
}

#[async_trait]
impl Cloud for GcpCloud {
    fn as_source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    fn as_cutover(&self) -> Option<&dyn CutoverSource> {
        Some(self)
    }

    fn as_target(&self) -> Option<&dyn Target> {
        Some(self)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn provider(&self) -> ProviderKind {
        ProviderKind::Gcp
    }

    fn jurisdiction(&self) -> Option<String> {
        self.jurisdiction.clone()
    }

    fn default_in_flight(&self) -> usize {
        self.in_flight
    }

    async fn inventory(&self) -> Result<Inventory, CloudError> {
        inventory::read(
            &self.client,
            &self.name,
            self.zone.as_deref(),
            self.jurisdiction.as_deref(),
        )
        .await
    }

    /// The firewall rules this plan made (found by their description):
    /// a run killed before journaling one leaves it behind.
    async fn find_leftovers(
        &self,
        tag: &(String, String),
    ) -> Result<Vec<CreatedResource>, CloudError> {
        self.firewall_leftovers(tag).await
    }

    async fn delete(&self, cap: &Capability, resource: &CreatedResource) -> Result<(), CloudError> {
        let path = match resource.kind {
            ResourceKind::AccessKey => return Ok(()),
            ResourceKind::Firewall => return self.remove_firewall(cap, &resource.id).await,
            // A key lives in the instance's metadata: nothing of its own.
            ResourceKind::SshKey => return Ok(()),
            ResourceKind::StagingDisk => {
                // Every object under the disk's staging prefix.
                let bucket = self.bucket()?;
                for object in upload::list(&self.client, bucket, &resource.id).await? {
                    upload::delete(&self.client, bucket, &object).await?;
                }
                return Ok(());
            }
            ResourceKind::Image | ResourceKind::Disk => format!("global/images/{}", resource.id),
            ResourceKind::Snapshot => match WorkerSet::parse(&resource.id) {
                // A source read: worker, temporary disk and snapshot.
                Some(set) => return self.delete_worker_set(cap, &set).await,
                None => format!("global/snapshots/{}", resource.id),
            },
            ResourceKind::Instance => {
                let (zone, name) = deploy::split_instance(&resource.id)?;
                format!("zones/{zone}/instances/{name}")
            }
        };
        match self.client.delete(&path).await {
            Ok(op) if op.is_object() => self.client.wait(op).await.map(|_| ()),
            Ok(_) | Err(CloudError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn revoke(&self) -> Result<Vec<String>, CloudError> {
        // SSH connections to workers (and agents copied there) end here.
        let mut done = self.close_sources().await;
        // Nothing was created for access (the key is the operator's); wipe it.
        self.client.auth.wipe().await;
        done.push(format!(
            "{}: service-account key and access token wiped from memory",
            self.name
        ));
        Ok(done)
    }
}
