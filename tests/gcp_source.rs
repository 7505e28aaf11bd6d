//! Google Cloud as a source: Compute Engine returns no disk bytes, so the
//! provider snapshots the disk, makes a temporary disk from the snapshot,
//! boots a worker VM with it attached and reads it over SSH. The Compute
//! Engine fake backs disks with files and links attached disks where the
//! guest would see them (`google-<deviceName>`); a real sshd on loopback
//! plays the worker. gcp → lab through the engine must be byte-identical,
//! change nothing before approval, and leave no worker, disk or snapshot.

use altishift_testkit::gce_fake;
use altishift_testkit::sshd;

use altishift::cloud::gcp::{GcpCloud, WorkerSettings};
use altishift::cloud::{Cloud, Source};
use altishift::plan::build::{Request, Side, Throughput, build};
use gce_fake::testkit::*;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

const GIB: u64 = 1 << 30;

/// A 1 GiB sparse disk with a few extents of distinct bytes.
fn source_disk(path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    file.set_len(GIB).unwrap();
    for (n, block) in [0u64, 1, 7, 300, 2047].into_iter().enumerate() {
        let data: Vec<u8> = (0..1u32 << 19)
            .map(|i| (i.wrapping_mul(31) as u8) ^ (n as u8 + 1))
            .collect();
        file.write_all_at(&data, block << 19).unwrap();
    }
}

