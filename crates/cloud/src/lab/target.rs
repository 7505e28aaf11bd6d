//! The lab as a target: disks written into `disks/`, firewalls and keys
//! as files, instances as manifests the next inventory lists.

use super::LabCloud;
use super::manifest::{self, DiskManifest, InstanceManifest, NicManifest};
use super::{config, writer};
use crate::configure;
use crate::inventory::InstanceState;
use crate::local_disk::{self, LocalDiskReader};
use crate::{
    Capability, Check, CloudError, DeploySpec, DeployedInstance, DiskReader, DiskWriter, Target,
    TargetDiskSpec, WrittenDisk,
};
use async_trait::async_trait;

#[async_trait]
impl Target for LabCloud {
    async fn open_disk_writer(
        &self,
        _cap: &Capability,
        spec: &TargetDiskSpec,
    ) -> Result<Box<dyn DiskWriter>, CloudError> {
        Ok(Box::new(writer::open(&self.root, spec)?))
    }

    fn prepares_written_disks(&self) -> bool {
        true
    }

    fn local_written_disk(&self, disk: &WrittenDisk) -> Option<std::path::PathBuf> {
        self.disk_path(&disk.id).ok()
    }

    async fn create_config_object(
        &self,
        cap: &Capability,
        object: &configure::ConfigObject,
    ) -> Result<String, CloudError> {
        use configure::ConfigObject;
        match object {
            ConfigObject::Firewall { name, rules, .. } => {
                config::create_firewall(&self.root, &cap.tag(), name, rules)
            }
            ConfigObject::SshKey { name, public_key } => {
                config::import_key(&self.root, &cap.tag(), name, public_key)
            }
        }
    }

    async fn deploy(
        &self,
        cap: &Capability,
        spec: &DeploySpec,
    ) -> Result<DeployedInstance, CloudError> {
        let path = self.instance_path(&spec.name)?;
        let (tag_key, tag_value) = cap.tag();
        if path.exists() {
            let existing: InstanceManifest =
                manifest::load(&path).map_err(CloudError::Permanent)?;
            if existing.tags.get(&tag_key) == Some(&tag_value) {
                // Deployed by this plan before an interruption: same instance.
                return Ok(DeployedInstance {
                    id: existing.id,
                    name: existing.name,
                    address: None,
                });
            }
            return Err(CloudError::Permanent(format!(
                "instance '{}' already exists in {} and was not created by this plan",
                spec.name, self.name
            )));
        }
        if !self.manifest.sizes.iter().any(|s| s.name == spec.size) {
            return Err(CloudError::Permanent(format!(
                "size '{}' is not offered by {}",
                spec.size, self.name
            )));
        }
        let mut tags = spec.tags.clone();
        tags.insert(tag_key, tag_value);
        let id = format!("i-{}-{}", cap.plan_hash().short(), spec.name);
        let disks = spec
            .disks
            .iter()
            .enumerate()
            .map(|(n, d)| DiskManifest {
                id: format!("disk{n}"),
                device: format!("vd{}", (b'a' + n as u8) as char),
                file: d.id.clone(),
                format: d.format,
                virtual_size: d.virtual_size,
                boot: n == 0,
            })
            .collect();
        let manifest = InstanceManifest {
            id: id.clone(),
            name: spec.name.clone(),
            state: InstanceState::Running,
            size: spec.size.clone(),
            region: spec.region.clone(),
            tags,
            nics: vec![NicManifest {
                name: "eth0".into(),
                network: spec
                    .config
                    .network
                    .clone()
                    .unwrap_or_else(|| "lab-net".into()),
                address: None,
                public: spec.config.public_ip.unwrap_or(false),
            }],
            disks,
            platform: spec.platform.clone(),
            firewalls: spec.config.firewalls.clone(),
            ssh_keys: spec.config.ssh_keys.clone(),
            user_data: spec.config.user_data.clone(),
        };
        manifest::save(&path, &manifest).map_err(CloudError::Permanent)?;
        // A boot disk that boots is started now; validation waits for it
        // while the digests are read back.
        // Not fatal here: `probe` starts it again and reports why it failed.
        if let Some(boot) = spec.disks.first() {
            let _ = self
                .start_boot(&spec.name, &self.disk_path(&boot.id)?, boot.format)
                .await;
        }
        // No address: the lab boots its guests in QEMU without a network,
        // and loopback would be this machine's own ports, not the guest's.
        Ok(DeployedInstance {
            id,
            name: spec.name.clone(),
            address: None,
        })
    }

    async fn read_back(
        &self,
        disk: &WrittenDisk,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        Ok(Some(Box::new(LocalDiskReader::open(
            &self.disk_path(&disk.id)?,
            disk.format,
        )?)))
    }

    async fn probe(
        &self,
        instance: &DeployedInstance,
        spec: &DeploySpec,
    ) -> Result<Vec<Check>, CloudError> {
        let path = self.instance_path(&instance.name)?;
        let mut checks = Vec::new();
        let manifest: InstanceManifest = match manifest::load(&path) {
            Ok(m) => m,
            Err(e) => {
                checks.push(Check::new("instance record", false, e));
                return Ok(checks);
            }
        };
        checks.push(Check::new(
            "instance record",
            manifest.id == instance.id,
            manifest.id.clone(),
        ));
        checks.push(Check::new(
            "running",
            manifest.state == InstanceState::Running,
            manifest.state.to_string(),
        ));
        checks.push(Check::new(
            "size",
            manifest.size == spec.size,
            format!("{} (planned {})", manifest.size, spec.size),
        ));
        for disk in &spec.disks {
            let file = self.disk_path(&disk.id)?;
            let result = local_disk::qemu_img_check(&file, disk.format)
                .and_then(|_| local_disk::inspect(&file, disk.format).map(|i| i.virtual_size));
            let (passed, detail) = match result {
                Ok(size) if size == disk.virtual_size.0 => {
                    (true, format!("{} {}: consistent", disk.format, disk.id))
                }
                Ok(size) => (
                    false,
                    format!(
                        "{}: virtual size {size}, expected {}",
                        disk.id, disk.virtual_size.0
                    ),
                ),
                Err(e) => (false, e.to_string()),
            };
            checks.push(Check::new(
                format!("image check {}", disk.id),
                passed,
                detail,
            ));
        }
        if let Some(boot) = spec.disks.first() {
            let disk = self.disk_path(&boot.id)?;
            checks.extend(self.boot_check(&spec.name, &disk, boot.format).await?);
        }
        if !spec.config.is_empty() {
            checks.extend(configure::checks(&spec.config, &config::found(&manifest)));
        }
        Ok(checks)
    }

    async fn serial_console(
        &self,
        instance: &DeployedInstance,
    ) -> Result<Option<String>, CloudError> {
        self.console_text(&instance.name)
    }
}
