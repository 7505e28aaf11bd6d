//! The lab's files: `cloud.toml` (catalogue) and `instances/NAME.toml`.

use crate::config::parse_toml;
use crate::inventory::config::Rule;
use crate::inventory::{DiskFormat, InstanceState, Network, Platform, Region, Size};
use crate::units::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudManifest {
    pub name: String,
    pub regions: Vec<Region>,
    pub sizes: Vec<Size>,
    /// Networks instances attach to (kind `network`, with a CIDR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Network>,
    /// How QEMU boots instances whose disk boots (`tcg` when absent: on
    /// some hosts `/dev/kvm` exists yet a KVM guest stops in its boot loader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel: Option<crate::guest::rehearse::Accel>,
}

/// `firewalls/NAME.toml`: a named rule set instances refer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallManifest {
    pub name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// `keys/NAME.toml`: an SSH public key instances refer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyManifest {
    pub name: String,
    pub public_key: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskManifest {
    pub id: String,
    pub device: String,
    /// Image file, relative to the lab cloud's folder.
    pub file: String,
    pub format: DiskFormat,
    pub virtual_size: Bytes,
    #[serde(default)]
    pub boot: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicManifest {
    pub name: String,
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The interface has a public address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceManifest {
    pub id: String,
    pub name: String,
    pub state: InstanceState,
    pub size: String,
    pub region: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub nics: Vec<NicManifest>,
    pub disks: Vec<DiskManifest>,
    /// OS, boot mode and architecture the lab says the guest has.
    #[serde(default, skip_serializing_if = "Platform::is_unknown")]
    pub platform: Platform,
    /// Names of `firewalls/*.toml` that apply to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewalls: Vec<String>,
    /// Names of `keys/*.toml` that may log in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

pub fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_toml(&text, path).map_err(|e| e.to_string())
}

pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let text = toml::to_string_pretty(value).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::fsutil::write_atomic(path, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}
