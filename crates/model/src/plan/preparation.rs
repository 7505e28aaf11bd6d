//! Guest preparation as part of a plan: for each instance's boot disk, what
//! an inspection at plan time found must change for the target (or why
//! nothing will be prepared), so the operator sees every change and the
//! approved hash covers them. The engine applies exactly these changes to a
//! copy: the target's (a lab target, before deploy) or the run's own
//! snapshot on this machine (a lab source streaming into a cloud, before the
//! stream). The guest crate computes and applies them.
//!
//! A source whose disks stay in the cloud until the run cannot be inspected
//! at plan time (that would need a snapshot before approval). Its entry is
//! a policy instead: the plan approves the target's needs and the kinds of
//! change above; the run inspects a copy on this machine and applies what
//! those needs call for, and nothing else.

use super::Plan;
use crate::inventory::declared::GuestNeeds;
use serde::{Deserialize, Serialize};

/// The netplan file preparation writes (DHCP on the first NIC).
pub const DHCP_NETPLAN: &str = "/etc/netplan/90-altishift-dhcp.yaml";
/// What preparation adds to the kernel command line.
pub const SERIAL: &str = "console=tty0 console=ttyS0,115200";

/// One change to the guest, as the plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    /// fstab entries named by device get their filesystem's UUID.
    FstabByUuid { mountpoints: Vec<String> },
    /// Static network files are set aside; the first NIC uses DHCP.
    NetworkDhcp { disabled: Vec<String> },
    /// cloud-init looks for the target's datasource first.
    Datasource { list: Vec<String> },
    /// The kernel writes to the serial console (the target's console log).
    SerialConsole { config: String },
    /// The source cloud's agents are kept from starting (their systemd
    /// units masked): they would call a metadata service that is not there.
    DisableAgents { agents: Vec<String> },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::FstabByUuid { mountpoints } => write!(
                f,
                "/etc/fstab: mount {} by filesystem UUID instead of device name",
                mountpoints.join(", ")
            ),
            Change::NetworkDhcp { disabled } => write!(
                f,
                "network: set aside {} (static), DHCP on the first NIC ({DHCP_NETPLAN})",
                disabled.join(", ")
            ),
            Change::Datasource { list } => {
                write!(f, "cloud-init: datasource_list [{}]", list.join(", "))
            }
            Change::SerialConsole { config } => {
                write!(f, "{config}: kernel command line gains {SERIAL}")
            }
            Change::DisableAgents { agents } => write!(
                f,
                "source-cloud agents disabled (systemd units masked): {}",
                agents.join(", ")
            ),
        }
    }
}

/// What the plan does to one instance's guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The changes are applied to the target's copy before deploy.
    Prepare,
    /// Inspected (or no boot code): nothing to change.
    Nothing,
    /// Preparation is not planned (a cutover sends the source's later
    /// changes over the copy).
    NotPlanned,
    /// The disk stays in the source cloud until the run: the run inspects
    /// its copy on this machine and applies what the plan's `needs` call
    /// for; a guest found not preparable fails before deploy (or before a
    /// block is sent) unless `--unprepared`.
    InspectAtRun,
    /// The disk has boot code but could not be inspected (libguestfs
    /// missing, failed): migrated as it is only with `--unprepared`.
    NotInspected,
    /// The guest cannot be prepared for the target (a missing driver,
    /// Windows, no OS found), or the changes cannot be applied there:
    /// migrated as it is only with `--unprepared`.
    Refused,
}

impl Status {
    /// Whether this status refuses the plan unless `--unprepared`.
    pub fn refuses(self) -> bool {
        matches!(self, Status::NotInspected | Status::Refused)
    }
}

/// Which copy the changes are applied to. Never the source disk itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppliedTo {
    /// The target's copy, a file on this machine until deploy (the lab),
    /// after its digest is checked against the source's.
    #[default]
    TargetCopy,
    /// The snapshot this run takes of the source, a file on this machine
    /// (a lab source), before any block of it is read: the target receives
    /// the prepared disk (clouds that take the disk before deploy).
    RunSnapshot,
    /// A copy of the run's snapshot staged on this machine during the run
    /// (a remote source into a cloud that takes the disk before deploy):
    /// prepared there, then sent.
    StagedCopy,
}

