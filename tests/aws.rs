//! The AWS provider against moto 5.2.5 (a re-implementation of AWS, not
//! AWS): real migrations lab → aws, aws → lab and aws → aws (two regions)
//! through the engine, approval before any change, credentials nowhere.
//!
//! moto differences these tests make explicit (shared/NOTES.md):
//! - StartSnapshot/ListSnapshotBlocks report BlockSize 512: not believed.
//! - PutSnapshotBlock accepts a wrong checksum: content is verified by
//!   reading back and comparing, never by trusting the server.
//! - Snapshots from EC2 CreateSnapshot carry no EBS-direct blocks: aws-side
//!   sources are snapshots seeded through the EBS direct write path, named
//!   in the plan (`PlanDisk.source_snapshot`); CreateSnapshot is tested
//!   for its API sequence only.
//! - RegisterImage drops the snapshot references (and the architecture,
//!   boot mode and ENA: tests/aws_deploy.rs); MaxResults never pages (paging
//!   is tested on recorded pages in tests/aws_paging.rs).
//!
//! Elsewhere: tests/aws_access.rs (credentials, identity, expiry),
//! tests/aws_deploy.rs (platform, subnet, groups), tests/aws_paging.rs and
//! tests/aws_bad_answers.rs (recorded answers), tests/aws_bench.rs.

use altishift_testkit::aws_kit as kit;
use altishift_testkit::cli;
use altishift_testkit::moto;

use altishift::block::BlockDigest;
use altishift::cloud::aws::AwsCloud;
use altishift::cloud::lab::LabCloud;
use altishift::cloud::{
    Cloud, CloudError, CreatedResource, DiskRef, ResourceKind, SnapshotRef, Source,
};
use altishift::engine::RunReport;
use altishift::inventory::DiskFormat;
use altishift::plan::Plan;
use altishift::secret::Secret;
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use kit::*;
use moto::{ACCESS_KEY, Moto, SECRET_KEY};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn aws_to_lab_from_a_seeded_snapshot_is_byte_identical() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (ec2, ebs) = sdk(&moto, "us-east-1");
    let blocks = [0, 1, 2, 700, 2047];
    let snapshot = seed_snapshot(&ebs, 1, &blocks, &[]).await;
    let (_, volume) = seed_instance(&ec2, "legacy-db", "t3.small").await;

    let source = aws(&moto, "aws-prod", "us-east-1").await;
    let root = lab(dir.path());
    let west: Arc<dyn Cloud> =
        Arc::new(LabCloud::open("lab-west", &root.join("lab-west"), None).unwrap());
    let source_inv = source.inventory().await.unwrap();
    let instance = source_inv.instance("legacy-db").expect("seeded instance");
    assert_eq!(instance.size, "t3.small");
    assert_eq!((instance.vcpus, instance.memory), (2, Bytes::gib(2)));
    assert_eq!(instance.disks[0].id, volume);
    assert_eq!(instance.disks[0].virtual_size, Bytes::gib(1));
    let target_inv = west.inventory().await.unwrap();
    let mut plan = plan_between(
        ("aws-prod", "aws", &source_inv),
        ("lab-west", "lab", &target_inv),
        &["legacy-db"],
        None,
    );
    // The operator names a known-good snapshot as the disk's source.
    plan.items[0].disks[0].source_snapshot = Some(snapshot.clone());
    let source: Arc<dyn Cloud> = Arc::new(source);
    let report = run(approve(plan), source, west, &dir.path().join("state")).await;
    assert!(report.ok, "{report:#?}");
    let disk = &report.disks[0];
    assert_eq!(disk.source_digest, disk.target_digest);
    assert_eq!(
        disk.blocks_sent,
        blocks.len() as u64,
        "sparse: only listed blocks"
    );

    let written = lab_disks(&root.join("lab-west"), "legacy-db");
    let expected = seed_image(dir.path(), 1, &blocks);
    assert!(
        same_content(&written[0].1, &expected),
        "lab disk differs from the seeded snapshot"
    );
    // A snapshot the run did not take is not deleted at cleanup.
    let left = ec2
        .describe_snapshots()
        .snapshot_ids(&snapshot)
        .send()
        .await
        .unwrap();
    assert_eq!(left.snapshots().len(), 1);
}

