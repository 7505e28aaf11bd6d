//! The plan being reviewed and the approval being typed. Edits go through
//! `plan::build::refresh`; approval through `plan::approval::approve` on a
//! copy, so a refused attempt leaves the plan exactly as it was.

use super::input::LineInput;
use super::inventory::SideId;
use super::{App, Notice, Overlay, Screen};
use crate::engine::event::Level;
use crate::inventory::Inventory;
use crate::plan::approval::{self, ApprovalError, Approved};
use crate::plan::build::{self, PlanError, Request, Side, Throughput, refresh};
use crate::plan::trust::{self, Live};
use crate::plan::{Cutover, Plan};

#[derive(Debug)]
pub struct PlanState {
    pub plan: Plan,
    pub throughput: Throughput,
    /// Selected item.
    pub selected: usize,
    /// First action line shown (the actions list scrolls).
    pub action_scroll: usize,
    /// Open while `e` edits the selected item's target size (or `n` its name).
    pub edit: Option<LineInput>,
    pub edit_field: EditField,
    /// `c`: the lower half shows the selected item's configuration
    /// (source → target) instead of the action list.
    pub show_config: bool,
    /// `r`: a rehearsal is running; what it boots now, once it says.
    pub rehearsing: Option<String>,
    /// The guests' inspection for preparation is running (or failed): no
    /// approval, no rehearsal yet.
    pub inspecting: bool,
}

/// What the plan's edit line changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditField {
    Size,
    Name,
}

impl PlanState {
    pub fn new(plan: Plan, throughput: Throughput) -> PlanState {
        PlanState {
            plan,
            throughput,
            selected: 0,
            action_scroll: 0,
            edit: None,
            edit_field: EditField::Size,
            show_config: false,
            rehearsing: None,
            inspecting: false,
        }
    }

    /// Whether the plan's items are these instances, in this order: an
    /// answer from a background task (rehearsal, inspection) for a plan
    /// that changed since is dropped.
    pub fn has_items(&self, instance_ids: &[String]) -> bool {
        self.plan.items.len() == instance_ids.len()
            && self
                .plan
                .items
                .iter()
                .zip(instance_ids)
                .all(|(item, id)| item.instance_id == *id)
    }

    pub fn begin_edit(&mut self) {
        if let Some(item) = self.plan.items.get(self.selected) {
            let label = format!("target size for {}", item.instance_name);
            self.edit = Some(LineInput::new(label).with_value(&item.target_size));
            self.edit_field = EditField::Size;
        }
    }

    pub fn begin_rename(&mut self) {
        if let Some(item) = self.plan.items.get(self.selected) {
            let label = format!("target name for {}", item.instance_name);
            self.edit = Some(LineInput::new(label).with_value(&item.target_name));
            self.edit_field = EditField::Name;
        }
    }

    /// Applies what the edit line holds to the field it edits.
    pub fn apply_edit(&mut self, value: &str, target: &Inventory) -> Result<String, String> {
        match self.edit_field {
            EditField::Size => self
                .apply_size(value, target)
                .map(|()| format!("target size set to {}", value.trim())),
            EditField::Name => self
                .apply_name(value, target)
                .map(|()| format!("target name set to {}", value.trim())),
        }
    }

