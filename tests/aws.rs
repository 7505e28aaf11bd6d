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
//! - RegisterImage drops the snapshot references; MaxResults never pages
//!   (the paginator is unit-tested in src/cloud/aws/inventory.rs).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/moto.rs"]
mod moto;

use altishift::block::BlockDigest;
use altishift::cloud::aws::AwsCloud;
use altishift::cloud::lab::LabCloud;
use altishift::cloud::{Cloud, CloudError, CreatedResource, DiskRef, ResourceKind, SnapshotRef};
use altishift::config::{CloudProfile, ProviderKind};
use altishift::engine::{self, EngineOptions, RunReport};
use altishift::inventory::{DiskFormat, Inventory};
use altishift::plan::build::{Request, Side, Throughput, build};
use altishift::plan::{Approved, Plan, approval};
use altishift::secret::{Secret, SecretSource};
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use base64::Engine as _;
use moto::{ACCESS_KEY, Moto, SECRET_KEY};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn profile(moto: &Moto, region: &str) -> CloudProfile {
    let mut p = CloudProfile::lab(PathBuf::new(), "US");
    p.provider = ProviderKind::Aws;
    p.path = None;
    p.jurisdiction = None;
    p.region = Some(region.into());
    p.endpoint = Some(moto.endpoint.clone());
    p.api_key = Some(SecretSource::Prompt);
    p.secret_key = Some(SecretSource::Prompt);
    p
}

/// A provider on moto; keys come through the `prompt` path.
async fn aws(moto: &Moto, name: &str, region: &str) -> AwsCloud {
    let mut prompt = |label: &str| {
        Some(Secret::new(if label.contains("secret") {
            SECRET_KEY.into()
        } else {
            ACCESS_KEY.into()
        }))
    };
    let mut cloud = AwsCloud::from_profile(name, &profile(moto, region), &mut prompt)
        .await
        .unwrap();
    cloud.poll.first = Duration::from_millis(5);
    cloud.poll.max = Duration::from_millis(50);
    cloud
}

/// Raw SDK clients for seeding and checking (independent of the code under test).
fn sdk(moto: &Moto, region: &str) -> (aws_sdk_ec2::Client, aws_sdk_ebs::Client) {
    let creds = aws_sdk_ec2::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
    let ec2 = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(region.to_string()))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(creds.clone())
        .build();
    let ebs = aws_sdk_ebs::Config::builder()
        .behavior_version(aws_sdk_ebs::config::BehaviorVersion::latest())
        .region(aws_sdk_ebs::config::Region::new(region.to_string()))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(creds)
        .build();
    (
        aws_sdk_ec2::Client::from_conf(ec2),
        aws_sdk_ebs::Client::from_conf(ebs),
    )
}

