//! Cutover from an SSH source (a real sshd on loopback) into the lab: the
//! source is copied while it runs, the operator's quiesce command changes
//! blocks, the final pass sends exactly those, the source is powered off (a
//! script that leaves a marker, not this machine) and the target is
//! byte-identical. Steps the approval does not cover are refused before any
//! change, and a run killed in its final pass resumes there.

use altishift_testkit::ssh_kit;
use altishift_testkit::sshd;

use altishift::cloud::Cloud;
use altishift::cloud::ssh::{AgentPolicy, SshCloud};
use altishift::engine::event::PassKind;
use altishift::engine::{self, EngineError, EngineOptions, Event, RunReport};
use altishift::plan::{ActionVerb, Cutover, approval};
use altishift::units::{BLOCK_SIZE, Bytes};
use ssh_kit::*;
use sshd::Sshd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (pass, kind, blocks sent, bytes sent) from a `PassFinished` event.
type Pass = (u32, PassKind, u64, u64);

fn script(path: &Path, body: &str) -> PathBuf {
    std::fs::write(path, format!("#!/bin/sh\nset -e\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

/// The quiesce command: `changed` blocks get new content, `zeroed` blocks
/// become zero, and a marker says it ran. Deterministic: the new blocks are
/// prepared files.
fn quiesce_script(dir: &Path, device: &Path, changed: &[u64], zeroed: &[u64]) -> PathBuf {
    let mut body = String::new();
    for &b in changed {
        let block = dir.join(format!("block-{b}.v2"));
        std::fs::write(&block, block_content(b, 2)).unwrap();
        body += &format!(
            "dd if={} of={} bs={BLOCK_SIZE} seek={b} count=1 conv=notrunc status=none\n",
            block.display(),
            device.display()
        );
    }
    for &b in zeroed {
        body += &format!(
            "dd if=/dev/zero of={} bs={BLOCK_SIZE} seek={b} count=1 conv=notrunc status=none\n",
            device.display()
        );
    }
    body += &format!("touch {}\n", dir.join("quiesced").display());
    script(&dir.join("quiesce.sh"), &body)
}

/// The power-off command of the profile: a marker, not a shutdown.
fn power_off_script(dir: &Path) -> (String, PathBuf) {
    let marker = dir.join("powered-off");
    let path = script(
        &dir.join("poweroff.sh"),
        &format!("touch {}\n", marker.display()),
    );
    (path.display().to_string(), marker)
}

fn source(sshd: &Sshd, device: &Path, policy: AgentPolicy, power_off: &str) -> Arc<SshCloud> {
    Arc::new(
        SshCloud::new("ssh-src", settings(sshd, device, policy))
            .unwrap()
            .with_power_off_command(Some(power_off.to_string())),
    )
}

fn cutover(quiesce: &Path, max_delta_passes: u32) -> Cutover {
    Cutover {
        quiesce: Some(quiesce.display().to_string()),
        thaw: None,
        power_off: true,
        max_delta_passes,
    }
}

/// Runs to the end, collecting the passes the engine announced.
async fn run_passes(
    approved: approval::Approved,
    source: Arc<dyn Cloud>,
    lab: &Lab,
    state: &Path,
    options: EngineOptions,
) -> (RunReport, Vec<Pass>) {
    let mut handle = engine::start(approved, source, lab.west(), state, options).unwrap();
    let mut passes = Vec::new();
    while let Some(event) = handle.events.recv().await {
        if let Event::PassFinished {
            pass,
            kind,
            blocks_sent,
            bytes_sent,
            ..
        } = event
        {
            passes.push((pass, kind, blocks_sent, bytes_sent.0));
        }
    }
    let outcome = handle.done.await.unwrap().unwrap();
    (outcome.report, passes)
}

fn cmp(a: &Path, b: &Path) -> bool {
    std::process::Command::new("cmp")
        .arg(a)
        .arg(b)
        .status()
        .unwrap()
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_sends_exactly_the_blocks_changed_while_quiesced_and_powers_off() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u64> = (0..24).collect();
    let device = source_disk(dir.path(), &data, &[]);
    // Two blocks with data change, one block in a hole gets data, one
    // block with data becomes zero.
    let (changed, zeroed) = ([3u64, 17, 40], [9u64]);
    let quiesce = quiesce_script(dir.path(), &device, &changed, &zeroed);
    let (power_off, powered_off) = power_off_script(dir.path());
    let source = source(&sshd, &device, AgentPolicy::Require, &power_off);
    let lab = Lab::new(dir.path());
    let plan = plan_for_lab(&source, &lab, Some(cutover(&quiesce, 2))).await;
    let verbs: Vec<ActionVerb> = plan.actions.iter().map(|a| a.verb).collect();
    for step in [
        ActionVerb::QuiesceSource,
        ActionVerb::FinalDelta,
        ActionVerb::PowerOffSource,
    ] {
        assert!(
            verbs.contains(&step),
            "{step} is not in the plan: {verbs:?}"
        );
    }
    let rendered = altishift::plan::render::render(&plan);
    assert!(rendered.contains("CUTOVER"), "{rendered}");
    assert!(rendered.contains("power off source"), "{rendered}");

    let (report, passes) = run_passes(
        approve(plan),
        source.clone(),
        &lab,
        &dir.path().join("state"),
        EngineOptions::default(),
    )
    .await;
    assert!(report.ok, "{report:#?}");
    assert!(dir.path().join("quiesced").exists(), "quiesce did not run");
    assert!(powered_off.exists(), "the source was not powered off");
    let block = BLOCK_SIZE;
    // Pass 1: the data blocks and the short last block. Pass 2: nothing
    // changed while running, so the deltas stop. Pass 3, after the quiesce:
    // exactly the changed blocks plus the zeroed one (written as zeros).
    let full = data.len() as u64 + 1;
    let final_blocks = (changed.len() + zeroed.len()) as u64;
    assert_eq!(
        passes,
        vec![
            (1, PassKind::Full, full, data.len() as u64 * block + 4096),
            (2, PassKind::Delta, 0, 0),
            (3, PassKind::Final, final_blocks, final_blocks * block),
        ]
    );
    let disk = &report.disks[0];
    let reported: Vec<Pass> = disk
        .passes
        .iter()
        .map(|p| (p.pass, p.kind, p.blocks_sent, p.bytes_sent))
        .collect();
    assert_eq!(reported, passes, "the report lists other passes");
    assert!(
        std::fs::read_to_string(report_md(&report, dir.path()))
            .unwrap()
            .contains("| 3 | final | 4 |"),
        "the Markdown report lacks the final pass"
    );
    assert_eq!(disk.source_digest, disk.target_digest);
    assert!(cmp(&device, &lab.disk_of(NAME)), "the target differs");
    for used in source.agent_dirs() {
        assert!(!Path::new(&used).exists(), "agent left behind in {used}");
    }
    // Removed before the power-off, and still reported as revoked.
    assert!(
        report
            .revoked
            .iter()
            .any(|r| r.contains("removed the agent")),
        "{:?}",
        report.revoked
    );
}

/// Without power-off the source is thawed with the operator's command after
/// the final pass, and keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_without_power_off_thaws_the_source() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u64> = (0..8).collect();
    let device = source_disk(dir.path(), &data, &[]);
    let quiesce = quiesce_script(dir.path(), &device, &[2], &[]);
    let (power_off, powered_off) = power_off_script(dir.path());
    let thawed = dir.path().join("thawed");
    let source = source(&sshd, &device, AgentPolicy::Require, &power_off);
    let lab = Lab::new(dir.path());
    let cutover = Cutover {
        thaw: Some(format!("touch {}", thawed.display())),
        power_off: false,
        ..cutover(&quiesce, 1)
    };
    let plan = plan_for_lab(&source, &lab, Some(cutover)).await;
    let verbs: Vec<ActionVerb> = plan.actions.iter().map(|a| a.verb).collect();
    assert!(verbs.contains(&ActionVerb::ThawSource), "{verbs:?}");
    assert!(!verbs.contains(&ActionVerb::PowerOffSource), "{verbs:?}");
    let (report, passes) = run_passes(
        approve(plan),
        source,
        &lab,
        &dir.path().join("state"),
        EngineOptions::default(),
    )
    .await;
    assert!(report.ok, "{report:#?}");
    assert!(thawed.exists(), "the thaw command did not run");
    assert!(
        !powered_off.exists(),
        "powered off though the plan said not to"
    );
    assert_eq!(
        passes.last().map(|p| (p.1, p.2)),
        Some((PassKind::Final, 1))
    );
    assert!(cmp(&device, &lab.disk_of(NAME)), "the target differs");
}

fn report_md(report: &RunReport, root: &Path) -> PathBuf {
    engine::run_dir(&root.join("state"), &report.plan_hash).join("report.md")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_not_covered_by_the_approval_is_refused_before_any_change() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let device = source_disk(dir.path(), &[0, 1, 2], &[]);
    let before = std::fs::read(&device).unwrap();
    let quiesce = quiesce_script(dir.path(), &device, &[1], &[2]);
    let (power_off, powered_off) = power_off_script(dir.path());
    let source = source(&sshd, &device, AgentPolicy::Require, &power_off);
    let lab = Lab::new(dir.path());
    let state = dir.path().join("state");

    // A cutover added after approval changes the hash: refused.
    let mut plan = plan_for_lab(&source, &lab, None).await;
    let short = plan.hash().short().to_string();
    approval::approve(&mut plan, &short, true, "tester").unwrap();
    plan.cutover = Some(cutover(&quiesce, 1));
    assert!(matches!(
        approval::verify(plan).unwrap_err(),
        approval::ApprovalError::Changed { .. }
    ));

    // A cutover plan whose action list lacks the cutover steps, approved as
    // it is: the engine refuses it before touching anything.
    let mut plan = plan_for_lab(&source, &lab, Some(cutover(&quiesce, 1))).await;
    plan.actions.retain(|a| {
        !matches!(
            a.verb,
            ActionVerb::QuiesceSource | ActionVerb::FinalDelta | ActionVerb::PowerOffSource
        )
    });
    let handle = engine::start(
        approve(plan),
        source.clone(),
        lab.west(),
        &state,
        EngineOptions::default(),
    )
    .unwrap();
    let err = handle.done.await.unwrap().unwrap_err();
    assert!(matches!(err, EngineError::Preflight(_)), "{err}");
    assert!(
        err.to_string()
            .contains("does not list the cutover step 'quiesce source"),
        "{err}"
    );

    // A source that can only stream with dd has no delta passes: refused,
    // with the reason.
    let dd_only = self::source(&sshd, &device, AgentPolicy::Never, &power_off);
    let plan = plan_for_lab(&dd_only, &lab, Some(cutover(&quiesce, 1))).await;
    let handle = engine::start(
        approve(plan),
        dd_only,
        lab.west(),
        &dir.path().join("state-dd"),
        EngineOptions::default(),
    )
    .unwrap();
    let err = handle.done.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("cutover refused"), "{err}");
    assert!(err.contains("delta passes need the agent"), "{err}");

    // Nothing changed anywhere.
    assert!(!dir.path().join("quiesced").exists(), "quiesce ran");
    assert!(!powered_off.exists(), "power-off ran");
    assert_eq!(std::fs::read(&device).unwrap(), before);
    let west = lab.root.join("lab-west");
    assert!(!west.join("instances").join(format!("{NAME}.toml")).exists());
    assert!(
        !state.join("audit.jsonl").exists()
            || std::fs::read_to_string(state.join("audit.jsonl"))
                .unwrap()
                .is_empty(),
        "a mutating call was audited"
    );
    assert!(source.agent_dirs().is_empty(), "the agent was copied");
}

/// Killed in the final pass (the engine task dropped mid-write, as a kill
/// leaves it), the next `apply` does not quiesce again, resumes the final
/// pass against what the target holds, powers off and ends byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_in_its_final_pass_resumes_there_and_ends_identical() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u64> = (0..60).collect();
    let device = source_disk(dir.path(), &data, &[]);
    let changed: Vec<u64> = (10..50).collect();
    let quiesce = quiesce_script(dir.path(), &device, &changed, &[5]);
    let (power_off, powered_off) = power_off_script(dir.path());
    let lab = Lab::new(dir.path());
    let state = dir.path().join("state");
    let first = source(&sshd, &device, AgentPolicy::Require, &power_off);
    let approved = approve(plan_for_lab(&first, &lab, Some(cutover(&quiesce, 1))).await);
    let journal = engine::run_dir(&state, &approved.hash().0).join("journal.jsonl");
    let options = EngineOptions {
        throttle: Some(Bytes::mib(8)),
        ..EngineOptions::default()
    };
    let mut handle = engine::start(
        approved.clone(),
        first.clone(),
        lab.west(),
        &state,
        options.clone(),
    )
    .unwrap();
    // Wait until blocks of the final pass (pass 3) are journaled, then kill.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        let final_blocks = text
            .lines()
            .filter(|l| l.contains("\"rec\":\"block\"") && l.contains("\"p\":3"))
            .count();
        if final_blocks >= 3 {
            break;
        }
        assert!(!handle.done.is_finished(), "the run ended before the kill");
        assert!(Instant::now() < deadline, "the final pass never started");
        while handle.events.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.done.abort();
    // The killed run's folder lock goes with its task and its handle.
    let _ = (&mut handle.done).await;
    drop(handle);
    assert!(
        !powered_off.exists(),
        "powered off before the final pass ended"
    );
    std::fs::remove_file(dir.path().join("quiesced")).unwrap();

    let second = source(&sshd, &device, AgentPolicy::Require, &power_off);
    let (report, passes) = run_passes(
        approved,
        second.clone(),
        &lab,
        &state,
        EngineOptions::default(),
    )
    .await;
    assert!(report.ok, "{report:#?}");
    assert!(report.resumed);
    assert!(
        !dir.path().join("quiesced").exists(),
        "the source was quiesced a second time"
    );
    assert!(powered_off.exists(), "the source was not powered off");
    // Only the final pass ran again; with what the first process wrote it
    // covers exactly the changed blocks and the zeroed one.
    let expected = changed.len() as u64 + 1;
    assert_eq!(passes.len(), 1, "{passes:?}");
    assert_eq!(
        (passes[0].0, passes[0].1, passes[0].2),
        (3, PassKind::Final, expected)
    );
    let kinds: Vec<PassKind> = report.disks[0].passes.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        vec![PassKind::Full, PassKind::Delta, PassKind::Final]
    );
    let disk = &report.disks[0];
    assert_eq!(disk.source_digest, disk.target_digest);
    assert!(cmp(&device, &lab.disk_of(NAME)), "the target differs");
}

