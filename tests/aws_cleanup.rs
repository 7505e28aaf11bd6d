//! Leftovers on AWS (moto): a run killed between CreateSnapshot and its
//! journal line leaves a source snapshot no journal names. It carries the
//! plan's tag and the temporary tag, so abandoning the run finds and removes
//! it — and nothing of another plan, nor a snapshot that backs a disk.

use altishift_testkit::aws_kit as kit;
use altishift_testkit::moto;

use altishift::cloud::lab::LabCloud;
use altishift::cloud::{Cloud, DiskRef};
use altishift::engine::{self, EngineOptions};
use kit::*;
use moto::Moto;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoning_removes_a_tagged_snapshot_the_journal_never_recorded() {
    let moto = Moto::start();
    let (ec2, _) = sdk(&moto, "us-east-1");
    seed_instance(&ec2, "web", "t3.micro").await;
    seed_instance(&ec2, "db", "t3.micro").await;
    let source: Arc<dyn Cloud> = Arc::new(aws(&moto, "aws-src", "us-east-1").await);
    let dir = tempfile::tempdir().unwrap();
    let root = lab(dir.path());
    let target: Arc<dyn Cloud> =
        Arc::new(LabCloud::open("lab-west", &root.join("lab-west"), Some("US".into())).unwrap());
    let (si, ti) = (
        source.inventory().await.unwrap(),
        target.inventory().await.unwrap(),
    );
    let plan = |name: &str| {
        approve(plan_between(
            ("aws-src", "aws", &si),
            ("lab-west", "lab", &ti),
            &[name],
            None,
        ))
    };
    let (ours, other) = (plan("web"), plan("db"));
    let snapshot = |approved: &altishift::plan::Approved, name: &str| {
        let instance = si.instance(name).unwrap().clone();
        let cap = approved.capability();
        let short = approved.hash().short().to_string();
        let source = source.clone();
        let name = name.to_string();
        async move {
            let at = DiskRef {
                instance_id: instance.id.clone(),
                disk_id: instance.disks[0].id.clone(),
            };
            let label = format!("altishift-{short}-{name}-root");
            source
                .source_role()
                .unwrap()
                .snapshot_disk(&cap, &at, &label)
                .await
                .unwrap()
                .id
        }
    };
    // Taken as a run takes them, then "killed" before any journal line.
    let orphan = snapshot(&ours, "web").await;
    let unrelated = snapshot(&other, "db").await;
    // A snapshot that carries the plan's tag but backs a written disk (as
    // EBS direct StartSnapshot targets do) has no temporary tag.
    let (key, value) = ours.capability().tag();
    let volume = si.instance("web").unwrap().disks[0].id.clone();
    let kept = ec2
        .create_snapshot()
        .volume_id(volume.rsplit('/').next().unwrap())
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Snapshot)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key(&key)
                        .value(&value)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_string();

    let tag = ours.capability().tag();
    let found: Vec<String> = source
        .find_leftovers(&tag)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        orphan.ends_with(found[0].rsplit('/').next().unwrap()),
        "{found:?} vs {orphan}"
    );

    let options = EngineOptions {
        abandon: true,
        ..EngineOptions::default()
    };
    let handle = engine::start(
        ours,
        source.clone(),
        target,
        &dir.path().join("state"),
        options,
    )
    .unwrap();
    let report = handle.done.await.unwrap().unwrap().report;
    assert!(
        report
            .cleanup
            .iter()
            .any(|c| orphan.ends_with(c.resource.rsplit('/').next().unwrap())
                && c.outcome.starts_with("deleted")),
        "{:?}",
        report.cleanup
    );
    let left: Vec<String> = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_string))
        .collect();
    let bare = |id: &str| id.rsplit('/').next().unwrap().to_string();
    assert!(!left.contains(&bare(&orphan)), "the orphan is still there");
    assert!(
        left.contains(&bare(&unrelated)),
        "another plan's snapshot was removed"
    );
    assert!(
        left.contains(&kept),
        "a snapshot backing a disk was removed"
    );
}

/// A test migration onto AWS: the instance is deployed and validated, then
/// terminated, its AMI deregistered and the written snapshots deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_migration_onto_aws_leaves_no_instance_image_or_snapshot() {
    let moto = Moto::start();
    let (ec2, _) = sdk(&moto, "us-east-1");
    let dir = tempfile::tempdir().unwrap();
    let root = lab(dir.path());
    let east: Arc<dyn Cloud> =
        Arc::new(LabCloud::open("lab-east", &root.join("lab-east"), None).unwrap());
    let target = aws(&moto, "aws-test", "us-east-1").await;
    let (si, ti) = (
        east.inventory().await.unwrap(),
        target.inventory().await.unwrap(),
    );
    // (snapshot id, description) of the account, and its image count.
    let count = || async {
        let snapshots: Vec<(String, String)> = ec2
            .describe_snapshots()
            .owner_ids("self")
            .send()
            .await
            .unwrap()
            .snapshots()
            .iter()
            .map(|s| {
                (
                    s.snapshot_id().unwrap_or_default().to_string(),
                    s.description().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let images = ec2
            .describe_images()
            .owners("self")
            .send()
            .await
            .unwrap()
            .images()
            .len();
        (snapshots, images)
    };
    let before = count().await;
    let mut plan = plan_between(
        ("lab-east", "lab", &si),
        ("aws-test", "aws", &ti),
        &["web-1"],
        None,
    );
    plan.test_migration = true;
    altishift::plan::build::refresh(
        &mut plan,
        &altishift::plan::build::Throughput {
            bytes_per_second: 100_000_000,
            basis: "test".into(),
        },
    );
    let report = run(
        approve(plan),
        east,
        Arc::new(target),
        &dir.path().join("state"),
    )
    .await;
    assert!(report.ok, "{report:#?}");
    assert!(report.instances.iter().all(|i| i.validated));
    let removed: Vec<&str> = report
        .cleanup
        .iter()
        .filter(|c| c.outcome == "removed (test migration)")
        .map(|c| c.resource.as_str())
        .collect();
    assert!(removed[0].starts_with("instance"), "{:?}", report.cleanup);
    let id = report.instances[0].target_id.clone().unwrap();
    let id = id.rsplit('/').next().unwrap();
    let state = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string());
    assert!(
        matches!(state.as_deref(), Some("terminated" | "shutting-down")),
        "{state:?}"
    );
    let (snapshots, images) = count().await;
    assert_eq!(images, before.1, "the test's AMI was left");
    let new: Vec<&(String, String)> = snapshots.iter().filter(|s| !before.0.contains(s)).collect();
    // moto copies the snapshots of a registered AMI into "Auto-created
    // snapshot for AMI …" ones and keeps them after DeregisterImage; AWS
    // registers from the given snapshots without copying. Anything else
    // left is ours.
    assert!(
        new.iter()
            .all(|(_, d)| d.starts_with("Auto-created snapshot for AMI")),
        "snapshots of the test were left: {new:?}"
    );
}
