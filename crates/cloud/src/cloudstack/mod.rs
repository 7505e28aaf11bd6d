//! Apache CloudStack provider: signed API calls, inventory to the last page,
//! disks out through snapshot → volume copy → extract URL → ranged GETs, and
//! disks in through qemu-img → upload parameters → signed POST, then deploy.

pub mod client;
pub mod config;
pub mod cutover;
mod deploy;
pub mod download;
pub mod inventory;
pub mod profile;
pub mod signing;
mod source;
pub mod target;

use crate::ProviderKind;
use crate::inventory::{DiskFormat, Inventory};
use crate::secret::{Prompter, Secret};
use crate::{Capability, Cloud, CloudError, CreatedResource, ResourceKind};
use crate::{CutoverSource, Source, Target};
use async_trait::async_trait;
use client::Client;
use download::DownloadPolicy;
use profile::CloudStackProfile;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// A zone the provider works in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub id: String,
    pub name: String,
}

pub struct CloudStackCloud {
    name: String,
    client: Arc<Client>,
    zone_hint: Option<String>,
    hypervisor_hint: Option<String>,
    jurisdiction: Option<String>,
    staging: PathBuf,
    in_flight: usize,
    zone: OnceCell<Zone>,
    hypervisor: OnceCell<String>,
    /// Range downloads (extract URLs) and upload retries.
    pub transfer: DownloadPolicy,
    /// Images this process kept or read in `staging` for validation
    /// (uploaded copies, read-backs): revoke removes these, never those of
    /// a run beside it on the same profile.
    kept: KeptImages,
}

/// The staging images one provider instance is responsible for.
pub(super) type KeptImages = Arc<std::sync::Mutex<std::collections::BTreeSet<PathBuf>>>;

/// Records `path` in `kept` (a poisoned lock still holds a usable set).
pub(super) fn keep(kept: &KeptImages, path: &Path) {
    kept.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(path.to_path_buf());
}

impl CloudStackCloud {
    /// A provider on `endpoint` with the given keys; staging files go under `staging`.
    pub fn new(
        name: &str,
        endpoint: &str,
        api_key: Secret,
        secret_key: Secret,
        staging: &Path,
    ) -> Result<Self, CloudError> {
        Ok(CloudStackCloud {
            name: name.to_string(),
            client: Arc::new(Client::new(endpoint, api_key, secret_key)?),
            zone_hint: None,
            hypervisor_hint: None,
            jurisdiction: None,
            staging: staging.to_path_buf(),
            in_flight: 16,
            zone: OnceCell::new(),
            hypervisor: OnceCell::new(),
            transfer: DownloadPolicy::default(),
            kept: KeptImages::default(),
        })
    }

    /// From a `[clouds.NAME]` profile: endpoint, keys (env or prompt), zone,
    /// hypervisor, jurisdiction, in_flight.
    pub fn from_profile(
        name: &str,
        profile: &CloudStackProfile,
        staging: &Path,
        prompt: Prompter<'_>,
    ) -> Result<Self, CloudError> {
        let endpoint = profile.endpoint.as_deref().ok_or_else(|| {
            CloudError::Permanent(format!(
                "[clouds.{name}] a cloudstack cloud needs 'endpoint' (…/client/api)"
            ))
        })?;
        let missing = |key: &str| {
            CloudError::Permanent(format!(
                "[clouds.{name}] a cloudstack cloud needs '{key}' (env:NAME or prompt)"
            ))
        };
        let api_key = profile.api_key.as_ref().ok_or_else(|| missing("api_key"))?;
        let secret_key = profile
            .secret_key
            .as_ref()
            .ok_or_else(|| missing("secret_key"))?;
        let api_key = api_key
            .resolve(&format!("{name} API key"), prompt)
            .map_err(|e| CloudError::Auth(format!("[clouds.{name}] api_key: {e}")))?;
        let secret_key = secret_key
            .resolve(&format!("{name} secret key"), prompt)
            .map_err(|e| CloudError::Auth(format!("[clouds.{name}] secret_key: {e}")))?;
        let mut cloud = CloudStackCloud::new(name, endpoint, api_key, secret_key, staging)?;
        if profile.insecure_endpoint == Some(true)
            && let Some(client) = Arc::get_mut(&mut cloud.client)
        {
            client.allow_http_urls = true;
        }
        cloud.zone_hint = profile.zone.clone();
        cloud.hypervisor_hint = profile.hypervisor.clone();
        cloud.jurisdiction = profile.jurisdiction.clone();
        if let Some(n) = profile.in_flight {
            cloud.in_flight = n.max(1);
        }
        Ok(cloud)
    }

    pub fn with_zone(mut self, zone: &str) -> Self {
        self.zone_hint = Some(zone.to_string());
        self
    }

    pub fn with_hypervisor(mut self, hypervisor: &str) -> Self {
        self.hypervisor_hint = Some(hypervisor.to_string());
        self
    }

