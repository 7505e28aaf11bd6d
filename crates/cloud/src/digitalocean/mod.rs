//! DigitalOcean: inventory through API v2, disks written as custom images
//! (staged in S3-compatible storage, imported from the object's URL during a
//! short public-read window), droplets
//! deployed from them. As a source, a droplet's disk leaves through the guest
//! over SSH (DigitalOcean has no snapshot download).

pub mod client;
pub mod config;
pub mod inventory;
pub mod profile;
mod source;
pub mod staging;
pub mod target;
mod volumes;

use super::ssh::{AgentPolicy, SshCloud, SshSettings, SshTarget};
use super::{Capability, Cloud, CloudError, CreatedResource, DiskRef, ResourceKind};
use crate::ProviderKind;
use crate::inventory::Inventory;
use crate::inventory::declared::{ProviderRules, SourceRules, TargetRules};
use crate::secret::{Prompter, Secret};
use crate::{CutoverSource, Source, Target};
use async_trait::async_trait;
pub use client::{DoClient, Pacing};
use profile::DigitalOceanProfile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
pub use target::Staging;
use volumes::{VOLUME_DIR, VOLUME_LINK_PREFIX, snapshot_id};

/// DigitalOcean's limit for custom images (uncompressed).
pub const MAX_IMAGE_BYTES: u64 = 100 * 1_000_000_000;

/// What DigitalOcean declares for plans. A droplet boots from one custom
/// image (Linux, under 100 GB uncompressed); a data disk would have to become
/// a block-storage volume (`POST /v2/volumes`) filled through the new droplet
/// over SSH, because no API writes a volume's bytes: this version does not
/// do that, so a plan with data disks is refused rather than deployed
/// without them. The importer takes no presigned (query-string) URL, so the
/// staged object is public-read during the import (see staging.rs). As a
/// source, a droplet is read live over SSH (no snapshot download exists).
pub fn rules() -> ProviderRules {
    ProviderRules {
        source: SourceRules {
            snapshot: Some(LIVE_READ.into()),
            agent_host: Some("the droplet".into()),
            quiesce: None,
        },
        target: TargetRules {
            image_kind: "DigitalOcean custom".into(),
            max_image_bytes: Some(MAX_IMAGE_BYTES),
            linux_only: true,
            no_data_disks: Some(
                "DigitalOcean droplets boot from one custom image, and this version does not \
                 create volumes for data disks (DigitalOcean has no API to write a volume's \
                 bytes; they would go through the new droplet over SSH)"
                    .into(),
            ),
            write_disclosure: Some(
                "staged in the profile's bucket, readable by anyone with its unguessable URL \
                 while DigitalOcean imports it, private again after"
                    .into(),
            ),
            guest: crate::virtio_guest("DigitalOcean"),
        },
    }
}

/// What "snapshot disk" is on a host read live over SSH.
pub const LIVE_READ: &str = "no cloud snapshot: {device} is read live over SSH by the \
     altishift-agent (removed at cleanup); only a cutover's final pass is consistent";

/// How droplets are reached when DigitalOcean is the source.
#[derive(Debug, Clone, Default)]
pub struct SshAccess {
    pub user: Option<String>,
    pub options: Vec<String>,
    pub sudo: bool,
    /// Device to read (default `/dev/vda`).
    pub device: Option<String>,
    /// Folder of the volumes' device links (default `/dev/disk/by-id`, where
    /// DigitalOcean documents `scsi-0DO_Volume_<NAME>`); tests point it at
    /// a folder of files.
    pub volume_dir: Option<String>,
    /// The agent copied to the droplet (default: `$ALTISHIFT_AGENT`, else
    /// `altishift-agent` next to this executable).
    pub agent_binary: Option<PathBuf>,
}

pub struct DigitalOceanCloud {
    name: String,
    client: Arc<DoClient>,
    staging: Option<Staging>,
    jurisdiction: Option<String>,
    /// The profile's `region`: where plans deploy unless `--region` says otherwise.
    region: Option<String>,
    ssh: SshAccess,
    /// SSH sources opened per droplet (snapshot id → source).
    sources: Mutex<HashMap<String, Arc<SshCloud>>>,
}

