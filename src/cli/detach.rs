//! The run as a process of its own: `apply` and the console start the engine
//! detached from the terminal (a new session, no controlling TTY, output to
//! the run's `engine.log`) and then watch it through the run folder's
//! socket. Losing the SSH session loses a viewer, never the run.
//!
//! The engine gets the secrets the operator typed through a pipe on its
//! stdin (never argv, env or disk); secrets from `env:` it inherits. It
//! checks the plan's approval, the clouds' fingerprints and the signatures
//! again itself: a hand-started `altishift engine` is no way round them.

use super::common::{Globals, Session};
use crate::engine::link::{self, RunLink};
use crate::engine::wire::RunInfo;
use crate::engine::{self, EngineOptions, server};
use crate::plan::{Plan, approval};
use crate::secret::Secret;
use crate::units::Bytes;
use anyhow::{Context, Result, bail};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long a finished engine waits for its viewers to read the end.
const LINGER: Duration = Duration::from_secs(10);
/// How long a new engine may take to connect its clouds and open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Secrets answered at prompts: a few short strings, never more.
const MAX_ANSWERS: usize = 64 << 10;

/// The engine's settings, as `apply` takes them.
#[derive(Debug, Clone, Default)]
pub struct EngineArgs {
    pub throttle: Option<Bytes>,
    /// One budget for the whole run (every disk together).
    pub bandwidth: Option<Bytes>,
    pub in_flight: Option<usize>,
    pub keep_debug_log: bool,
}

impl EngineArgs {
    fn to_argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(rate) = self.throttle {
            argv.extend(["--throttle".to_string(), format!("{}B/s", rate.0)]);
        }
        if let Some(rate) = self.bandwidth {
            argv.extend(["--bandwidth".to_string(), format!("{}B/s", rate.0)]);
        }
        if let Some(n) = self.in_flight {
            argv.extend(["--in-flight".to_string(), n.to_string()]);
        }
        if self.keep_debug_log {
            argv.push("--keep-debug-log".into());
        }
        argv
    }

    pub fn options(&self) -> EngineOptions {
        EngineOptions {
            throttle: self.throttle,
            bandwidth: self.bandwidth,
            in_flight: self.in_flight,
            keep_debug_log: self.keep_debug_log,
            ..EngineOptions::default()
        }
    }
}

/// A started engine and a viewer's link to it.
pub struct Launched {
    pub pid: u32,
    pub link: RunLink,
}

