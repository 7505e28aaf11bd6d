//! A resource the cloud made is journaled before anything else can fail:
//! when the audit log cannot be written right after a deploy, the run fails
//! but its journal still names the instance, so `cleanup` can remove it.

use altishift_testkit::faulty;

use altishift::cloud::lab::generate::{self, LabScale};
use altishift::cloud::{Cloud, ResourceKind};
use altishift::engine::{self, EngineOptions};
use altishift::plan::approval;
use altishift::plan::build::{self, Request, Side, Throughput};
use faulty::Faulty;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_audit_write_fails_is_still_in_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate::init(&dir.path().join("lab"), LabScale::Small).unwrap();
    let config = altishift::config::Config::load(&summary.config).unwrap();
    let state = dir.path().join("state");
    let connect = |name: &'static str| {
        let config = config.clone();
        async move {
            altishift::cloud::connect(&config, name, &mut |_| None)
                .await
                .unwrap()
        }
    };
    let source = connect("lab-east").await;
    let west = connect("lab-west").await;
    let target: Arc<dyn Cloud> = Arc::new(Faulty {
        inner: Some(west.clone()),
        break_audit_after_deploy: Some(state.join("audit.jsonl")),
        ..Faulty::default()
    });
    let (si, ti) = (
        source.inventory().await.unwrap(),
        target.inventory().await.unwrap(),
    );
    let mut plan = build::build(
        &Side {
            cloud: "lab-east",
            provider: "lab".into(),
            jurisdiction: source.jurisdiction(),
            inventory: &si,
        },
        &Side {
            cloud: "lab-west",
            provider: "lab".into(),
            jurisdiction: west.jurisdiction(),
            inventory: &ti,
        },
        &Request {
            select: vec!["web-1".into()],
            ..Request::default()
        },
        &Throughput {
            bytes_per_second: 1 << 30,
            basis: "test".into(),
        },
        "tester",
    )
    .unwrap();
    let short = plan.hash().short().to_string();
    approval::approve(&mut plan, &short, true, "tester").unwrap();
    let approved = approval::verify(plan).unwrap();
    let hash = approved.hash().0.clone();
    let mut handle =
        engine::start(approved, source, target, &state, EngineOptions::default()).unwrap();
    while handle.events.recv().await.is_some() {}
    let outcome = handle.done.await.unwrap();
    let failed = match outcome {
        Ok(outcome) => !outcome.ok,
        Err(_) => true,
    };
    assert!(failed, "the run went on without its audit log");
    // The lab holds the deployed instance; the journal names it.
    let deployed = west.inventory().await.unwrap();
    let instance = deployed
        .instances
        .iter()
        .find(|i| i.name == "web-1")
        .expect("the instance was deployed");
    let journal = engine::run_dir(&state, &hash).join("journal.jsonl");
    let replayed = engine::journal::replay(&journal).unwrap();
    assert!(
        replayed
            .created
            .iter()
            .any(|r| r.kind == ResourceKind::Instance && r.id == instance.id),
        "the deployed instance {} is not in the journal: {:?}",
        instance.id,
        replayed.created
    );
    assert!(replayed.deployed.contains_key("web-1"));
}