impl DigitalOceanCloud {
    pub fn new(name: &str, client: DoClient) -> DigitalOceanCloud {
        DigitalOceanCloud {
            name: name.to_string(),
            client: Arc::new(client),
            staging: None,
            jurisdiction: None,
            region: None,
            ssh: SshAccess::default(),
            sources: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_staging(mut self, staging: Staging) -> Self {
        self.staging = Some(staging);
        self
    }

    pub fn with_jurisdiction(mut self, jurisdiction: Option<String>) -> Self {
        self.jurisdiction = jurisdiction;
        self
    }

    pub fn with_region(mut self, region: Option<String>) -> Self {
        self.region = region;
        self
    }

    pub fn with_ssh(mut self, ssh: SshAccess) -> Self {
        self.ssh = ssh;
        self
    }

    pub fn client(&self) -> &DoClient {
        &self.client
    }

    /// From a `[clouds.NAME]` profile: token from the profile, the
    /// environment or doctl's config; staging bucket and keys when given.
    pub fn from_profile(
        name: &str,
        profile: &DigitalOceanProfile,
        staging_dir: &Path,
        prompt: Prompter<'_>,
    ) -> Result<DigitalOceanCloud, CloudError> {
        let token = match &profile.token {
            Some(source) => source
                .resolve(&format!("{name} DigitalOcean token"), prompt)
                .map_err(|e| CloudError::Auth(format!("[clouds.{name}] token: {e}")))?,
            None => find_token().ok_or_else(|| {
                CloudError::Auth(format!(
                    "[clouds.{name}] no DigitalOcean token: set DIGITALOCEAN_TOKEN, log in with \
                     doctl, or give token = \"prompt\" in the profile"
                ))
            })?,
        };
        let client = DoClient::new(profile.endpoint.as_deref(), token)?;
        let mut cloud = DigitalOceanCloud::new(name, client)
            .with_jurisdiction(profile.jurisdiction.clone())
            .with_region(profile.region.clone())
            .with_ssh(SshAccess {
                user: profile.user.clone(),
                options: profile.ssh_options.clone().unwrap_or_default(),
                sudo: profile.sudo.unwrap_or(false),
                device: profile.device.clone(),
                volume_dir: profile.volume_dir.clone(),
                agent_binary: None,
            });
        if let Some(bucket) = &profile.bucket {
            let mut key = |field: &Option<crate::secret::SecretSource>, what: &str| {
                field
                    .as_ref()
                    .ok_or_else(|| {
                        CloudError::Auth(format!(
                            "[clouds.{name}] staging needs '{what}' (the Spaces key)"
                        ))
                    })?
                    .resolve(&format!("{name} Spaces {what}"), prompt)
                    .map_err(|e| CloudError::Auth(format!("[clouds.{name}] {what}: {e}")))
            };
            let endpoint = profile.staging_endpoint.clone().ok_or_else(|| {
                CloudError::Permanent(format!(
                    "[clouds.{name}] 'bucket' needs 'staging_endpoint' (e.g. \
                     https://fra1.digitaloceanspaces.com)"
                ))
            })?;
            cloud = cloud.with_staging(Staging::new(
                &endpoint,
                profile.region.as_deref().unwrap_or("us-east-1"),
                bucket,
                key(&profile.api_key, "api_key")?,
                key(&profile.secret_key, "secret_key")?,
                staging_dir,
            ));
        }
        Ok(cloud)
    }

    fn staging(&self) -> Result<&Staging, CloudError> {
        self.staging.as_ref().ok_or_else(|| {
            CloudError::Permanent(format!(
                "[clouds.{}] writing disks needs S3-compatible staging: set 'bucket', \
                 'staging_endpoint', 'api_key' and 'secret_key'",
                self.name
            ))
        })
    }

    /// Cutover: shuts the source droplet down (a `shutdown` action, polled
    /// to completion) after the final delta pass.
    pub async fn shutdown_droplet(&self, _cap: &Capability, id: &str) -> Result<(), CloudError> {
        let body = serde_json::json!({"type": "shutdown"});
        let created = self
            .client
            .post(&format!("/v2/droplets/{id}/actions"), &body)
            .await?;
        let action = match &created["action"]["id"] {
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                return Err(CloudError::Permanent(format!(
                    "droplet {id}: the shutdown action has no id"
                )));
            }
        };
        let started = std::time::Instant::now();
        loop {
            let a = self.client.get(&format!("/v2/actions/{action}")).await?;
            match a["action"]["status"].as_str().unwrap_or_default() {
                "completed" => return Ok(()),
                "errored" => {
                    return Err(CloudError::Permanent(format!(
                        "droplet {id}: shutdown action {action} errored"
                    )));
                }
                _ => {}
            }
            if started.elapsed() > self.client.pacing.poll_deadline {
                return Err(CloudError::Transient(format!(
                    "droplet {id}: shutdown not done in time"
                )));
            }
            tokio::time::sleep(self.client.pacing.poll_every).await;
        }
    }

    /// The droplet's own disk: the profile's `device`, else `/dev/vda`.
    fn boot_device(&self) -> String {
        self.ssh.device.clone().unwrap_or_else(|| "/dev/vda".into())
    }

    /// Where a disk of a droplet is read: the boot disk from the boot
    /// device, a volume from its own link `scsi-0DO_Volume_<NAME>` (the
    /// name the API gives the volume id), never one device for all.
    async fn device_of(&self, disk: &DiskRef) -> Result<String, CloudError> {
        if disk.disk_id == inventory::BOOT_DISK_ID {
            return Ok(self.boot_device());
        }
        let found = self
            .client
            .get(&format!("/v2/volumes/{}", disk.disk_id))
            .await?;
        let name = found["volume"]["name"].as_str().unwrap_or_default();
        let safe = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !name.starts_with('.');
        if !safe {
            return Err(CloudError::Permanent(format!(
                "volume {} of droplet {}: name {name:?} cannot name a device link",
                disk.disk_id, disk.instance_id
            )));
        }
        let dir = self.ssh.volume_dir.as_deref().unwrap_or(VOLUME_DIR);
        Ok(format!(
            "{}/{VOLUME_LINK_PREFIX}{name}",
            dir.trim_end_matches('/')
        ))
    }

    /// The SSH source reading `device` of a droplet, connected to its public address.
    async fn source_for(
        &self,
        instance_id: &str,
        device: &str,
    ) -> Result<Arc<SshCloud>, CloudError> {
        let key = format!("{instance_id} {device}");
        if let Some(found) = lock(&self.sources).get(&key) {
            return Ok(found.clone());
        }
        let droplet = self
            .client
            .get(&format!("/v2/droplets/{instance_id}"))
            .await?;
        let droplet = &droplet["droplet"];
        let address = inventory::public_ipv4(droplet).ok_or_else(|| {
            CloudError::Permanent(format!(
                "droplet {instance_id} has no public IPv4 address to read its disk over SSH"
            ))
        })?;
        let settings = SshSettings {
            target: SshTarget {
                host: address,
                user: Some(self.ssh.user.clone().unwrap_or_else(|| "root".into())),
                options: self.ssh.options.clone(),
                sudo: self.ssh.sudo,
            },
            device: device.to_string(),
            instance_name: droplet["name"].as_str().map(str::to_string),
            agent: AgentPolicy::Auto,
            agent_binary: self.ssh.agent_binary.clone(),
            jurisdiction: self.jurisdiction.clone(),
        };
        let source = Arc::new(SshCloud::new(&self.name, settings)?);
        lock(&self.sources).insert(key, source.clone());
        Ok(source)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `DIGITALOCEAN_TOKEN`, `DIGITALOCEAN_ACCESS_TOKEN`, then doctl's config.
pub fn find_token() -> Option<Secret> {
    for name in ["DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"] {
        if let Ok(value) = std::env::var(name)
            && !value.trim().is_empty()
        {
            return Some(Secret::new(value.trim().to_string()));
        }
    }
    let dirs = directories::BaseDirs::new()?;
    let file = dirs.config_dir().join("doctl").join("config.yaml");
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(file).ok()?);
    doctl_token(&text)
}

/// The `access-token:` line of doctl's config.yaml.
fn doctl_token(text: &str) -> Option<Secret> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("access-token:"))
        .map(|v| v.trim().trim_matches('"').trim_matches('\''))
        .find(|v| !v.is_empty())
        .map(|v| Secret::new(v.to_string()))
}

