//! The lab: a local cloud made of folders and sparse disk images. It needs no
//! account, and it is a real provider — snapshots are real copies, written
//! disks are real images, deployed instances are manifests the next inventory
//! lists.
//!
//! Layout of one lab cloud: `cloud.toml`, `instances/*.toml`, `disks/`,
//! `snapshots/`, `staging/`.

pub mod boot;
pub mod config;
pub mod generate;
pub mod guest;
pub mod manifest;
pub mod profile;
mod source;
mod target;
pub mod writer;

use super::local_disk::LocalDiskReader;
use super::{Capability, Cloud, CloudError, CreatedResource, DiskRef, ResourceKind};
use crate::ProviderKind;
use crate::inventory::declared::{ProviderRules, TargetRules};
use crate::inventory::{Disk, Instance, Inventory, Nic};
use crate::{Source, Target};
use async_trait::async_trait;
use manifest::{CloudManifest, DiskManifest, InstanceManifest};
use std::path::{Path, PathBuf};

pub struct LabCloud {
    name: String,
    root: PathBuf,
    jurisdiction: Option<String>,
    manifest: CloudManifest,
    /// An access token the profile may give (`token = "env:NAME"`). The lab
    /// checks nothing with it; it exists so the secret-handling path — held
    /// in memory only, wiped at revocation — is exercised end to end.
    token: std::sync::Mutex<Option<crate::secret::Secret>>,
    /// Instances booting since `deploy`, for `probe` to wait on.
    boots: boot::Boots,
}

impl LabCloud {
    pub fn open(
        name: &str,
        root: &Path,
        jurisdiction: Option<String>,
    ) -> Result<LabCloud, CloudError> {
        let manifest_path = root.join("cloud.toml");
        if !manifest_path.exists() {
            return Err(CloudError::Permanent(format!(
                "{}: not a lab cloud (no cloud.toml); create one with `altishift lab init DIR`",
                root.display()
            )));
        }
        let manifest: CloudManifest =
            manifest::load(&manifest_path).map_err(CloudError::Permanent)?;
        Ok(LabCloud {
            name: name.to_string(),
            root: root.to_path_buf(),
            jurisdiction,
            manifest,
            token: std::sync::Mutex::new(None),
            boots: boot::Boots::default(),
        })
    }

    /// Hands the lab an access token to hold until revocation.
    pub fn with_token(self, token: crate::secret::Secret) -> LabCloud {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest file of an instance: its name mapped to a file name, so
    /// a name like `../../x` stays inside `instances/`.
    fn instance_path(&self, name: &str) -> Result<PathBuf, CloudError> {
        let file = crate::fsutil::file_name(name).map_err(|why| {
            CloudError::Permanent(format!(
                "instance name '{}' in {}: {why}",
                crate::text::safe(name),
                self.name
            ))
        })?;
        Ok(self.root.join("instances").join(format!("{file}.toml")))
    }

    fn instances(&self) -> Result<Vec<InstanceManifest>, CloudError> {
        Ok(self
            .instance_files()?
            .into_iter()
            .map(|(_, manifest)| manifest)
            .collect())
    }

    /// Every manifest with the file it was read from.
    fn instance_files(&self) -> Result<Vec<(PathBuf, InstanceManifest)>, CloudError> {
        let dir = self.root.join("instances");
        let mut list = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(list),
            Err(e) => return Err(CloudError::from_io(dir.display(), e)),
        };
        for entry in entries {
            let path = entry
                .map_err(|e| CloudError::from_io(dir.display(), e))?
                .path();
            if path.extension().is_some_and(|e| e == "toml") {
                let manifest = manifest::load(&path).map_err(CloudError::Permanent)?;
                list.push((path, manifest));
            }
        }
        list.sort_by(|(_, a): &(PathBuf, InstanceManifest), (_, b)| a.name.cmp(&b.name));
        Ok(list)
    }

    fn find_disk(&self, disk: &DiskRef) -> Result<DiskManifest, CloudError> {
        let instance = self
            .instances()?
            .into_iter()
            .find(|i| i.id == disk.instance_id)
            .ok_or_else(|| {
                CloudError::NotFound(format!("instance {} in {}", disk.instance_id, self.name))
            })?;
        instance
            .disks
            .into_iter()
            .find(|d| d.id == disk.disk_id)
            .ok_or_else(|| {
                CloudError::NotFound(format!(
                    "disk {} of instance {} in {}",
                    disk.disk_id, disk.instance_id, self.name
                ))
            })
    }