impl AppliedTo {
    fn is_target_copy(&self) -> bool {
        *self == AppliedTo::TargetCopy
    }

    /// Where, in the words the plan text and its action use.
    pub fn describe(self) -> &'static str {
        match self {
            AppliedTo::TargetCopy => "on the target's copy before deploy",
            AppliedTo::RunSnapshot => "on this run's snapshot of the source, before it is sent",
            AppliedTo::StagedCopy => {
                "on a copy of this run's snapshot staged on this machine, before it is sent"
            }
        }
    }
}

/// One instance's boot disk: what is prepared, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestPreparation {
    pub instance: String,
    pub disk: String,
    pub status: Status,
    /// Why (for every status but `prepare`), or what was inspected.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The changes: applied when `prepare`; for `refused`, what the guest
    /// would need where the target cannot apply them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// The copy the changes go to (absent: the target's, as plans made
    /// before this field say, so their hashes stand).
    #[serde(default, skip_serializing_if = "AppliedTo::is_target_copy")]
    pub applied_to: AppliedTo,
    /// For `inspect-at-run`: what the target requires of the guest, as
    /// approved (the run computes the changes from these, not from the
    /// rules of the build it runs with).
    #[serde(default, skip_serializing_if = "GuestNeeds::is_empty")]
    pub needs: GuestNeeds,
}

/// The plan's guest preparation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preparation {
    /// `--unprepared`: guests that cannot be prepared are migrated as they are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unprepared: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<GuestPreparation>,
}

impl Preparation {
    pub fn is_empty(&self) -> bool {
        !self.unprepared && self.guests.is_empty()
    }

    /// The guest entries that refuse the plan: none under `--unprepared`.
    pub fn refusals(&self) -> Vec<&GuestPreparation> {
        if self.unprepared {
            return Vec::new();
        }
        self.guests.iter().filter(|g| g.status.refuses()).collect()
    }

    /// The changes to apply to `instance`'s copy, if any.
    pub fn changes_for(&self, instance: &str) -> Option<&GuestPreparation> {
        self.guests.iter().find(|g| {
            g.instance == instance && g.status == Status::Prepare && !g.changes.is_empty()
        })
    }

    /// What the run does to `instance`'s copy: planned changes, or an
    /// inspection at run time under the approved needs.
    pub fn to_apply(&self, instance: &str) -> Option<&GuestPreparation> {
        self.changes_for(instance).or_else(|| {
            self.guests
                .iter()
                .find(|g| g.instance == instance && g.status == Status::InspectAtRun)
        })
    }
}

/// Records `preparation` in the plan and derives the actions again (one
/// "prepare guest" action per instance with changes).
pub fn set(plan: &mut Plan, preparation: Preparation) {
    plan.preparation = preparation;
    plan.actions = super::actions::actions(plan);
}

/// The action's detail: each change, in order (or the policy the run
/// inspects under).
pub fn action_detail(guest: &GuestPreparation) -> String {
    if guest.status == Status::InspectAtRun {
        return format!(
            "inspected {}, through libguestfs; {}",
            guest.applied_to.describe(),
            policy(&guest.needs)
        );
    }
    let changes: Vec<String> = guest.changes.iter().map(|c| c.to_string()).collect();
    format!(
        "{}, through libguestfs: {}",
        guest.applied_to.describe(),
        changes.join("; ")
    )
}

/// What a run-time inspection may require and change, in the plan's words.
pub fn policy(needs: &GuestNeeds) -> String {
    let required = if needs.drivers.is_empty() {
        "no driver required".to_string()
    } else {
        let groups: Vec<String> = needs.drivers.iter().map(|g| g.join(" or ")).collect();
        format!("drivers required: {}", groups.join(", "))
    };
    let datasource = match &needs.datasource {
        Some(name) => format!("cloud-init datasource_list [{name}, None]"),
        None => "cloud-init left as it is".to_string(),
    };
    format!(
        "{required}; may change: fstab by UUID, static netplan to DHCP, {datasource}, \
         other clouds' agents masked, serial console; a guest that cannot be prepared \
         stops its instance before deploy"
    )
}

