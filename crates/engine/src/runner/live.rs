//! While a run goes: the operator's pause/resume/cancel/shutdown, and
//! progress events a few times a second with the peak one-second rate.

use super::{DiskSlot, Run, lock};
use crate::control::DiskCounters;
use crate::units::Bytes;
use crate::{Command, DiskProgress, Event, Level, Stage};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Run {
    pub(super) fn command(&self, command: Command) {
        match command {
            Command::Pause { disk } | Command::Resume { disk } | Command::Cancel { disk }
                if !self.slots.contains_key(&disk) =>
            {
                self.log(Level::Warn, format!("no disk '{disk}' in this run"));
            }
            Command::Pause { disk } => {
                let slot = &self.slots[&disk];
                slot.control.set_paused(true);
                slot.counters.stop_clock();
                self.send(Event::Stage {
                    disk,
                    stage: Stage::Paused,
                });
            }
            Command::Resume { disk } => {
                let slot = &self.slots[&disk];
                slot.control.set_paused(false);
                let stage = *lock(&slot.stage);
                if stage == Stage::Transfer {
                    slot.counters.start_clock();
                }
                self.send(Event::Stage { disk, stage });
            }
            Command::Cancel { disk } => {
                self.slots[&disk].control.cancel();
                self.log(Level::Warn, format!("{disk}: cancel requested"));
            }
            Command::SetBandwidth { rate } => self.set_bandwidth(rate),
            Command::Shutdown => {
                self.shutdown.send_replace(true);
                for slot in self.slots.values() {
                    slot.control.cancel();
                }
                self.log(
                    Level::Warn,
                    "shutting down: finished blocks are journaled; `apply` resumes".into(),
                );
            }
        }
    }

    /// A new run-wide budget, at once for the next block of every disk;
    /// logged and written to the audit log.
    fn set_bandwidth(&self, rate: Option<Bytes>) {
        self.budget.set_rate(rate);
        let text = match rate {
            Some(rate) => format!("{rate}/s"),
            None => "unlimited".to_string(),
        };
        self.log(
            Level::Info,
            format!("bandwidth budget set to {text} for the whole run"),
        );
        if let Err(e) = self.audit.record("-", "set_bandwidth", &text, "ok") {
            self.log(
                Level::Warn,
                format!("cannot write the bandwidth change to the audit log: {e}"),
            );
        }
    }

    pub(super) fn progress(&self, slot: &DiskSlot) -> DiskProgress {
        let c = &slot.counters;
        DiskProgress {
            disk: slot.info.disk.clone(),
            bytes_scanned: Bytes(DiskCounters::get(&c.scanned)),
            bytes_skipped: Bytes(DiskCounters::get(&c.skipped)),
            bytes_sent: Bytes(DiskCounters::get(&c.sent)),
            bytes_resumed: Bytes(DiskCounters::get(&c.resumed)),
            bytes_total: Bytes(DiskCounters::get(&c.total)),
            retries: c.retries.load(Ordering::Relaxed),
            elapsed_ms: c.elapsed_ms(),
        }
    }

    /// Sends a disk's progress when it changed, a few times a second at most,
    /// and keeps the peak one-second rate for the report.
    pub(super) async fn report_progress(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.options.progress_every);
        let mut last: HashMap<String, DiskProgress> = HashMap::new();
        let mut samples: HashMap<String, (Instant, u64)> = HashMap::new();
        loop {
            ticker.tick().await;
            for (key, slot) in &self.slots {
                let progress = self.progress(slot);
                let now = Instant::now();
                let sent = progress.bytes_sent.0;
                let (then, sent_then) = *samples.entry(key.clone()).or_insert((now, sent));
                let seconds = now.duration_since(then).as_secs_f64();
                if seconds >= 1.0 {
                    let rate = ((sent - sent_then) as f64 / seconds) as u64;
                    slot.counters
                        .peak_bytes_per_second
                        .fetch_max(rate, Ordering::Relaxed);
                    samples.insert(key.clone(), (now, sent));
                }
                if last.get(key) != Some(&progress) {
                    last.insert(key.clone(), progress.clone());
                    self.send(Event::Progress(progress));
                }
            }
        }
    }
}