    /// Renames the selected item's target instance: a name the target does
    /// not already use, and no other item of the plan takes.
    pub fn apply_name(&mut self, wanted: &str, target: &Inventory) -> Result<(), String> {
        let wanted = wanted.trim();
        let valid = !wanted.is_empty()
            && wanted.len() <= 63
            && wanted
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(format!(
                "'{wanted}': use 1-63 letters, digits, '-', '_' or '.'"
            ));
        }
        if target.instance(wanted).is_some() {
            return Err(format!(
                "{} already has an instance named '{wanted}'",
                target.cloud
            ));
        }
        let taken = self
            .plan
            .items
            .iter()
            .enumerate()
            .any(|(i, item)| i != self.selected && item.target_name == wanted);
        if taken {
            return Err(format!(
                "another item of this plan is already named '{wanted}'"
            ));
        }
        if let Some(item) = self.plan.items.get_mut(self.selected) {
            item.target_name = wanted.to_string();
        }
        self.plan.approval = None;
        refresh(&mut self.plan, &self.throughput);
        Ok(())
    }

    /// Sets the selected item's target size if the target catalogue has it
    /// and it is big enough; otherwise says why and changes nothing.
    pub fn apply_size(&mut self, wanted: &str, target: &Inventory) -> Result<(), String> {
        let wanted = wanted.trim();
        let Some(item) = self.plan.items.get(self.selected) else {
            return Err("no plan item selected".into());
        };
        let Some(size) = target.size(wanted) else {
            let known: Vec<&str> = target.sizes.iter().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "'{wanted}' is not in {}'s catalogue ({})",
                target.cloud,
                known.join(", ")
            ));
        };
        if size.vcpus < item.vcpus || size.memory < item.memory {
            return Err(format!(
                "{} has {} vCPU / {}; {} needs {} vCPU / {}",
                size.name, size.vcpus, size.memory, item.instance_name, item.vcpus, item.memory
            ));
        }
        let name = size.name.clone();
        if let Some(item) = self.plan.items.get_mut(self.selected) {
            item.target_size = name;
        }
        // Any edit voids an approval: the hash changes with the content.
        self.plan.approval = None;
        refresh(&mut self.plan, &self.throughput);
        Ok(())
    }

    /// No cutover → cutover that powers the source off → cutover that keeps
    /// it running → no cutover. The steps join the action list, so the
    /// approval covers them; returns what the plan now does.
    pub fn cycle_cutover(&mut self) -> String {
        let (cutover, done) = match self.plan.cutover.take() {
            None => (
                Some(Cutover {
                    quiesce: None,
                    thaw: None,
                    power_off: true,
                    max_delta_passes: Cutover::DEFAULT_DELTA_PASSES,
                }),
                "cutover on: the source is powered off after the final pass",
            ),
            Some(cutover) if cutover.power_off => (
                Some(Cutover {
                    power_off: false,
                    ..cutover
                }),
                "cutover on: the source keeps running after the final pass",
            ),
            Some(_) => (None, "cutover off: one copy from a snapshot"),
        };
        self.plan.cutover = cutover;
        self.plan.approval = None;
        refresh(&mut self.plan, &self.throughput);
        done.to_string()
    }

    /// Moves the selected item to the next wave (a new last wave after the
    /// last, then back to wave 1); the action list follows and the hash
    /// changes. Returns what happened.
    pub fn cycle_wave(&mut self) -> Option<String> {
        let wave = crate::plan::waves::cycle(&mut self.plan, self.selected)?;
        self.plan.approval = None;
        refresh(&mut self.plan, &self.throughput);
        let waves = self.plan.items.iter().map(|i| i.wave).max().unwrap_or(1);
        let name = &self.plan.items.get(self.selected)?.instance_name;
        Some(format!("{name} is in wave {wave} of {waves}"))
    }

    pub fn move_by(&mut self, delta: isize) {
        let last = self.plan.items.len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(delta).min(last);
    }

    pub fn scroll_actions(&mut self, delta: isize) {
        let last = self.plan.actions.len().saturating_sub(1);
        self.action_scroll = self.action_scroll.saturating_add_signed(delta).min(last);
    }
}

/// Which approval field has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproveField {
    Hash,
    CrossBorder,
    /// `yes` acknowledges the plan's lossy configuration.
    Lossy,
}

impl ApproveField {
    /// The next field with Tab, among those the plan needs.
    pub fn next(self, cross_border: bool, lossy: bool) -> ApproveField {
        let order = [
            (ApproveField::Hash, true),
            (ApproveField::CrossBorder, cross_border),
            (ApproveField::Lossy, lossy),
        ];
        let at = order.iter().position(|(f, _)| *f == self).unwrap_or(0);
        (1..=order.len())
            .map(|step| order[(at + step) % order.len()])
            .find(|(_, shown)| *shown)
            .map_or(ApproveField::Hash, |(f, _)| f)
    }
}

#[derive(Debug)]
pub struct ApproveState {
    pub hash: LineInput,
    /// `yes` acknowledges a cross-border transfer.
    pub ack: LineInput,
    /// `yes` acknowledges configuration the plan cannot carry exactly.
    pub ack_lossy: LineInput,
    pub field: ApproveField,
    /// Result of the last attempt: refused with why.
    pub refused: Option<String>,
    pub scroll: usize,
}

impl ApproveState {
    pub fn new() -> ApproveState {
        ApproveState {
            hash: LineInput::new("type the short hash"),
            ack: LineInput::new("type 'yes' to acknowledge"),
            ack_lossy: LineInput::new("type 'yes' to acknowledge"),
            field: ApproveField::Hash,
            refused: None,
            scroll: 0,
        }
    }

    pub fn acknowledged(&self) -> bool {
        self.ack.value().trim().eq_ignore_ascii_case("yes")
    }

    /// Tries to approve `plan` with what was typed. On success the plan
    /// carries the approval and the verified plan is returned; on failure the
    /// plan is untouched.
    pub fn submit(&mut self, plan: &mut Plan, operator: &str) -> Option<Approved> {
        let mut candidate = plan.clone();
        let acks = approval::Acks {
            cross_border: self.acknowledged(),
            lossy: self.ack_lossy.value().trim().eq_ignore_ascii_case("yes"),
        };
        let result = approval::approve_with(&mut candidate, self.hash.value(), acks, operator)
            .and_then(|_| approval::verify(candidate.clone()));
        match result {
            Ok(approved) => {
                *plan = candidate;
                self.refused = None;
                Some(approved)
            }
            Err(err) => {
                if matches!(err, ApprovalError::CrossBorderNotAcknowledged { .. }) {
                    self.field = ApproveField::CrossBorder;
                }
                if matches!(err, ApprovalError::LossyNotAcknowledged { .. }) {
                    self.field = ApproveField::Lossy;
                }
                if matches!(err, ApprovalError::WrongHash { .. }) {
                    self.hash.set("");
                }
                self.refused = Some(err.to_string());
                None
            }
        }
    }
}

