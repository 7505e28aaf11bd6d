//! What a provider declares about itself, as data its inventory carries: the
//! limits of its targets and what its source steps really do. The plan reads
//! these and never names a provider; each provider checks the same rules
//! again when it writes (defence in depth).

use super::Platform;
use crate::units::Bytes;
use serde::{Deserialize, Serialize};

/// Everything a provider declares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRules {
    #[serde(default)]
    pub source: SourceRules,
    #[serde(default)]
    pub target: TargetRules,
}

/// What the source steps mean on this provider, said in the plan's actions
/// when it is more than an operator would guess (it costs money, opens a
/// login, or is no snapshot at all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRules {
    /// What "snapshot disk" does, `{device}` standing for the disk; None: a
    /// point-in-time copy and nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Where the altishift-agent is copied to read disks ("the droplet"),
    /// when this provider reads them with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_host: Option<String>,
    /// How a cutover quiesces this source when the plan names no command (a
    /// cloud that reaches no guest stops the instance through its API);
    /// None: fsfreeze of the filesystems mounted from its disks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiesce: Option<String>,
}

/// What a target cannot take, and what it does with a disk that the
/// operator must approve knowingly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRules {
    /// What this target's images are called, for messages
    /// ("DigitalOcean custom").
    #[serde(default)]
    pub image_kind: String,
    /// A boot image must be under this many bytes (uncompressed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_image_bytes: Option<u64>,
    /// Only Linux guests are taken.
    #[serde(default)]
    pub linux_only: bool,
    /// Why data disks cannot follow an instance here; None: they can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data_disks: Option<String>,
    /// What writing a disk here exposes, written into the plan's action so
    /// the approved hash covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_disclosure: Option<String>,
    /// What a guest needs to boot here (checked and prepared before the
    /// copy boots).
    #[serde(default, skip_serializing_if = "GuestNeeds::is_empty")]
    pub guest: GuestNeeds,
}

/// What a guest must have or be told to boot on a target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNeeds {
    /// Kernel drivers: one of each group (`[["nvme"], ["ena"]]`); empty: the
    /// hardware is unknown and nothing is required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drivers: Vec<Vec<String>>,
    /// The cloud-init datasource that finds this target's metadata; None:
    /// no metadata service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasource: Option<String>,
}

impl GuestNeeds {
    /// Needs from driver groups and a datasource, as providers write them.
    pub fn new(drivers: &[&[&str]], datasource: Option<&str>) -> GuestNeeds {
        GuestNeeds {
            drivers: drivers
                .iter()
                .map(|group| group.iter().map(|d| d.to_string()).collect())
                .collect(),
            datasource: datasource.map(str::to_string),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == GuestNeeds::default()
    }
}

impl ProviderRules {
    /// Nothing declared (a provider whose steps are what their names say).
    pub fn is_empty(&self) -> bool {
        *self == ProviderRules::default()
    }
}

impl SourceRules {
    /// The plan's wording of "snapshot disk" for `device`.
    pub fn snapshot_detail(&self, device: &str) -> String {
        match &self.snapshot {
            Some(text) => text.replace("{device}", device),
            None => format!("point-in-time copy of {device}"),
        }
    }

    /// The plan's wording of the default quiesce.
    pub fn quiesce_detail(&self) -> String {
        self.quiesce
            .clone()
            .unwrap_or_else(|| "freezes the filesystems mounted from its disks (fsfreeze)".into())
    }

    /// The default quiesce in a word, for the plan's summary line.
    pub fn quiesce_word(&self) -> &'static str {
        if self.quiesce.is_some() {
            "stop the instance"
        } else {
            "fsfreeze"
        }
    }

    /// The plan's wording of the agent copy, when this source uses one.
    pub fn agent_detail(&self) -> Option<String> {
        let host = self.agent_host.as_ref()?;
        Some(format!(
            "copies the small altishift-agent reader to a private folder on {host}, checked by \
             SHA-256 there before it runs (or streams with dd where it cannot run); removed at \
             cleanup"
        ))
    }
}

impl TargetRules {
    /// Why a boot disk of `virtual_size` running `platform` cannot become an
    /// image here, if it cannot. An OS the source does not name is let
    /// through (and said so in the plan's platform).
    pub fn image_refusal(&self, virtual_size: Bytes, platform: &Platform) -> Option<String> {
        if let Some(max) = self.max_image_bytes
            && virtual_size.0 >= max
        {
            return Some(format!(
                "{} images must be under {} uncompressed; the boot disk is {} ({} bytes)",
                self.image_kind,
                decimal_size(max),
                virtual_size,
                virtual_size.0
            ));
        }
        if self.linux_only && platform.is_windows() {
            return Some(format!(
                "{} images must be Linux; the source runs '{}'",
                self.image_kind,
                platform.os.as_deref().unwrap_or_default()
            ));
        }
        None
    }

    /// Why an instance named `instance` with these data disks (device and
    /// size) cannot move here, if it cannot.
    pub fn data_disk_refusal(&self, instance: &str, data: &[String]) -> Option<String> {
        let reason = self.no_data_disks.as_ref()?;
        if data.is_empty() {
            return None;
        }
        Some(format!(
            "{reason}; '{instance}' has {} data disk{}: {}",
            data.len(),
            if data.len() == 1 { "" } else { "s" },
            data.join(", ")
        ))
    }
}

/// Sizes the way providers state their limits: decimal gigabytes.
fn decimal_size(bytes: u64) -> String {
    if bytes.is_multiple_of(1_000_000_000) {
        format!("{} GB", bytes / 1_000_000_000)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_declaration_means_a_plain_snapshot_and_no_agent() {
        let rules = ProviderRules::default();
        assert!(rules.is_empty());
        assert_eq!(
            rules.source.snapshot_detail("vda"),
            "point-in-time copy of vda"
        );
        assert_eq!(rules.source.agent_detail(), None);
        assert_eq!(
            rules
                .target
                .image_refusal(Bytes(u64::MAX), &Platform::default()),
            None
        );
    }

    #[test]
    fn a_declared_snapshot_names_the_device() {
        let rules = SourceRules {
            snapshot: Some("copy of {device} through a worker".into()),
            agent_host: Some("the worker VM".into()),
            quiesce: None,
        };
        assert_eq!(rules.snapshot_detail("sda"), "copy of sda through a worker");
        assert!(
            rules
                .agent_detail()
                .is_some_and(|d| d.contains("on the worker VM"))
        );
    }
}
