//! Cloud-neutral inventory: what a provider reports, in one shape for all clouds.

use crate::units::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub cloud: String,
    pub provider: String,
    pub instances: Vec<Instance>,
    pub sizes: Vec<Size>,
    pub regions: Vec<Region>,
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