    fn disk_from_manifest(&self, disk: &DiskManifest) -> Disk {
        let path = self.root.join(&disk.file);
        // A disk whose file is gone is still listed (its manifest says it
        // exists); reading it later fails with a clear error.
        let allocated = LocalDiskReader::open(&path, disk.format)
            .and_then(|r| r.allocated())
            .ok();
        Disk {
            id: disk.id.clone(),
            device: disk.device.clone(),
            format: disk.format,
            virtual_size: disk.virtual_size,
            allocated,
            boot: disk.boot,
        }
    }

    /// A written disk's file (`disks/NAME.EXT`; the id comes back from the
    /// journal, a file an operator can edit).
    fn disk_path(&self, id: &str) -> Result<PathBuf, CloudError> {
        match id.strip_prefix("disks/") {
            Some(file) => self.resource_path("disks", file),
            None => Err(CloudError::Permanent(format!(
                "invalid lab disk id '{}'",
                crate::text::safe(id)
            ))),
        }
    }

    /// Keeps a resource id inside the folder it belongs to.
    fn resource_path(&self, folder: &str, id: &str) -> Result<PathBuf, CloudError> {
        // One name in `folder`: no separator, not `.` or `..` (a mapped
        // name like `..%2Fx` is fine: it is a single file name).
        if id.is_empty() || id.contains('/') || id == "." || id == ".." || id.contains('\0') {
            return Err(CloudError::Permanent(format!(
                "invalid lab resource id '{}'",
                crate::text::safe(id)
            )));
        }
        Ok(self.root.join(folder).join(id))
    }
}

/// What the lab declares: its snapshots are plain copies; its targets are
/// QEMU machines with virtio hardware, and cloud-init finds its seed
/// through NoCloud.
pub fn rules() -> ProviderRules {
    ProviderRules {
        target: TargetRules {
            guest: crate::virtio_guest("NoCloud"),
            ..TargetRules::default()
        },
        ..ProviderRules::default()
    }
}

