//! Builds a plan from two inventories and the operator's selection.

use super::actions::actions;
pub use super::actions::cutover_steps;
use super::limits::refusal;
use super::size_map::nearest_size;
use super::{CloudSide, CrossBorder, Cutover, PLAN_VERSION, Plan, PlanDisk, PlanItem, Summary};
use crate::inventory::declared::ProviderRules;
use crate::inventory::{DiskFormat, Inventory};
use crate::units::Bytes;
use std::collections::BTreeMap;

/// One side of the plan: a cloud, its profile's jurisdiction and what it holds.
pub struct Side<'a> {
    pub cloud: &'a str,
    pub provider: String,
    /// The profile's jurisdiction; otherwise each region's own.
    pub jurisdiction: Option<String>,
    pub inventory: &'a Inventory,
}

impl Side<'_> {
    pub(crate) fn jurisdiction_of(&self, region: &str) -> String {
        self.jurisdiction
            .clone()
            .or_else(|| {
                self.inventory
                    .region(region)
                    .map(|r| r.jurisdiction.clone())
            })
            .unwrap_or_else(|| "unknown".into())
    }
}

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Instance names (or ids) to migrate, in order.
    pub select: Vec<String>,
    /// `instance -> target size` overrides of the automatic mapping.
    pub sizes: BTreeMap<String, String>,
    pub target_region: Option<String>,
    /// Disk format for every target disk; the source's format when unset.
    pub target_format: Option<DiskFormat>,
    pub keep_access: bool,
    /// Remove the target instances, images and disks once validated.
    pub test_migration: bool,
    /// Make the run a cutover (passes, quiesce, final pass, power-off).
    pub cutover: Option<Cutover>,
    /// Waves and their windows.
    pub waves: super::waves::WaveRequest,
    /// Overrides of the configuration translation (network map, no
    /// firewall, no tags, public address).
    pub configuration: super::configuration::ConfigRequest,
    /// What validation checks from outside each instance.
    pub checks: super::checks::OutsideChecks,
}

/// Throughput behind the time estimate and where it was measured.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub bytes_per_second: u64,
    pub basis: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error(transparent)]
    Waves(#[from] super::waves::WaveError),
    #[error(transparent)]
    Configuration(#[from] super::configuration::ConfigError),
    #[error("nothing selected: name at least one instance (--select NAME)")]
    NothingSelected,
    #[error("no instance '{name}' in {cloud} (instances: {known})")]
    NoSuchInstance {
        name: String,
        cloud: String,
        known: String,
    },
    #[error("instance '{instance}' is selected twice")]
    Duplicate { instance: String },
    #[error("{cloud} has no size with at least {vcpus} vCPU and {memory} for '{instance}'")]
    NoSizeFits {
        cloud: String,
        instance: String,
        vcpus: u32,
        memory: Bytes,
    },
    #[error("size '{size}' for '{instance}' is not in {cloud}'s catalogue (sizes: {known})")]
    UnknownSize {
        instance: String,
        size: String,
        cloud: String,
        known: String,
    },
    #[error(
        "size '{size}' ({vcpus} vCPU, {memory}) is smaller than '{instance}' needs ({need_vcpus} vCPU, {need_memory})"
    )]
    SizeTooSmall {
        instance: String,
        size: String,
        vcpus: u32,
        memory: Bytes,
        need_vcpus: u32,
        need_memory: Bytes,
    },
    #[error("region '{region}' is not in {cloud} (regions: {known})")]
    UnknownRegion {
        region: String,
        cloud: String,
        known: String,
    },
    #[error("{cloud} has no regions to deploy into")]
    NoRegion { cloud: String },
    #[error("size override for '{instance}', which is not selected")]
    StrayOverride { instance: String },
    #[error("{cloud} cannot take '{instance}': {reason}")]
    TargetRefuses {
        cloud: String,
        instance: String,
        reason: String,
    },
    #[error("'{instance}': the name '{name}' cannot be used in the target: {reason}")]
    UnusableName {
        instance: String,
        name: String,
        reason: String,
    },
    #[error(
        "'{first}' and '{second}' would both be created as '{name}' in the target: \
         select one of them, or give one another target_name"
    )]
    SameTargetName {
        first: String,
        second: String,
        name: String,
    },
}

pub use super::names::check_names;

