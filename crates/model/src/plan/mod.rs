//! The migration plan: every change a run will make, written down before any
//! is made. Its canonical hash is what an operator approves.

pub mod actions;
pub mod approval;
pub mod build;
pub mod checks;
pub mod config_text;
pub mod configuration;
pub mod limits;
pub mod lossy;
pub mod names;
pub mod preparation;
pub mod render;
pub mod signature;
pub mod size_map;
pub mod tags;
pub mod trust;
pub mod waves;

use crate::block::to_hex;
use crate::inventory::declared::ProviderRules;
use crate::inventory::{DiskFormat, Platform};
use crate::units::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

pub use approval::{ApprovalRecord, Approved};

pub const PLAN_VERSION: u32 = 1;

/// SHA-256 of a plan's canonical form, hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlanHash(pub String);

impl PlanHash {
    /// The part an operator types to approve.
    pub fn short(&self) -> &str {
        // A hash read from a hand-edited file may hold anything: cut at a
        // character boundary, never inside one.
        let end = self
            .0
            .char_indices()
            .nth(8)
            .map_or(self.0.len(), |(at, _)| at);
        &self.0[..end]
    }
}

impl std::fmt::Display for PlanHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudSide {
    pub cloud: String,
    pub provider: String,
    pub jurisdiction: String,
    /// What its provider declared for this side's role (what a source's
    /// snapshot is, what a target's write exposes), so the actions say it
    /// and the approved hash covers it.
    #[serde(default, skip_serializing_if = "ProviderRules::is_empty")]
    pub rules: ProviderRules,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDisk {
    pub disk_id: String,
    pub device: String,
    pub boot: bool,
    pub virtual_size: Bytes,
    pub allocated: Bytes,
    pub source_format: DiskFormat,
    pub target_format: DiskFormat,
    /// An existing snapshot to read instead of taking a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_snapshot: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanItem {
    pub instance_id: String,
    pub instance_name: String,
    pub source_size: String,
    pub vcpus: u32,
    pub memory: Bytes,
    pub target_name: String,
    pub target_size: String,
    pub target_region: String,
    pub wave: u32,
    pub disks: Vec<PlanDisk>,
    /// The source's OS, boot mode and architecture, carried to the target image.
    #[serde(default, skip_serializing_if = "Platform::is_unknown")]
    pub platform: Platform,
    /// Network, firewalls, tags, keys and user-data on the target, and what
    /// of the source's cannot be carried (see [`configuration`]).
    #[serde(default, skip_serializing_if = "configuration::ItemConfig::is_empty")]
    pub configuration: configuration::ItemConfig,
}

impl PlanItem {
    pub fn allocated(&self) -> Bytes {
        self.disks.iter().map(|d| d.allocated).sum()
    }

    /// Key of a disk in events, journal and report: `instance/disk`.
    pub fn disk_key(&self, disk: &PlanDisk) -> String {
        format!("{}/{}", self.instance_name, disk.disk_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionVerb {
    SnapshotDisk,
    WriteDisk,
    DeployInstance,
    DeleteSnapshot,
    DeleteStaging,
    RevokeAccess,
    /// Cutover: the operator's quiesce command (or fsfreeze) on the source.
    QuiesceSource,
    /// Cutover: the last delta pass, after quiescing.
    FinalDelta,
    /// Cutover: the source is powered off after the final pass.
    PowerOffSource,
    /// Cutover without power-off: the source resumes after the final pass.
    ThawSource,
    /// Test migration: the validated target instance, image and disks go.
    RemoveTestTarget,
    /// The small reader copied to a source host (SSH, a droplet, a worker),
    /// checked by SHA-256 there, removed at cleanup.
    InstallAgent,
    /// A firewall / security group made on the target from a source rule set.
    CreateFirewall,
    /// An SSH public key imported into the target (AWS key pair).
    ImportKey,
    /// Guest preparation applied to the target's copy of a boot disk.
    PrepareGuest,
}

impl std::fmt::Display for ActionVerb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            ActionVerb::SnapshotDisk => "snapshot disk",
            ActionVerb::WriteDisk => "write disk",
            ActionVerb::DeployInstance => "create instance",
            ActionVerb::DeleteSnapshot => "delete snapshot",
            ActionVerb::DeleteStaging => "delete staging",
            ActionVerb::RevokeAccess => "revoke access",
            ActionVerb::QuiesceSource => "quiesce source",
            ActionVerb::FinalDelta => "final delta",
            ActionVerb::PowerOffSource => "power off source",
            ActionVerb::ThawSource => "thaw source",
            ActionVerb::RemoveTestTarget => "remove test target",
            ActionVerb::InstallAgent => "install agent",
            ActionVerb::CreateFirewall => "create firewall",
            ActionVerb::ImportKey => "import ssh key",
            ActionVerb::PrepareGuest => "prepare guest",
        };
        f.write_str(text)
    }
}

/// One change the run will make in a cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub step: u32,
    pub cloud: String,
    pub verb: ActionVerb,
    pub resource: String,
    pub detail: String,
}

