//! What the console knows about a running migration: one entry per disk with
//! a one-second throughput ring buffer and the passes a cutover made over it,
//! plus validation, cleanup, revocation and the report, all folded in from
//! engine events.

use crate::cloud::Check;
use crate::engine::event::{DiskProgress, Event, Level, PassKind, Stage};
use crate::units::Bytes;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

/// Seconds of throughput history a sparkline shows.
pub const HISTORY: usize = 60;

/// Fixed-size history of per-second samples, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    samples: VecDeque<u64>,
}

impl Ring {
    pub fn push(&mut self, value: u64) {
        if self.samples.len() == HISTORY {
            self.samples.pop_front();
        }
        self.samples.push_back(value);
    }

    pub fn last(&self) -> Option<u64> {
        self.samples.back().copied()
    }

    /// The samples right-aligned in `HISTORY` slots (zeros before the first).
    pub fn padded(&self) -> Vec<u64> {
        let mut out = vec![0; HISTORY - self.samples.len()];
        out.extend(self.samples.iter().copied());
        out
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// One finished pass over a disk: a full copy, a delta of what changed
/// since, or the final delta while the source is stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassRecord {
    /// 1 for the first pass.
    pub pass: u32,
    pub kind: PassKind,
    pub blocks_sent: u64,
    pub bytes_sent: Bytes,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone)]
pub struct DiskPane {
    /// `instance/disk`.
    pub key: String,
    pub virtual_size: Bytes,
    pub allocated: Bytes,
    pub stage: Stage,
    pub progress: DiskProgress,
    /// Bytes scanned per second, one sample per tick.
    pub history: Ring,
    scanned_at_last_tick: u64,
    pub error: Option<String>,
    pub digest: Option<String>,
    /// Finished passes in pass order (empty for a one-pass copy).
    pub passes: Vec<PassRecord>,
}

impl DiskPane {
    fn new(key: String, virtual_size: Bytes, allocated: Bytes) -> DiskPane {
        DiskPane {
            progress: DiskProgress {
                disk: key.clone(),
                bytes_total: allocated,
                ..DiskProgress::default()
            },
            key,
            virtual_size,
            allocated,
            stage: Stage::Queued,
            history: Ring::default(),
            scanned_at_last_tick: 0,
            error: None,
            digest: None,
            passes: Vec::new(),
        }
    }

    /// Records a finished pass; a pass reported again (a resumed run) replaces
    /// the earlier report of the same number.
    pub fn record_pass(&mut self, record: PassRecord) {
        match self.passes.binary_search_by_key(&record.pass, |p| p.pass) {
            Ok(at) => self.passes[at] = record,
            Err(at) => self.passes.insert(at, record),
        }
    }

    /// The final pass projected from the delta passes so far (the window
    /// the source will be stopped for, deploy aside); None before the first
    /// delta and after the final pass.
    pub fn projected_final(&self) -> Option<crate::engine::estimate::FinalProjection> {
        let passes: Vec<(PassKind, u64, u64)> = self
            .passes
            .iter()
            .map(|p| (p.kind, p.bytes_sent.0, p.elapsed_ms))
            .collect();
        crate::engine::estimate::project_final(&passes)
    }

    pub fn total(&self) -> u64 {
        self.progress.bytes_total.0.max(1)
    }

    /// Fraction of allocated bytes scanned, 0–1.
    pub fn ratio(&self) -> f64 {
        if self.stage == Stage::Done {
            return 1.0;
        }
        (self.progress.bytes_scanned.0 as f64 / self.total() as f64).clamp(0.0, 1.0)
    }

    /// Bytes per second over the last second.
    pub fn current_rate(&self) -> u64 {
        self.history.last().unwrap_or(0)
    }

    /// Bytes per second since the transfer started (pauses excluded).
    pub fn average_rate(&self) -> u64 {
        let seconds = self.progress.elapsed_ms as f64 / 1000.0;
        if seconds <= 0.0 {
            0
        } else {
            (self.progress.bytes_scanned.0 as f64 / seconds) as u64
        }
    }

    /// Time left at the average rate, when there is one.
    pub fn eta(&self) -> Option<Duration> {
        if self.stage.is_terminal() || self.stage == Stage::Paused {
            return None;
        }
        let rate = self.average_rate();
        let left = self
            .progress
            .bytes_total
            .0
            .saturating_sub(self.progress.bytes_scanned.0);
        (rate > 0 && left > 0).then(|| Duration::from_secs(left.div_ceil(rate)))
    }