/// The bytes of seeded block `index` (differs per block and seed).
fn pattern(seed: u64, index: u64) -> Vec<u8> {
    let mut state = (index ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..BLOCK_SIZE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Seeds a 1 GiB snapshot through the EBS direct write path with the given
/// blocks; a block in `wrong_checksum` is sent with a false checksum.
async fn seed_snapshot(
    ebs: &aws_sdk_ebs::Client,
    seed: u64,
    blocks: &[u64],
    wrong_checksum: &[u64],
) -> String {
    let started = ebs.start_snapshot().volume_size(1).send().await.unwrap();
    // moto difference: AWS answers 524288.
    assert_eq!(
        started.block_size(),
        Some(512),
        "moto's reported block size"
    );
    let id = started.snapshot_id().unwrap().to_string();
    for &index in blocks {
        let data = pattern(seed, index);
        let checksum = if wrong_checksum.contains(&index) {
            b64(&Sha256::digest(b"not the block"))
        } else {
            b64(&Sha256::digest(&data))
        };
        ebs.put_snapshot_block()
            .snapshot_id(&id)
            .block_index(index as i32)
            .data_length(BLOCK_SIZE as i32)
            .checksum(checksum)
            .checksum_algorithm(aws_sdk_ebs::types::ChecksumAlgorithm::ChecksumAlgorithmSha256)
            .block_data(aws_sdk_ebs::primitives::ByteStream::from(data))
            .send()
            .await
            .unwrap();
    }
    ebs.complete_snapshot()
        .snapshot_id(&id)
        .changed_blocks_count(blocks.len() as i32)
        .send()
        .await
        .unwrap();
    id
}

/// A raw 1 GiB image holding the seeded blocks (the expected content).
fn seed_image(dir: &Path, seed: u64, blocks: &[u64]) -> PathBuf {
    use std::os::unix::fs::FileExt as _;
    let path = dir.join(format!("seed-{seed}.raw"));
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(1 << 30).unwrap();
    for &i in blocks {
        file.write_all_at(&pattern(seed, i), i * BLOCK_SIZE)
            .unwrap();
    }
    path
}

/// An instance with one 1 GiB root volume, named `name`.
async fn seed_instance(ec2: &aws_sdk_ec2::Client, name: &str, size: &str) -> (String, String) {
    let images = ec2.describe_images().send().await.unwrap();
    let image = images
        .images()
        .iter()
        .find(|i| i.root_device_name().is_some())
        .and_then(|i| i.image_id())
        .expect("moto ships default images")
        .to_string();
    let run = ec2
        .run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::from(size))
        .min_count(1)
        .max_count(1)
        .block_device_mappings(
            aws_sdk_ec2::types::BlockDeviceMapping::builder()
                .device_name("/dev/sda1")
                .ebs(
                    aws_sdk_ec2::types::EbsBlockDevice::builder()
                        .volume_size(1)
                        .build(),
                )
                .build(),
        )
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Name")
                        .value(name)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let instance = &run.instances()[0];
    let id = instance.instance_id().unwrap().to_string();
    let described = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let volume = described.reservations()[0].instances()[0].block_device_mappings()[0]
        .ebs()
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string();
    (id, volume)
}

/// Every listed block of a snapshot, read back through the provider's EBS
/// reader (the raw SDK refuses moto's string block indices, see
/// `lenient_page`); the bytes are then compared with the source.
async fn read_back(cloud: &AwsCloud, id: &str, gib: u64) -> BTreeMap<u64, Vec<u8>> {
    let written = altishift::cloud::WrittenDisk {
        id: id.to_string(),
        format: DiskFormat::Raw,
        virtual_size: Bytes::gib(gib),
    };
    let reader = cloud.read_back(&written).await.unwrap().unwrap();
    let mut out = BTreeMap::new();
    for i in reader
        .allocated_blocks()
        .await
        .unwrap()
        .into_iter()
        .flatten()
    {
        let block = reader.read_block(BlockIndex(i)).await.unwrap();
        assert_eq!(
            block.provider_digest,
            Some(BlockDigest::of(&block.bytes)),
            "block {i}"
        );
        out.insert(i, block.bytes);
    }
    out
}

fn approve(mut plan: Plan) -> Approved {
    let short = plan.hash().short().to_string();
    approval::approve(&mut plan, &short, true, "tester@localhost").unwrap();
    approval::verify(plan).unwrap()
}

fn plan_between(
    source: (&str, &str, &Inventory),
    target: (&str, &str, &Inventory),
    select: &[&str],
    region: Option<&str>,
) -> Plan {
    let source = Side {
        cloud: source.0,
        provider: source.1.into(),
        jurisdiction: None,
        inventory: source.2,
    };
    let target = Side {
        cloud: target.0,
        provider: target.1.into(),
        jurisdiction: None,
        inventory: target.2,
    };
    let request = Request {
        select: select.iter().map(|s| s.to_string()).collect(),
        target_region: region.map(str::to_string),
        target_format: Some(DiskFormat::Raw),
        ..Request::default()
    };
    let throughput = Throughput {
        bytes_per_second: 100_000_000,
        basis: "test".into(),
    };
    build(&source, &target, &request, &throughput, "tester@localhost").unwrap()
}

async fn run(
    approved: Approved,
    source: Arc<dyn Cloud>,
    target: Arc<dyn Cloud>,
    state: &Path,
) -> RunReport {
    let handle = engine::start(approved, source, target, state, EngineOptions::default()).unwrap();
    let mut events = handle.events;
    let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
    let outcome = handle.done.await.unwrap().unwrap();
    drain.abort();
    outcome.report
}

fn lab(dir: &Path) -> PathBuf {
    let root = dir.join("lab");
    altishift::cloud::lab::generate::init(&root, altishift::cloud::lab::generate::LabScale::Small)
        .unwrap();
    root
}

fn lab_disks(cloud_dir: &Path, name: &str) -> Vec<(String, PathBuf, DiskFormat)> {
    let text =
        std::fs::read_to_string(cloud_dir.join("instances").join(format!("{name}.toml"))).unwrap();
    let manifest: altishift::cloud::lab::manifest::InstanceManifest =
        toml::from_str(&text).unwrap();
    manifest
        .disks
        .into_iter()
        .map(|d| (d.id, cloud_dir.join(d.file), d.format))
        .collect()
}

fn same_content(a: &Path, b: &Path) -> bool {
    std::process::Command::new("qemu-img")
        .args(["compare", "-q"])
        .arg(a)
        .arg(b)
        .status()
        .unwrap()
        .success()
}

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

/// Runs the binary with the AWS keys in the environment (and a planted
/// AWS_SECRET_ACCESS_KEY), as an operator's shell would have them.
fn altishift(config: &Path, args: &[&str]) -> std::process::Output {
    cli::bin()
        .arg("--config")
        .arg(config)
        .args(args)
        .env("ALTI_TEST_AWS_KEY", ACCESS_KEY)
        .env("ALTI_TEST_AWS_SECRET", SECRET_KEY)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .expect("run altishift")
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for (path, (size, _)) in cli::tree(dir) {
        let full = dir.join(&path);
        let image = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("raw" | "qcow2" | "vmdk" | "vhd")
        );
        if image || size > 64 << 20 {
            continue;
        }
        if let Ok(bytes) = std::fs::read(&full)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            hits.push(full);
        }
    }
    hits
}

