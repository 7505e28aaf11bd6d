//! `lab init --guest`: lab-east gets `tiny-1`, an instance whose root disk
//! really boots (see `crate::guest::build`), so a lab → lab migration ends
//! with a guest that can be rehearsed, inspected and prepared.

use super::generate::LabError;
use super::manifest::{self, DiskManifest, InstanceManifest, NicManifest};
use crate::guest::build::{self, GuestSpec};
use crate::inventory::{DiskFormat, InstanceState, Platform};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const GUEST_NAME: &str = "tiny-1";
const CLOUD: &str = "lab-east";

/// What `add_guest` made.
#[derive(Debug, Clone)]
pub struct LabGuest {
    pub instance: String,
    pub disk: PathBuf,
    pub kernel_version: String,
}

/// Adds the bootable guest to the lab in `dir` (made by `generate::init`).
pub fn add_guest(dir: &Path) -> Result<LabGuest, LabError> {
    let root = dir.join(CLOUD);
    let instances = root.join("instances");
    let manifest_path = instances.join(format!("{GUEST_NAME}.toml"));
    if !root.join("cloud.toml").is_file() {
        return Err(LabError::Other(format!(
            "{}: not a lab cloud (no cloud.toml)",
            root.display()
        )));
    }
    if manifest_path.exists() {
        return Err(LabError::Other(format!(
            "{}: the lab already has its guest",
            manifest_path.display()
        )));
    }
    let (network, subnet, firewall, public) = super::config::placement(GUEST_NAME);
    let address = format!("10.1.{subnet}.40");
    let mut spec = GuestSpec::new(
        GUEST_NAME,
        &format!("{address}/24"),
        &format!("10.1.{subnet}.1"),
    );
    spec.root_device = "/dev/vda1".into();
    let file = format!("disks/{GUEST_NAME}-root.raw");
    let disk = root.join(&file);
    let kernel_version =
        build::build(&spec, &disk).map_err(|e| LabError::Other(format!("lab guest: {e}")))?;
    let count = std::fs::read_dir(&instances)
        .map_err(|source| LabError::Io {
            path: instances.clone(),
            source,
        })?
        .count();
    let mut tags = BTreeMap::new();
    tags.insert("role".to_string(), "tiny".to_string());
    tags.insert("env".to_string(), "lab".to_string());
    let instance = InstanceManifest {
        id: format!("east-i{:04}", count + 1),
        name: GUEST_NAME.into(),
        state: InstanceState::Running,
        size: "e1.micro".into(),
        region: "eu-central-lab".into(),
        tags,
        nics: vec![NicManifest {
            name: "eth0".into(),
            network: network.into(),
            address: Some(address),
            public,
        }],
        disks: vec![DiskManifest {
            id: "root".into(),
            device: "vda".into(),
            file,
            format: DiskFormat::Raw,
            virtual_size: spec.disk_size,
            boot: true,
        }],
        platform: Platform {
            os: Some("Debian 12".into()),
            boot_mode: Some("legacy-bios".into()),
            architecture: Some("x86_64".into()),
            ena: None,
        },
        firewalls: vec![firewall.into()],
        ssh_keys: vec!["ops".into()],
        user_data: Some(super::config::user_data(GUEST_NAME)),
    };
    manifest::save(&manifest_path, &instance).map_err(LabError::Other)?;
    Ok(LabGuest {
        instance: GUEST_NAME.into(),
        disk,
        kernel_version,
    })
}