#[async_trait]
impl Cloud for DigitalOceanCloud {
    fn as_source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    fn as_target(&self) -> Option<&dyn Target> {
        Some(self)
    }

    fn as_cutover(&self) -> Option<&dyn CutoverSource> {
        Some(self)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn provider(&self) -> ProviderKind {
        ProviderKind::Digitalocean
    }

    fn jurisdiction(&self) -> Option<String> {
        self.jurisdiction.clone()
    }

    fn default_in_flight(&self) -> usize {
        16
    }

    async fn inventory(&self) -> Result<Inventory, CloudError> {
        let mut inventory = inventory::fetch(&self.client, &self.name).await?;
        // The profile's region first: whoever takes "the first region" (the
        // console's plan) gets the operator's, not the API's `nyc1`.
        if let Some(home) = &self.region
            && let Some(at) = inventory.regions.iter().position(|r| &r.name == home)
        {
            let region = inventory.regions.remove(at);
            inventory.regions.insert(0, region);
        }
        Ok(inventory)
    }

    /// The cloud firewalls this plan made (found by their tag). Keys
    /// cannot carry a tag: an imported key no journal names stays.
    async fn find_leftovers(
        &self,
        tag: &(String, String),
    ) -> Result<Vec<CreatedResource>, CloudError> {
        config::leftovers(&self.client, &self.name, tag).await
    }

    async fn delete(
        &self,
        _cap: &Capability,
        resource: &CreatedResource,
    ) -> Result<(), CloudError> {
        match resource.kind {
            ResourceKind::StagingDisk => self.staging()?.remove(&resource.id).await,
            ResourceKind::Image | ResourceKind::Disk => {
                self.client
                    .delete(&format!("/v2/images/{}", resource.id))
                    .await
            }
            ResourceKind::Instance => {
                self.client
                    .delete(&format!("/v2/droplets/{}", resource.id))
                    .await
            }
            ResourceKind::Snapshot => Ok(()),
            ResourceKind::SshKey | ResourceKind::Firewall => {
                config::remove(&self.client, resource.kind, &resource.id).await
            }
            ResourceKind::AccessKey => Err(CloudError::Unsupported(
                "this tool creates no DigitalOcean access keys".into(),
            )),
        }
    }

    async fn revoke(&self) -> Result<Vec<String>, CloudError> {
        // Every secret is wiped whatever fails on the way; the first failure
        // is returned at the end (cleanup still deletes staged objects).
        let mut done = Vec::new();
        let mut first_error = None;
        let sources: Vec<_> = lock(&self.sources).drain().map(|(_, s)| s).collect();
        for source in sources {
            match source.revoke().await {
                Ok(items) => done.extend(items),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(staging) = &self.staging {
            let closing = staging.close_open_windows().await;
            staging.forget_keys();
            match closing {
                Ok(keys) => done.extend(
                    keys.into_iter()
                        .map(|key| format!("made the staged image {key} private again")),
                ),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            done.push(format!("wiped the {} staging keys from memory", self.name));
        }
        if self.client.forget_token() {
            done.push(format!("wiped the {} API token from memory", self.name));
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Platform;

    #[test]
    fn declares_its_image_limits_data_disks_and_staging_disclosure() {
        use crate::units::Bytes;
        let rules = rules();
        let target = &rules.target;
        let big = target.image_refusal(Bytes(MAX_IMAGE_BYTES), &Platform::default());
        assert!(big.is_some_and(|r| r.contains("under 100 GB")));
        assert!(
            target
                .image_refusal(Bytes::gib(20), &Platform::default())
                .is_none()
        );
        let windows = Platform {
            os: Some("Windows Server 2022".into()),
            ..Default::default()
        };
        let win = target.image_refusal(Bytes::gib(20), &windows);
        assert!(win.is_some_and(|r| r.contains("DigitalOcean custom images must be Linux")));
        let data = target
            .data_disk_refusal("db", &["vdb (50.0 GiB)".into()])
            .unwrap();
        assert!(data.contains("does not create volumes"), "{data}");
        assert!(
            data.contains("'db' has 1 data disk: vdb (50.0 GiB)"),
            "{data}"
        );
        assert!(
            target
                .write_disclosure
                .as_deref()
                .is_some_and(|d| d.contains("unguessable"))
        );
        let snapshot = rules.source.snapshot_detail("/dev/vda");
        assert!(snapshot.starts_with("no cloud snapshot: /dev/vda is read live"));
        assert!(
            rules
                .source
                .agent_detail()
                .is_some_and(|d| d.contains("the droplet"))
        );
    }

    #[test]
    fn doctl_config_yields_the_token() {
        let text = "context: default\naccess-token: dop_v1_abc\n";
        assert_eq!(doctl_token(text).unwrap().expose(), "dop_v1_abc");
        assert!(doctl_token("access-token: \n").is_none());
    }
}