/// A lab disk as raw bytes, whatever its format.
fn raw_copy(disk: &Path, format: DiskFormat, out: &Path) -> Vec<u8> {
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-f", format.qemu_name(), "-O", "raw"])
        .arg(disk)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

#[tokio::test]
async fn lab_to_aws_through_the_cli_nothing_before_approval_no_secret_anywhere() {
    let moto = Moto::start();
    let lab = cli::Lab::new();
    let config = lab.config();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[clouds.aws-target]\nprovider = \"aws\"\nregion = \"eu-central-1\"\nendpoint = \"{}\"\napi_key = \"env:ALTI_TEST_AWS_KEY\"\nsecret_key = \"env:ALTI_TEST_AWS_SECRET\"\n",
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
    let out = altishift(
        &config,
        &[
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
        ],
    );
    assert!(out.status.success(), "{}", cli::text(&out));
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
        let read = if action.is_empty() {
            method == "GET"
        } else {
            action.starts_with("Describe")
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

/// The boto3 baseline: one sequential loop of the same EBS direct calls.
const BOTO3_BASELINE: &str = r#"
import boto3, hashlib, base64, json, os, sys, time
endpoint, blocks = sys.argv[1], int(sys.argv[2])
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="AKIAALTISHIFTTEST01", aws_secret_access_key="x")
ebs = boto3.client("ebs", **kw)
data = [os.urandom(524288) for _ in range(blocks)]
t0 = time.monotonic()
sid = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
for i, d in enumerate(data):
    ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=i, BlockData=d, DataLength=524288,
        Checksum=base64.b64encode(hashlib.sha256(d).digest()).decode(), ChecksumAlgorithm="SHA256")
ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=blocks)
t1 = time.monotonic()
listed = ebs.list_snapshot_blocks(SnapshotId=sid)["Blocks"]
for b in listed:
    body = ebs.get_snapshot_block(SnapshotId=sid, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"])["BlockData"].read()
    assert hashlib.sha256(body).digest()
t2 = time.monotonic()
print(json.dumps({"write": t1 - t0, "read": t2 - t1}))
"#;

/// Ours: the provider's EBS writer and reader with `in_flight` blocks in flight.
async fn ours(cloud: &AwsCloud, blocks: u64, in_flight: usize) -> (f64, f64) {
    use futures::StreamExt as _;
    let data: Vec<Vec<u8>> = (0..blocks).map(|i| pattern(99, i)).collect();
    let plan_dir = tempfile::tempdir().unwrap();
    let root = lab(plan_dir.path());
    let east = LabCloud::open("lab-east", &root.join("lab-east"), None).unwrap();
    let inv = east.inventory().await.unwrap();
    let target_inv = cloud.inventory().await.unwrap();
    let name = inv.instances[0].name.clone();
    let plan = plan_between(
        ("lab-east", "lab", &inv),
        ("aws-bench", "aws", &target_inv),
        &[&name],
        None,
    );
    let cap = approve(plan).capability();
    let started = std::time::Instant::now();
    let spec = altishift::cloud::TargetDiskSpec {
        name: format!("bench-{in_flight}-{}", started.elapsed().as_nanos()),
        virtual_size: Bytes::gib(1),
        format: DiskFormat::Raw,
        region: "us-east-1".into(),
        resume: None,
    };
    let writer = cloud.open_disk_writer(&cap, &spec).await.unwrap();
    futures::stream::iter(data.iter().enumerate())
        .map(|(i, d)| {
            let writer = &writer;
            async move {
                writer
                    .write_block(BlockIndex(i as u64), d, BlockDigest::of(d))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<_>>()
        .await;
    let written = writer.finish(blocks).await.unwrap();
    let write = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let reader = cloud.read_back(&written).await.unwrap().unwrap();
    let indices: Vec<u64> = reader
        .allocated_blocks()
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(indices.len() as u64, blocks);
    futures::stream::iter(indices)
        .map(|i| {
            let reader = &reader;
            async move {
                let b = reader.read_block(BlockIndex(i)).await.unwrap();
                assert_eq!(b.provider_digest, Some(BlockDigest::of(&b.bytes)));
            }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<_>>()
        .await;
    (write, started.elapsed().as_secs_f64())
}

/// Benchmark, not a test: `cargo test --test aws -- --ignored bench --nocapture`.
/// ALTI_BENCH_BLOCKS (default 256 = 128 MiB) blocks each way, on loopback
/// and behind a 30 ms per-request delay proxy (both tools behind it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_ebs_direct_against_a_sequential_boto3_loop() {
    let blocks: u64 = std::env::var("ALTI_BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mib = (blocks * BLOCK_SIZE) as f64 / (1 << 20) as f64;
    for delay_ms in [0u64, 30] {
        let moto = Moto::start();
        let proxy = (delay_ms > 0)
            .then(|| moto::DelayProxy::start(moto.port, Duration::from_millis(delay_ms)));
        let endpoint = proxy
            .as_ref()
            .map_or(moto.endpoint.clone(), |p| p.endpoint.clone());
        let out = std::process::Command::new(moto::venv_python())
            .args(["-c", BOTO3_BASELINE, &endpoint, &blocks.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let base: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (bw, br) = (
            base["write"].as_f64().unwrap(),
            base["read"].as_f64().unwrap(),
        );
        println!(
            "delay {delay_ms} ms, {blocks} blocks ({mib:.0} MiB): boto3 sequential write {:.1} MiB/s ({bw:.2} s), read {:.1} MiB/s ({br:.2} s)",
            mib / bw,
            mib / br
        );
        let mut p = profile(&moto, "us-east-1");
        p.endpoint = Some(endpoint.clone());
        let mut prompt = |label: &str| {
            Some(Secret::new(if label.contains("secret") {
                SECRET_KEY.into()
            } else {
                ACCESS_KEY.into()
            }))
        };
        let cloud = AwsCloud::from_profile("aws-bench", &p, &mut prompt)
            .await
            .unwrap();
        for in_flight in [1usize, 16, 64] {
            let (w, r) = ours(&cloud, blocks, in_flight).await;
            println!(
                "delay {delay_ms} ms, in flight {in_flight:>2}: altishift write {:.1} MiB/s ({w:.2} s, {:.2}x boto3), read {:.1} MiB/s ({r:.2} s, {:.2}x boto3)",
                mib / w,
                bw / w,
                mib / r,
                br / r
            );
        }
        drop(proxy);
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
