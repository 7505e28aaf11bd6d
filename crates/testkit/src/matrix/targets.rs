//! Reading a pair's result back through a path independent of the code
//! under test: the lab manifest's disk file; boto3 reading every block of the
//! new EBS-direct snapshot from moto; the disk Compute Engine's fake took
//! out of the staged tar.gz with GNU tar; the volume file the CloudStack
//! fake stored from the upload; the image DigitalOcean's fake fetched from
//! the staging URL. Each is found as what appeared since the pair started.

use super::{AWS_REGION, Kind, Peers};
use crate::moto::{ACCESS_KEY, SECRET_KEY, venv_python};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What each target held before a pair ran.
pub struct Before {
    lab: BTreeSet<String>,
    aws: BTreeSet<String>,
    gce: BTreeSet<String>,
    cs: BTreeSet<String>,
    digitalocean: BTreeSet<u64>,
}

pub async fn mark(peers: &Peers) -> Before {
    Before {
        lab: lab_instances(peers),
        aws: aws_snapshots(peers).await,
        gce: gce_images(peers),
        cs: peers.cs.state().vms.iter().map(|v| v.id.clone()).collect(),
        digitalocean: peers
            .do_fake
            .state
            .lock()
            .unwrap()
            .fetched
            .keys()
            .copied()
            .collect(),
    }
}

fn lab_instances(peers: &Peers) -> BTreeSet<String> {
    std::fs::read_dir(peers.lab.root().join("lab-west/instances"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn gce_images(peers: &Peers) -> BTreeSet<String> {
    peers
        .gcp
        .fake
        .state()
        .images
        .iter()
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect()
}

async fn aws_snapshots(peers: &Peers) -> BTreeSet<String> {
    let (ec2, _) = crate::aws_kit::sdk(&peers.moto, AWS_REGION);
    ec2.describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_string))
        .collect()
}

/// The disks the target gained since `before`, as files `qemu-img` reads.
pub async fn read_back(
    peers: &Peers,
    target: Kind,
    before: &Before,
    out: &Path,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).unwrap();
    match target {
        Kind::Lab => {
            let dir = peers.lab.root().join("lab-west");
            let new: Vec<String> = lab_instances(peers)
                .difference(&before.lab)
                .cloned()
                .collect();
            let mut disks = Vec::new();
            for file in new {
                let text = std::fs::read_to_string(dir.join("instances").join(&file)).unwrap();
                let manifest: altishift::cloud::lab::manifest::InstanceManifest =
                    toml::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
                disks.extend(manifest.disks.into_iter().map(|d| dir.join(d.file)));
            }
            Ok(disks)
        }
        Kind::Aws => {
            let new: Vec<String> = aws_snapshots(peers)
                .await
                .difference(&before.aws)
                .cloned()
                .collect();
            boto3_read(peers, &new, out).await
        }
        Kind::Gcp => Ok(gce_images(peers)
            .difference(&before.gce)
            .filter_map(|name| peers.gcp.fake.image_file(name))
            .collect()),
        Kind::CloudStack => {
            let s = peers.cs.state();
            let new: Vec<String> = s
                .vms
                .iter()
                .filter(|v| !before.cs.contains(&v.id))
                .map(|v| v.id.clone())
                .collect();
            let mut volumes: Vec<_> = s
                .volumes
                .iter()
                .filter(|v| v.vm.as_ref().is_some_and(|vm| new.contains(vm)))
                .collect();
            volumes.sort_by_key(|v| v.device);
            volumes
                .iter()
                .map(|v| {
                    v.data
                        .clone()
                        .ok_or_else(|| format!("volume {} holds no data", v.name))
                })
                .collect()
        }
        Kind::DigitalOcean => {
            let s = peers.do_fake.state.lock().unwrap();
            let mut files = Vec::new();
            for (id, bytes) in &s.fetched {
                if !before.digitalocean.contains(id) {
                    let file = out.join(format!("do-image-{id}"));
                    std::fs::write(&file, bytes).unwrap();
                    files.push(file);
                }
            }
            Ok(files)
        }
        Kind::Ssh => Err("ssh is no target".into()),
    }
}

/// boto3 (moto's venv) writes each snapshot that has EBS-direct blocks into
/// a sparse raw file of its volume size; EC2-made copies (RegisterImage's
/// "Auto-created snapshot") hold no blocks and are passed over.
const BOTO3_READ: &str = r#"
import boto3, botocore, json, os, sys
endpoint, region, key, secret, out = sys.argv[1:6]
kw = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id=key,
          aws_secret_access_key=secret,
          config=botocore.config.Config(retries={"max_attempts": 1}))
ec2, ebs = boto3.client("ec2", **kw), boto3.client("ebs", **kw)
written = []
for sid in sys.argv[6:]:
    size = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["VolumeSize"]
    try:
        blocks = ebs.list_snapshot_blocks(SnapshotId=sid)["Blocks"]
    except botocore.exceptions.ClientError:
        continue
    path = os.path.join(out, sid + ".raw")
    with open(path, "wb") as f:
        f.truncate(size << 30)
        for b in blocks:
            data = ebs.get_snapshot_block(SnapshotId=sid, BlockIndex=int(b["BlockIndex"]),
                                          BlockToken=b["BlockToken"])["BlockData"].read()
            f.seek(int(b["BlockIndex"]) * 524288)
            f.write(data)
    written.append(path)
print(json.dumps(written))
"#;

async fn boto3_read(peers: &Peers, ids: &[String], out: &Path) -> Result<Vec<PathBuf>, String> {
    let mut command = std::process::Command::new(venv_python());
    command
        .arg("-c")
        .arg(BOTO3_READ)
        .arg(&peers.moto.endpoint)
        .arg(AWS_REGION)
        .arg(ACCESS_KEY)
        .arg(SECRET_KEY)
        .arg(out)
        .args(ids);
    let done = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    if !done.status.success() {
        return Err(format!(
            "boto3 read-back failed: {}",
            String::from_utf8_lossy(&done.stderr)
        ));
    }
    let paths: Vec<PathBuf> = serde_json::from_slice(&done.stdout).map_err(|e| e.to_string())?;
    Ok(paths)
}
