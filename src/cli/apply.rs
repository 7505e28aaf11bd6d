//! `altishift apply PLAN`: runs an approved plan headless, printing progress
//! lines (or JSON events), and resumes a run that was interrupted.

use super::common::{Globals, connect_checked_with};
use super::detach::{self, EngineArgs};
use super::prompt::masked_prompt;
use crate::engine::event::TimedEvent;
use crate::engine::link::{self, RunLink};
use crate::engine::lock::RunLock;
use crate::engine::wire::ServerMessage;
use crate::engine::{self, Command, EngineOptions, Event, Stage};
use crate::plan::{Plan, approval};
use crate::secret::Secret;
use crate::units::{Bytes, mb_per_s};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};

pub struct ApplyArgs {
    pub json: bool,
    pub throttle: Option<Bytes>,
    /// One rate for the whole run, shared by every disk.
    pub bandwidth: Option<Bytes>,
    pub in_flight: Option<usize>,
    pub keep_debug_log: bool,
    /// `altishift cleanup`: abandon the run instead of carrying it out.
    pub abandon: bool,
    /// Return once the engine runs, instead of watching it to the end.
    pub detach: bool,
}

impl ApplyArgs {
    fn engine(&self) -> EngineArgs {
        EngineArgs {
            throttle: self.throttle,
            bandwidth: self.bandwidth,
            in_flight: self.in_flight,
            keep_debug_log: self.keep_debug_log,
        }
    }
}

/// Carries out (or, for `cleanup`, abandons) the approved plan at `path`.
/// The run itself is a detached engine process; this one watches it.
pub async fn run(globals: &Globals, path: &Path, args: ApplyArgs) -> Result<()> {
    let plan = Plan::load(path)?;
    crate::plan::build::check_names(&plan.items)
        .with_context(|| format!("{}: refused", path.display()))?;
    let approved =
        approval::verify(plan).with_context(|| format!("{}: refused", path.display()))?;
    let session = globals.load()?;
    let run_dir = engine::run_dir(&session.state_dir, &approved.hash().0);
    let run_id = engine::run_id(&approved.hash().0);
    if RunLock::held(&run_dir) && !ended_engine_leaves(&run_dir).await {
        if args.abandon {
            bail!(
                "{run_id} is still running: stop it first (`altishift attach {run_id}`, then `q`), then `altishift cleanup {}`",
                path.display()
            );
        }
        // Re-running apply after a lost session: watch the run that goes on.
        eprintln!("altishift: {run_id} is already running; watching it");
        let link = link::connect(&run_dir, "apply", false).await?;
        return follow(link, &args, path, &run_dir).await;
    }
    // Secrets typed at prompts are kept (in memory) for the engine process.
    let mut answers: Vec<(String, Secret)> = Vec::new();
    let mut prompt = |label: &str| {
        let secret = masked_prompt(label)?;
        answers.push((label.to_string(), secret.clone()));
        Some(secret)
    };
    let (source, target) =
        connect_checked_with(&session.config, approved.plan(), path, &mut prompt).await?;
    check_signatures(&session, &approved, path, true)?;
    if args.abandon {
        return abandon(approved, source, target, &session, &args).await;
    }
    // The engine connects its own; these served the checks above.
    drop((source, target));
    let launched = detach::spawn(
        None,
        globals.config.as_deref().or(session.config.file.as_deref()),
        &session.state_dir,
        path,
        &run_dir,
        &args.engine(),
        &answers,
        "apply",
    )
    .await?;
    drop(answers);
    if args.detach {
        println!(
            "{run_id}: running in the background (engine pid {}, log {})",
            launched.pid,
            run_dir.join("engine.log").display()
        );
        println!(
            "  watch it: altishift attach {run_id}   ·   list runs: altishift runs   ·   wait for it: altishift apply {}",
            path.display()
        );
        return Ok(());
    }
    follow(launched.link, &args, path, &run_dir).await
}