/// The provider with a worker reached through the test sshd: its login
/// (port, key) comes from `ssh_options`, its host key from the guest
/// attributes the fake publishes, its disk folder from the fake.
fn source_cloud(gcp: &Gcp, sshd: &sshd::Sshd) -> GcpCloud {
    let d = sshd.dir().display().to_string();
    let host_key = std::fs::read_to_string(sshd.dir().join("host_key.pub")).unwrap();
    gcp.fake.publish_host_keys(&[host_key]);
    let worker = WorkerSettings {
        machine_type: "f1-micro".into(),
        device_dir: gcp.fake.by_id_dir().display().to_string(),
        user: Some(sshd.user()),
        ssh_options: sshd.options_for_address(false),
        sudo: false,
        ssh_public_key: Some(std::fs::read_to_string(format!("{d}/id_user.pub")).unwrap()),
        agent_binary: Some(sshd::agent_binary()),
        ..WorkerSettings::default()
    };
    gcp.cloud().with_worker(worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gce_disk_is_read_by_a_worker_over_ssh_into_the_lab_byte_identical() {
    let gcp = Gcp::start().await;
    let sshd = sshd::Sshd::start();
    let disk = gcp.dir.path().join("src-vm.raw");
    source_disk(&disk);
    gcp.fake.add_source_vm(ZONE, "src-vm", "f1-micro", &disk);
    let source = Arc::new(source_cloud(&gcp, &sshd));
    assert!(source.roles().source);
    let lab = Lab::new(gcp.dir.path());
    let target = lab.east();
    let source_inventory = source.inventory().await.unwrap();
    let target_inventory = target.inventory().await.unwrap();
    let s = Side {
        cloud: "gcp-test",
        provider: "gcp".into(),
        jurisdiction: None,
        inventory: &source_inventory,
    };
    let t = Side {
        cloud: "lab-east",
        provider: "lab".into(),
        jurisdiction: None,
        inventory: &target_inventory,
    };
    let request = Request {
        select: vec!["src-vm".into()],
        ..Request::default()
    };
    let throughput = Throughput {
        bytes_per_second: 100_000_000,
        basis: "test".into(),
    };
    let plan = build(&s, &t, &request, &throughput, "tester@localhost").unwrap();
    assert_eq!(plan.items[0].disks[0].disk_id, format!("src-vm@{ZONE}"));
    assert_eq!(
        gcp.fake.mutating_received(),
        Vec::<String>::new(),
        "browsing and planning changed Compute Engine"
    );
    assert!(gcp.storage.mutating_received().is_empty());

    let report = run(
        approve(plan),
        source.clone(),
        target,
        &gcp.dir.path().join("state"),
    )
    .await;
    assert!(report.ok, "{report:#?}");
    // Only the five extents crossed the wire (the agent skips holes).
    assert_eq!(report.disks[0].blocks_sent, 5, "{:?}", report.disks[0]);
    let text = std::fs::read_to_string(lab.root.join("lab-east/instances/src-vm.toml")).unwrap();
    let manifest: altishift::cloud::lab::manifest::InstanceManifest =
        toml::from_str(&text).unwrap();
    let copy = lab.root.join("lab-east").join(&manifest.disks[0].file);
    let same = std::process::Command::new("qemu-img")
        .args(["compare", "-q"])
        .arg(&disk)
        .arg(&copy)
        .status()
        .unwrap()
        .success();
    assert!(same, "{} differs from the source disk", copy.display());

    // What changed in Compute Engine, in order: snapshot, disk, worker;
    // then cleanup removed worker, disk, snapshot.
    let mutating = gcp.fake.mutating_received();
    let kinds: Vec<String> = mutating
        .iter()
        .map(|m| {
            let (method, path) = m.split_once(' ').unwrap();
            let parts: Vec<&str> = path.split('/').collect();
            match parts.as_slice() {
                [.., "createSnapshot"] => format!("{method} createSnapshot"),
                ["zones", _, kind] | ["global", kind] => format!("{method} {kind}"),
                ["zones", _, kind, _] | ["global", kind, _] => format!("{method} {kind}/NAME"),
                _ => m.clone(),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "POST createSnapshot",
            "POST disks",
            "POST instances",
            "DELETE instances/NAME",
            "DELETE disks/NAME",
            "DELETE snapshots/NAME",
        ],
        "{mutating:#?}"
    );
    let created = gcp
        .fake
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == format!("zones/{ZONE}/instances"))
        .count();
    assert_eq!(created, 1);
    // Nothing of the read is left: no worker, no temporary disk (nor the
    // worker's boot disk), no snapshot, no by-id link.
    assert!(gcp.fake.instance("src-vm").is_some());
    let instances: Vec<String> = gcp
        .fake
        .state()
        .instances
        .iter()
        .filter(|(z, _)| z == ZONE)
        .map(|(_, i)| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(instances, ["src-vm"]);
    assert_eq!(gcp.fake.disk_names(ZONE), ["src-vm"]);
    assert!(gcp.fake.snapshot_names().is_empty());
    let links: Vec<_> = std::fs::read_dir(gcp.fake.by_id_dir())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(links.is_empty(), "{links:?}");
    // The source disk is untouched and still attached to its instance.
    let src = gcp
        .fake
        .state()
        .disks
        .iter()
        .find(|(_, d)| d["name"] == "src-vm")
        .unwrap()
        .1
        .clone();
    assert_eq!(src["users"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_worker_attaches_the_copy_read_only_with_the_login_key_and_is_removed_once() {
    let gcp = Gcp::start().await;
    let disk = gcp.dir.path().join("src-vm.raw");
    source_disk(&disk);
    gcp.fake.add_source_vm(ZONE, "src-vm", "f1-micro", &disk);
    let worker = WorkerSettings {
        machine_type: "f1-micro".into(),
        user: Some("migrator".into()),
        ssh_public_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItest migrator@desk".into()),
        ..WorkerSettings::default()
    };
    let cloud = gcp.cloud().with_worker(worker);
    let at = altishift::cloud::DiskRef {
        instance_id: "src-vm".into(),
        disk_id: format!("src-vm@{ZONE}"),
    };
    let snapshot = cloud
        .snapshot_disk(&capability(), &at, "altishift-abc-src-vm-disk0")
        .await
        .unwrap();
    assert_eq!(snapshot.virtual_size.0, GIB);
    assert!(snapshot.created_by_run);
    assert_eq!(snapshot.id, format!("{ZONE}/altishift-abc-src-vm-disk0"));
    let vm = gcp.fake.instance("altishift-abc-src-vm-disk0-w").unwrap();
    assert_eq!(vm["status"], "RUNNING");
    assert!(vm["machineType"].as_str().unwrap().ends_with("/f1-micro"));
    let copy = &vm["disks"][1];
    assert_eq!(copy["mode"], "READ_ONLY");
    assert_eq!(copy["deviceName"], "altishift-abc-src-vm-disk0-d");
    assert!(
        copy["source"]
            .as_str()
            .unwrap()
            .ends_with("/disks/altishift-abc-src-vm-disk0-d")
    );
    let keys = vm["metadata"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "ssh-keys")
        .unwrap()["value"]
        .clone();
    assert_eq!(
        keys,
        "migrator:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItest migrator@desk"
    );
    // The temporary disk holds the snapshot's bytes, the snapshot the disk's.
    let linked = gcp
        .fake
        .by_id_dir()
        .join("google-altishift-abc-src-vm-disk0-d");
    assert!(std::fs::read(&linked).unwrap() == std::fs::read(&disk).unwrap());
    // A second attempt of the same step adopts what exists.
    let again = cloud
        .snapshot_disk(&capability(), &at, "altishift-abc-src-vm-disk0")
        .await
        .unwrap();
    assert_eq!(again, snapshot);
    let resource = altishift::cloud::CreatedResource {
        cloud: "gcp-test".into(),
        kind: altishift::cloud::ResourceKind::Snapshot,
        id: snapshot.id.clone(),
        temporary: true,
    };
    cloud.delete(&capability(), &resource).await.unwrap();
    assert!(gcp.fake.instance("altishift-abc-src-vm-disk0-w").is_none());
    assert_eq!(gcp.fake.disk_names(ZONE), ["src-vm"]);
    assert!(gcp.fake.snapshot_names().is_empty());
    // Deleting again finds nothing and is fine (cleanup after a crash).
    cloud.delete(&capability(), &resource).await.unwrap();
    // A worker Compute Engine refuses: the snapshot and disk made for it
    // are removed before the error is reported (nothing is journaled yet).
    let refused = gcp.cloud().with_worker(WorkerSettings {
        machine_type: "n9-imaginary-1".into(),
        ..WorkerSettings::default()
    });
    let err = refused
        .snapshot_disk(&capability(), &at, "altishift-abc-src-vm-disk1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("n9-imaginary-1"), "{err}");
    assert_eq!(gcp.fake.disk_names(ZONE), ["src-vm"]);
    assert!(gcp.fake.snapshot_names().is_empty());
}

/// The cutover role on Compute Engine: two snapshots of a running disk (the
/// guest wrote between them), the delta of the second against what the
/// target holds found by the worker's agent from block digests, the guest's
/// last writes landing as `instances.stop` shuts it down, and a stopped
/// instance started again. A quiesce command cannot run (no guest shell).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_reads_the_delta_between_snapshots_and_stops_through_instances_stop() {
    use altishift::block::BlockDigest;
    use altishift::cloud::{CutoverSource, DiskRef};
    use altishift::units::BlockIndex;
    use gce_fake::source::GuestWrites;
    use std::collections::BTreeMap;
    let gcp = Gcp::start().await;
    let sshd = sshd::Sshd::start();
    let disk = gcp.dir.path().join("db.raw");
    source_disk(&disk);
    gcp.fake.add_source_vm(ZONE, "db", "f1-micro", &disk);
    // While pass 1 runs: block 7 rewritten, block 300 zeroed, a hole filled
    // (block 900); as it stops: block 1000.
    gcp.fake.script_writes(
        ZONE,
        "db",
        GuestWrites {
            before_snapshot: [
                Vec::new(),
                vec![(7, Some(block(7))), (300, None), (900, Some(block(900)))],
            ]
            .into(),
            at_stop: vec![(1000, Some(block(1000)))],
        },
    );
    let cloud = source_cloud(&gcp, &sshd);
    let id = gcp.fake.instance("db").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    cloud.cutover_support(&id).await.unwrap();
    assert!(cloud.cutover_support("no-such-vm").await.is_err());
    assert!(
        gcp.fake.mutating_received().is_empty(),
        "the check changed nothing"
    );
    let cap = capability();
    let at = DiskRef {
        instance_id: id.clone(),
        disk_id: format!("db@{ZONE}"),
    };
    let first = cloud.snapshot_disk(&cap, &at, "cut-p1").await.unwrap();
    let second = cloud.snapshot_disk(&cap, &at, "cut-p2").await.unwrap();
    // What the target holds: the first snapshot, block for block.
    let held: BTreeMap<BlockIndex, BlockDigest> = {
        let reader = cloud.open_disk_reader(&first).await.unwrap();
        let mut held = BTreeMap::new();
        for index in reader
            .allocated_blocks()
            .await
            .unwrap()
            .into_iter()
            .flatten()
        {
            let bytes = reader.read_block(BlockIndex(index)).await.unwrap().bytes;
            if bytes.iter().any(|&b| b != 0) {
                held.insert(BlockIndex(index), BlockDigest::of(&bytes));
            }
        }
        held
    };
    assert_eq!(held.len(), 5);
    let delta = cloud
        .open_snapshot_delta(Some(&first), &second, &held)
        .await
        .unwrap();
    let blocks: Vec<u64> = delta
        .allocated_blocks()
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(blocks, vec![7, 300, 900]);
    assert!(delta.read_block(BlockIndex(7)).await.unwrap().bytes == block(7));
    let zeroed = delta.read_block(BlockIndex(300)).await.unwrap().bytes;
    assert!(zeroed.iter().all(|&b| b == 0), "block 300 reads as zeros");
    drop(delta);

    let refused = cloud
        .quiesce(&cap, &id, Some("systemctl stop db"), None)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("no shell on the guest"),
        "{refused}"
    );
    cloud.quiesce(&cap, &id, None, None).await.unwrap();
    assert_eq!(gcp.fake.instance("db").unwrap()["status"], "TERMINATED");
    let mut last = vec![0u8; 1 << 19];
    std::fs::File::open(&disk)
        .unwrap()
        .read_exact_at(&mut last, 1000 << 19)
        .unwrap();
    assert!(
        last == block(1000),
        "the guest's last write landed as it stopped"
    );
    // Powering off a stopped instance is no second stop.
    cloud.power_off(&cap, &id).await.unwrap();
    assert_eq!(gcp.fake.state().stops, ["db"]);
    cloud.thaw(&cap, &id, None).await.unwrap();
    assert_eq!(gcp.fake.instance("db").unwrap()["status"], "RUNNING");
    let posted: Vec<String> = gcp
        .fake
        .mutating_received()
        .into_iter()
        .filter(|m| m.ends_with("/stop") || m.ends_with("/start"))
        .collect();
    assert_eq!(
        posted,
        [
            format!("POST zones/{ZONE}/instances/db/stop"),
            format!("POST zones/{ZONE}/instances/db/start"),
        ]
    );
    for snapshot in [&first, &second] {
        use altishift::cloud::{CreatedResource, ResourceKind};
        cloud
            .delete(
                &cap,
                &CreatedResource {
                    kind: ResourceKind::Snapshot,
                    id: snapshot.id.clone(),
                    cloud: "gcp-test".into(),
                    temporary: true,
                },
            )
            .await
            .unwrap();
    }
}