#[tokio::test]
async fn a_wrong_checksum_that_moto_accepted_is_caught_on_read() {
    let moto = Moto::start();
    let (_, ebs) = sdk(&moto, "us-east-1");
    // moto difference: AWS refuses a PutSnapshotBlock whose checksum is wrong.
    let snapshot = seed_snapshot(&ebs, 2, &[3, 4], &[4]).await;
    let cloud = aws(&moto, "aws-prod", "us-east-1").await;
    let reader = cloud
        .open_disk_reader(&SnapshotRef {
            id: snapshot,
            virtual_size: Bytes::gib(1),
            format: DiskFormat::Raw,
            created_by_run: false,
        })
        .await
        .unwrap();
    assert_eq!(reader.virtual_size(), Bytes::gib(1));
    assert_eq!(reader.allocated_blocks().await.unwrap(), vec![3..5]);
    let good = reader.read_block(BlockIndex(3)).await.unwrap();
    // moto says 512; we read whole 512 KiB blocks.
    assert_eq!(good.bytes.len() as u64, BLOCK_SIZE);
    assert_eq!(good.provider_digest, Some(BlockDigest::of(&good.bytes)));
    let bad = reader.read_block(BlockIndex(4)).await.unwrap();
    assert_eq!(bad.bytes, pattern(2, 4));
    assert_ne!(
        bad.provider_digest,
        Some(BlockDigest::of(&bad.bytes)),
        "the engine's provider-digest check is what catches this block"
    );
}

#[tokio::test]
async fn create_snapshot_path_creates_tags_waits_and_cleanup_deletes() {
    let moto = Moto::start();
    let (ec2, _) = sdk(&moto, "us-east-1");
    let (instance, volume) = seed_instance(&ec2, "app-1", "t3.micro").await;
    let cloud = aws(&moto, "aws-prod", "us-east-1").await;
    let inv = cloud.inventory().await.unwrap();
    let lab_dir = tempfile::tempdir().unwrap();
    let root = lab(lab_dir.path());
    let west = LabCloud::open("lab-west", &root.join("lab-west"), None).unwrap();
    let plan = plan_between(
        ("aws-prod", "aws", &inv),
        ("lab-west", "lab", &west.inventory().await.unwrap()),
        &["app-1"],
        None,
    );
    let approved = approve(plan);
    let cap = approved.capability();
    let snap = cloud
        .snapshot_disk(
            &cap,
            &DiskRef {
                instance_id: instance,
                disk_id: volume.clone(),
            },
            "altishift-test-app-1-root",
        )
        .await
        .unwrap();
    assert!(snap.created_by_run);
    assert_eq!(snap.virtual_size, Bytes::gib(1));
    let described = ec2
        .describe_snapshots()
        .snapshot_ids(&snap.id)
        .send()
        .await
        .unwrap();
    let s = &described.snapshots()[0];
    assert_eq!(s.volume_id(), Some(volume.as_str()));
    assert_eq!(s.state().unwrap().as_str(), "completed");
    let tags: BTreeMap<_, _> = s
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags.get("altishift:plan"), Some(&approved.hash().short()));
    assert_eq!(tags.get("Name"), Some(&"altishift-test-app-1-root"));
    // moto difference: such a snapshot has no EBS-direct blocks (HTTP 500),
    // and the reader says so instead of pretending the disk is empty.
    let reader = cloud.open_disk_reader(&snap).await.unwrap();
    let err = reader.allocated_blocks().await.unwrap_err();
    assert!(err.to_string().contains("ListSnapshotBlocks"), "{err}");
    // Cleanup deletes it (and a second delete is not an error).
    let resource = CreatedResource {
        cloud: "aws-prod".into(),
        kind: ResourceKind::Snapshot,
        id: snap.id.clone(),
        temporary: true,
    };
    cloud.delete(&cap, &resource).await.unwrap();
    cloud.delete(&cap, &resource).await.unwrap();
    let err = ec2
        .describe_snapshots()
        .snapshot_ids(&snap.id)
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("NotFound"), "{err:?}");
    // Revoke wipes the credentials: afterwards nothing can be called.
    let revoked = cloud.revoke().await.unwrap();
    assert!(revoked[0].contains("wiped"), "{revoked:?}");
    assert!(matches!(cloud.inventory().await, Err(CloudError::Auth(_))));
}