pub fn build(
    source: &Side,
    target: &Side,
    request: &Request,
    throughput: &Throughput,
    operator: &str,
) -> Result<Plan, PlanError> {
    if request.select.is_empty() {
        return Err(PlanError::NothingSelected);
    }
    for instance in request.sizes.keys() {
        if !request.select.contains(instance) {
            return Err(PlanError::StrayOverride {
                instance: instance.clone(),
            });
        }
    }
    let target_region = match &request.target_region {
        Some(region) if target.inventory.region(region).is_none() => {
            return Err(PlanError::UnknownRegion {
                region: region.clone(),
                cloud: target.cloud.into(),
                known: names(target.inventory.regions.iter().map(|r| &r.name)),
            });
        }
        Some(region) => region.clone(),
        None => target
            .inventory
            .regions
            .first()
            .map(|r| r.name.clone())
            .ok_or_else(|| PlanError::NoRegion {
                cloud: target.cloud.into(),
            })?,
    };

    let mut items = Vec::new();
    for name in &request.select {
        if items
            .iter()
            .any(|i: &PlanItem| &i.instance_name == name || &i.instance_id == name)
        {
            return Err(PlanError::Duplicate {
                instance: name.clone(),
            });
        }
        let instance =
            source
                .inventory
                .instance(name)
                .ok_or_else(|| PlanError::NoSuchInstance {
                    name: name.clone(),
                    cloud: source.cloud.into(),
                    known: names(source.inventory.instances.iter().map(|i| &i.name)),
                })?;
        let size = match request.sizes.get(name) {
            Some(wanted) => {
                let size = target
                    .inventory
                    .size(wanted)
                    .ok_or_else(|| PlanError::UnknownSize {
                        instance: name.clone(),
                        size: wanted.clone(),
                        cloud: target.cloud.into(),
                        known: names(target.inventory.sizes.iter().map(|s| &s.name)),
                    })?;
                if size.vcpus < instance.vcpus || size.memory < instance.memory {
                    return Err(PlanError::SizeTooSmall {
                        instance: name.clone(),
                        size: size.name.clone(),
                        vcpus: size.vcpus,
                        memory: size.memory,
                        need_vcpus: instance.vcpus,
                        need_memory: instance.memory,
                    });
                }
                size
            }
            None => nearest_size(
                &target.inventory.sizes,
                &instance.size,
                instance.vcpus,
                instance.memory,
            )
            .ok_or_else(|| PlanError::NoSizeFits {
                cloud: target.cloud.into(),
                instance: name.clone(),
                vcpus: instance.vcpus,
                memory: instance.memory,
            })?,
        };
        let disks = instance
            .disks
            .iter()
            .map(|disk| PlanDisk {
                disk_id: disk.id.clone(),
                device: disk.device.clone(),
                boot: disk.boot,
                virtual_size: disk.virtual_size,
                allocated: disk.allocated.unwrap_or(disk.virtual_size),
                source_format: disk.format,
                target_format: request.target_format.unwrap_or(disk.format),
                source_snapshot: None,
            })
            .collect();
        items.push(PlanItem {
            instance_id: instance.id.clone(),
            instance_name: instance.name.clone(),
            source_size: instance.size.clone(),
            vcpus: instance.vcpus,
            memory: instance.memory,
            target_name: instance.name.clone(),
            target_size: size.name.clone(),
            target_region: target_region.clone(),
            wave: 1,
            disks,
            platform: instance.platform.clone(),
            configuration: Default::default(),
        });
        if let Some(reason) = items
            .last()
            .and_then(|i| refusal(&target.inventory.rules.target, i))
        {
            return Err(PlanError::TargetRefuses {
                cloud: target.cloud.to_string(),
                instance: instance.name.clone(),
                reason,
            });
        }
    }

    check_names(&items)?;
    let tag_of = |id: &str, tag: &str| {
        let instance = source.inventory.instance(id)?;
        instance.tags.get(tag).cloned()
    };
    let tags_of = |id: &str| {
        let instance = source.inventory.instance(id);
        instance.map_or(Vec::new(), |i| i.tags.keys().cloned().collect())
    };
    let waves = super::waves::assign(&mut items, &request.waves, tag_of, tags_of)?;
    super::configuration::translate_items(
        &mut items,
        (source.cloud, source.inventory),
        (target.cloud, target.inventory),
        &request.configuration,
    )?;
    let mut plan = Plan {
        version: PLAN_VERSION,
        created_at: crate::fsutil::now_rfc3339(),
        created_by: operator.to_string(),
        source: CloudSide {
            cloud: source.cloud.into(),
            provider: source.provider.clone(),
            jurisdiction: String::new(),
            rules: ProviderRules {
                source: source.inventory.rules.source.clone(),
                ..Default::default()
            },
        },
        target: CloudSide {
            cloud: target.cloud.into(),
            provider: target.provider.clone(),
            jurisdiction: target.jurisdiction_of(&target_region),
            rules: ProviderRules {
                target: target.inventory.rules.target.clone(),
                ..Default::default()
            },
        },
        keep_access: request.keep_access,
        test_migration: request.test_migration,
        rehearsals: Vec::new(),
        checks: request.checks.clone(),
        preparation: Default::default(),
        summary: Summary {
            instances: 0,
            disks: 0,
            bytes_to_move: Bytes::ZERO,
            virtual_bytes: Bytes::ZERO,
            estimate_seconds: 0,
            estimate_basis: String::new(),
            change_rate: None,
        },
        cross_border: None,
        cutover: request.cutover.clone(),
        waves,
        clouds: BTreeMap::new(),
        items,
        actions: Vec::new(),
        approval: None,
    };
    let source_regions: Vec<String> = request
        .select
        .iter()
        .filter_map(|n| source.inventory.instance(n))
        .map(|i| source.jurisdiction_of(&i.region))
        .collect();
    let mut source_jurisdictions = source_regions.clone();
    source_jurisdictions.sort();
    source_jurisdictions.dedup();
    plan.source.jurisdiction = source_jurisdictions.join("+");
    refresh(&mut plan, throughput);
    Ok(plan)
}

