//! A cutover from a running EC2 instance into the lab, on moto: successive
//! EBS snapshots while the guest keeps writing (support/ebs_volume.rs gives
//! the moto volume a body and snapshots it through EBS direct), delta passes
//! of the blocks EBS direct `ListChangedBlocks` lists, the instance stopped
//! through EC2 before the final snapshot, and a byte-identical target. When
//! ListChangedBlocks is refused, the fresh snapshot's blocks are hashed
//! against what the target holds instead, and writes into holes arrive too.

use altishift_testkit::aws_kit;
use altishift_testkit::ebs_volume;
use altishift_testkit::moto;
use altishift_testkit::run_kit;

use altishift::cloud::aws::AwsCloud;
use altishift::cloud::lab::LabCloud;
use altishift::cloud::{Cloud, CutoverSource, Source};
use altishift::engine::event::PassKind;
use altishift::engine::{self, EngineOptions, Event};
use altishift::plan::Cutover;
use altishift::plan::build::{Request, Side, build};
use altishift::secret::Secret;
use altishift::units::BLOCK_SIZE;
use aws_kit::pattern;
use ebs_volume::{Volume, VolumeProxy, Write};
use moto::Moto;
use std::collections::VecDeque;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const REGION: &str = "us-east-1";

/// What one cutover did: its passes (kind, blocks sent), and the proxy's
/// record of the volume.
struct Outcome {
    passes: Vec<(PassKind, u64)>,
    final_disk: Vec<u8>,
    copy: Vec<u8>,
    changed_block_calls: usize,
    stops: u32,
    state: String,
    /// Source stopped → target validated, from the run's report.
    downtime_ms: Option<u64>,
}

/// Runs an AWS → lab cutover of an instance whose 1 GiB volume starts with
/// data in `initial`; `during` lands before the delta pass's snapshot,
/// `before_stop` as the instance stops.
async fn cutover(
    initial: &[u64],
    during: Vec<Write>,
    before_stop: Vec<Write>,
    refuse_changed_blocks: bool,
) -> Outcome {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ec2, _) = aws_kit::sdk(&moto, REGION);
    let (instance_id, volume_id) =
        aws_kit::seed_instance_where(&ec2, "db", "t3.small", |i| i.platform().is_none()).await;
    let file = dir.path().join("volume.raw");
    {
        let f = std::fs::File::create(&file).unwrap();
        f.set_len(1 << 30).unwrap();
        for &i in initial {
            f.write_all_at(&pattern(1, i), i * BLOCK_SIZE).unwrap();
        }
    }
    let proxy = VolumeProxy::start(
        &moto.endpoint,
        Volume {
            volume_id,
            file: file.clone(),
            before_snapshot: VecDeque::from([Vec::new(), during]),
            before_stop,
            refuse_changed_blocks,
            ..Volume::default()
        },
    )
    .await;
    let source = Arc::new(aws_on(&proxy.endpoint).await);
    source.cutover_support(&instance_id).await.unwrap();
    let root = aws_kit::lab(dir.path());
    let west = Arc::new(LabCloud::open("lab-west", &root.join("lab-west"), None).unwrap());
    let plan = build(
        &Side {
            cloud: "aws-src",
            provider: "aws".into(),
            jurisdiction: None,
            inventory: &source.inventory().await.unwrap(),
        },
        &Side {
            cloud: "lab-west",
            provider: "lab".into(),
            jurisdiction: None,
            inventory: &west.inventory().await.unwrap(),
        },
        &Request {
            select: vec!["db".into()],
            cutover: Some(Cutover {
                quiesce: None,
                thaw: None,
                power_off: true,
                max_delta_passes: 1,
            }),
            ..Request::default()
        },
        &run_kit::throughput(),
        "tester@localhost",
    )
    .unwrap();
    assert!(
        proxy.state().snapshots.is_empty() && proxy.state().stops == 0,
        "planning changed the source"
    );
    let mut handle = engine::start(
        run_kit::approve(plan),
        source.clone(),
        west,
        &dir.path().join("state"),
        EngineOptions::default(),
    )
    .unwrap();
    let mut passes = Vec::new();
    while let Some(event) = handle.events.recv().await {
        if let Event::PassFinished {
            kind, blocks_sent, ..
        } = event
        {
            passes.push((kind, blocks_sent));
        }
    }
    let report = handle.done.await.unwrap().unwrap().report;
    assert!(report.ok, "{report:#?}");
    let copy = lab_copy(&root.join("lab-west"), "db");
    let described = ec2
        .describe_instances()
        .instance_ids(&instance_id)
        .send()
        .await
        .unwrap();
    let state = described.reservations()[0].instances()[0]
        .state()
        .and_then(|s| s.name())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let v = proxy.state();
    let downtime_ms = report.instances.first().and_then(|i| i.downtime_ms);
    Outcome {
        passes,
        final_disk: std::fs::read(&file).unwrap(),
        copy,
        changed_block_calls: v.changed_blocks_calls.len(),
        stops: v.stops,
        state,
        downtime_ms,
    }
}