#[async_trait]
impl Cloud for LabCloud {
    fn as_source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    fn as_target(&self) -> Option<&dyn Target> {
        Some(self)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn provider(&self) -> ProviderKind {
        ProviderKind::Lab
    }

    fn jurisdiction(&self) -> Option<String> {
        self.jurisdiction.clone()
    }

    async fn inventory(&self) -> Result<Inventory, CloudError> {
        let mut instances = Vec::new();
        for m in self.instances()? {
            let size = self.manifest.sizes.iter().find(|s| s.name == m.size);
            instances.push(Instance {
                id: m.id.clone(),
                name: m.name.clone(),
                state: m.state,
                size: m.size.clone(),
                vcpus: size.map(|s| s.vcpus).unwrap_or(0),
                memory: size.map(|s| s.memory).unwrap_or_default(),
                region: m.region.clone(),
                disks: m.disks.iter().map(|d| self.disk_from_manifest(d)).collect(),
                nics: m
                    .nics
                    .iter()
                    .map(|n| Nic {
                        name: n.name.clone(),
                        network: n.network.clone(),
                        address: n.address.clone(),
                    })
                    .collect(),
                tags: m.tags.clone(),
                platform: m.platform.clone(),
                config: config::instance_config(&self.root, &self.manifest.networks, &m)?,
            });
        }
        let (firewalls, ssh_keys) = config::lists(&self.root)?;
        Ok(Inventory {
            cloud: self.name.clone(),
            provider: "lab".into(),
            instances,
            sizes: self.manifest.sizes.clone(),
            regions: self.manifest.regions.clone(),
            networks: self.manifest.networks.clone(),
            firewalls,
            ssh_keys,
            config_rules: Some(config::config_rules()),
            rules: rules(),
            ..Default::default()
        })
    }

    /// Snapshots are named `altishift-<short hash>-…` (see the engine);
    /// firewalls and keys carry the plan's tag.
    async fn find_leftovers(
        &self,
        tag: &(String, String),
    ) -> Result<Vec<CreatedResource>, CloudError> {
        let prefix = format!("altishift-{}-", tag.1);
        let dir = self.root.join("snapshots");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return config::leftovers(&self.root, &self.name, tag);
            }
            Err(e) => return Err(CloudError::from_io(dir.display(), e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CloudError::from_io(dir.display(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                found.push(CreatedResource {
                    cloud: self.name.clone(),
                    kind: ResourceKind::Snapshot,
                    id: name,
                    temporary: true,
                });
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found.extend(config::leftovers(&self.root, &self.name, tag)?);
        Ok(found)
    }

    async fn delete(
        &self,
        _cap: &Capability,
        resource: &CreatedResource,
    ) -> Result<(), CloudError> {
        let path = match resource.kind {
            ResourceKind::Snapshot => {
                let path = self.resource_path("snapshots", &resource.id)?;
                // A copy cut short by a crash leaves its temporary beside it.
                let _ = std::fs::remove_file(path.with_extension("partial"));
                path
            }
            ResourceKind::StagingDisk => self.resource_path("staging", &resource.id)?,
            // The resource id is the instance's id: remove the file it was read from.
            ResourceKind::Instance => {
                match self
                    .instance_files()?
                    .into_iter()
                    .find(|(_, i)| i.id == resource.id)
                {
                    Some((path, _)) => path,
                    None => return Ok(()), // already gone: idempotent
                }
            }
            ResourceKind::Disk | ResourceKind::Image => {
                self.resource_path("disks", resource.id.trim_start_matches("disks/"))?
            }
            ResourceKind::AccessKey => return Ok(()),
            ResourceKind::Firewall => config::file(&self.root, "firewalls", &resource.id)?,
            ResourceKind::SshKey => config::file(&self.root, "keys", &resource.id)?,
        };
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()), // already gone: idempotent
            Err(e) => Err(CloudError::from_io(
                format!("deleting {}", path.display()),
                e,
            )),
        }
    }

    async fn revoke(&self) -> Result<Vec<String>, CloudError> {
        // The lab grants no access; a token it was given is dropped (and so
        // zeroized) here.
        let token = self.token.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(token
            .map(|_| "lab access token wiped from memory".to_string())
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::build::{PlanError, Request, Side, Throughput, build};

    /// The lab's guests carry a platform, and a plan onto a cloud that takes
    /// only Linux images refuses the Windows one before anything is approved.
    #[tokio::test]
    async fn lab_platforms_reach_the_plan_and_linux_only_targets_refuse_windows() {
        let dir = tempfile::tempdir().unwrap();
        generate::init(dir.path(), generate::LabScale::Small).unwrap();
        let west = LabCloud::open("lab-west", &dir.path().join("lab-west"), None).unwrap();
        let inventory = west.inventory().await.unwrap();
        let mail = inventory.instance("mail").unwrap();
        assert!(mail.platform.is_windows());
        assert_eq!(mail.platform.boot_mode.as_deref(), Some("uefi"));
        let source = Side {
            cloud: "lab-west",
            provider: "lab".into(),
            jurisdiction: None,
            inventory: &inventory,
        };
        // Any catalogue will do for the target; the rules its provider
        // declares decide.
        let mut catalogue = inventory.clone();
        catalogue.rules = crate::digitalocean::rules();
        let target = Side {
            cloud: "do",
            provider: "digitalocean".into(),
            jurisdiction: Some("US".into()),
            inventory: &catalogue,
        };
        let throughput = Throughput {
            bytes_per_second: 100_000_000,
            basis: "assumed".into(),
        };
        let request = |name: &str| Request {
            select: vec![name.to_string()],
            ..Request::default()
        };
        let refused = build(&source, &target, &request("mail"), &throughput, "op").unwrap_err();
        match refused {
            PlanError::TargetRefuses {
                instance, reason, ..
            } => {
                assert_eq!(instance, "mail");
                assert!(reason.contains("must be Linux"), "{reason}");
            }
            other => panic!("expected a refusal, got {other}"),
        }
        let plan = build(&source, &target, &request("bastion"), &throughput, "op").unwrap();
        assert_eq!(
            plan.items[0].platform.os.as_deref(),
            Some("Ubuntu 24.04"),
            "the plan carries the source platform to the target"
        );
    }
}
