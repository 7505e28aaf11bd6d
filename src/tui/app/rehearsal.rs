//! `r` on the plan screen: the local boot rehearsal (`crate::rehearsal`, the
//! same as `plan --rehearse`) runs as a background task; its records join the
//! plan under its hash, and a guest that did not boot keeps the plan from
//! being approved (the model refuses it: `ApprovalError::RehearsalFailed`).

use super::{App, Effect, Notice};
use crate::engine::event::Level;
use crate::plan::RehearsalRecord;

impl App {
    /// Starts the rehearsal of the plan as it is now.
    pub fn rehearse(&mut self) {
        let Some(state) = &mut self.plan else {
            return;
        };
        if state.rehearsing.is_some() {
            self.info("a rehearsal is already running");
            return;
        }
        // The rehearsal boots the prepared copy: it needs the changes.
        if state.inspecting {
            self.info("the guests are being inspected for preparation: press r once it is done");
            return;
        }
        state.rehearsing = Some("starting QEMU".into());
        self.effects
            .push(Effect::Rehearse(Box::new(state.plan.clone())));
        self.info("rehearsal: booting each boot disk in QEMU on this machine (no network)…");
    }

    pub(super) fn on_rehearsal_booting(&mut self, instance: &str, disk: &str) {
        if let Some(state) = &mut self.plan
            && state.rehearsing.is_some()
        {
            state.rehearsing = Some(format!("booting {instance}/{disk}"));
        }
    }

    /// Takes the rehearsal's records into the plan they were made for; the
    /// hash changes, so any approval being typed starts again.
    pub(super) fn on_rehearsed(
        &mut self,
        items: &[String],
        result: Result<Vec<RehearsalRecord>, String>,
    ) {
        let Some(state) = &mut self.plan else {
            return;
        };
        state.rehearsing = None;
        if !state.has_items(items) {
            self.info("rehearsal ended, but the plan's instances changed since: press r again");
            return;
        }
        let records = match result {
            Ok(records) => records,
            Err(err) => {
                self.error(format!("rehearsal: {err}"));
                return;
            }
        };
        state.plan.rehearsals = records;
        state.plan.approval = None;
        self.approve = super::ApproveState::new();
        let rehearsals = &state.plan.rehearsals;
        if let Some(failed) = crate::rehearsal::refusal(rehearsals) {
            let mut text = failed.detail.clone();
            for line in &failed.serial_tail {
                text.push_str("\n│ ");
                text.push_str(line);
            }
            let notice = Notice {
                title: format!(
                    "{}/{} did not boot in the rehearsal",
                    failed.instance, failed.disk
                ),
                text,
                advice: "This plan cannot be approved. Fix the guest or unmark it, then r again. \
                         Nothing has changed in any cloud."
                    .into(),
            };
            self.refusal_notice(notice);
            return;
        }
        let booted: Vec<String> = rehearsals
            .iter()
            .map(|r| {
                format!(
                    "{} in {:.1}s ({})",
                    r.instance,
                    r.elapsed_ms as f64 / 1000.0,
                    r.accel
                )
            })
            .collect();
        let text = if booted.is_empty() {
            "rehearsal: no item has a boot disk to boot".to_string()
        } else {
            format!(
                "rehearsal: {} booted; the plan hash changed",
                booted.join(", ")
            )
        };
        self.push_log(Level::Info, text.clone());
        self.info(text);
    }
}
