//! Helpers for tests/aws*.rs: providers on moto, seeding through the raw SDK
//! (independent of the code under test), plans, runs, lab disks, the
//! benchmark's boto3 baseline and our side of it.

#![allow(dead_code)]

use super::cli;
use super::moto::{ACCESS_KEY, Moto, SECRET_KEY};
#[allow(unused_imports)]
pub use crate::run_kit::{approve, run, throughput};
use altishift::block::BlockDigest;
use altishift::cloud::aws::AwsCloud;
use altishift::cloud::aws::profile::AwsProfile;
use altishift::cloud::lab::LabCloud;
use altishift::cloud::{Cloud, Target};
use altishift::inventory::{DiskFormat, Inventory};
use altishift::plan::Plan;
use altishift::plan::build::{Request, Side, build};
use altishift::secret::{Secret, SecretSource};
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn profile(moto: &Moto, region: &str) -> AwsProfile {
    AwsProfile {
        region: Some(region.into()),
        endpoint: Some(moto.endpoint.clone()),
        api_key: Some(SecretSource::Prompt),
        secret_key: Some(SecretSource::Prompt),
        ..AwsProfile::default()
    }
}

/// A provider on moto; keys come through the `prompt` path.
pub async fn aws(moto: &Moto, name: &str, region: &str) -> AwsCloud {
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
pub fn sdk(moto: &Moto, region: &str) -> (aws_sdk_ec2::Client, aws_sdk_ebs::Client) {
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
pub fn pattern(seed: u64, index: u64) -> Vec<u8> {
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

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Seeds a 1 GiB snapshot through the EBS direct write path with the given
/// blocks; a block in `wrong_checksum` is sent with a false checksum.
pub async fn seed_snapshot(
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
pub fn seed_image(dir: &Path, seed: u64, blocks: &[u64]) -> PathBuf {
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
pub async fn seed_instance(ec2: &aws_sdk_ec2::Client, name: &str, size: &str) -> (String, String) {
    seed_instance_where(ec2, name, size, |_| true).await
}

/// The same, from the first of moto's default images that `wanted` accepts.
pub async fn seed_instance_where(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    size: &str,
    wanted: impl Fn(&aws_sdk_ec2::types::Image) -> bool,
) -> (String, String) {
    let images = ec2.describe_images().send().await.unwrap();
    let image = images
        .images()
        .iter()
        .find(|i| i.root_device_name().is_some() && wanted(i))
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
pub async fn read_back(cloud: &AwsCloud, id: &str, gib: u64) -> BTreeMap<u64, Vec<u8>> {
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
        out.insert(i, block.bytes.to_vec());
    }
    out
}

pub fn plan_between(
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
    let throughput = throughput();
    build(&source, &target, &request, &throughput, "tester@localhost").unwrap()
}

pub fn lab(dir: &Path) -> PathBuf {
    let root = dir.join("lab");
    altishift::cloud::lab::generate::init(&root, altishift::cloud::lab::generate::LabScale::Small)
        .unwrap();
    root
}

pub fn lab_disks(cloud_dir: &Path, name: &str) -> Vec<(String, PathBuf, DiskFormat)> {
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

pub fn same_content(a: &Path, b: &Path) -> bool {
    std::process::Command::new("qemu-img")
        .args(["compare", "-q"])
        .arg(a)
        .arg(b)
        .status()
        .unwrap()
        .success()
}

/// Runs the binary with the AWS keys in the environment (and a planted
/// AWS_SECRET_ACCESS_KEY), as an operator's shell would have them.
pub fn altishift(config: &Path, args: &[&str]) -> std::process::Output {
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
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
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
pub fn raw_copy(disk: &Path, format: DiskFormat, out: &Path) -> Vec<u8> {
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-f", format.qemu_name(), "-O", "raw"])
        .arg(disk)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// The boto3 baseline: one sequential loop of the same EBS direct calls.
pub const BOTO3_BASELINE: &str = r#"
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
pub async fn ours(cloud: &AwsCloud, blocks: u64, in_flight: usize) -> (f64, f64) {
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
        boot: true,
        resume: None,
        platform: Default::default(),
    };
    let writer = cloud.open_disk_writer(&cap, &spec).await.unwrap();
    futures::stream::iter(data.iter().enumerate())
        .map(|(i, d)| {
            let writer = &writer;
            async move {
                writer
                    .write_block(BlockIndex(i as u64), d.to_vec().into(), BlockDigest::of(d))
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
