//! One source instance per pair, seeded with its own bytes so that a target
//! holding another pair's disk cannot pass: a lab instance, an EC2 instance
//! whose disk is an EBS-direct snapshot (moto's volumes hold no data and its
//! CreateSnapshot copies none, so the plan names that snapshot, as an
//! operator migrating from a known-good backup does), a Compute Engine VM
//! whose disk is a file the worker reads over SSH, a CloudStack VM whose
//! root volume is a qcow2, a droplet and an SSH host whose disks are device
//! files read through the real sshd.

use super::{AWS_REGION, Kind, Peers, QUIESCE_BLOCK, raw_disk};
use crate::aws_kit;
use crate::gce_fake::source::Write;
use crate::gce_fake::testkit::ZONE;
use std::path::PathBuf;

const GIB: u64 = 1 << 30;

/// What a pair migrates, and the bytes its target must end up holding.
pub struct Source {
    /// `--from`.
    pub profile: String,
    /// `--select`.
    pub instance: String,
    /// The disk's content (any format `qemu-img` reads).
    pub expected: PathBuf,
    /// An existing snapshot the plan reads instead of taking one (AWS).
    pub snapshot: Option<String>,
    /// For a cutover whose guest writes are scripted in the fake (a cloud
    /// that stops the instance instead of running a quiesce command): the
    /// instance the fake must have stopped (its name or id).
    pub scripted: Option<String>,
}

/// The guest's writes in a cutover variant: a hole filled and a block
/// zeroed while pass 1 runs (they land before the delta pass's snapshot),
/// and the block `last` written as the instance stops (the final pass's).
fn guest_writes(seed: u64, n: u64, last: u64) -> (Vec<Write>, Vec<Write>) {
    (
        vec![(600, Some(aws_kit::pattern(seed + 1, 600))), (1, None)],
        vec![(last, Some(aws_kit::pattern(n, last)))],
    )
}

/// Blocks with data: the first, a few scattered ones, the last of 1 GiB.
fn blocks(seed: u64) -> Vec<u64> {
    vec![0, 1, 2 + seed % 7, 300 + seed, 2047]
}