    fn tick(&mut self) {
        let scanned = self.progress.bytes_scanned.0;
        self.history
            .push(scanned.saturating_sub(self.scanned_at_last_tick));
        self.scanned_at_last_tick = scanned;
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    pub report: PathBuf,
    pub summary: String,
}

#[derive(Debug, Clone, Default)]
pub struct RunState {
    pub run_id: String,
    pub plan_hash: String,
    pub run_dir: PathBuf,
    pub resumed: bool,
    pub disks: Vec<DiskPane>,
    pub selected: usize,
    pub deployed: Vec<(String, String)>,
    /// Firewalls and keys of the plan made (or reused) on the target.
    pub created: Vec<crate::engine::report::CreatedReport>,
    pub checks: Vec<(String, Vec<Check>)>,
    pub cleanup: Vec<(String, bool, String)>,
    pub revoked: Vec<(String, Vec<String>)>,
    pub finished: Option<Outcome>,
    /// The engine task ended (after `RunFinished`, or with an error).
    pub engine_done: bool,
    pub engine_error: Option<String>,
    /// First line shown on the results screen.
    pub results_scroll: usize,
    /// The run's bandwidth budget as last set from here (None: unlimited).
    pub budget: Option<Bytes>,
}

/// What an event changed, so the loop knows how soon to redraw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Numbers only: shown at the next one-second tick.
    Numbers,
    /// Something the operator should see now.
    Visible,
}

impl RunState {
    pub fn active(&self) -> bool {
        !self.engine_done && self.finished.is_none()
    }

    pub fn selected_disk(&self) -> Option<&DiskPane> {
        self.disks.get(self.selected)
    }

    fn disk_mut(&mut self, key: &str) -> Option<&mut DiskPane> {
        self.disks.iter_mut().find(|d| d.key == key)
    }

    /// Folds one engine event in; log lines are returned for the log pane.
    pub fn apply(&mut self, event: Event, log: &mut dyn FnMut(Level, String)) -> Change {
        match event {
            Event::RunStarted {
                run_id,
                plan_hash,
                resumed,
                run_dir,
                disks,
            } => {
                log(
                    Level::Info,
                    format!(
                        "run {run_id} started{} in {}",
                        if resumed { " (resumed)" } else { "" },
                        run_dir.display()
                    ),
                );
                self.run_id = run_id;
                self.plan_hash = plan_hash;
                self.run_dir = run_dir;
                self.resumed = resumed;
                self.disks = disks
                    .into_iter()
                    .map(|d| DiskPane::new(d.disk, d.virtual_size, d.allocated))
                    .collect();
                Change::Visible
            }
            Event::Stage { disk, stage } => {
                if let Some(pane) = self.disk_mut(&disk) {
                    pane.stage = stage;
                }
                Change::Visible
            }
            Event::Progress(progress) => {
                if let Some(pane) = self.disk_mut(&progress.disk) {
                    pane.progress = progress;
                }
                Change::Numbers
            }
            Event::Log { level, message } => {
                log(level, message);
                Change::Visible
            }
            Event::PassFinished {
                disk,
                pass,
                kind,
                blocks_sent,
                bytes_sent,
                elapsed_ms,
            } => {
                // No log line here: the engine logs each pass itself.
                if let Some(pane) = self.disk_mut(&disk) {
                    pane.record_pass(PassRecord {
                        pass,
                        kind,
                        blocks_sent,
                        bytes_sent,
                        elapsed_ms,
                    });
                }
                Change::Visible
            }
            Event::DiskFinished { disk, digest } => {
                let short: String = digest.linear_sha256.chars().take(12).collect();
                log(
                    Level::Info,
                    format!(
                        "{disk}: transferred, {} blocks, digest {short}…",
                        digest.blocks
                    ),
                );
                if let Some(pane) = self.disk_mut(&disk) {
                    pane.digest = Some(digest.linear_sha256);
                    pane.progress.bytes_scanned = pane.progress.bytes_total;
                }
                Change::Visible
            }
            Event::DiskFailed { disk, error } => {
                log(Level::Error, format!("{disk}: {error}"));
                if let Some(pane) = self.disk_mut(&disk) {
                    pane.stage = Stage::Failed;
                    pane.error = Some(error);
                }
                Change::Visible
            }
            Event::InstanceDeployed { instance, id } => {
                log(Level::Info, format!("{instance}: deployed as {id}"));
                self.deployed.push((instance, id));
                Change::Visible
            }
            Event::Created(c) => {
                log(
                    Level::Info,
                    format!("{} {} {}: {} on {}", c.state, c.kind, c.name, c.id, c.cloud),
                );
                self.created.push(c);
                Change::Visible
            }
            Event::Validated { instance, checks } => {
                let failed = checks.iter().filter(|c| !c.passed).count();
                log(
                    if failed == 0 {
                        Level::Info
                    } else {
                        Level::Warn
                    },
                    format!("{instance}: {} checks, {failed} failed", checks.len()),
                );
                self.checks.push((instance, checks));
                Change::Visible
            }
            Event::CleanedUp {
                resource,
                ok,
                detail,
            } => {
                log(
                    if ok { Level::Info } else { Level::Warn },
                    format!("cleanup {resource}: {detail}"),
                );
                self.cleanup.push((resource, ok, detail));
                Change::Visible
            }
            Event::Revoked { cloud, items } => {
                log(
                    Level::Info,
                    format!(
                        "{cloud}: revoked {}",
                        if items.is_empty() {
                            "nothing to revoke".into()
                        } else {
                            items.join(", ")
                        }
                    ),
                );
                self.revoked.push((cloud, items));
                Change::Visible
            }
            Event::RunFinished {
                ok,
                report,
                summary,
            } => {
                log(
                    if ok { Level::Info } else { Level::Error },
                    format!("run finished: {summary} (report {})", report.display()),
                );
                self.finished = Some(Outcome {
                    ok,
                    report,
                    summary,
                });
                Change::Visible
            }
        }
    }