/// A low-downtime cutover: copy while the source runs, send what changed
/// until the changes stop shrinking, then quiesce the source, send the last
/// changes and power it off (or thaw it) before the target is deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cutover {
    /// Command run on the source to quiesce it; `fsfreeze` of the device's
    /// mounted filesystems when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiesce: Option<String>,
    /// Command that undoes `quiesce` when the source keeps running (or the
    /// final pass fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thaw: Option<String>,
    /// Power the source off after the final pass (otherwise thaw it).
    pub power_off: bool,
    /// Delta passes while the source runs, at most (the final pass is extra).
    pub max_delta_passes: u32,
}

impl Cutover {
    pub const DEFAULT_DELTA_PASSES: u32 = 3;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossBorder {
    pub from: String,
    pub to: String,
    pub bytes: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub instances: u32,
    pub disks: u32,
    pub bytes_to_move: Bytes,
    pub virtual_bytes: Bytes,
    pub estimate_seconds: u64,
    /// Where the throughput behind the estimate comes from.
    pub estimate_basis: String,
    /// Cutover: how fast the source's disks changed during the last
    /// measured cutover on this route, for the final pass's estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_rate: Option<ChangeRate>,
}

/// Bytes a running source writes per second, as a cutover measured it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRate {
    pub bytes_per_second: u64,
    pub basis: String,
}

/// The final pass a cutover may send and take, estimated before the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalPassEstimate {
    pub bytes: Bytes,
    pub seconds: u64,
    /// The source writes faster than the copy moves: deltas do not shrink.
    pub outpaced: bool,
}

