//! The engine: carries out an approved plan and reports as it goes.
//!
//! The console and the CLI only send [`Command`]s and listen to [`Event`]s.
//! Work and its record (journal, audit log, report) live here.

pub mod audit;
pub mod budget;
pub mod control;
pub mod debug_log;
pub mod estimate;
pub mod event;
pub mod journal;
pub mod link;
pub mod lock;
pub mod outside_checks;
pub mod pipeline;
pub mod report;
pub mod retry;
mod runner;
pub mod server;
mod validate;
pub mod wire;

// The floors below, under the names this crate's modules use (`crate::plan`…).
use altishift_cloud as cloud;
use altishift_guest as guest;
use altishift_model::{block, fsutil, inventory, plan, text, units};

use crate::cloud::Cloud;
use crate::plan::Approved;
use crate::units::Bytes;
pub use event::{Command, DiskInfo, DiskProgress, Event, Level, Stage};
pub use report::RunReport;
pub use retry::RetryPolicy;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Blocks in flight per disk; the target provider's default when unset.
    pub in_flight: Option<usize>,
    /// Per-disk rate limit (scanned bytes per second).
    pub throttle: Option<Bytes>,
    /// One rate for the whole run, shared fairly by its disks; changed live
    /// by `Command::SetBandwidth`. Both limits apply.
    pub bandwidth: Option<Bytes>,
    /// Disks transferred at the same time.
    pub parallel_disks: usize,
    pub retry: RetryPolicy,
    /// How often target data is flushed and the journal checkpointed.
    pub checkpoint_every: Duration,
    /// How often progress events are sent per disk.
    pub progress_every: Duration,
    /// Keep the run's debug log even when the run succeeds.
    pub keep_debug_log: bool,
    /// Give up an interrupted run: remove what it kept for resuming.
    pub abandon: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            in_flight: None,
            throttle: None,
            bandwidth: None,
            parallel_disks: 4,
            retry: RetryPolicy::default(),
            checkpoint_every: Duration::from_secs(1),
            progress_every: Duration::from_millis(250),
            keep_debug_log: false,
            abandon: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("{0}")]
    Preflight(String),
    #[error(
        "the run of plan {plan} was abandoned and its temporaries removed: make and approve a new plan"
    )]
    Abandoned { plan: String },
    #[error("plan {plan} was already applied successfully; report: {report}")]
    AlreadyDone { plan: String, report: String },
    #[error("run folder {dir} belongs to plan {found}, not {expected}")]
    WrongRun {
        dir: String,
        found: String,
        expected: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub ok: bool,
    pub report_path: PathBuf,
    pub report: RunReport,
}

/// A running migration: listen to `events`, send `commands`, await `done`.
pub struct RunHandle {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub commands: mpsc::UnboundedSender<Command>,
    pub done: tokio::task::JoinHandle<Result<RunOutcome, EngineError>>,
    /// The run folder's lock, shared with the run's task: it is free only
    /// once both the run and this handle are gone, so a run server that
    /// still answers its viewers after the run keeps its folder.
    pub lock: std::sync::Arc<lock::RunLock>,
}

/// Folder of a plan's run: one per plan hash, so re-applying resumes.
pub fn run_dir(state_dir: &Path, plan_hash: &str) -> PathBuf {
    state_dir.join("runs").join(run_id(plan_hash))
}

pub fn run_id(plan_hash: &str) -> String {
    format!("run-{}", &plan_hash[..plan_hash.len().min(12)])
}

/// Starts carrying out `approved` in the background. Fails at once (before
/// any change) when the run folder belongs to another plan or the plan was
/// already applied.
pub fn start(
    approved: Approved,
    source: Arc<dyn Cloud>,
    target: Arc<dyn Cloud>,
    state_dir: &Path,
    options: EngineOptions,
) -> Result<RunHandle, EngineError> {
    let hash = approved.hash().0.clone();
    let dir = run_dir(state_dir, &hash);
    // Before the journal is even read: one engine per run folder.
    let run_lock = std::sync::Arc::new(lock::RunLock::acquire(&dir)?);
    let handle_lock = run_lock.clone();
    let (journal, state) = journal::Journal::open(&dir.join("journal.jsonl"))?;
    if let Some(found) = &state.plan_hash
        && found != &hash
    {
        return Err(EngineError::WrongRun {
            dir: dir.display().to_string(),
            found: found.clone(),
            expected: hash,
        });
    }
    if state.abandoned {
        return Err(EngineError::Abandoned {
            plan: approved.hash().short().to_string(),
        });
    }
    if state.finished == Some(true) {
        return Err(EngineError::AlreadyDone {
            plan: approved.hash().short().to_string(),
            report: dir.join("report.md").display().to_string(),
        });
    }
    // Verbose provider logs go to the run folder; a failure to open it only
    // costs the log, so it is reported rather than fatal.
    let log_error = debug_log::open(&dir).err();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    if let Some(e) = log_error {
        let _ = event_tx.send(Event::Log {
            level: Level::Warn,
            message: format!("no debug log in {}: {e}", dir.display()),
        });
    }
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let run = runner::Run::new(
        approved,
        source,
        target,
        state_dir,
        dir.clone(),
        journal,
        state,
        event_tx,
        options,
    );
    let done = tokio::spawn(async move {
        // Held until the run is over: the kernel frees it if we die.
        let _run_lock = run_lock;
        run.execute(command_rx).await
    });
    Ok(RunHandle {
        run_id: run_id(&hash),
        run_dir: dir,
        events: event_rx,
        commands: command_tx,
        done,
        lock: handle_lock,
    })
}