/// Whether the engine holding `run_dir` has finished its run and is only
/// waiting for its viewers: then this waits (bounded) until it is gone, so a
/// new engine resumes or reports the run instead of replaying its end.
async fn ended_engine_leaves(run_dir: &Path) -> bool {
    use crate::engine::wire::RunState;
    let ended = match link::connect(run_dir, "apply", true).await {
        Ok(link) => matches!(
            link.welcome.status.state,
            RunState::Finished | RunState::Failed
        ),
        Err(_) => false,
    };
    if !ended {
        return false;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while RunLock::held(run_dir) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    !RunLock::held(run_dir)
}

/// `cleanup`: abandons the run in this process (it is short, and no other
/// engine holds the run).
async fn abandon(
    approved: approval::Approved,
    source: std::sync::Arc<dyn crate::cloud::Cloud>,
    target: std::sync::Arc<dyn crate::cloud::Cloud>,
    session: &super::common::Session,
    args: &ApplyArgs,
) -> Result<()> {
    let options = EngineOptions {
        abandon: true,
        ..args.engine().options()
    };
    let mut handle = engine::start(approved, source, target, &session.state_dir, options)?;
    let mut printer = Printer::new(args.json);
    while let Some(event) = handle.events.recv().await {
        printer.print(TimedEvent::now(event));
    }
    let outcome = handle
        .done
        .await
        .context("the engine stopped unexpectedly")??;
    println!("run abandoned; report: {}", outcome.report_path.display());
    Ok(())
}

/// Prints the run's events until it ends. Ctrl-C asks the engine to stop at
/// a consistent point; a hang-up or `kill` only ends this viewer — the run
/// goes on, and `apply` or `attach` find it again.
async fn follow(mut link: RunLink, args: &ApplyArgs, path: &Path, run_dir: &Path) -> Result<()> {
    let run_id = link.welcome.run.run_id.clone();
    let mut printer = Printer::new(args.json);
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut finished: Option<(bool, PathBuf)> = None;
    let left = |why: &str| {
        eprintln!(
            "altishift: {why}; {run_id} goes on in the background (`altishift attach {run_id}`)"
        );
    };
    loop {
        tokio::select! {
            message = link.messages.recv() => match message {
                Some(ServerMessage::Event(timed)) => {
                    if let Event::RunFinished { ok, report, .. } = &timed.event {
                        finished = Some((*ok, report.clone()));
                    }
                    printer.print(timed);
                }
                Some(ServerMessage::Refused { reason, .. }) => {
                    eprintln!("altishift: the engine refused: {}", crate::text::safe(&reason));
                }
                Some(_) => {}
                None => break,
            },
            _ = interrupt.recv() => shutdown(&link.commands, "interrupted"),
            _ = terminate.recv() => {
                left("terminated");
                return Ok(());
            }
            _ = hangup.recv() => {
                left("hang-up (session lost)");
                return Ok(());
            }
        }
    }
    match finished {
        Some((true, report)) => {
            if !args.json {
                println!("report: {}", report.display());
            }
            Ok(())
        }
        Some((false, report)) => bail!(
            "run incomplete: see {} — `altishift apply {}` resumes from the journal",
            report.display(),
            path.display()
        ),
        None => bail!(
            "the engine of {run_id} stopped before the run ended: see {} — `altishift apply {}` resumes from the journal",
            run_dir.join("engine.log").display(),
            path.display()
        ),
    }
}

/// Signed approvals the config asks for: verified with `ssh-keygen`, each
/// signer's key fingerprint written to the audit log.
/// `record` is false for the engine process, which checks again what its
/// starter already recorded.
pub(super) fn check_signatures(
    session: &super::common::Session,
    approved: &approval::Approved,
    path: &Path,
    record: bool,
) -> Result<()> {
    let Some(policy) = &session.config.approval else {
        return Ok(());
    };
    let plan = approved.plan();
    let file = policy
        .allowed_signers
        .as_ref()
        .map(|f| session.config.resolve(f));
    let signatures = plan
        .approval
        .as_ref()
        .map(|a| a.signatures.as_slice())
        .unwrap_or_default();
    let signers = crate::plan::signature::check_policy(
        policy,
        file.as_deref(),
        approved.hash(),
        &plan.created_by,
        signatures,
    )
    .with_context(|| format!("{}: refused", path.display()))?;
    if !record {
        return Ok(());
    }
    let audit = crate::engine::audit::AuditLog::new(
        &session.state_dir.join("audit.jsonl"),
        &approved.hash().0,
        approved.operator(),
    );
    for signer in &signers {
        audit
            .record(
                "-",
                "approval_signed_by",
                &signer.key_fingerprint,
                &signer.principal,
            )
            .context("writing the audit log")?;
    }
    Ok(())
}

fn shutdown(commands: &tokio::sync::mpsc::UnboundedSender<Command>, why: &str) {
    eprintln!("altishift: {why}; stopping at a consistent point (the journal lets `apply` resume)");
    let _ = commands.send(Command::Shutdown);
}

/// Prints one line through the single safe-text rule: names, provider
/// messages and errors in events can hold terminal control sequences.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", crate::text::safe_lines(&format!($($arg)*)))
    };
}

