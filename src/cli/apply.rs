//! `altishift apply PLAN`: runs an approved plan headless, printing progress
//! lines (or JSON events), and resumes a run that was interrupted.

use super::common::{Globals, connect_checked};
use crate::engine::event::TimedEvent;
use crate::engine::{self, Command, EngineOptions, Event, Stage};
use crate::plan::{Plan, approval};
use crate::units::{Bytes, mb_per_s};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::Path;
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
}

pub async fn run(globals: &Globals, path: &Path, args: ApplyArgs) -> Result<()> {
    let plan = Plan::load(path)?;
    crate::plan::build::check_names(&plan.items)
        .with_context(|| format!("{}: refused", path.display()))?;
    let approved =
        approval::verify(plan).with_context(|| format!("{}: refused", path.display()))?;
    let session = globals.load()?;
    let (source, target) = connect_checked(&session.config, approved.plan(), path).await?;
    check_signatures(&session, &approved, path)?;
    let options = EngineOptions {
        throttle: args.throttle,
        bandwidth: args.bandwidth,
        in_flight: args.in_flight,
        keep_debug_log: args.keep_debug_log,
        abandon: args.abandon,
        ..EngineOptions::default()
    };
    let mut handle = engine::start(approved, source, target, &session.state_dir, options)?;
    let mut printer = Printer::new(args.json);
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            event = handle.events.recv() => match event {
                Some(event) => printer.print(event),
                None => break,
            },
            _ = interrupt.recv() => shutdown(&handle.commands, "interrupted"),
            _ = terminate.recv() => shutdown(&handle.commands, "terminated"),
            _ = hangup.recv() => shutdown(&handle.commands, "hang-up (session lost)"),
        }
    }
    let outcome = handle
        .done
        .await
        .context("the engine stopped unexpectedly")??;
    if args.abandon {
        println!("run abandoned; report: {}", outcome.report_path.display());
        return Ok(());
    }
    if outcome.ok {
        if !args.json {
            println!("report: {}", outcome.report_path.display());
        }
        Ok(())
    } else {
        bail!(
            "run incomplete: see {} — `altishift apply {}` resumes from the journal",
            outcome.report_path.display(),
            path.display()
        )
    }
}

/// Signed approvals the config asks for: verified with `ssh-keygen`, each
/// signer's key fingerprint written to the audit log.
fn check_signatures(
    session: &super::common::Session,
    approved: &approval::Approved,
    path: &Path,
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

    fn print(&mut self, event: Event) {
        if self.json {
            // Stamped on arrival: the engine's channel hands events over at once.
            if let Ok(line) = serde_json::to_string(&TimedEvent::now(event)) {
                println!("{line}");
            }
            return;
        }
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
            Event::Validated { instance, checks } => {
                let passed = checks.iter().filter(|c| c.passed).count();
                say!(
                    "{instance}: validation {passed}/{} checks passed",
                    checks.len()
                );
                for check in checks.iter().filter(|c| !c.passed) {
                    say!("  ✗ {}: {}", check.name, check.detail);
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
