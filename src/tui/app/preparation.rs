//! Guest preparation of plans made here, as `altishift plan` records it.
//! A plan from a cloud whose disks are files on this machine (the lab) has
//! its boot disks inspected in the background (`crate::preparation`,
//! libguestfs) when it opens, and again when a cutover is toggled (which
//! decides which copy can take the changes). The entries join the plan
//! under its hash and the changes show as its actions. Approval waits for
//! the inspection, and a guest that cannot be prepared is not approved
//! (`ApprovalError::GuestRefused`; `altishift plan --unprepared` takes it
//! as it is).

use super::{App, ApproveState, Effect, Notice};
use crate::engine::event::Level;
use crate::plan::preparation::{self, Preparation, Status};

impl App {
    /// Starts inspecting the plan's guests as the plan is now.
    pub(super) fn inspect_guests(&mut self) {
        let Some(state) = &mut self.plan else {
            return;
        };
        state.inspecting = true;
        self.effects
            .push(Effect::InspectGuests(Box::new(state.plan.clone())));
        self.info("inspecting the guests for preparation (libguestfs)…");
    }

    /// Takes an inspection's entries into the plan they were made for. An
    /// answer for a plan that changed since is dropped: the change asked for
    /// another inspection.
    pub(super) fn on_guests_inspected(
        &mut self,
        items: &[String],
        cutover: bool,
        result: Result<Preparation, String>,
    ) {
        let Some(state) = &mut self.plan else {
            return;
        };
        if state.plan.cutover.is_some() != cutover || !state.has_items(items) {
            return;
        }
        let inspected = match result {
            Ok(inspected) => inspected,
            Err(err) => {
                // `inspecting` stays set: not approvable unprepared by accident.
                self.error(format!(
                    "guest inspection failed: {err}; plan again (Esc, p)"
                ));
                return;
            }
        };
        state.inspecting = false;
        let changed = state.plan.preparation != inspected;
        preparation::set(&mut state.plan, inspected);
        // A rehearsal before this booted the guests unprepared.
        let stale = changed && !state.plan.rehearsals.is_empty();
        if changed {
            state.plan.approval = None;
            state.plan.rehearsals.clear();
            self.approve = ApproveState::new();
        }
        let Some(state) = &self.plan else {
            return;
        };
        let guests = &state.plan.preparation.guests;
        let stale_note = stale.then_some("; the rehearsal booted them unprepared: press r again");
        if let Some(refused) = state.plan.preparation.refusals().first() {
            let mut text = refused.detail.clone();
            for change in &refused.changes {
                text.push_str(&format!("\n  - {change}"));
            }
            let notice = Notice {
                title: format!(
                    "{}/{} cannot be prepared for {}",
                    refused.instance, refused.disk, state.plan.target.cloud
                ),
                text,
                advice: "This plan cannot be approved. Unmark the instance (Space) and plan \
                         again, or plan it with `altishift plan --unprepared` to migrate it as \
                         it is. Nothing has changed in any cloud."
                    .into(),
            };
            self.refusal_notice(notice);
            return;
        }
        let prepared: Vec<String> = guests
            .iter()
            .filter(|g| matches!(g.status, Status::Prepare | Status::InspectAtRun))
            .map(|g| match g.status {
                Status::InspectAtRun => format!("{} (inspected during the run)", g.instance),
                _ => format!("{} ({} change(s))", g.instance, g.changes.len()),
            })
            .collect();
        let mut text = if prepared.is_empty() {
            "guests inspected: nothing to prepare".to_string()
        } else {
            format!(
                "guests inspected: {} prepared {}; see the actions, the plan hash changed",
                prepared.join(", "),
                guests
                    .iter()
                    .find(|g| matches!(g.status, Status::Prepare | Status::InspectAtRun))
                    .map_or("", |g| g.applied_to.describe())
            )
        };
        text.push_str(stale_note.unwrap_or(""));
        self.push_log(Level::Info, text.clone());
        self.info(text);
    }
}