/// Recomputes what follows from the items (actions, totals, estimate,
/// cross-border flag): after building, and after the console edits an item.
pub fn refresh(plan: &mut Plan, throughput: &Throughput) {
    let bytes: Bytes = plan.items.iter().map(|i| i.allocated()).sum();
    let virtual_bytes: Bytes = plan.disks().map(|(_, d)| d.virtual_size).sum();
    plan.summary = Summary {
        instances: plan.items.len() as u32,
        disks: plan.disks().count() as u32,
        bytes_to_move: bytes,
        virtual_bytes,
        estimate_seconds: bytes.0.div_ceil(throughput.bytes_per_second.max(1)),
        estimate_basis: throughput.basis.clone(),
        // Measured on the route, not derived from the items: kept.
        change_rate: plan.summary.change_rate.take(),
    };
    plan.cross_border =
        crosses_border(&plan.source.jurisdiction, &plan.target.jurisdiction).then(|| CrossBorder {
            from: plan.source.jurisdiction.clone(),
            to: plan.target.jurisdiction.clone(),
            bytes,
        });
    plan.actions = actions(plan);
}

fn names<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let all: Vec<&str> = items.map(String::as_str).collect();
    if all.is_empty() {
        "none".into()
    } else {
        all.join(", ")
    }
}

/// EU and EEA members: data may move between them without a transfer
/// safeguard, so such moves are not flagged.
const EU_EEA: [&str; 30] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
];

/// True when data moving from `from` to `to` crosses a border that needs
/// acknowledging: any move between different jurisdictions, except within
/// the EU/EEA. `from` may list several (`DE+US`) when instances differ.
pub fn crosses_border(from: &str, to: &str) -> bool {
    let in_eu = |code: &str| code == "EU" || EU_EEA.contains(&code);
    from.split('+').any(|f| f != to && !(in_eu(f) && in_eu(to)))
}

#[cfg(test)]
mod tests {
    use super::{Throughput, crosses_border, refresh};
    use crate::plan::{ActionVerb, Cutover};

    #[test]
    fn a_cutover_lists_its_steps_between_the_writes_and_the_deploy() {
        let mut plan = crate::plan::tests::sample_plan(false);
        plan.cutover = Some(Cutover {
            quiesce: Some("systemctl stop app".into()),
            thaw: None,
            power_off: true,
            max_delta_passes: 3,
        });
        let throughput = Throughput {
            bytes_per_second: 1,
            basis: "test".into(),
        };
        refresh(&mut plan, &throughput);
        let steps: Vec<(ActionVerb, &str)> = plan
            .actions
            .iter()
            .take(6)
            .map(|a| (a.verb, a.resource.as_str()))
            .collect();
        assert_eq!(
            steps,
            vec![
                (ActionVerb::SnapshotDisk, "web/root"),
                (ActionVerb::WriteDisk, "web-root"),
                (ActionVerb::QuiesceSource, "web"),
                (ActionVerb::FinalDelta, "web/root"),
                (ActionVerb::PowerOffSource, "web"),
                (ActionVerb::DeployInstance, "web"),
            ]
        );
        assert!(plan.actions[1].detail.contains("up to 3 delta passes"));
        let text = crate::plan::render::render(&plan);
        assert!(text.contains("CUTOVER"), "{text}");
        assert!(
            text.contains("[a] quiesce source web — runs `systemctl stop app`"),
            "{text}"
        );
        assert!(text.contains("[a] power off source web"), "{text}");
    }

    #[test]
    fn moves_within_the_eu_are_not_cross_border() {
        assert!(!crosses_border("DE", "FR"));
        assert!(!crosses_border("US", "US"));
        assert!(crosses_border("DE", "US"));
        assert!(crosses_border("US", "DE"));
        assert!(crosses_border("DE+US", "FR"));
        assert!(crosses_border("CH", "DE"));
    }
}