/// A provider on `endpoint` (the proxy in front of moto), fast polls.
async fn aws_on(endpoint: &str) -> AwsCloud {
    let profile = altishift::cloud::aws::profile::AwsProfile {
        region: Some(REGION.into()),
        endpoint: Some(endpoint.into()),
        api_key: Some(altishift::secret::SecretSource::Prompt),
        secret_key: Some(altishift::secret::SecretSource::Prompt),
        ..Default::default()
    };
    let mut prompt = |label: &str| {
        Some(Secret::new(if label.contains("secret") {
            moto::SECRET_KEY.into()
        } else {
            moto::ACCESS_KEY.into()
        }))
    };
    let mut cloud = AwsCloud::from_profile("aws-src", &profile, &mut prompt)
        .await
        .unwrap();
    cloud.poll.first = Duration::from_millis(5);
    cloud.poll.max = Duration::from_millis(50);
    cloud
}

/// The lab copy of `name`'s only disk as raw bytes.
fn lab_copy(cloud: &Path, name: &str) -> Vec<u8> {
    let disks = aws_kit::lab_disks(cloud, name);
    assert_eq!(disks.len(), 1);
    let out = cloud.join("copy.raw");
    aws_kit::raw_copy(&disks[0].1, disks[0].2, &out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_cutover_sends_what_list_changed_blocks_lists_and_stops_the_instance() {
    // While pass 1 runs the guest rewrites blocks 1 and 100; as it stops,
    // it rewrites block 2 and zeroes block 0.
    let outcome = cutover(
        &[0, 1, 2, 100, 2047],
        vec![(1, Some(pattern(2, 1))), (100, Some(pattern(2, 100)))],
        vec![(2, Some(pattern(3, 2))), (0, None)],
        false,
    )
    .await;
    assert_eq!(
        outcome.passes,
        vec![
            (PassKind::Full, 5),
            (PassKind::Delta, 2),
            (PassKind::Final, 2)
        ]
    );
    assert_eq!(outcome.changed_block_calls, 2, "one per delta pass");
    assert_eq!(outcome.stops, 1);
    assert_eq!(outcome.state, "stopped");
    let downtime = outcome.downtime_ms.expect("a cutover reports its downtime");
    eprintln!("aws cutover downtime (1 GiB volume, moto): {downtime} ms");
    assert!(
        outcome.copy == outcome.final_disk,
        "the lab copy differs from the volume as it was when the instance stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_list_changed_blocks_falls_back_to_hashing_and_holes_filled_arrive() {
    // Writes into holes too (blocks 500 and 700): moto's own
    // ListChangedBlocks misses blocks only the second snapshot holds, the
    // hashing path must not.
    let outcome = cutover(
        &[0, 1, 2, 100, 2047],
        vec![(1, Some(pattern(2, 1))), (500, Some(pattern(2, 500)))],
        vec![(700, Some(pattern(3, 700))), (0, None)],
        true,
    )
    .await;
    assert_eq!(
        outcome.passes,
        vec![
            (PassKind::Full, 5),
            (PassKind::Delta, 2),
            (PassKind::Final, 2)
        ]
    );
    assert!(
        outcome.changed_block_calls >= 1,
        "ListChangedBlocks was tried"
    );
    assert_eq!(outcome.state, "stopped");
    assert!(
        outcome.copy == outcome.final_disk,
        "the lab copy differs from the volume as it was when the instance stopped"
    );
}

/// The AWS side alone: two snapshots of a running volume (the guest wrote
/// between them), the delta between them from ListChangedBlocks or, when
/// that call is refused, by hashing against what the target holds; then the
/// instance stopped and started through EC2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_between_two_snapshots_is_listed_or_hashed_and_ec2_stops_the_instance() {
    use altishift::block::BlockDigest;
    use altishift::cloud::DiskRef;
    use altishift::cloud::aws::cutover::DeltaMethod;
    use altishift::units::BlockIndex;
    use std::collections::BTreeMap;
    for refuse in [false, true] {
        let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (ec2, _) = aws_kit::sdk(&moto, REGION);
        let (instance_id, volume_id) =
            aws_kit::seed_instance_where(&ec2, "db", "t3.small", |i| i.platform().is_none()).await;
        let file = dir.path().join("volume.raw");
        let initial = [0u64, 1, 2, 100];
        {
            let f = std::fs::File::create(&file).unwrap();
            f.set_len(1 << 30).unwrap();
            for &i in &initial {
                f.write_all_at(&pattern(1, i), i * BLOCK_SIZE).unwrap();
            }
        }
        // Block 1 rewritten, block 2 zeroed; with hashing also a hole filled
        // (moto's own ListChangedBlocks misses blocks only the second holds).
        let mut writes = vec![(1, Some(pattern(2, 1))), (2, None)];
        if refuse {
            writes.push((500, Some(pattern(2, 500))));
        }
        let proxy = VolumeProxy::start(
            &moto.endpoint,
            Volume {
                volume_id: volume_id.clone(),
                file: file.clone(),
                before_snapshot: VecDeque::from([Vec::new(), writes]),
                refuse_changed_blocks: refuse,
                ..Volume::default()
            },
        )
        .await;
        let cloud = aws_on(&proxy.endpoint).await;
        let root = aws_kit::lab(dir.path());
        let west = LabCloud::open("lab-west", &root.join("lab-west"), None).unwrap();
        let plan = aws_kit::plan_between(
            ("aws-src", "aws", &cloud.inventory().await.unwrap()),
            ("lab-west", "lab", &west.inventory().await.unwrap()),
            &["db"],
            None,
        );
        let cap = run_kit::approve(plan).capability();
        let disk = DiskRef {
            instance_id: instance_id.clone(),
            disk_id: volume_id,
        };
        let first = cloud.snapshot_disk(&cap, &disk, "pass-1").await.unwrap();
        let second = cloud.snapshot_disk(&cap, &disk, "pass-2").await.unwrap();
        let held: BTreeMap<BlockIndex, BlockDigest> = initial
            .iter()
            .map(|&i| (BlockIndex(i), BlockDigest::of(&pattern(1, i))))
            .collect();
        let (reader, method) = cloud
            .open_changed_reader(Some(&first), &second, &held)
            .await
            .unwrap();
        let blocks: Vec<u64> = reader
            .allocated_blocks()
            .await
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        if refuse {
            assert_eq!(method, DeltaMethod::Hashing);
            assert_eq!(blocks, vec![1, 2, 500]);
        } else {
            assert_eq!(method, DeltaMethod::ChangedBlocks);
            assert_eq!(blocks, vec![1, 2]);
        }
        assert_eq!(proxy.state().changed_blocks_calls.len(), 1);
        let one = reader.read_block(BlockIndex(1)).await.unwrap();
        assert!(one.bytes == pattern(2, 1), "block 1 is the rewritten one");
        let two = reader.read_block(BlockIndex(2)).await.unwrap();
        assert!(two.bytes.iter().all(|&b| b == 0), "block 2 reads as zeros");
        // Without a base snapshot (a resumed pass) the delta is hashed too.
        let (_, method) = cloud
            .open_changed_reader(None, &second, &held)
            .await
            .unwrap();
        assert_eq!(method, DeltaMethod::Hashing);

        cloud.stop_instance(&cap, &instance_id).await.unwrap();
        assert_eq!(instance_state(&ec2, &instance_id).await, "stopped");
        cloud.start_instance(&cap, &instance_id).await.unwrap();
        assert_eq!(instance_state(&ec2, &instance_id).await, "running");
        let refused = cloud
            .quiesce_by_stopping(&cap, &instance_id, Some("systemctl stop db"))
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("no shell on the guest"),
            "{refused}"
        );
    }
}

async fn instance_state(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    let described = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    described.reservations()[0].instances()[0]
        .state()
        .and_then(|s| s.name())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}
