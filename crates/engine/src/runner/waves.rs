//! Waves: the plan's instances move a wave at a time. Wave N+1 starts only
//! once every instance of wave N is validated; a wave that fails stops the
//! run there, and the later waves make no call at all (not even a
//! snapshot). A resumed run goes through the earlier waves again from the
//! journal (nothing is sent or created twice) and carries on where it stopped.

use super::{Run, lock};
use crate::cloud::Check;
use crate::plan::PlanItem;
use crate::report::InstanceReport;
use crate::{EngineError, Level};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

impl Run {
    /// Migrates every instance wave by wave. Returns the reports in plan
    /// order and the wave that stopped the run, if one did (only for plans
    /// with several waves).
    pub(super) async fn migrate_waves(&self) -> (Vec<InstanceReport>, Option<u32>) {
        let plan = self.approved.plan();
        let mut waves: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (at, item) in plan.items.iter().enumerate() {
            waves.entry(item.wave).or_default().push(at);
        }
        let count = waves.len();
        let mut reports: Vec<Option<InstanceReport>> = vec![None; plan.items.len()];
        let mut stopped: Option<(u32, String)> = None;
        for (&wave, members) in &waves {
            let items: Vec<&PlanItem> = members.iter().map(|&at| &plan.items[at]).collect();
            if stopped.is_none() && *self.shutdown.borrow() {
                stopped = Some((
                    wave,
                    format!("not started: the run was shut down before wave {wave}"),
                ));
            }
            if stopped.is_none() && count > 1 {
                let names: Vec<&str> = items.iter().map(|i| i.instance_name.as_str()).collect();
                self.log(
                    Level::Info,
                    format!("wave {wave} of {count}: starting ({})", names.join(", ")),
                );
            }
            if stopped.is_none()
                && plan.cutover.is_none()
                && !self.wait_for_window(wave, "its start").await
            {
                stopped = Some((
                    wave,
                    format!(
                        "not started: the run was shut down while wave {wave} waited for its window"
                    ),
                ));
            }
            if let Some((_, reason)) = &stopped {
                for &at in members {
                    reports[at] = Some(self.not_started(&plan.items[at], reason));
                }
                continue;
            }
            let done =
                futures::future::join_all(items.iter().map(|item| self.migrate_instance(item)))
                    .await;
            let validated = done.iter().all(|r| r.validated);
            for (&at, report) in members.iter().zip(done) {
                reports[at] = Some(report);
            }
            if count < 2 {
                continue;
            }
            if validated {
                self.log(Level::Info, format!("wave {wave} validated"));
                continue;
            }
            let later = if (wave as usize) < count {
                format!("waves {}–{count} do not start; ", wave + 1)
            } else {
                String::new()
            };
            self.log(
                Level::Error,
                format!(
                    "wave {wave} of {count} failed: {later}`altishift apply` resumes from wave {wave}"
                ),
            );
            stopped = Some((
                wave,
                format!("not started: wave {wave} failed (`altishift apply` resumes from it)"),
            ));
        }
        let reports = reports.into_iter().flatten().collect();
        (reports, stopped.map(|(wave, _)| wave))
    }

    /// An instance of a wave that never started: its disks are reported as
    /// not started, and nothing was asked of any cloud for it.
    fn not_started(&self, item: &PlanItem, reason: &str) -> InstanceReport {
        for disk in &item.disks {
            if let Some(slot) = self.slots.get(&item.disk_key(disk)) {
                lock(&slot.result).not_started = Some(reason.to_string());
            }
        }
        InstanceReport {
            instance: item.instance_name.clone(),
            target_id: None,
            checks: vec![Check::new("wave", false, reason.to_string())],
            validated: false,
            downtime_ms: None,
        }
    }

    /// Waits for the wave's window, if the plan gives it one, saying so in
    /// the log. False when the run is shut down while waiting.
    pub(super) async fn wait_for_window(&self, wave: u32, what: &str) -> bool {
        let Some(window) = self.approved.plan().waves.window(wave) else {
            return true;
        };
        // Checked at the start of the run (check_windows): always readable.
        let Some(at) = window.time() else {
            return true;
        };
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        if wait.is_zero() {
            return true;
        }
        self.log(
            Level::Info,
            format!(
                "wave {wave}: waiting until {} before {what} (the plan's window, {} from now)",
                window.not_before,
                humantime::format_duration(Duration::from_secs(wait.as_secs()))
            ),
        );
        let mut shutdown = self.shutdown.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                self.log(Level::Info, format!("wave {wave}: window open, {what} goes ahead"));
                true
            }
            _ = shutdown.wait_for(|stop| *stop) => false,
        }
    }

    /// A hand-edited plan's window that is no time, or names no wave of the
    /// plan, is refused before any change.
    pub(super) fn check_windows(&self) -> Result<(), EngineError> {
        let plan = self.approved.plan();
        for window in &plan.waves.windows {
            if window.time().is_none() {
                return Err(EngineError::Preflight(format!(
                    "the plan's window for wave {} ('{}') is not a UTC RFC 3339 time: \
                     nothing was changed; make the plan again",
                    window.wave, window.not_before
                )));
            }
            if !plan.items.iter().any(|i| i.wave == window.wave) {
                return Err(EngineError::Preflight(format!(
                    "the plan gives a window to wave {}, which has no instance: \
                     nothing was changed; make the plan again",
                    window.wave
                )));
            }
        }
        Ok(())
    }
}