    pub fn with_jurisdiction(mut self, jurisdiction: &str) -> Self {
        self.jurisdiction = Some(jurisdiction.to_string());
        self
    }

    /// Tests shorten job polling; the benchmark tunes parallelism.
    pub fn client_mut(&mut self) -> Option<&mut Client> {
        Arc::get_mut(&mut self.client)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The zone from the profile (name or id), or the only zone there is.
    pub async fn zone(&self) -> Result<&Zone, CloudError> {
        self.zone
            .get_or_try_init(|| async {
                let zones = self.client.list_all("listZones", "zone", &[]).await?;
                let all: Vec<Zone> = zones
                    .iter()
                    .map(|z| Zone {
                        id: inventory::text(z, "id"),
                        name: inventory::text(z, "name"),
                    })
                    .collect();
                let names = || {
                    all.iter()
                        .map(|z| z.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                match &self.zone_hint {
                    Some(hint) => all
                        .iter()
                        .find(|z| &z.name == hint || &z.id == hint)
                        .cloned()
                        .ok_or_else(|| {
                            CloudError::NotFound(format!(
                                "zone '{hint}' in {} (zones: {})",
                                self.name,
                                names()
                            ))
                        }),
                    None if all.len() == 1 => Ok(all[0].clone()),
                    None => Err(CloudError::Permanent(format!(
                        "[clouds.{}] set 'zone': this cloud has {} zones ({})",
                        self.name,
                        all.len(),
                        names()
                    ))),
                }
            })
            .await
    }

    /// The zone's hypervisor: the profile's, else what the zone reports.
    pub async fn hypervisor(&self) -> Result<&str, CloudError> {
        let value = self
            .hypervisor
            .get_or_try_init(|| async {
                if let Some(h) = &self.hypervisor_hint {
                    return Ok::<String, CloudError>(h.clone());
                }
                let zone = self.zone().await?.id.clone();
                let list = self
                    .client
                    .list_all("listHypervisors", "hypervisor", &[("zoneid", zone)])
                    .await?;
                list.first()
                    .map(|h| inventory::text(h, "name"))
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        CloudError::Permanent(format!(
                            "{}: the zone reports no hypervisor; set 'hypervisor' in the profile",
                            self.name
                        ))
                    })
            })
            .await?;
        Ok(value.as_str())
    }

    /// Disk format the zone's hypervisor stores.
    pub async fn native_format(&self) -> Result<DiskFormat, CloudError> {
        Ok(inventory::hypervisor_format(self.hypervisor().await?))
    }

    fn staging_path(&self, file: &str) -> PathBuf {
        self.staging.join(file)
    }

    /// Removes local staging files whose names start with `prefix`.
    fn remove_local_prefix(&self, prefix: &str) {
        if let Ok(entries) = std::fs::read_dir(&self.staging) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(prefix) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Read-back and uploaded images this process kept for validation.
    fn remove_leftover_staging(&self) -> usize {
        let kept = std::mem::take(&mut *self.kept.lock().unwrap_or_else(|p| p.into_inner()));
        let mut removed = 0;
        for path in kept {
            if std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

#[async_trait]
impl Cloud for CloudStackCloud {
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
        ProviderKind::Cloudstack
    }

    fn jurisdiction(&self) -> Option<String> {
        self.jurisdiction.clone()
    }

    fn default_in_flight(&self) -> usize {
        self.in_flight
    }

    async fn inventory(&self) -> Result<Inventory, CloudError> {
        let jurisdiction = self
            .jurisdiction
            .clone()
            .unwrap_or_else(|| "unknown".into());
        inventory::read(&self.client, &self.name, &jurisdiction).await
    }

    /// The security groups this plan made (found by their tag). Key pairs
    /// cannot carry a tag: one no journal names stays.
    async fn find_leftovers(
        &self,
        tag: &(String, String),
    ) -> Result<Vec<CreatedResource>, CloudError> {
        config::leftovers(&self.client, &self.name, tag).await
    }

    async fn delete(&self, cap: &Capability, resource: &CreatedResource) -> Result<(), CloudError> {
        let _ = cap;
        match resource.kind {
            ResourceKind::AccessKey => Ok(()),
            ResourceKind::Firewall | ResourceKind::SshKey => {
                config::remove(&self.client, resource.kind, &resource.id).await
            }
            kind => self.delete_resource(kind, &resource.id).await,
        }
    }

    async fn revoke(&self) -> Result<Vec<String>, CloudError> {
        // This provider creates no access of its own (extract and upload URLs
        // expire by themselves); it only wipes the keys it holds.
        self.client.wipe_keys();
        let mut revoked = vec![format!("{}: API keys wiped from memory", self.name)];
        let removed = self.remove_leftover_staging();
        if removed > 0 {
            revoked.push(format!(
                "{}: {removed} local staging image(s) removed",
                self.name
            ));
        }
        Ok(revoked)
    }
}
