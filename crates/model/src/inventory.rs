//! Cloud-neutral inventory: what a provider reports, in one shape for all clouds.

use crate::units::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod config;
pub mod declared;
pub use config::{ConfigRules, InstanceConfig};

/// Disk image formats the engine reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Raw,
    Qcow2,
    Vmdk,
    Vhd,
}

impl DiskFormat {
    /// The name `qemu-img -O` expects.
    pub fn qemu_name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vmdk => "vmdk",
            DiskFormat::Vhd => "vpc",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vmdk => "vmdk",
            DiskFormat::Vhd => "vhd",
        }
    }
}

impl std::fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

impl std::str::FromStr for DiskFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "raw" => Ok(DiskFormat::Raw),
            "qcow2" => Ok(DiskFormat::Qcow2),
            "vmdk" => Ok(DiskFormat::Vmdk),
            "vhd" | "vpc" => Ok(DiskFormat::Vhd),
            other => Err(format!(
                "unknown disk format '{other}' (raw, qcow2, vmdk, vhd)"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    Running,
    Stopped,
    Pending,
    Terminated,
    Unknown,
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            InstanceState::Running => "running",
            InstanceState::Stopped => "stopped",
            InstanceState::Pending => "pending",
            InstanceState::Terminated => "terminated",
            InstanceState::Unknown => "unknown",
        };
        f.write_str(text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    /// Provider's id, unique within the cloud (a path segment for the lab).
    pub id: String,
    /// Device name as the guest sees it (`vda`, `/dev/xvdf`).
    pub device: String,
    pub format: DiskFormat,
    pub virtual_size: Bytes,
    /// Allocated bytes when the provider knows them.
    pub allocated: Option<Bytes>,
    pub boot: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nic {
    pub name: String,
    pub network: String,
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub state: InstanceState,
    pub size: String,
    pub vcpus: u32,
    pub memory: Bytes,
    pub region: String,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub tags: BTreeMap<String, String>,
    /// OS, boot mode, architecture: what the target image must carry over.
    #[serde(default, skip_serializing_if = "Platform::is_unknown")]
    pub platform: Platform,
    /// Networks, firewall rules, SSH keys, user-data: what makes it
    /// reachable, as far as its provider says.
    #[serde(default, skip_serializing_if = "InstanceConfig::is_empty")]
    pub config: InstanceConfig,
}

/// How an instance boots and what it runs, as far as its provider says.
/// Each field is `None` when the provider does not tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    /// The provider's OS or platform text (`Linux/UNIX`, `Ubuntu 24.04`, `windows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// `uefi` or `legacy-bios`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_mode: Option<String>,
    /// `x86_64` or `arm64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Enhanced networking (AWS ENA) is enabled on the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ena: Option<bool>,
}

impl Platform {
    pub fn is_unknown(&self) -> bool {
        *self == Platform::default()
    }

    /// True when the OS text names Windows; unknown OSes are not assumed to be.
    pub fn is_windows(&self) -> bool {
        self.os
            .as_deref()
            .is_some_and(|os| os.to_ascii_lowercase().contains("windows"))
    }
}

impl Instance {
    pub fn allocated(&self) -> Bytes {
        self.disks
            .iter()
            .map(|d| d.allocated.unwrap_or(d.virtual_size))
            .sum()
    }

    pub fn first_address(&self) -> Option<&str> {
        self.nics.iter().find_map(|n| n.address.as_deref())
    }
}

/// An instance size (type, offering, machine type) in a cloud's catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub name: String,
    pub vcpus: u32,
    pub memory: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub name: String,
    /// ISO country or bloc code the region's data lives under (`DE`, `US`).
    pub jurisdiction: String,
}

/// A network, VPC or subnet: where a target instance can be attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// The provider's word for it: `vpc`, `subnet`, `network`, `subnetwork`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Region or zone, when the network is not global.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The VPC or network a subnet belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// A firewall or security group, kept for migrating configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firewall {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// One line per rule, e.g. `in tcp 22 from 0.0.0.0/0`.
    #[serde(default)]
    pub rules: Vec<String>,
}