#[tokio::test]
async fn aws_to_aws_across_regions_writes_registers_and_runs() {
    let moto = Moto::start();
    let (ec2, ebs) = sdk(&moto, "us-east-1");
    let blocks = [5, 6, 100];
    let snapshot = seed_snapshot(&ebs, 3, &blocks, &[]).await;
    seed_instance(&ec2, "api-1", "m5.large").await;
    let source = aws(&moto, "aws-us", "us-east-1").await;
    let target = aws(&moto, "aws-eu", "eu-west-1").await;
    let source_inv = source.inventory().await.unwrap();
    let target_inv = target.inventory().await.unwrap();
    assert_eq!(target_inv.regions[0].name, "eu-west-1");
    assert_eq!(target_inv.regions[0].jurisdiction, "IE");
    let mut plan = plan_between(
        ("aws-us", "aws", &source_inv),
        ("aws-eu", "aws", &target_inv),
        &["api-1"],
        None,
    );
    plan.items[0].disks[0].source_snapshot = Some(snapshot);
    // The lead's nearest-size rule maps m5.large (2 vCPU, 8 GiB) to whichever
    // equal-excess type sorts first; the instance must get that mapped type.
    let mapped = plan.items[0].target_size.clone();
    assert!(plan.cross_border.is_some(), "US → IE is cross-border");
    let dir = tempfile::tempdir().unwrap();
    let approved = approve(plan);
    let cap = approved.capability();
    let report = run(
        approved,
        Arc::new(source),
        Arc::new(target),
        &dir.path().join("state"),
    )
    .await;
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.disks[0].source_digest, report.disks[0].target_digest);
    // The run revoked (wiped) the target's credentials; a test migration's
    // removal is done by a fresh connection below.
    let (eu_ec2, _) = sdk(&moto, "eu-west-1");
    let instance_id = report.instances[0].target_id.clone().unwrap();
    let described = eu_ec2
        .describe_instances()
        .instance_ids(&instance_id)
        .send()
        .await
        .unwrap();
    let i = &described.reservations()[0].instances()[0];
    assert_eq!(i.instance_type().unwrap().as_str(), mapped);
    assert_eq!(i.state().unwrap().name().unwrap().as_str(), "running");
    // The written snapshot, read back block by block, equals the source.
    let snaps = eu_ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    let written = snaps
        .snapshots()
        .iter()
        .find(|s| s.tags().iter().any(|t| t.key() == Some("altishift:plan")))
        .expect("the written snapshot, tagged with the plan")
        .snapshot_id()
        .unwrap()
        .to_string();
    let checker = aws(&moto, "aws-check", "eu-west-1").await;
    let back = read_back(&checker, &written, 1).await;
    assert_eq!(back.keys().copied().collect::<Vec<_>>(), blocks.to_vec());
    for (i, data) in &back {
        assert!(data == &pattern(3, *i), "block {i} differs");
    }
    // Removing a test migration: the instance is terminated and its AMI
    // (named by the altishift:image tag) deregistered; the snapshot deleted.
    let image = i.image_id().unwrap().to_string();
    let resource = |kind, id: &str| CreatedResource {
        cloud: "aws-check".into(),
        kind,
        id: id.to_string(),
        temporary: false,
    };
    checker
        .delete(&cap, &resource(ResourceKind::Instance, &instance_id))
        .await
        .unwrap();
    checker
        .delete(&cap, &resource(ResourceKind::Disk, &written))
        .await
        .unwrap();
    let described = eu_ec2
        .describe_instances()
        .instance_ids(&instance_id)
        .send()
        .await
        .unwrap();
    let state = described.reservations()[0].instances()[0].state().unwrap();
    assert_eq!(state.name().unwrap().as_str(), "terminated");
    let images = eu_ec2.describe_images().image_ids(&image).send().await;
    assert!(
        images.map_or(true, |a| a.images().is_empty()),
        "AMI deregistered"
    );
    let snaps = eu_ec2
        .describe_snapshots()
        .snapshot_ids(&written)
        .send()
        .await;
    assert!(snaps.is_err(), "snapshot deleted");
}