/// The plan text's section, empty when nothing was inspected.
pub fn render(preparation: &Preparation) -> Vec<String> {
    use crate::text::safe;
    if preparation.is_empty() {
        return Vec::new();
    }
    let mut out =
        vec!["Guest preparation (applied to a copy; the source is never written):".into()];
    if preparation.unprepared {
        out.push("  --unprepared: guests that cannot be prepared migrate as they are".into());
    }
    for guest in &preparation.guests {
        let what = match guest.status {
            Status::Prepare => format!(
                "{} change(s) {}",
                guest.changes.len(),
                guest.applied_to.describe()
            ),
            Status::Nothing => format!("nothing to prepare: {}", guest.detail),
            Status::NotPlanned => format!("not planned: {}", guest.detail),
            Status::InspectAtRun => format!(
                "inspected during the run {}; {}",
                guest.applied_to.describe(),
                policy(&guest.needs)
            ),
            Status::NotInspected => format!("NOT INSPECTED: {}", guest.detail),
            Status::Refused => format!("REFUSED: {}", guest.detail),
        };
        out.push(format!(
            "  {}/{}: {}",
            safe(&guest.instance),
            safe(&guest.disk),
            safe(&what)
        ));
        for change in &guest.changes {
            out.push(format!("    - {}", safe(&change.to_string())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(status: Status) -> GuestPreparation {
        GuestPreparation {
            instance: "tiny-1".into(),
            disk: "root".into(),
            status,
            detail: String::new(),
            changes: vec![
                Change::FstabByUuid {
                    mountpoints: vec!["/".into()],
                },
                Change::Datasource {
                    list: vec!["NoCloud".into(), "None".into()],
                },
            ],
            applied_to: AppliedTo::TargetCopy,
            needs: GuestNeeds::default(),
        }
    }

    #[test]
    fn only_unprepared_lets_a_refused_or_uninspected_guest_through() {
        let mut preparation = Preparation {
            unprepared: false,
            guests: vec![
                guest(Status::Prepare),
                guest(Status::Nothing),
                guest(Status::NotPlanned),
            ],
        };
        assert!(preparation.refusals().is_empty());
        preparation.guests.push(guest(Status::NotInspected));
        preparation.guests.push(guest(Status::Refused));
        let refused: Vec<Status> = preparation.refusals().iter().map(|g| g.status).collect();
        assert_eq!(refused, [Status::NotInspected, Status::Refused]);
        preparation.unprepared = true;
        assert!(preparation.refusals().is_empty());
    }

    /// The sample plan with `guest` as its one preparation entry (for "web").
    fn with_guest(plan: &mut Plan, guest: GuestPreparation) {
        set(
            plan,
            Preparation {
                unprepared: false,
                guests: vec![GuestPreparation {
                    instance: "web".into(),
                    ..guest
                }],
            },
        );
    }

    #[test]
    fn the_changes_and_unprepared_are_under_the_hash_and_listed_as_an_action() {
        let mut plan = super::super::tests::sample_plan(false);
        let bare = plan.hash();
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains("preparation"), "an old plan keeps its hash");
        with_guest(&mut plan, guest(Status::Prepare));
        let prepared = plan.hash();
        assert_ne!(prepared, bare);
        let action = plan
            .actions
            .iter()
            .find(|a| a.verb == super::super::ActionVerb::PrepareGuest)
            .expect("a prepare action");
        assert!(action.detail.contains("/etc/fstab"), "{}", action.detail);
        assert!(action.detail.contains("datasource_list [NoCloud, None]"));
        // The action comes before the instance is created.
        let deploy = plan
            .actions
            .iter()
            .position(|a| a.verb == super::super::ActionVerb::DeployInstance);
        assert!(plan.actions.iter().position(|a| a == action) < deploy);

        let mut edited = plan.clone();
        edited.preparation.guests[0].changes.pop();
        assert_ne!(edited.hash(), prepared, "a dropped change is an edit");
        let mut unprepared = plan.clone();
        unprepared.preparation.unprepared = true;
        assert_ne!(unprepared.hash(), prepared);

        let back: Plan = toml::from_str(&plan.to_toml().unwrap()).unwrap();
        assert_eq!(back, plan);
        assert_eq!(back.hash(), prepared);
        let text = render(&plan.preparation).join("\n");
        assert!(
            text.contains("web/root: 2 change(s) on the target's copy before deploy"),
            "{text}"
        );
        assert!(!plan.to_toml().unwrap().contains("applied_to"));

        // Where the changes go is approved too.
        let mut streamed = plan.clone();
        streamed.preparation.guests[0].applied_to = AppliedTo::RunSnapshot;
        assert_ne!(streamed.hash(), prepared);
        let back: Plan = toml::from_str(&streamed.to_toml().unwrap()).unwrap();
        assert_eq!(
            back.preparation.guests[0].applied_to,
            AppliedTo::RunSnapshot
        );
        let text = render(&streamed.preparation).join("\n");
        assert!(
            text.contains("on this run's snapshot of the source"),
            "{text}"
        );
    }

    #[test]
    fn a_refused_guest_is_not_approved_unless_the_plan_says_unprepared() {
        use super::super::approval::{ApprovalError, approve};
        let mut plan = super::super::tests::sample_plan(false);
        with_guest(
            &mut plan,
            GuestPreparation {
                detail: "no virtio_blk or virtio_scsi driver".into(),
                ..guest(Status::Refused)
            },
        );
        let short = plan.hash().short().to_string();
        let refused = approve(&mut plan.clone(), &short, false, "ops@host").unwrap_err();
        assert!(
            matches!(&refused, ApprovalError::GuestRefused { instance, .. } if instance == "web"),
            "{refused}"
        );
        assert!(refused.to_string().contains("virtio_blk"), "{refused}");
        plan.preparation.unprepared = true;
        let short = plan.hash().short().to_string();
        approve(&mut plan, &short, false, "ops@host").unwrap();
    }

    #[test]
    fn a_run_time_inspection_approves_its_needs_and_is_an_action() {
        let mut plan = super::super::tests::sample_plan(false);
        let needs = GuestNeeds::new(&[&["virtio_blk", "virtio_scsi"]], Some("CloudStack"));
        with_guest(
            &mut plan,
            GuestPreparation {
                status: Status::InspectAtRun,
                changes: Vec::new(),
                applied_to: AppliedTo::StagedCopy,
                needs: needs.clone(),
                ..guest(Status::InspectAtRun)
            },
        );
        assert!(plan.preparation.refusals().is_empty());
        assert!(plan.preparation.changes_for("web").is_none());
        assert!(plan.preparation.to_apply("web").is_some());
        let action = plan
            .actions
            .iter()
            .find(|a| a.verb == super::super::ActionVerb::PrepareGuest)
            .expect("a prepare action");
        assert!(
            action
                .detail
                .contains("drivers required: virtio_blk or virtio_scsi"),
            "{}",
            action.detail
        );
        let text = render(&plan.preparation).join("\n");
        assert!(
            text.contains("inspected during the run on a copy of this run's snapshot staged"),
            "{text}"
        );
        assert!(
            text.contains("datasource_list [CloudStack, None]"),
            "{text}"
        );

        // The needs and the copy are under the hash, and survive the file.
        let approved = plan.hash();
        let mut other = plan.clone();
        other.preparation.guests[0].needs.datasource = Some("Ec2".into());
        assert_ne!(other.hash(), approved);
        let mut elsewhere = plan.clone();
        elsewhere.preparation.guests[0].applied_to = AppliedTo::TargetCopy;
        assert_ne!(elsewhere.hash(), approved);
        let back: Plan = toml::from_str(&plan.to_toml().unwrap()).unwrap();
        assert_eq!(back, plan);
        assert_eq!(back.preparation.guests[0].needs, needs);
    }
}