/// Starts the engine of `plan_file` detached and connects to it as
/// `viewer`. `answers` are the secrets typed at prompts, by prompt label or
/// profile field. Fails with the engine's own words when it refuses to run.
#[allow(clippy::too_many_arguments)]
pub async fn spawn(
    exe: Option<&Path>,
    config_file: Option<&Path>,
    state_dir: &Path,
    plan_file: &Path,
    run_dir: &Path,
    args: &EngineArgs,
    answers: &[(String, Secret)],
    viewer: &str,
) -> Result<Launched> {
    crate::fsutil::create_private_dir_all(run_dir)
        .with_context(|| format!("creating {}", run_dir.display()))?;
    let log_path = run_dir.join("engine.log");
    let mut log = crate::fsutil::open_private_append(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let log_start = log.seek(std::io::SeekFrom::End(0)).unwrap_or(0);
    let exe = match exe {
        Some(exe) => exe.to_path_buf(),
        None => std::env::current_exe().context("finding this executable to start the engine")?,
    };
    let mut command = std::process::Command::new(exe);
    if let Some(file) = config_file {
        command.arg("--config").arg(absolute(file)?);
    }
    command
        .arg("--state-dir")
        .arg(absolute(state_dir)?)
        .arg("engine")
        .arg(absolute(plan_file)?)
        .args(args.to_argv())
        .stdin(std::process::Stdio::piped())
        .stdout(log.try_clone().context("engine log")?)
        .stderr(log.try_clone().context("engine log")?);
    // SAFETY: setsid is async-signal-safe; between fork and exec it only
    // detaches the child from our session and terminal.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().context("starting the engine process")?;
    if let Some(mut stdin) = child.stdin.take() {
        let pairs: Vec<(&str, &str)> = answers
            .iter()
            .map(|(label, secret)| (label.as_str(), secret.expose()))
            .collect();
        let body = Zeroizing::new(serde_json::to_vec(&pairs).context("passing secrets")?);
        // A closed pipe means the engine already died: its log says why.
        let _ = stdin.write_all(&body);
    }
    let pid = child.id();
    let _ = writeln!(log, "engine pid {pid} started for {}", plan_file.display());
    let started = Instant::now();
    loop {
        if server::socket_of(run_dir).is_some()
            && let Ok(link) = link::connect(run_dir, viewer, false).await
        {
            reap(child);
            return Ok(Launched { pid, link });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let said = log_since(&log_path, log_start);
            bail!("the engine did not start ({status}):\n{}", said.trim_end());
        }
        if started.elapsed() > START_TIMEOUT {
            reap(child);
            bail!(
                "the engine (pid {pid}) did not open its socket in {} s: see {}",
                START_TIMEOUT.as_secs(),
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the engine in the background so it never lingers as a zombie
/// under a long-lived console.
fn reap(mut child: std::process::Child) {
    let _ = std::thread::Builder::new()
        .name("engine-reaper".into())
        .spawn(move || child.wait());
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("{}: cannot make absolute", path.display()))
}

/// What the engine wrote to its log since `start`, without the secrets'
/// chance to be there (it never prints them) and without terminal controls.
fn log_since(path: &Path, start: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let from = (start as usize).min(text.len());
    let said = String::from_utf8_lossy(&text[from..]);
    let lines: Vec<&str> = said
        .lines()
        .filter(|l| !l.starts_with("engine pid "))
        .collect();
    crate::text::safe_lines(&lines.join("\n")).into_owned()
}

/// Reads the prompt answers from stdin (a pipe from the starting process;
/// nothing when stdin is a terminal or empty).
fn read_answers() -> Result<Vec<(String, Secret)>> {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(0) } == 1 {
        return Ok(Vec::new());
    }
    // Room for every answer up front: a growing Vec would leave copies of
    // the secrets behind in freed memory.
    let mut body = Zeroizing::new(Vec::with_capacity(MAX_ANSWERS + 1));
    std::io::stdin()
        .take(MAX_ANSWERS as u64 + 1)
        .read_to_end(&mut body)
        .context("reading the secrets from the starting process")?;
    if body.len() > MAX_ANSWERS {
        bail!("more than {MAX_ANSWERS} bytes of secrets on stdin");
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let pairs: Vec<(String, String)> =
        serde_json::from_slice(&body).context("secrets on stdin: not a JSON list of pairs")?;
    Ok(pairs
        .into_iter()
        .map(|(label, value)| (label, Secret::new(value)))
        .collect())
}

/// `altishift engine PLAN`: the detached engine itself (started by `apply`
/// and the console, not by hand).
pub async fn serve(globals: &Globals, plan_file: &Path, args: EngineArgs) -> Result<()> {
    let answers = read_answers()?;
    let plan = Plan::load(plan_file)?;
    crate::plan::build::check_names(&plan.items)
        .with_context(|| format!("{}: refused", plan_file.display()))?;
    let approved =
        approval::verify(plan).with_context(|| format!("{}: refused", plan_file.display()))?;
    let session: Session = globals.load()?;
    let mut prompt = |label: &str| crate::secret::answer_for(label, &answers);
    let (source, target) = super::common::connect_checked_with(
        &session.config,
        approved.plan(),
        plan_file,
        &mut prompt,
    )
    .await?;
    drop(answers);
    super::apply::check_signatures(&session, &approved, plan_file, false)?;
    let hash = approved.hash().0.clone();
    let operator = approved.operator().to_string();
    let info = RunInfo {
        run_id: engine::run_id(&hash),
        plan_hash: hash.clone(),
        plan_file: absolute(plan_file)?,
        source: approved.plan().source.cloud.clone(),
        target: approved.plan().target.cloud.clone(),
        pid: std::process::id(),
        started_at: crate::fsutil::now_rfc3339(),
    };
    let handle = engine::start(approved, source, target, &session.state_dir, args.options())?;
    let listener = server::bind(&handle.run_dir)?;
    server::write_info(&handle.run_dir, &info)
        .with_context(|| format!("writing {}/engine.json", handle.run_dir.display()))?;
    println!(
        "engine {} serving {} on {}",
        info.pid,
        info.run_id,
        crate::engine::wire::socket_path(&handle.run_dir).display()
    );
    let audit = crate::engine::audit::AuditLog::new(
        &session.state_dir.join("audit.jsonl"),
        &hash,
        &operator,
    );
    let outcome = server::serve(handle, listener, info, audit, LINGER).await?;
    println!(
        "run finished: ok={} report {}",
        outcome.ok,
        outcome.report_path.display()
    );
    if outcome.ok {
        Ok(())
    } else {
        bail!("run incomplete: see {}", outcome.report_path.display())
    }
}
