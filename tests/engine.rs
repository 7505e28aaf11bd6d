//! The engine through its library API: per-disk control, retries and
//! permanent failures, with a fault-injecting wrapper around a real lab.

use altishift_testkit::faulty;

use faulty::Faulty;

use altishift::cloud::lab::generate::{self, LabScale};
use altishift::cloud::{Cloud, CreatedResource, WriteOrder};
use altishift::engine::{self, Command, EngineOptions, Event, RetryPolicy, Stage};
use altishift::inventory::Inventory;
use altishift::plan::approval;
use altishift::plan::build::{self, Request, Side, Throughput};
use altishift::units::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

struct Lab {
    _dir: tempfile::TempDir,
    config: altishift::config::Config,
    state: std::path::PathBuf,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate::init(&dir.path().join("lab"), LabScale::Small).unwrap();
    let config = altishift::config::Config::load(&summary.config).unwrap();
    let state = dir.path().join("state");
    Lab {
        _dir: dir,
        config,
        state,
    }
}

async fn connect(lab: &Lab, name: &str) -> Arc<dyn Cloud> {
    altishift::cloud::connect(&lab.config, name, &mut |_| None)
        .await
        .unwrap()
}

async fn approved(source: &dyn Cloud, target: &dyn Cloud, select: &[&str]) -> approval::Approved {
    let (si, ti) = (
        source.inventory().await.unwrap(),
        target.inventory().await.unwrap(),
    );
    fn side<'a>(cloud: &'a dyn Cloud, inventory: &'a Inventory) -> Side<'a> {
        Side {
            cloud: cloud.name(),
            provider: "lab".into(),
            jurisdiction: cloud.jurisdiction(),
            inventory,
        }
    }
    let request = Request {
        select: select.iter().map(|s| s.to_string()).collect(),
        ..Request::default()
    };
    let throughput = Throughput {
        bytes_per_second: 1 << 30,
        basis: "test".into(),
    };
    let mut plan = build::build(
        &side(source, &si),
        &side(target, &ti),
        &request,
        &throughput,
        "tester",
    )
    .unwrap();
    let short = plan.hash().short().to_string();
    approval::approve(&mut plan, &short, true, "tester").unwrap();
    approval::verify(plan).unwrap()
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 6,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

/// Collects events until the run finishes, driving `on_event` for each.
async fn drive(
    mut handle: engine::RunHandle,
    mut on_event: impl FnMut(&Event, &tokio::sync::mpsc::UnboundedSender<Command>),
) -> engine::RunOutcome {
    while let Some(event) = handle.events.recv().await {
        on_event(&event, &handle.commands);
    }
    handle.done.await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_disk_waits_for_resume_and_a_cancelled_one_stops_alone() {
    let lab = lab();
    let (source, target) = (
        connect(&lab, "lab-east").await,
        connect(&lab, "lab-west").await,
    );
    let approved = approved(&*source, &*target, &["web-1", "db-1"]).await;
    let options = EngineOptions {
        throttle: Some(Bytes::mib(8)),
        retry: quick_retries(),
        ..EngineOptions::default()
    };
    let handle = engine::start(approved, source, target, &lab.state, options).unwrap();
    let (paused, cancelled) = ("db-1/data1".to_string(), "web-1/root".to_string());
    let mut finished = Vec::new();
    let mut saw_paused = false;
    let mut resumed = false;
    let outcome = drive(handle, |event, commands| match event {
        Event::RunStarted { .. } => {
            commands
                .send(Command::Pause {
                    disk: paused.clone(),
                })
                .unwrap();
            commands
                .send(Command::Cancel {
                    disk: cancelled.clone(),
                })
                .unwrap();
        }
        Event::Stage {
            disk,
            stage: Stage::Paused,
        } if *disk == paused => saw_paused = true,
        Event::DiskFinished { disk, .. } => {
            assert!(resumed || *disk != paused, "{paused} finished while paused");
            finished.push(disk.clone());
            // Once the other db-1 disks are through, let the paused one go on.
            if !resumed && finished.iter().filter(|d| d.starts_with("db-1/")).count() == 2 {
                resumed = true;
                commands
                    .send(Command::Resume {
                        disk: paused.clone(),
                    })
                    .unwrap();
            }
        }
        _ => {}
    })
    .await;
    assert!(saw_paused);
    assert!(finished.contains(&paused), "resumed disk finished");
    assert!(!finished.contains(&cancelled));
    let report = outcome.report;
    assert!(!report.ok, "a cancelled disk makes the run incomplete");
    let web = report
        .instances
        .iter()
        .find(|i| i.instance == "web-1")
        .unwrap();
    assert!(
        !web.validated && web.target_id.is_none(),
        "web-1 not deployed"
    );
    let db = report
        .instances
        .iter()
        .find(|i| i.instance == "db-1")
        .unwrap();
    assert!(db.validated, "{:?}", db.checks);
    assert_eq!(
        report
            .disks
            .iter()
            .find(|d| d.disk == cancelled)
            .unwrap()
            .status,
        "cancelled"
    );
    // Whatever the cancelled disk had created (its snapshot, if the cancel
    // came after it) is kept for a resume, never deleted.
    let web_resources: Vec<_> = report
        .cleanup
        .iter()
        .filter(|c| c.resource.contains("web-1"))
        .collect();
    assert!(
        web_resources.iter().all(|c| c.outcome.starts_with("kept")),
        "{web_resources:?}"
    );
    assert!(
        report
            .cleanup
            .iter()
            .filter(|c| c.resource.contains("db-1"))
            .all(|c| c.outcome == "deleted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_and_a_permanent_one_fails_only_its_disk() {
    let lab = lab();
    let source = connect(&lab, "lab-east").await;
    let failures = Arc::new(AtomicU32::new(0));
    let target: Arc<dyn Cloud> = Arc::new(Faulty {
        inner: Some(connect(&lab, "lab-west").await),
        broken_disk: "ci-runner-root".into(),
        transient_failures: failures.clone(),
        flaky: true,
        ..Faulty::default()
    });
    let approved = approved(&*source, &*target, &["web-2", "ci-runner"]).await;
    let options = EngineOptions {
        retry: quick_retries(),
        ..EngineOptions::default()
    };
    let handle = engine::start(approved, source, target, &lab.state, options).unwrap();
    let mut failed = Vec::new();
    let outcome = drive(handle, |event, _| {
        if let Event::DiskFailed { disk, error } = event {
            failed.push((disk.clone(), error.clone()));
        }
    })
    .await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "ci-runner/root");
    assert!(
        failed[0].1.contains("403 quota exceeded"),
        "{}",
        failed[0].1
    );
    let report = outcome.report;
    let web = report
        .instances
        .iter()
        .find(|i| i.instance == "web-2")
        .unwrap();
    assert!(
        web.validated,
        "retried disks arrive intact: {:?}",
        web.checks
    );
    let retries: u32 = report
        .disks
        .iter()
        .filter(|d| d.disk.starts_with("web-2/"))
        .map(|d| d.retries)
        .sum();
    assert!(failures.load(Ordering::Relaxed) > 0);
    assert_eq!(
        retries,
        failures.load(Ordering::Relaxed),
        "every transient failure was retried and counted"
    );
    // The audit log holds every mutating action with the plan hash and no gaps.
    let audit = std::fs::read_to_string(lab.state.join("audit.jsonl")).unwrap();
    let entries: Vec<altishift::engine::audit::AuditEntry> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        entries
            .iter()
            .all(|e| e.plan_hash == report.plan_hash && e.operator == "tester")
    );
    assert!(
        entries
            .iter()
            .any(|e| e.action == "write_disk" && e.outcome.contains("403"))
            || entries.iter().any(|e| e.action == "deploy_instance")
    );
    assert_eq!(
        entries.iter().filter(|e| e.outcome == "started").count(),
        entries.iter().filter(|e| e.outcome != "started").count(),
        "every started action has an outcome"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_lab_instance_is_deleted_by_its_id() {
    let lab = lab();
    let (source, target) = (
        connect(&lab, "lab-east").await,
        connect(&lab, "lab-west").await,
    );
    let approved = approved(&*source, &*target, &["monitor"]).await;
    let cap = approved.capability();
    let handle = engine::start(
        approved,
        source,
        target.clone(),
        &lab.state,
        EngineOptions::default(),
    )
    .unwrap();
    let outcome = drive(handle, |_, _| {}).await;
    assert!(outcome.ok);
    let id = outcome.report.instances[0].target_id.clone().unwrap();
    assert!(
        target
            .inventory()
            .await
            .unwrap()
            .instance("monitor")
            .is_some()
    );
    let resource = CreatedResource {
        cloud: "lab-west".into(),
        kind: altishift::cloud::ResourceKind::Instance,
        id,
        temporary: false,
    };
    target.delete(&cap, &resource).await.unwrap();
    assert!(
        target
            .inventory()
            .await
            .unwrap()
            .instance("monitor")
            .is_none()
    );
    // Deleting again is not an error: clean-up is idempotent.
    target.delete(&cap, &resource).await.unwrap();
}

/// A reopened writer that could not keep what the interrupted run wrote
/// (`restarted()`): the engine records it, forgets the disk's journaled
/// blocks and sends everything again from block 0 — the staging file was
/// emptied, so anything not resent would fail the digest check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_restarted_gets_the_whole_disk_again() {
    let lab = lab();
    let source = connect(&lab, "lab-east").await;
    let west = connect(&lab, "lab-west").await;
    let west_path = lab.config.clouds["lab-west"].values()["path"]
        .as_str()
        .unwrap();
    let staging = lab
        .config
        .resolve(std::path::Path::new(west_path))
        .join("staging");
    let first: Arc<dyn Cloud> = Arc::new(Faulty {
        inner: Some(west.clone()),
        fail_after: Some(3),
        ..Faulty::default()
    });
    let approved = approved(&*source, &*first, &["monitor"]).await;
    let options = EngineOptions {
        retry: quick_retries(),
        in_flight: Some(1),
        ..EngineOptions::default()
    };
    let handle = engine::start(
        approved.clone(),
        source.clone(),
        first,
        &lab.state,
        options.clone(),
    )
    .unwrap();
    assert!(
        !drive(handle, |_, _| {}).await.ok,
        "the first run must fail"
    );
    let journal = engine::run_dir(&lab.state, &approved.hash().0).join("journal.jsonl");
    let key = "monitor/root".to_string();
    let before = altishift::engine::journal::replay(&journal)
        .unwrap()
        .disk(&key);
    assert_eq!(before.sent.len(), 3, "the first run journaled its blocks");

    let written = Arc::new(std::sync::Mutex::new(Vec::new()));
    let second: Arc<dyn Cloud> = Arc::new(Faulty {
        inner: Some(west),
        forget_on_reopen: Some(staging),
        written: written.clone(),
        ..Faulty::default()
    });
    let handle = engine::start(approved, source, second, &lab.state, options).unwrap();
    let outcome = drive(handle, |_, _| {}).await;
    assert!(outcome.ok, "{:#?}", outcome.report);
    let disk = &outcome.report.disks[0];
    assert_eq!(disk.source_digest, disk.target_digest);
    assert_eq!(disk.bytes_resumed, Bytes(0), "{disk:?}");
    let written = written.lock().unwrap().clone();
    for index in before.sent.keys() {
        assert!(
            written.contains(&index.0),
            "block {} not sent again",
            index.0
        );
    }
    assert_eq!(written.len() as u64, disk.blocks_sent);
    let after = altishift::engine::journal::replay(&journal).unwrap();
    assert!(after.disk(&key).restarted, "the restart is journaled");
}

/// A cutover needs a target that takes blocks in any order and a source
/// that can send deltas: both are refused at preflight, before any change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_onto_an_in_order_writer_or_from_a_source_without_deltas_is_refused() {
    let lab = lab();
    let source = connect(&lab, "lab-east").await;
    let west = connect(&lab, "lab-west").await;
    let sequential: Arc<dyn Cloud> = Arc::new(Faulty {
        inner: Some(west.clone()),
        order: Some(WriteOrder::Sequential),
        ..Faulty::default()
    });
    for (target, expected) in [
        (sequential, "only in order"),
        (west, "cannot send only changed blocks"),
    ] {
        let approved = approved(&*source, &*target, &["monitor"]).await;
        let mut plan = approved.plan().clone();
        plan.cutover = Some(altishift::plan::Cutover {
            quiesce: None,
            thaw: None,
            power_off: true,
            max_delta_passes: 2,
        });
        build::refresh(
            &mut plan,
            &Throughput {
                bytes_per_second: 1 << 30,
                basis: "test".into(),
            },
        );
        let short = plan.hash().short().to_string();
        approval::approve(&mut plan, &short, true, "tester").unwrap();
        let approved = approval::verify(plan).unwrap();
        let handle = engine::start(
            approved,
            source.clone(),
            target,
            &lab.state.join(expected.replace(' ', "-")),
            EngineOptions::default(),
        )
        .unwrap();
        let err = handle.done.await.unwrap().unwrap_err().to_string();
        assert!(err.contains("cutover refused"), "{err}");
        assert!(err.contains(expected), "{err}");
        assert!(err.contains("nothing was changed"), "{err}");
    }
}

/// A process killed between the source creating a snapshot and the journal
/// recording it leaves a snapshot no journal names. Abandoning the run finds
/// it by the plan's tag and removes it; another plan's snapshot stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoning_removes_a_snapshot_the_journal_never_recorded() {
    use altishift::cloud::DiskRef;
    let lab = lab();
    let east = connect(&lab, "lab-east").await;
    let west = connect(&lab, "lab-west").await;
    let ours = approved(&*east, &*west, &["web-1"]).await;
    let other = approved(&*east, &*west, &["monitor"]).await;
    let instance = east.inventory().await.unwrap();
    let web = instance.instance("web-1").unwrap().clone();
    let monitor = instance.instance("monitor").unwrap().clone();
    let snap = |approved: &approval::Approved, i: &altishift::inventory::Instance| {
        let (short, i) = (approved.hash().short().to_string(), i.clone());
        let cap = approved.capability();
        let east = east.clone();
        async move {
            let at = DiskRef {
                instance_id: i.id.clone(),
                disk_id: i.disks[0].id.clone(),
            };
            let name = format!("altishift-{short}-{}-{}", i.name, at.disk_id);
            east.source_role()
                .unwrap()
                .snapshot_disk(&cap, &at, &name)
                .await
                .unwrap()
                .id
        }
    };
    // Made as a run would, then "killed" before any journal line.
    let orphan = snap(&ours, &web).await;
    let unrelated = snap(&other, &monitor).await;
    let tag = ours.capability().tag();
    let found: Vec<String> = east
        .find_leftovers(&tag)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(found, vec![orphan.clone()]);

    let options = EngineOptions {
        abandon: true,
        ..EngineOptions::default()
    };
    let handle = engine::start(ours, east.clone(), west.clone(), &lab.state, options).unwrap();
    let outcome = handle.done.await.unwrap().unwrap();
    let cleanup: Vec<(String, String)> = outcome
        .report
        .cleanup
        .iter()
        .map(|c| (c.resource.clone(), c.outcome.clone()))
        .collect();
    assert!(
        cleanup
            .iter()
            .any(|(r, o)| r.contains(&orphan) && o.starts_with("deleted")),
        "{cleanup:?}"
    );
    assert!(east.find_leftovers(&tag).await.unwrap().is_empty());
    let other_tag = other.capability().tag();
    let still: Vec<String> = east
        .find_leftovers(&other_tag)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        still,
        vec![unrelated],
        "another plan's snapshot was touched"
    );
}