/// With `agent = auto`, an agent that cannot run on the host (here: a file
/// that is no program) leaves the source streaming with dd, which has no
/// delta passes. The cutover stops right after opening the reader, before
/// the full copy, says why, and leaves the source running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_whose_agent_cannot_run_stops_before_the_full_copy() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let device = source_disk(dir.path(), &[0, 1, 2, 3], &[]);
    let quiesce = quiesce_script(dir.path(), &device, &[1], &[]);
    let (power_off, powered_off) = power_off_script(dir.path());
    let not_a_program = dir.path().join("altishift-not-a-program");
    std::fs::write(&not_a_program, "this is not an executable\n").unwrap();
    std::fs::set_permissions(&not_a_program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut settings = settings(&sshd, &device, AgentPolicy::Auto);
    settings.agent_binary = Some(not_a_program);
    let source = Arc::new(
        SshCloud::new("ssh-src", settings)
            .unwrap()
            .with_power_off_command(Some(power_off)),
    );
    let lab = Lab::new(dir.path());
    let plan = plan_for_lab(&source, &lab, Some(cutover(&quiesce, 1))).await;
    let (report, passes) = run_passes(
        approve(plan),
        source.clone(),
        &lab,
        &dir.path().join("state"),
        EngineOptions::default(),
    )
    .await;
    assert!(!report.ok, "{report:#?}");
    let disk = &report.disks[0];
    let error = disk.error.clone().unwrap_or_default();
    assert!(error.contains("agent could not run"), "{error}");
    assert_eq!(disk.bytes_sent, Bytes::ZERO, "the full copy ran anyway");
    assert!(passes.is_empty(), "{passes:?}");
    assert!(
        !dir.path().join("quiesced").exists(),
        "the source was quiesced"
    );
    assert!(!powered_off.exists(), "the source was powered off");
}
