//! The run-wide bandwidth budget through the engine on a real lab: a live
//! `SetBandwidth` is logged and written to the audit log, and lifting it
//! lets the run finish. (The limiter's fairness and pacing are tested on a
//! paused clock next to it, in crates/engine/src/budget.rs.)

use altishift::cloud::Cloud;
use altishift::cloud::lab::generate::{self, LabScale};
use altishift::engine::audit::AuditEntry;
use altishift::engine::{self, Command, EngineOptions, Event};
use altishift::inventory::Inventory;
use altishift::plan::approval;
use altishift::plan::build::{self, Request, Side, Throughput};
use altishift::units::Bytes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_budget_change_is_logged_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate::init(&dir.path().join("lab"), LabScale::Small).unwrap();
    let config = altishift::config::Config::load(&summary.config).unwrap();
    let state = dir.path().join("state");
    let source = altishift::cloud::connect(&config, "lab-east", &mut |_| None)
        .await
        .unwrap();
    let target = altishift::cloud::connect(&config, "lab-west", &mut |_| None)
        .await
        .unwrap();
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
        select: vec!["web-2".into()],
        ..Request::default()
    };
    let throughput = Throughput {
        bytes_per_second: 1 << 30,
        basis: "test".into(),
    };
    let mut plan = build::build(
        &side(&*source, &si),
        &side(&*target, &ti),
        &request,
        &throughput,
        "tester",
    )
    .unwrap();
    let short = plan.hash().short().to_string();
    approval::approve(&mut plan, &short, true, "tester").unwrap();
    let approved = approval::verify(plan).unwrap();
    // 1 MiB/s: the run cannot finish before the budget is lifted.
    let options = EngineOptions {
        bandwidth: Some(Bytes::mib(1)),
        ..EngineOptions::default()
    };
    let mut handle = engine::start(approved, source, target, &state, options).unwrap();
    let mut logs = Vec::new();
    while let Some(event) = handle.events.recv().await {
        match event {
            Event::RunStarted { .. } => {
                handle
                    .commands
                    .send(Command::SetBandwidth {
                        rate: Some(Bytes::mib(2)),
                    })
                    .unwrap();
                handle
                    .commands
                    .send(Command::SetBandwidth { rate: None })
                    .unwrap();
            }
            Event::Log { message, .. } => logs.push(message),
            _ => {}
        }
    }
    let outcome = handle.done.await.unwrap().unwrap();
    assert!(outcome.ok, "{}", outcome.report.to_markdown());
    for line in [
        "bandwidth budget: 1.0 MiB/s for the whole run, shared by every disk",
        "bandwidth budget set to 2.0 MiB/s for the whole run",
        "bandwidth budget set to unlimited for the whole run",
    ] {
        assert!(logs.iter().any(|l| l == line), "no '{line}' in {logs:#?}");
    }
    let audit = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    let changes: Vec<AuditEntry> = audit
        .lines()
        .map(|l| serde_json::from_str::<AuditEntry>(l).unwrap())
        .filter(|e| e.action == "set_bandwidth")
        .collect();
    let resources: Vec<&str> = changes.iter().map(|e| e.resource.as_str()).collect();
    assert_eq!(resources, vec!["2.0 MiB/s", "unlimited"], "{audit}");
    assert!(
        changes
            .iter()
            .all(|e| e.operator == "tester" && e.outcome == "ok")
    );
    assert!(
        changes
            .iter()
            .all(|e| e.plan_hash == outcome.report.plan_hash)
    );
}