/// Seeds the source side of pair `n` (`kind` → `target`; `variant` tells
/// two pairs between the same kinds apart).
pub async fn prepare(peers: &Peers, kind: Kind, target: Kind, n: u64, variant: &str) -> Source {
    let cutover = variant == "-cut";
    let name = format!("{}-to-{}{variant}", short(kind), short(target));
    let work = peers.work.path();
    let seed = 1000 + n;
    match kind {
        Kind::Lab => {
            // The lab's own single-disk instance; its file is the expectation.
            let disks = aws_kit::lab_disks(&peers.lab.root().join("lab-east"), "web-1");
            Source {
                profile: "lab-east".into(),
                instance: "web-1".into(),
                expected: disks[0].1.clone(),
                snapshot: None,
                scripted: None,
            }
        }
        Kind::Aws => {
            let (ec2, ebs) = aws_kit::sdk(&peers.moto, AWS_REGION);
            // A Linux image: DigitalOcean takes no Windows guest.
            aws_kit::seed_instance_where(&ec2, &name, "t3.small", |i| i.platform().is_none()).await;
            let blocks = blocks(seed);
            let snapshot = aws_kit::seed_snapshot(&ebs, seed, &blocks, &[]).await;
            let expected = work.join(format!("{name}.raw"));
            raw_disk(&expected, GIB, seed, &blocks);
            Source {
                profile: "aws".into(),
                instance: name,
                expected,
                snapshot: Some(snapshot),
                scripted: None,
            }
        }
        Kind::Gcp => {
            let disk = work.join(format!("{name}.raw"));
            raw_disk(&disk, GIB, seed, &blocks(seed));
            peers.gcp.fake.add_source_vm(ZONE, &name, "f1-micro", &disk);
            if cutover {
                let (during, at_stop) = guest_writes(seed, n, QUIESCE_BLOCK);
                peers.gcp.fake.script_writes(
                    ZONE,
                    &name,
                    crate::gce_fake::source::GuestWrites {
                        before_snapshot: [Vec::new(), during].into(),
                        at_stop,
                    },
                );
            }
            Source {
                profile: "gcp".into(),
                instance: name.clone(),
                expected: disk,
                snapshot: None,
                scripted: cutover.then_some(name),
            }
        }
        Kind::CloudStack => {
            let raw = work.join(format!("{name}.raw"));
            raw_disk(&raw, GIB, seed, &blocks(seed));
            let qcow2 = work.join(format!("{name}.qcow2"));
            let status = std::process::Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "qcow2"])
                .arg(&raw)
                .arg(&qcow2)
                .status()
                .unwrap();
            assert!(status.success());
            let (vm, volume) = peers.cs.add_vm(&name, "Small Instance", Some((qcow2, GIB)));
            if !cutover {
                return Source {
                    profile: "cs".into(),
                    instance: name,
                    expected: raw,
                    snapshot: None,
                    scripted: None,
                };
            }
            // The guest writes into the volume the fake holds (a qcow2).
            let (during, at_stop) = guest_writes(seed, n, QUIESCE_BLOCK);
            peers.cs.script_writes(
                &volume,
                crate::cloudstack_fake::guest::GuestWrites {
                    before_snapshot: [Vec::new(), during].into(),
                    at_stop,
                },
            );
            Source {
                profile: "cs".into(),
                instance: name,
                expected: peers.cs.volume_file(&volume).unwrap(),
                snapshot: None,
                scripted: Some(vm),
            }
        }
        Kind::DigitalOcean => {
            // The droplet's /dev/vda is a file the sshd serves; its profile
            // (one per droplet: the device differs) logs in at its address.
            let device = work.join(format!("{name}.vda"));
            raw_disk(&device, GIB, seed, &blocks(seed));
            peers.do_fake.add_droplet(&name, 1, "127.0.0.1");
            let profile = format!("do-{name}");
            peers.add_profile(&format!(
                "\n[clouds.{profile}]\nprovider = \"digitalocean\"\nendpoint = \"{}\"\n\
                 insecure_endpoint = true\ntoken = \"env:ALTISHIFT_TEST_DO_TOKEN\"\n\
                 jurisdiction = \"DE\"\nuser = \"{}\"\nsudo = false\ndevice = \"{}\"\n\
                 ssh_options = {}\n",
                peers.do_fake.base,
                peers.sshd.user(),
                device.display(),
                peers.sshd_options()
            ));
            Source {
                profile,
                instance: name,
                expected: device,
                snapshot: None,
                scripted: None,
            }
        }
        Kind::Ssh => {
            let device = work.join(format!("{name}.dev"));
            raw_disk(&device, GIB, seed, &blocks(seed));
            let profile = format!("ssh-{name}");
            peers.add_profile(&format!(
                "\n[clouds.{profile}]\nprovider = \"ssh\"\nhost = \"127.0.0.1\"\nuser = \"{}\"\n\
                 sudo = false\njurisdiction = \"DE\"\ndevice = \"{}\"\nssh_options = {}\n",
                peers.sshd.user(),
                device.display(),
                peers.sshd_options()
            ));
            // The host names its one instance; ask it, as an operator would.
            let out = peers.run(&["inventory", &profile, "--json"]).await;
            assert!(out.status.success(), "{}", crate::cli::text(&out));
            let inventory: altishift::inventory::Inventory =
                serde_json::from_slice(&out.stdout).unwrap();
            Source {
                profile,
                instance: inventory.instances[0].name.clone(),
                expected: device,
                snapshot: None,
                scripted: None,
            }
        }
    }
}

fn short(kind: Kind) -> &'static str {
    match kind {
        Kind::Lab => "lab",
        Kind::Aws => "aws",
        Kind::Gcp => "gce",
        Kind::CloudStack => "cs",
        Kind::DigitalOcean => "do",
        Kind::Ssh => "ssh",
    }
}