    /// One second passed: every disk records its throughput sample.
    pub fn tick(&mut self) {
        for disk in &mut self.disks {
            disk.tick();
        }
    }

    /// Sum over disks: (scanned, total, current rate, average rate).
    pub fn aggregate(&self) -> (Bytes, Bytes, u64, u64) {
        let scanned = self.disks.iter().map(|d| d.progress.bytes_scanned).sum();
        let total = self.disks.iter().map(|d| d.progress.bytes_total).sum();
        let current = self.disks.iter().map(DiskPane::current_rate).sum();
        let average = self
            .disks
            .iter()
            .filter(|d| !d.stage.is_terminal())
            .map(DiskPane::average_rate)
            .sum();
        (scanned, total, current, average)
    }

    pub fn counts(&self) -> (usize, usize, usize) {
        let done = self.disks.iter().filter(|d| d.stage == Stage::Done).count();
        let failed = self
            .disks
            .iter()
            .filter(|d| matches!(d.stage, Stage::Failed | Stage::Cancelled))
            .count();
        (done, failed, self.disks.len())
    }

    /// The budget one `+` (up) or `-` (down) step away: ×1.25 or ÷1.25, never
    /// below 1 MiB/s. Without a budget, `-` starts from the rate measured
    /// over the last second (all disks together); `+` has nothing to raise.
    pub fn budget_step(&self, up: bool) -> Result<Bytes, String> {
        let floor = Bytes::mib(1).0;
        match (self.budget, up) {
            (Some(rate), true) => Ok(Bytes((rate.0.saturating_mul(5) / 4).max(floor))),
            (Some(rate), false) => Ok(Bytes((rate.0 / 5 * 4).max(floor))),
            (None, true) => Err("no bandwidth budget: the run is unlimited already".into()),
            (None, false) => {
                let (_, _, current, average) = self.aggregate();
                let measured = if current > 0 { current } else { average };
                if measured == 0 {
                    return Err(
                        "nothing measured yet to lower from: wait for a second of transfer".into(),
                    );
                }
                Ok(Bytes((measured / 5 * 4).max(floor)))
            }
        }
    }

    /// Every validation check passed (and there was at least one).
    pub fn validated(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|(_, c)| c.iter().all(|c| c.passed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_minute() {
        let mut ring = Ring::default();
        for i in 0..100 {
            ring.push(i);
        }
        assert_eq!(ring.len(), HISTORY);
        assert_eq!(ring.last(), Some(99));
        assert_eq!(ring.padded()[0], 40);
    }

    #[test]
    fn rates_come_from_ticks_and_elapsed_time() {
        let mut pane = DiskPane::new("web/root".into(), Bytes::gib(1), Bytes::mib(100));
        pane.stage = Stage::Transfer;
        pane.progress.bytes_scanned = Bytes::mib(10);
        pane.progress.elapsed_ms = 1000;
        pane.tick();
        assert_eq!(pane.current_rate(), 10 << 20);
        assert_eq!(pane.average_rate(), 10 << 20);
        assert_eq!(pane.eta(), Some(Duration::from_secs(9)));
        pane.stage = Stage::Paused;
        assert_eq!(pane.eta(), None);
    }

    #[test]
    fn passes_stay_in_order_and_a_repeated_pass_replaces_the_first_report() {
        let mut run = RunState {
            disks: vec![DiskPane::new(
                "web/root".into(),
                Bytes::gib(10),
                Bytes::gib(2),
            )],
            ..RunState::default()
        };
        let pass = |pass, kind, mib| Event::PassFinished {
            disk: "web/root".into(),
            pass,
            kind,
            blocks_sent: mib * 2,
            bytes_sent: Bytes::mib(mib),
            elapsed_ms: 1000,
        };
        let mut lines = Vec::new();
        let mut log = |_: Level, text: String| lines.push(text);
        run.apply(pass(2, PassKind::Delta, 40), &mut log);
        run.apply(pass(1, PassKind::Full, 2048), &mut log);
        run.apply(pass(2, PassKind::Delta, 30), &mut log);
        run.apply(pass(1, PassKind::Full, 1), &mut log);
        let passes = &run.disks[0].passes;
        assert_eq!(
            passes.iter().map(|p| (p.pass, p.kind)).collect::<Vec<_>>(),
            vec![(1, PassKind::Full), (2, PassKind::Delta)]
        );
        assert_eq!(passes[1].bytes_sent, Bytes::mib(30));
        // A pass for a disk this run does not know changes nothing.
        run.apply(
            Event::PassFinished {
                disk: "other/root".into(),
                pass: 1,
                kind: PassKind::Full,
                blocks_sent: 1,
                bytes_sent: Bytes::mib(1),
                elapsed_ms: 1,
            },
            &mut |_, _| {},
        );
        assert_eq!(run.disks.len(), 1);
        assert!(lines.is_empty(), "the engine's own Log event says it once");
    }
}
