//! `altishift runs`: every run in the state folder — running ones asked
//! through their socket, the others read from their journal — and
//! `altishift throttle` style one-shot commands to a running engine.

use super::common::Globals;
use crate::engine::journal;
use crate::engine::link;
use crate::engine::lock::RunLock;
use crate::engine::server;
use crate::engine::wire::{RunState, RunStatus};
use crate::units::Bytes;
use anyhow::{Result, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One line of `runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub state: RunState,
    pub plan_hash: Option<String>,
    pub plan_file: Option<PathBuf>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub started_at: Option<String>,
    /// The engine process, while it runs.
    pub pid: Option<u32>,
    /// Live progress (running and paused runs only).
    pub progress: Option<RunStatus>,
    pub run_dir: PathBuf,
}

/// Reads every run folder under `state_dir/runs`, newest first.
pub async fn list(state_dir: &Path) -> Vec<RunRow> {
    let mut rows = Vec::new();
    let Ok(entries) = std::fs::read_dir(state_dir.join("runs")) else {
        return rows;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if dir.is_dir() {
            rows.push(row(&dir).await);
        }
    }
    rows.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then(a.run_id.cmp(&b.run_id))
    });
    rows
}

async fn row(dir: &Path) -> RunRow {
    let info = server::read_info(dir);
    let journal = journal::replay(&dir.join("journal.jsonl")).ok();
    let running = RunLock::held(dir);
    let mut progress = None;
    let state = if running {
        let asked =
            tokio::time::timeout(Duration::from_secs(5), link::connect(dir, "runs", true)).await;
        match asked {
            Ok(Ok(link)) => {
                let status = link.welcome.status.clone();
                progress = Some(status.clone());
                status.state
            }
            // Held but silent: an in-process run (a console of an older
            // version, or `cleanup`) or an engine still starting.
            _ => RunState::Running,
        }
    } else {
        match &journal {
            Some(state) if state.abandoned => RunState::Abandoned,
            Some(state) => match state.finished {
                Some(true) => RunState::Finished,
                Some(false) => RunState::Failed,
                None if state.records == 0 => RunState::Starting,
                None => RunState::Interrupted,
            },
            None => RunState::Interrupted,
        }
    };
    let run_id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    RunRow {
        run_id,
        state,
        plan_hash: info
            .as_ref()
            .map(|i| i.plan_hash.clone())
            .or_else(|| journal.as_ref().and_then(|j| j.plan_hash.clone())),
        plan_file: info.as_ref().map(|i| i.plan_file.clone()),
        source: info.as_ref().map(|i| i.source.clone()),
        target: info.as_ref().map(|i| i.target.clone()),
        started_at: info.as_ref().map(|i| i.started_at.clone()),
        pid: info.as_ref().filter(|_| running).map(|i| i.pid),
        progress,
        run_dir: dir.to_path_buf(),
    }
}

/// `altishift runs [--json]`.
pub async fn show(globals: &Globals, json: bool) -> Result<()> {
    let session = globals.load()?;
    let rows = list(&session.state_dir).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no runs in {}", session.state_dir.display());
        return Ok(());
    }
    println!(
        "{:<17} {:<11} {:<25} {:<30} PROGRESS",
        "RUN", "STATE", "STARTED", "CLOUDS"
    );
    for row in rows {
        let clouds = match (&row.source, &row.target) {
            (Some(s), Some(t)) => format!("{s} → {t}"),
            _ => "-".into(),
        };
        let progress = match &row.progress {
            Some(p) => format!(
                "{}/{} disks, {} of {} scanned",
                p.disks_done, p.disks, p.bytes_scanned, p.bytes_total
            ),
            None => "-".into(),
        };
        let line = format!(
            "{:<17} {:<11} {:<25} {:<30} {}",
            row.run_id,
            row.state.to_string(),
            row.started_at.as_deref().unwrap_or("-"),
            clouds,
            progress
        );
        println!("{}", crate::text::safe(&line));
    }
    Ok(())
}

/// The run folder `run` names (a run id or a folder), or the latest running
/// run when `None`.
pub async fn resolve(state_dir: &Path, run: Option<&str>) -> Result<PathBuf> {
    match run {
        Some(run) => {
            let by_id = state_dir.join("runs").join(run);
            let dir = if by_id.is_dir() {
                by_id
            } else if Path::new(run).is_dir() {
                PathBuf::from(run)
            } else {
                bail!(
                    "no run '{run}' in {} (see `altishift runs`)",
                    state_dir.join("runs").display()
                );
            };
            Ok(dir)
        }
        None => {
            let rows = list(state_dir).await;
            match rows
                .into_iter()
                .find(|r| matches!(r.state, RunState::Running | RunState::Paused))
            {
                Some(row) => Ok(row.run_dir),
                None => bail!(
                    "no run is running in {} (see `altishift runs`)",
                    state_dir.display()
                ),
            }
        }
    }
}

/// A rate as `runs` and `throttle` print it.
pub fn rate_text(rate: Option<Bytes>) -> String {
    rate.map(|r| format!("{r}/s"))
        .unwrap_or_else(|| "unlimited".into())
}

/// `altishift throttle RUN RATE`: sets a running run's bandwidth budget
/// (`unlimited` lifts it) and waits for the engine to confirm.
pub async fn throttle(globals: &Globals, run: &str, rate: Option<Bytes>) -> Result<()> {
    use crate::engine::event::{Command, Event};
    use crate::engine::wire::ServerMessage;
    let session = globals.load()?;
    let dir = resolve(&session.state_dir, Some(run)).await?;
    let mut link = link::connect(&dir, "throttle", false).await?;
    let run_id = link.welcome.run.run_id.clone();
    // The catch-up may hold an earlier, identical change: only a
    // confirmation stamped from now on counts (same clock, same format).
    let sent_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    link.commands
        .send(Command::SetBandwidth { rate })
        .map_err(|_| anyhow::anyhow!("{run_id}: the engine went away"))?;
    let want = format!("bandwidth budget set to {}", rate_text(rate));
    let confirmed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(message) = link.messages.recv().await {
            match message {
                ServerMessage::Event(timed) => {
                    if let Event::Log { message, .. } = &timed.event
                        && message.starts_with(&want)
                        && timed.time >= sent_at
                    {
                        return Ok(());
                    }
                }
                ServerMessage::Refused { reason, .. } => bail!("{run_id}: refused: {reason}"),
                _ => {}
            }
        }
        bail!("{run_id}: the run ended before the change was confirmed")
    })
    .await;
    match confirmed {
        Ok(result) => result?,
        Err(_) => bail!("{run_id}: the engine did not confirm the change in 30 s"),
    }
    println!("{run_id}: bandwidth budget {}", rate_text(rate));
    Ok(())
}