#[tokio::test]
async fn lab_to_aws_through_the_cli_nothing_before_approval_no_secret_anywhere() {
    let moto = Moto::start();
    let lab = cli::Lab::new();
    let config = lab.config();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[clouds.aws-target]\nprovider = \"aws\"\nregion = \"eu-central-1\"\nendpoint = \"{}\"\ninsecure_endpoint = true\napi_key = \"env:ALTI_TEST_AWS_KEY\"\nsecret_key = \"env:ALTI_TEST_AWS_SECRET\"\n",
        moto.endpoint
    ));
    std::fs::write(&config, text).unwrap();
    let plan_path = lab.plan_path();
    let plan_arg = plan_path.to_str().unwrap();
    let (ec2, _) = sdk(&moto, "eu-central-1");
    let mut outputs = Vec::new();
    // moto starts with snapshots and images of its own: count, then compare.
    let snapshots_before = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .len();
    let images_before = ec2
        .describe_images()
        .owners("self")
        .send()
        .await
        .unwrap()
        .images()
        .len();

    // Browsing and planning: only Describe*/List*/Get* reach the server.
    moto.start_recording();
    let mut args = vec![
        "plan",
        "--from",
        "lab-east",
        "--to",
        "aws-target",
        "-o",
        plan_arg,
        "--format",
        "raw",
        "--select",
        "web-1",
    ];
    args.extend(cli::fake_target_checks("aws"));
    let out = altishift(&config, &args);
    assert!(out.status.success(), "{}", cli::text(&out));
    // What validation will look for is in the plan the operator approves.
    assert!(
        cli::text(&out).contains("serial console shows /Linux version/"),
        "{}",
        cli::text(&out)
    );
    outputs.push(out);
    let short = {
        let plan: Plan = toml::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
        plan.hash().short().to_string()
    };
    let out = altishift(
        &config,
        &[
            "approve",
            plan_arg,
            "--confirm",
            &short,
            "--ack-cross-border",
        ],
    );
    assert!(out.status.success(), "{}", cli::text(&out));
    outputs.push(out);
    let before = moto.recorded();
    assert!(!before.is_empty(), "planning read the AWS inventory");
    for (method, path, action) in &before {
        // EC2 Describe*, STS GetCallerIdentity (who we act as), EBS GETs.
        let read = if action.is_empty() {
            method == "GET"
        } else {
            ["Describe", "Get", "List"]
                .iter()
                .any(|verb| action.starts_with(verb))
        };
        assert!(
            read,
            "mutating request before approval: {method} {path} {action}"
        );
    }
    let snaps = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    assert_eq!(snaps.snapshots().len(), snapshots_before);
    let images = ec2.describe_images().owners("self").send().await.unwrap();
    assert_eq!(images.images().len(), images_before);

    // Apply: snapshot written through EBS direct, AMI registered, instance running.
    moto.start_recording();
    let out = altishift(&config, &["apply", plan_arg]);
    assert!(out.status.success(), "{}", cli::text(&out));
    outputs.push(out);
    let during = moto.recorded();
    let puts = during
        .iter()
        .filter(|(m, p, _)| m == "PUT" && p.contains("/blocks/"))
        .count();
    assert!(puts > 0, "blocks went through PutSnapshotBlock");
    for action in ["RegisterImage", "RunInstances"] {
        assert!(
            during.iter().any(|(_, _, a)| a == action),
            "{action} called"
        );
    }
    let plan: Plan = toml::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let item = &plan.items[0];
    let runs = lab.state().join("runs");
    let run_dir = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let report = RunReport::load(&run_dir.join("report.json")).unwrap();
    assert!(report.ok, "{report:#?}");
    for disk in &report.disks {
        assert_eq!(disk.source_digest, disk.target_digest, "{}", disk.disk);
    }
    // Validation read the instance's console through GetConsoleOutput.
    let serial = report.instances[0]
        .checks
        .iter()
        .find(|c| c.name == "serial console")
        .expect("a serial console check");
    assert!(serial.passed, "{serial:?}");
    assert!(serial.detail.starts_with("`Linux version`"), "{serial:?}");
    assert!(
        serial
            .evidence
            .iter()
            .any(|l| l.starts_with("Kernel command line:")),
        "{serial:?}"
    );
    assert!(during.iter().any(|(_, _, a)| a == "GetConsoleOutput"));
    let instance_id = report.instances[0].target_id.clone().unwrap();
    let described = ec2
        .describe_instances()
        .instance_ids(&instance_id)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(
        instance.state().unwrap().name().unwrap().as_str(),
        "running"
    );
    assert_eq!(
        instance.instance_type().unwrap().as_str(),
        item.target_size,
        "the mapped type"
    );
    let images = ec2.describe_images().owners("self").send().await.unwrap();
    assert_eq!(
        images.images().len(),
        images_before + 1,
        "one AMI registered"
    );
    let ours = images
        .images()
        .iter()
        .find(|i| i.image_id() == instance.image_id())
        .expect("the instance runs our AMI");
    assert!(ours.name().unwrap().starts_with("altishift-"));
    // moto difference: RegisterImage dropped our snapshot references (AWS keeps them).

    // Read each written snapshot back and compare with the lab disk, block by block.
    let scratch = tempfile::tempdir().unwrap();
    let checker = aws(&moto, "aws-check", "eu-central-1").await;
    let sources = lab_disks(&lab.root().join("lab-east"), "web-1");
    let snaps = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    for (disk_id, file, format) in &sources {
        let name = format!("{}-{disk_id}", item.target_name);
        let snap = snaps
            .snapshots()
            .iter()
            .find(|s| {
                s.tags()
                    .iter()
                    .any(|t| t.key() == Some("Name") && t.value() == Some(&name))
            })
            .unwrap_or_else(|| panic!("a snapshot named {name}"));
        assert!(
            snap.tags()
                .iter()
                .any(|t| t.key() == Some("altishift:plan") && t.value() == Some(short.as_str())),
            "tagged with the plan"
        );
        let gib = snap.volume_size().unwrap() as u64;
        let back = read_back(&checker, snap.snapshot_id().unwrap(), gib).await;
        let raw = raw_copy(
            file,
            *format,
            &scratch.path().join(format!("{disk_id}.raw")),
        );
        let expected: BTreeMap<u64, &[u8]> = raw
            .chunks(BLOCK_SIZE as usize)
            .enumerate()
            .filter(|(_, b)| b.iter().any(|&x| x != 0))
            .map(|(i, b)| (i as u64, b))
            .collect();
        assert_eq!(
            back.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{disk_id}: same non-zero blocks"
        );
        for (i, data) in &back {
            let mut want = expected[i].to_vec();
            want.resize(BLOCK_SIZE as usize, 0);
            assert!(data == &want, "{disk_id}: block {i} differs");
        }
    }

    // No credential in any output or file the tool wrote.
    for out in &outputs {
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(SECRET_KEY), "secret on screen");
            assert!(!text.contains(ACCESS_KEY), "access key on screen");
        }
    }
    // What the tool writes: state (journal, audit log, reports, logs), the
    // plan, the config; the lab's disk images are the migrated data itself.
    let written = cli::tree(lab.dir.path());
    assert!(
        written
            .keys()
            .any(|p| p.to_string_lossy().contains("journal"))
    );
    for needle in [SECRET_KEY, ACCESS_KEY] {
        let leaked = files_containing(lab.dir.path(), needle);
        assert!(leaked.is_empty(), "credential written to {leaked:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_to_aws_completes_through_503s_and_cut_connections() {
    let moto = Moto::start();
    // Every 10th request fails before it reaches moto: 503 or a cut connection.
    let proxy = moto::DelayProxy::with_faults(moto.port, Duration::ZERO, Some(10));
    let dir = tempfile::tempdir().unwrap();
    let root = lab(dir.path());
    let east: Arc<dyn Cloud> =
        Arc::new(LabCloud::open("lab-east", &root.join("lab-east"), None).unwrap());
    let mut p = profile(&moto, "us-east-1");
    p.endpoint = Some(proxy.endpoint.clone());
    let mut prompt = |label: &str| {
        Some(Secret::new(if label.contains("secret") {
            SECRET_KEY.into()
        } else {
            ACCESS_KEY.into()
        }))
    };
    let mut target = AwsCloud::from_profile("aws-flaky", &p, &mut prompt)
        .await
        .unwrap();
    target.poll.first = Duration::from_millis(5);
    let source_inv = east.inventory().await.unwrap();
    let target_inv = target.inventory().await.unwrap();
    let plan = plan_between(
        ("lab-east", "lab", &source_inv),
        ("aws-flaky", "aws", &target_inv),
        &["web-1"],
        None,
    );
    let report = run(
        approve(plan),
        east,
        Arc::new(target),
        &dir.path().join("state"),
    )
    .await;
    assert!(report.ok, "{report:#?}");
    for disk in &report.disks {
        assert_eq!(disk.source_digest, disk.target_digest, "{}", disk.disk);
    }
    assert!(
        proxy.requests() >= 30,
        "at least 3 requests were failed on the way ({} seen)",
        proxy.requests()
    );
}