impl Summary {
    /// The final pass from the measured change rate, when one is known:
    /// each pass sends what was written while the previous one ran, so with
    /// `r` = change rate / copy rate the full copy of B bytes is followed by
    /// deltas of B·r, B·r², …; after `max_delta_passes` deltas the final
    /// pass sends B·r^(passes+1), at the copy rate.
    pub fn final_pass_estimate(&self, max_delta_passes: u32) -> Option<FinalPassEstimate> {
        let change = self.change_rate.as_ref()?.bytes_per_second as f64;
        let bytes = self.bytes_to_move.0 as f64;
        let copy = bytes / self.estimate_seconds.max(1) as f64;
        if copy <= 0.0 {
            return None;
        }
        let r = change / copy;
        let (final_bytes, outpaced) = if r >= 1.0 {
            (bytes, true)
        } else {
            (bytes * r.powi(max_delta_passes as i32 + 1), false)
        };
        let final_bytes = final_bytes.round();
        Some(FinalPassEstimate {
            bytes: Bytes(final_bytes as u64),
            seconds: (final_bytes / copy).ceil() as u64,
            outpaced,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub version: u32,
    pub created_at: String,
    pub created_by: String,
    pub source: CloudSide,
    pub target: CloudSide,
    /// Keep temporary access after the run (recorded in the report).
    #[serde(default)]
    pub keep_access: bool,
    /// A rehearsal: the target instances, images and disks are removed once
    /// validated, so the real migration can follow with nothing left over.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test_migration: bool,
    pub summary: Summary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_border: Option<CrossBorder>,
    /// Present when the run is a cutover (several passes, then the source stops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<Cutover>,
    /// Where the waves came from and their cutover windows (the items carry
    /// their wave numbers).
    #[serde(default, skip_serializing_if = "waves::Waves::is_empty")]
    pub waves: waves::Waves,
    /// The settings of each cloud the plan touches (endpoint, bucket, path,
    /// host, commands…, never a secret), so the approval covers what the
    /// names meant at plan time: approve and apply refuse a config that
    /// changed since (see [`trust`]).
    #[serde(default)]
    pub clouds: std::collections::BTreeMap<String, trust::CloudFingerprint>,
    pub items: Vec<PlanItem>,
    pub actions: Vec<Action>,
    /// `plan --rehearse`: each boot disk booted on this machine before any
    /// cloud was touched (a plan is only written when every one booted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rehearsals: Vec<RehearsalRecord>,
    /// What validation checks from outside each deployed instance (serial
    /// console, TCP ports, HTTP); under the approved hash.
    #[serde(default, skip_serializing_if = "checks::OutsideChecks::is_empty")]
    pub checks: checks::OutsideChecks,
    /// Each boot disk's guest preparation for the target (see [`preparation`]).
    #[serde(default, skip_serializing_if = "preparation::Preparation::is_empty")]
    pub preparation: preparation::Preparation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRecord>,
}

/// One local boot rehearsal of a plan item's boot disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RehearsalRecord {
    pub instance: String,
    pub disk: String,
    pub booted: bool,
    /// `tcg` or `kvm`.
    pub accel: String,
    pub elapsed_ms: u64,
    /// The marker's pattern and what it matched.
    pub expect: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The serial console's last lines.
    #[serde(default)]
    pub serial_tail: Vec<String>,
    /// Why the boot used another accelerator than asked (KVM failed here).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub accel_note: String,
    /// The boot was of the prepared copy (the plan's changes on an overlay).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prepared: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error(transparent)]
    Parse(#[from] crate::config::ConfigError),
    #[error("{file}: cannot read plan: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: cannot write plan: {source}")]
    Write {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: plan version {found} is not supported (this altishift reads version {PLAN_VERSION})"
    )]
    Version { file: String, found: u32 },
    #[error("{file}: cannot encode plan: {message}")]
    Encode { file: String, message: String },
}

impl Plan {
    /// Hash over the canonical form: the plan as JSON with fixed field order,
    /// without its approval. Formatting and comments in the file do not count;
    /// every value does.
    pub fn hash(&self) -> PlanHash {
        let mut unapproved = self.clone();
        unapproved.approval = None;
        // Serialising plain structs, strings and integers cannot fail.
        let canonical = serde_json::to_vec(&unapproved).unwrap_or_default();
        PlanHash(to_hex(&Sha256::digest(&canonical)))
    }

    pub fn disks(&self) -> impl Iterator<Item = (&PlanItem, &PlanDisk)> {
        self.items
            .iter()
            .flat_map(|item| item.disks.iter().map(move |d| (item, d)))
    }

    pub fn load(path: &Path) -> Result<Plan, PlanFileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
            file: file.clone(),
            source,
        })?;
        let plan: Plan = crate::config::parse_toml(&text, path)?;
        if plan.version != PLAN_VERSION {
            return Err(PlanFileError::Version {
                file,
                found: plan.version,
            });
        }
        Ok(plan)
    }

    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string_pretty(self).map_err(|e| e.to_string())
    }

    /// Writes the plan atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), PlanFileError> {
        let file = path.display().to_string();
        let text = self.to_toml().map_err(|message| PlanFileError::Encode {
            file: file.clone(),
            message,
        })?;
        let body = format!(
            "# altishift migration plan. Review it, then `altishift approve {}`.\n# Any edit changes the plan hash and needs a new approval.\n{text}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        crate::fsutil::write_atomic(path, body.as_bytes())
            .map_err(|source| PlanFileError::Write { file, source })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_plan(cross_border: bool) -> Plan {
        Plan {
            version: PLAN_VERSION,
            created_at: "2026-11-26T10:00:00Z".into(),
            created_by: "ops".into(),
            source: CloudSide {
                cloud: "a".into(),
                provider: "lab".into(),
                jurisdiction: "DE".into(),
                rules: Default::default(),
            },
            target: CloudSide {
                cloud: "b".into(),
                provider: "lab".into(),
                jurisdiction: if cross_border { "US" } else { "DE" }.into(),
                rules: Default::default(),
            },
            keep_access: false,
            test_migration: false,
            rehearsals: Vec::new(),
            preparation: Default::default(),
            summary: Summary {
                instances: 1,
                disks: 1,
                bytes_to_move: Bytes::mib(10),
                virtual_bytes: Bytes::gib(1),
                estimate_seconds: 1,
                estimate_basis: "assumed".into(),
                change_rate: None,
            },
            cross_border: cross_border.then(|| CrossBorder {
                from: "DE".into(),
                to: "US".into(),
                bytes: Bytes::mib(10),
            }),
            cutover: None,
            waves: Default::default(),
            clouds: Default::default(),
            items: vec![PlanItem {
                instance_id: "i-1".into(),
                instance_name: "web".into(),
                source_size: "s".into(),
                vcpus: 1,
                memory: Bytes::gib(1),
                target_name: "web".into(),
                target_size: "t".into(),
                target_region: "r".into(),
                wave: 1,
                disks: vec![PlanDisk {
                    disk_id: "root".into(),
                    device: "vda".into(),
                    boot: true,
                    virtual_size: Bytes::gib(1),
                    allocated: Bytes::mib(10),
                    source_format: DiskFormat::Raw,
                    target_format: DiskFormat::Qcow2,
                    source_snapshot: None,
                }],
                platform: Platform::default(),
                configuration: Default::default(),
            }],
            actions: vec![],
            checks: Default::default(),
            approval: None,
        }
    }

    #[test]
    fn the_final_pass_follows_the_measured_change_rate() {
        let mut summary = sample_plan(false).summary;
        summary.bytes_to_move = Bytes(1000 << 20);
        summary.estimate_seconds = 100; // 10 MiB/s
        assert_eq!(summary.final_pass_estimate(1), None, "nothing measured");
        summary.change_rate = Some(ChangeRate {
            bytes_per_second: 1 << 20,
            basis: "measured".into(),
        });
        // r = 1/10: one delta of 100 MiB, then a final pass of 10 MiB (1 s).
        let estimate = summary.final_pass_estimate(1).unwrap();
        assert_eq!(estimate.bytes, Bytes(10 << 20));
        assert_eq!(estimate.seconds, 1);
        assert!(!estimate.outpaced);
        // Without delta passes the final pass carries the full copy's writes.
        assert_eq!(
            summary.final_pass_estimate(0).unwrap().bytes,
            Bytes(100 << 20)
        );
        summary.change_rate.as_mut().unwrap().bytes_per_second = 20 << 20;
        let outpaced = summary.final_pass_estimate(3).unwrap();
        assert!(outpaced.outpaced);
        assert_eq!(outpaced.seconds, 100);
    }

    #[test]
    fn plan_round_trips_through_toml_with_the_same_hash() {
        let plan = sample_plan(true);
        let text = plan.to_toml().unwrap();
        let back: Plan = toml::from_str(&text).unwrap();
        assert_eq!(back, plan);
        assert_eq!(back.hash(), plan.hash());
    }

    #[test]
    fn a_plan_without_cutover_keeps_its_hash_and_a_cutover_round_trips() {
        let plan = sample_plan(false);
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains("cutover"), "{json}");
        let mut cut = plan.clone();
        cut.cutover = Some(Cutover {
            quiesce: Some("systemctl stop app".into()),
            thaw: None,
            power_off: true,
            max_delta_passes: 2,
        });
        assert_ne!(cut.hash(), plan.hash());
        let back: Plan = toml::from_str(&cut.to_toml().unwrap()).unwrap();
        assert_eq!(back, cut);
        assert_eq!(back.hash(), cut.hash());
    }

    #[test]
    fn a_non_ascii_hash_from_a_file_is_shortened_without_a_panic() {
        assert_eq!(PlanHash("ééééééééé".into()).short(), "éééééééé");
        assert_eq!(PlanHash("ab".into()).short(), "ab");
    }

    #[test]
    fn any_edit_changes_the_hash() {
        let plan = sample_plan(false);
        let mut edited = plan.clone();
        edited.items[0].target_size = "bigger".into();
        assert_ne!(plan.hash(), edited.hash());
        assert_eq!(plan.hash().short().len(), 8);
    }
}
