//! Cutover from a running EC2 instance, on moto: successive EBS snapshots
//! while the guest keeps writing (support/ebs_volume.rs gives the moto
//! volume a body and snapshots it through EBS direct), the delta between
//! them from EBS direct `ListChangedBlocks` or, when that call is refused,
//! by hashing against what the target holds, and the instance stopped
//! through EC2.

#[path = "support/aws_kit.rs"]
mod aws_kit;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/ebs_volume.rs"]
mod ebs_volume;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/run_kit.rs"]
mod run_kit;

use altishift::cloud::Cloud;
use altishift::cloud::aws::AwsCloud;
use altishift::cloud::lab::LabCloud;
use altishift::secret::Secret;
use altishift::units::BLOCK_SIZE;
use aws_kit::pattern;
use ebs_volume::{Volume, VolumeProxy};
use moto::Moto;
use std::collections::VecDeque;
use std::os::unix::fs::FileExt as _;
use std::time::Duration;

const REGION: &str = "us-east-1";

/// A provider on `endpoint` (the proxy in front of moto), fast polls.
async fn aws_on(endpoint: &str) -> AwsCloud {
    let mut profile = altishift::config::CloudProfile::lab(Default::default(), "US");
    profile.provider = altishift::config::ProviderKind::Aws;
    profile.path = None;
    profile.jurisdiction = None;
    profile.region = Some(REGION.into());
    profile.endpoint = Some(endpoint.into());
    profile.api_key = Some(altishift::secret::SecretSource::Prompt);
    profile.secret_key = Some(altishift::secret::SecretSource::Prompt);
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