impl Default for ApproveState {
    fn default() -> Self {
        ApproveState::new()
    }
}

impl App {
    /// Builds the plan from the marked instances and opens it.
    pub fn open_plan(&mut self) {
        let marked = self.pane(SideId::Source).marked_in_order();
        if marked.is_empty() {
            self.error("mark instances with Space first (source pane)");
            return;
        }
        let (Some(source), Some(target)) = (
            &self.pane(SideId::Source).loaded,
            &self.pane(SideId::Target).loaded,
        ) else {
            self.error("both clouds must be connected to plan");
            return;
        };
        let throughput = self.throughput();
        let request = Request {
            select: marked,
            checks: crate::plan::checks::OutsideChecks::standard(
                crate::guest::rehearse::DEFAULT_EXPECT.to_string(),
            ),
            ..Request::default()
        };
        let built = build::build(
            &Side {
                cloud: &self.panes[0].cloud,
                provider: source.provider.clone(),
                jurisdiction: source.jurisdiction.clone(),
                inventory: &source.inventory,
            },
            &Side {
                cloud: &self.panes[1].cloud,
                provider: target.provider.clone(),
                jurisdiction: target.jurisdiction.clone(),
                inventory: &target.inventory,
            },
            &request,
            &throughput,
            &self.operator,
        );
        match built {
            Ok(mut plan) => {
                // The approval covers what both cloud names mean now.
                plan.clouds = [
                    (self.panes[0].cloud.clone(), source.fingerprint.clone()),
                    (self.panes[1].cloud.clone(), target.fingerprint.clone()),
                ]
                .into();
                let plans_guests = source.plans_guests;
                self.plan = Some(PlanState::new(plan, throughput));
                self.approve = ApproveState::new();
                self.screen = Screen::Plan;
                self.status = None;
                if plans_guests {
                    self.inspect_guests();
                }
            }
            Err(err) => self.refuse_plan(err),
        }
    }

    /// Checks the plan against the clouds as connected: same settings behind
    /// each name, jurisdictions and cross-border flag derived again from them.
    pub fn trust_check(&self, plan: &Plan) -> Result<(), String> {
        let (Some(source), Some(target)) = (
            &self.pane(SideId::Source).loaded,
            &self.pane(SideId::Target).loaded,
        ) else {
            return Err("both clouds must be connected to approve".into());
        };
        let live = Live {
            source: Side {
                cloud: &self.panes[0].cloud,
                provider: source.provider.clone(),
                jurisdiction: source.jurisdiction.clone(),
                inventory: &source.inventory,
            },
            target: Side {
                cloud: &self.panes[1].cloud,
                provider: target.provider.clone(),
                jurisdiction: target.jurisdiction.clone(),
                inventory: &target.inventory,
            },
            fingerprints: [
                (self.panes[0].cloud.clone(), source.fingerprint.clone()),
                (self.panes[1].cloud.clone(), target.fingerprint.clone()),
            ]
            .into(),
        };
        trust::check(plan, &live).map_err(|e| e.to_string())
    }

    /// A plan that cannot be built says why in full, over the screen: the
    /// reasons (a target's limits, the sizes it knows) are longer than the
    /// status line.
    fn refuse_plan(&mut self, err: PlanError) {
        self.push_log(Level::Error, err.to_string());
        let notice = match &err {
            PlanError::TargetRefuses {
                cloud,
                instance,
                reason,
            } => Notice {
                title: format!("{cloud} cannot take {instance}"),
                text: reason.clone(),
                advice: format!(
                    "Unmark {instance} (Space), or choose another target (:to NAME). \
                     Nothing has changed in any cloud."
                ),
            },
            other => Notice {
                title: "cannot plan".into(),
                text: other.to_string(),
                advice: "Nothing has changed in any cloud.".into(),
            },
        };
        self.status = Some((Level::Error, notice.title.clone()));
        self.overlay = Some(Overlay::Notice(notice));
    }

    /// Throughput behind the estimate: what this session measured, else the
    /// throttle, else a stated assumption.
    fn throughput(&self) -> Throughput {
        let disks_at_once = 4u64;
        if let Some(run) = &self.run {
            let (scanned, _, _, _) = run.aggregate();
            let elapsed: u64 = run
                .disks
                .iter()
                .map(|d| d.progress.elapsed_ms)
                .max()
                .unwrap_or(0);
            if elapsed > 0 && scanned.0 > 0 {
                return Throughput {
                    bytes_per_second: scanned.0 * 1000 / elapsed,
                    basis: "measured in this session's last run".into(),
                };
            }
        }
        match self.throttle {
            Some(rate) => Throughput {
                bytes_per_second: rate.0 * disks_at_once,
                basis: format!("--throttle {rate}/s per disk, {disks_at_once} disks at once"),
            },
            None => {
                let assumed = crate::engine::estimate::ASSUMED_BYTES_PER_SECOND;
                Throughput {
                    bytes_per_second: assumed,
                    basis: format!(
                        "assumed {} MB/s (nothing measured yet)",
                        assumed / 1_000_000
                    ),
                }
            }
        }
    }
}