/// A test migration: the copy is deployed and validated, then the target
/// instance and its disks are removed, and the report says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_migration_validates_then_removes_the_target() {
    let lab = lab();
    let east = connect(&lab, "lab-east").await;
    let west = connect(&lab, "lab-west").await;
    let (si, ti) = (
        east.inventory().await.unwrap(),
        west.inventory().await.unwrap(),
    );
    let side = |cloud: &'static str, inventory| Side {
        cloud,
        provider: "lab".into(),
        jurisdiction: Some("DE".into()),
        inventory,
    };
    let request = Request {
        select: vec!["web-2".into()],
        test_migration: true,
        ..Request::default()
    };
    let throughput = Throughput {
        bytes_per_second: 1 << 30,
        basis: "test".into(),
    };
    let mut plan = build::build(
        &side("lab-east", &si),
        &side("lab-west", &ti),
        &request,
        &throughput,
        "tester",
    )
    .unwrap();
    assert!(
        plan.actions
            .iter()
            .any(|a| a.verb == altishift::plan::ActionVerb::RemoveTestTarget
                && a.resource == "web-2"),
        "the removal is part of what is approved"
    );
    let short = plan.hash().short().to_string();
    approval::approve(&mut plan, &short, true, "tester").unwrap();
    let approved = approval::verify(plan).unwrap();
    let handle = engine::start(
        approved,
        east.clone(),
        west.clone(),
        &lab.state,
        EngineOptions::default(),
    )
    .unwrap();
    let report = handle.done.await.unwrap().unwrap().report;
    assert!(report.ok, "{report:#?}");
    assert!(report.instances.iter().all(|i| i.validated), "{report:#?}");
    let removed: Vec<&str> = report
        .cleanup
        .iter()
        .filter(|c| c.outcome == "removed (test migration)")
        .map(|c| c.resource.as_str())
        .collect();
    // The instance, the key and firewall made for it, its two written disks.
    assert_eq!(removed.len(), 5, "{:?}", report.cleanup);
    assert!(
        removed.contains(&"firewall web-lab-east") && removed.contains(&"sshkey ops-lab-east"),
        "{removed:?}"
    );
    assert!(
        removed[0].starts_with("instance"),
        "instances go first: {removed:?}"
    );
    let after = west.inventory().await.unwrap();
    assert!(
        after.instance("web-2").is_none(),
        "the test target is still there"
    );
    assert_eq!(after.instances.len(), ti.instances.len());
    assert_eq!(
        after.firewalls, ti.firewalls,
        "the firewall made for it is gone"
    );
    assert_eq!(
        after.ssh_keys, ti.ssh_keys,
        "the key imported for it is gone"
    );
    let disks = lab._dir.path().join("lab/lab-west/disks");
    let left: Vec<String> = std::fs::read_dir(&disks)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("web-2"))
        .collect();
    assert!(left.is_empty(), "written disks left behind: {left:?}");
}
