//! The plan being reviewed and the approval being typed. Edits go through
//! `plan::build::refresh`; approval through `plan::approval::approve` on a
//! copy, so a refused attempt leaves the plan exactly as it was.

use super::input::LineInput;
use crate::inventory::Inventory;
use crate::plan::Plan;
use crate::plan::approval::{self, ApprovalError, Approved};
use crate::plan::build::{Throughput, refresh};

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
        }
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
}

#[derive(Debug)]
pub struct ApproveState {
    pub hash: LineInput,
    /// `yes` acknowledges a cross-border transfer.
    pub ack: LineInput,
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
        let result = approval::approve(
            &mut candidate,
            self.hash.value(),
            self.acknowledged(),
            operator,
        )
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