/// A bootable image in the cloud's catalogue or the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Bytes>,
    /// Owned by this account (not a public or marketplace image).
    pub private: bool,
}

/// An SSH public key registered with the cloud (droplets from custom images
/// need one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// Who the tool is acting as, and until when: shown so the operator sees
/// temporary credentials running out before a long transfer starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// An identity that is not a secret: an ARN, a service-account email.
    pub identity: String,
    /// Unix seconds when the credentials stop working; `None` = no expiry known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The tool renews these credentials before `expires_at` (an assumed
    /// role's session, a service account's token): the expiry is the current
    /// session's and nothing needs the operator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub renews: bool,
}

impl Access {
    /// `expires 2026-11-27 14:00 UTC (in 52 min)`, `no expiry`, or
    /// `session until … (renewed automatically)`.
    pub fn describe(&self, now_unix: u64) -> String {
        let Some(at) = self.expires_at else {
            return format!("{} · no expiry", self.identity);
        };
        let when = crate::fsutil::utc_minute(at);
        if self.renews {
            return format!(
                "{} · session until {when} (renewed automatically)",
                self.identity
            );
        }
        if at <= now_unix {
            return format!("{} · EXPIRED {when}", self.identity);
        }
        let left = at - now_unix;
        let left = if left >= 2 * 3600 {
            format!("{} h", left / 3600)
        } else {
            format!("{} min", left.div_ceil(60))
        };
        format!("{} · expires {when} (in {left})", self.identity)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub cloud: String,
    pub provider: String,
    pub instances: Vec<Instance>,
    pub sizes: Vec<Size>,
    pub regions: Vec<Region>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Network>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewalls: Vec<Firewall>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<SshKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// What this cloud, as a target, can take of an instance's
    /// configuration (declared by its provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_rules: Option<ConfigRules>,
    /// Limits and disclosures its provider declares (for the plan).
    #[serde(default, skip_serializing_if = "is_default")]
    pub rules: declared::ProviderRules,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Inventory {
    pub fn instance(&self, name_or_id: &str) -> Option<&Instance> {
        self.instances
            .iter()
            .find(|i| i.name == name_or_id || i.id == name_or_id)
    }

    pub fn size(&self, name: &str) -> Option<&Size> {
        self.sizes.iter().find(|s| s.name == name)
    }

    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_says_when_credentials_expire() {
        let access = Access {
            identity: "arn:aws:sts::123456789012:assumed-role/migrate/altishift".into(),
            expires_at: Some(1_795_867_200), // 2026-11-28 12:00 UTC
            renews: false,
        };
        let now = 1_795_867_200 - 52 * 60 - 30;
        assert_eq!(
            access.describe(now),
            "arn:aws:sts::123456789012:assumed-role/migrate/altishift · expires 2026-11-28 12:00 UTC (in 53 min)"
        );
        assert!(access.describe(now - 5 * 3600).ends_with("(in 5 h)"));
        assert!(
            access
                .describe(1_795_867_200)
                .contains("EXPIRED 2026-11-28 12:00 UTC")
        );
        let renewing = Access {
            renews: true,
            ..access.clone()
        };
        assert!(
            renewing
                .describe(now)
                .ends_with("session until 2026-11-28 12:00 UTC (renewed automatically)")
        );
        let forever = Access {
            identity: "me".into(),
            expires_at: None,
            renews: false,
        };
        assert_eq!(forever.describe(now), "me · no expiry");
    }

    #[test]
    fn old_inventories_without_the_new_lists_still_load() {
        let json = r#"{"cloud":"c","provider":"lab","instances":[],"sizes":[],"regions":[]}"#;
        let inventory: Inventory = serde_json::from_str(json).unwrap();
        assert!(inventory.networks.is_empty() && inventory.access.is_none());
    }
}