/// Turns events into lines: one per disk per second at most for progress;
/// with `--json`, every event as one JSON line with its time.
struct Printer {
    json: bool,
    last_line: HashMap<String, (Instant, u64, u64)>,
}

impl Printer {
    fn new(json: bool) -> Printer {
        Printer {
            json,
            last_line: HashMap::new(),
        }
    }

    /// Prints an event, stamped by the engine when it happened.
    fn print(&mut self, timed: TimedEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(&timed) {
                println!("{line}");
            }
            return;
        }
        let event = timed.event;
        match &event {
            Event::RunStarted {
                run_id,
                resumed,
                disks,
                ..
            } => {
                let what = if *resumed { "resuming" } else { "starting" };
                say!("{what} {run_id}: {} disks", disks.len());
            }
            Event::Stage { disk, stage } if *stage != Stage::Queued => say!("{disk}: {stage}"),
            Event::Progress(p) if p.bytes_total.0 == 0 => {} // extents not listed yet
            Event::Progress(p) => {
                let now = Instant::now();
                let (then, sent_then, ms_then) = self.last_line.get(&p.disk).copied().unwrap_or((
                    now - Duration::from_secs(2),
                    0,
                    0,
                ));
                let finished = p.bytes_total.0 > 0 && p.bytes_scanned >= p.bytes_total;
                if now.duration_since(then) < Duration::from_secs(1) && !finished {
                    return;
                }
                let current = mb_per_s(
                    p.bytes_sent.0 - sent_then.min(p.bytes_sent.0),
                    (p.elapsed_ms.saturating_sub(ms_then)) as f64 / 1000.0,
                );
                let average = mb_per_s(p.bytes_sent.0, p.elapsed_ms as f64 / 1000.0);
                let percent = if p.bytes_total.0 == 0 {
                    100.0
                } else {
                    p.bytes_scanned.0 as f64 * 100.0 / p.bytes_total.0 as f64
                };
                say!(
                    "{}: {:5.1}%  {} of {} scanned, {} sent, {} zero skipped  {:.1} MB/s now, {:.1} MB/s avg{}",
                    p.disk,
                    percent,
                    p.bytes_scanned,
                    p.bytes_total,
                    p.bytes_sent,
                    p.bytes_skipped,
                    current,
                    average,
                    if p.retries > 0 {
                        format!(", {} retries", p.retries)
                    } else {
                        String::new()
                    }
                );
                self.last_line
                    .insert(p.disk.clone(), (now, p.bytes_sent.0, p.elapsed_ms));
            }
            Event::Log { level, message } => say!("[{level:?}] {message}"),
            Event::PassFinished {
                disk,
                pass,
                kind,
                blocks_sent,
                bytes_sent,
                elapsed_ms,
            } => say!(
                "{disk}: pass {pass} ({kind}) sent {blocks_sent} blocks, {bytes_sent} in {:.1} s",
                *elapsed_ms as f64 / 1000.0
            ),
            Event::DiskFinished { disk, digest } => {
                say!(
                    "{disk}: written, digest {} over {} blocks",
                    &digest.linear_sha256[..16],
                    digest.blocks
                )
            }
            Event::DiskFailed { disk, error } => say!("{disk}: FAILED: {error}"),
            Event::InstanceDeployed { instance, id } => say!("{instance}: deployed as {id}"),
            Event::Created(c) => say!("{} {} {}: {} on {}", c.state, c.kind, c.name, c.id, c.cloud),
            Event::Validated { instance, checks } => {
                let passed = checks.iter().filter(|c| c.passed).count();
                say!(
                    "{instance}: validation {passed}/{} checks passed",
                    checks.len()
                );
                // Failures, and whatever a check saw (a serial console).
                for check in checks
                    .iter()
                    .filter(|c| !c.passed || !c.evidence.is_empty())
                {
                    let mark = if check.passed { "✓" } else { "✗" };
                    say!("  {mark} {}: {}", check.name, check.detail);
                    for line in &check.evidence {
                        say!("    │ {}", crate::text::safe(line));
                    }
                }
            }
            Event::CleanedUp {
                resource, detail, ..
            } => say!("cleanup {resource}: {detail}"),
            Event::Revoked { cloud, items } if items.is_empty() => {
                say!("{cloud}: no temporary access to revoke; secrets wiped")
            }
            Event::Revoked { cloud, items } => say!("{cloud}: revoked {}", items.join(", ")),
            Event::RunFinished { ok, summary, .. } => {
                say!("{}: {summary}", if *ok { "done" } else { "INCOMPLETE" })
            }
            _ => {}
        }
    }
}
