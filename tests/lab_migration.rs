//! The foundation's promises, told as an operator's stories on a real lab:
//! migrations are byte-identical, an interrupted run resumes without
//! resending, nothing changes without approval, bad input is named.

use altishift_testkit::cli as support;

use altishift::engine::RunReport;
use altishift::engine::event::TimedEvent;
use altishift::engine::journal;
use std::path::Path;
use support::{Lab, same_content, text, tree};

const EAST: [&str; 8] = [
    "web-1",
    "web-2",
    "db-1",
    "cache-1",
    "batch-1",
    "ci-runner",
    "legacy-app",
    "monitor",
];

fn report(lab: &Lab) -> RunReport {
    let runs = lab.state().join("runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .next()
        .expect("a run folder")
        .path();
    RunReport::load(&run.join("report.json")).unwrap()
}

fn instance_disks(lab_cloud: &Path, name: &str) -> Vec<(String, std::path::PathBuf)> {
    let text =
        std::fs::read_to_string(lab_cloud.join("instances").join(format!("{name}.toml"))).unwrap();
    let manifest: altishift::cloud::lab::manifest::InstanceManifest =
        toml::from_str(&text).unwrap();
    manifest
        .disks
        .into_iter()
        .map(|d| (d.id, lab_cloud.join(d.file)))
        .collect()
}

#[test]
fn lab_to_lab_migration_of_every_instance_is_byte_identical() {
    let lab = Lab::new();
    // qcow2 targets for every disk: raw sources are converted, qcow2 ones rewritten.
    let out = lab.plan(&EAST, &["--format", "qcow2"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(lab.approve().status.success());
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));

    let report = report(&lab);
    assert!(report.ok);
    assert_eq!(report.instances.len(), 8);
    // A successful run purges its verbose log.
    assert_eq!(report.debug_log.as_deref(), Some("debug log purged"));
    assert!(
        !lab.state()
            .join("runs")
            .join(&report.run_id)
            .join("debug.log")
            .exists()
    );
    for disk in &report.disks {
        assert_eq!(disk.status, "done", "{disk:?}");
        assert_eq!(disk.source_digest, disk.target_digest, "{}", disk.disk);
        assert!(
            disk.bytes_sent.0 < disk.allocated.0 + (1 << 20) * 4,
            "{}: sends allocated bytes, not virtual",
            disk.disk
        );
    }
    for name in EAST {
        let source = instance_disks(&lab.root().join("lab-east"), name);
        for (id, path) in source
            .iter()
            .filter(|(_, p)| p.extension().is_some_and(|e| e == "raw"))
        {
            let disk = report
                .disks
                .iter()
                .find(|d| d.disk == format!("{name}/{id}"))
                .unwrap();
            // Raw lab disks hold zero runs inside allocated extents (qcow2 drops them).
            assert!(
                disk.bytes_skipped.0 > 0,
                "{}: zero blocks were sent ({})",
                disk.disk,
                path.display()
            );
        }
        let target = instance_disks(&lab.root().join("lab-west"), name);
        assert_eq!(source.len(), target.len(), "{name}");
        for ((id, s), (_, t)) in source.iter().zip(&target) {
            assert!(
                same_content(s, t),
                "{name}/{id}: target content differs from source"
            );
            let check = std::process::Command::new("qemu-img")
                .args(["check", "-q"])
                .arg(t)
                .status()
                .unwrap();
            assert!(check.success(), "{name}/{id}: qemu-img check failed");
        }
    }
    // Snapshots and staging files were cleaned up.
    assert_eq!(
        std::fs::read_dir(lab.root().join("lab-east/snapshots"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(lab.root().join("lab-west/staging"))
            .unwrap()
            .count(),
        0
    );
    // The migrated instances are in the target's inventory with mapped sizes.
    let out = lab.run(&["inventory", "lab-west", "--json"]);
    let inventory: altishift::inventory::Inventory = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inventory.instance("db-1").unwrap().size, "w.large");
    // And the report is there for a person and a machine.
    let md = lab.run(&["report", &report.run_id]);
    assert!(
        String::from_utf8_lossy(&md.stdout).contains("migrated and validated"),
        "{}",
        text(&md)
    );
}

#[test]
fn raw_to_raw_keeps_holes_and_applying_twice_is_refused() {
    let lab = Lab::new();
    assert!(lab.plan(&["db-1"], &[]).status.success());
    assert!(lab.approve().status.success());
    let out = lab.apply(&["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    // Every stdout line is a JSON event with the time it happened.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() > 2, "events printed: {stdout}");
    for line in &lines {
        let timed: TimedEvent =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        humantime::parse_rfc3339(&timed.time).unwrap_or_else(|e| panic!("{line}: {e}"));
        // RFC 3339 in UTC with milliseconds: 2026-12-04T02:05:09.123Z
        let fraction = timed.time.rsplit('.').next().unwrap();
        assert!(
            fraction.len() == 4 && fraction.ends_with('Z'),
            "milliseconds: {line}"
        );
    }
    assert!(
        lines.first().unwrap().contains(r#""event":"run_started""#)
            && lines.last().unwrap().contains(r#""event":"run_finished""#),
        "{stdout}"
    );
    let target = lab.root().join("lab-west/disks/db-1-data1.raw");
    let allocated = altishift::cloud::local_disk::allocated_bytes(&target).unwrap();
    assert!(allocated.0 < 64 << 20, "target stays sparse: {allocated}");
    let again = lab.apply(&[]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already applied"), "{}", text(&again));
}

#[test]
fn killed_apply_resumes_without_resending_finished_blocks() {
    let lab = Lab::new();
    assert!(lab.plan(&["db-1"], &[]).status.success());
    assert!(lab.approve().status.success());
    // Slow enough to be killed mid-transfer; the JSON events say when blocks flow.
    let mut child = support::bin()
        .arg("--config")
        .arg(lab.config())
        .args([
            "apply",
            lab.plan_path().to_str().unwrap(),
            "--json",
            "--throttle",
            "4MiB/s",
            "--in-flight",
            "4",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    loop {
        let line = lines
            .next()
            .expect("events until some blocks were sent")
            .unwrap();
        let timed: TimedEvent = serde_json::from_str(&line).unwrap();
        if let altishift::engine::Event::Progress(p) = timed.event
            && p.bytes_sent.0 >= 3 << 20
        {
            break;
        }
    }
    // The engine is a process of its own: killing `apply` would only lose a
    // viewer. Kill the engine itself, as a crash or an OOM kill would.
    let run_dir = support::only_run_dir(&lab);
    support::kill_engine(&run_dir);
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();

    let state = journal::replay(&run_dir.join("journal.jsonl")).unwrap();
    let sent_before: usize = state.disks.values().map(|d| d.sent.len()).sum();
    assert!(sent_before > 0, "the first run journaled some blocks");
    assert!(state.finished.is_none());

    let out = lab.apply(&["--in-flight", "4"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = report(&lab);
    assert!(report.ok && report.resumed);
    let total: u64 = report
        .disks
        .iter()
        .map(|d| d.source_digest.as_ref().unwrap().blocks)
        .sum();
    let resent: u64 = report.disks.iter().map(|d| d.blocks_sent).sum();
    let in_flight_window = 4 * report.disks.len() as u64;
    assert!(
        resent <= total - sent_before as u64 + in_flight_window,
        "second run sent {resent} blocks; {total} in all, {sent_before} already journaled"
    );
    assert!(resent < total, "the second run must not start over");
    // The firewall and key, made before the kill, were reused from the
    // journal: each was asked of the target once.
    let audit = std::fs::read_to_string(lab.state().join("audit.jsonl")).unwrap();
    for action in ["create_firewall", "import_key"] {
        let asked = audit
            .lines()
            .filter(|l| l.contains(&format!("\"action\":\"{action}\"")))
            .filter(|l| l.contains("\"outcome\":\"started\""))
            .count();
        assert_eq!(asked, 1, "{action} asked {asked} times:\n{audit}");
    }
    let journal_after = journal::replay(&run_dir.join("journal.jsonl")).unwrap();
    assert!(
        journal_after
            .live_resources()
            .iter()
            .all(|(_, r)| !r.temporary),
        "cleanup removed every temporary"
    );
    for (id, source) in instance_disks(&lab.root().join("lab-east"), "db-1") {
        let target = lab.root().join(format!(
            "lab-west/disks/db-1-{id}.{}",
            source.extension().unwrap().to_string_lossy()
        ));
        assert!(
            same_content(&source, &target),
            "db-1/{id} differs after resume"
        );
    }
}

#[test]
fn unapproved_edited_or_wrongly_confirmed_plans_change_nothing() {
    let lab = Lab::new();
    assert!(lab.plan(&["web-1"], &[]).status.success());
    let east = tree(&lab.root().join("lab-east"));
    let west = tree(&lab.root().join("lab-west"));

    let out = lab.apply(&[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not approved"), "{}", text(&out));

    let plan = lab.plan_path();
    let out = lab.run(&[
        "approve",
        plan.to_str().unwrap(),
        "--confirm",
        "00000000",
        "--ack-cross-border",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("does not match"), "{}", text(&out));
    assert!(
        !std::fs::read_to_string(&plan)
            .unwrap()
            .contains("[approval]")
    );

    assert!(lab.approve().status.success());
    let edited = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("target_size = \"w.medium\"", "target_size = \"w.xlarge\"");
    std::fs::write(&plan, edited).unwrap();
    let out = lab.apply(&[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("changed since it was approved"),
        "{}",
        text(&out)
    );

    assert_eq!(
        east,
        tree(&lab.root().join("lab-east")),
        "source lab changed"
    );
    assert_eq!(
        west,
        tree(&lab.root().join("lab-west")),
        "target lab changed"
    );
}

#[test]
fn cross_border_plan_needs_acknowledgement() {
    let lab = Lab::new();
    let out = lab.plan(&["monitor"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("CROSS-BORDER"));
    let hash = lab.short_hash();
    let out = lab.run(&[
        "approve",
        lab.plan_path().to_str().unwrap(),
        "--confirm",
        &hash,
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("acknowledge"), "{}", text(&out));
    // Within the EU (DE → FR region of the same cloud) there is nothing to acknowledge.
    let plan = lab.plan_path();
    let out = lab.run(&[
        "plan",
        "--from",
        "lab-east",
        "--to",
        "lab-east",
        "--region",
        "eu-west-lab",
        "--select",
        "monitor",
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("CROSS-BORDER"),
        "{}",
        text(&out)
    );
}

#[test]
fn malformed_config_names_file_line_and_key() {
    let lab = Lab::new();
    let config = lab.config();
    let text_before = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text_before.replace(
            "path = \"lab-west\"",
            "path = \"lab-west\"\njurisdicton = \"US\"",
        ),
    )
    .unwrap();
    let out = lab.run(&["inventory", "lab-west"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml:11:"), "{err}");
    assert!(err.contains("did you mean 'jurisdiction'"), "{err}");
}

#[test]
fn malformed_plan_and_missing_instances_are_named() {
    let lab = Lab::new();
    let out = lab.plan(&["web-9"], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no instance 'web-9' in lab-east"),
        "{}",
        text(&out)
    );

    assert!(lab.plan(&["web-1"], &[]).status.success());
    let plan = lab.plan_path();
    let good = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, good.replace("wave = 1", "wave = \"first\"")).unwrap();
    let out = lab.run(&["plan", "show", plan.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("plan.toml:") && text(&out).contains("wave"),
        "{}",
        text(&out)
    );

    // A planned instance that disappeared before apply: refused before any change.
    std::fs::write(&plan, &good).unwrap();
    assert!(lab.approve().status.success());
    std::fs::remove_file(lab.root().join("lab-east/instances/web-1.toml")).unwrap();
    let west = tree(&lab.root().join("lab-west"));
    let out = lab.apply(&[]);
    assert!(!out.status.success());
    // Named before anything connects to write: the approval's check of the
    // clouds finds the instance gone.
    assert!(
        text(&out).contains("instance 'web-1' is no longer in cloud 'lab-east'"),
        "{}",
        text(&out)
    );
    assert_eq!(west, tree(&lab.root().join("lab-west")));
}

#[test]
fn a_disk_that_disappears_fails_alone() {
    let lab = Lab::new();
    assert!(lab.plan(&["web-1", "monitor"], &[]).status.success());
    assert!(lab.approve().status.success());
    std::fs::remove_file(lab.root().join("lab-east/disks/monitor-root.raw")).unwrap();
    let out = lab.apply(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("monitor/root: FAILED") && all.contains("monitor-root.raw"),
        "{all}"
    );
    let report = report(&lab);
    let web = report
        .instances
        .iter()
        .find(|i| i.instance == "web-1")
        .unwrap();
    assert!(web.validated, "the other instance still migrates");
    assert!(lab.root().join("lab-west/instances/web-1.toml").exists());
    // A failed run keeps its verbose log for the post-mortem.
    assert!(
        report
            .debug_log
            .as_deref()
            .unwrap_or_default()
            .contains("kept"),
        "{:?}",
        report.debug_log
    );
    let log = std::fs::read_to_string(
        lab.state()
            .join("runs")
            .join(&report.run_id)
            .join("debug.log"),
    )
    .unwrap();
    assert!(
        log.contains("monitor/root") && log.contains("failed"),
        "{log}"
    );
    assert!(
        !lab.root().join("lab-west/instances/monitor.toml").exists(),
        "nothing half-deployed"
    );
}

#[test]
fn a_planted_secret_never_leaves_memory() {
    const PLANTED: &str = "PLANTED-s3cr3t-7c1d9e";
    let lab = Lab::new();
    let config = lab.config();
    let with_token = std::fs::read_to_string(&config).unwrap().replace(
        "path = \"lab-west\"",
        "path = \"lab-west\"\ntoken = \"env:ALTISHIFT_TEST_LAB_TOKEN\"",
    );
    std::fs::write(&config, with_token).unwrap();
    let run = |args: &[&str]| {
        support::bin()
            .env("ALTISHIFT_TEST_LAB_TOKEN", PLANTED)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let plan = lab.plan_path();
    let mut outputs = vec![
        run(&["inventory", "lab-west", "--json"]),
        run(&[
            "plan",
            "--from",
            "lab-east",
            "--to",
            "lab-west",
            "--select",
            "web-1",
            "-o",
            plan.to_str().unwrap(),
        ]),
    ];
    let hash = lab.short_hash();
    outputs.push(run(&[
        "approve",
        plan.to_str().unwrap(),
        "--confirm",
        &hash,
        "--ack-cross-border",
    ]));
    outputs.push(run(&[
        "apply",
        plan.to_str().unwrap(),
        "--json",
        "--keep-debug-log",
    ]));
    assert!(
        outputs.last().unwrap().status.success(),
        "{}",
        text(outputs.last().unwrap())
    );
    let report = report(&lab);
    assert!(
        report.revoked.iter().any(|r| r.contains("token wiped")),
        "{:?}",
        report.revoked
    );
    // The verbose log was kept on purpose here, so the scan below reads it too.
    assert!(
        lab.state()
            .join("runs")
            .join(&report.run_id)
            .join("debug.log")
            .exists()
    );
    outputs.push(run(&["report", &report.run_id, "--json"]));
    for out in &outputs {
        assert!(
            !text(out).contains(PLANTED),
            "secret in output: {}",
            text(out)
        );
    }
    for (file, _) in tree(lab.dir.path()) {
        // Only allocated bytes can hold a secret: read the data extents of
        // the (sparse, GiB-sized) disk images rather than their holes.
        // The run's socket is not a file, and goes with its engine.
        let path = lab.dir.path().join(&file);
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let handle = std::fs::File::open(&path).unwrap();
        for extent in altishift::cloud::local_disk::data_extents(&handle).unwrap() {
            let mut bytes = vec![0u8; (extent.end - extent.start) as usize];
            std::os::unix::fs::FileExt::read_exact_at(&handle, &mut bytes, extent.start).unwrap();
            assert!(
                !bytes
                    .windows(PLANTED.len())
                    .any(|w| w == PLANTED.as_bytes()),
                "secret found in {}",
                file.display()
            );
        }
    }
}

#[test]
fn an_abandoned_run_leaves_no_temporaries_and_cannot_resume() {
    let lab = Lab::new();
    assert!(lab.plan(&["db-1"], &[]).status.success());
    assert!(lab.approve().status.success());
    let mut child = support::bin()
        .arg("--config")
        .arg(lab.config())
        .args([
            "apply",
            lab.plan_path().to_str().unwrap(),
            "--json",
            "--throttle",
            "2MiB/s",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    // Wait until all three disks transfer: their snapshots and staging
    // files exist and are journaled by then.
    let mut transferring = std::collections::BTreeSet::new();
    while transferring.len() < 3 {
        let line = lines.next().expect("events").unwrap();
        let timed: TimedEvent = serde_json::from_str(&line).unwrap();
        if let altishift::engine::Event::Stage {
            disk,
            stage: altishift::engine::Stage::Transfer,
        } = timed.event
        {
            transferring.insert(disk);
        }
    }
    // Kill the engine (a crash), and the viewer with it.
    support::kill_engine(&support::only_run_dir(&lab));
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let kept = |dir: &str| std::fs::read_dir(lab.root().join(dir)).unwrap().count();
    assert!(kept("lab-east/snapshots") > 0 && kept("lab-west/staging") > 0);

    let out = lab.run(&["cleanup", lab.plan_path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let left: Vec<_> = std::fs::read_dir(lab.root().join("lab-east/snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "snapshots left: {left:?}\n{}", text(&out));
    assert_eq!(kept("lab-west/staging"), 0, "staging removed");
    let out = lab.apply(&[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("abandoned"), "{}", text(&out));
}
