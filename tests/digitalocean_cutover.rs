//! A cutover from a DigitalOcean droplet (the API fake, its disk read over a
//! real sshd on loopback) into the lab: copied while it runs, quiesced by the
//! operator's command (which changes blocks), a final pass of exactly those
//! blocks, then DigitalOcean's own `shutdown` action (not an SSH poweroff),
//! and a byte-identical target.

use altishift_testkit::do_fake;
use altishift_testkit::ssh_kit;
use altishift_testkit::sshd;

use altishift::cloud::digitalocean::{DigitalOceanCloud, DoClient, Pacing, SshAccess};
use altishift::cloud::{Cloud, CutoverSource};
use altishift::engine::event::PassKind;
use altishift::engine::{self, EngineOptions, Event};
use altishift::plan::Cutover;
use altishift::plan::build::{Request, Side, Throughput, build};
use altishift::secret::Secret;
use altishift::units::{BLOCK_SIZE, Bytes};
use do_fake::{FakeDo, TOKEN};
use ssh_kit::{Lab, approve, block_content};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A droplet whose SSH source is the test sshd, reading `device`.
fn droplet_cloud(fake: &FakeDo, sshd: &sshd::Sshd, device: &Path) -> DigitalOceanCloud {
    droplet_with_volumes(fake, sshd, device, None)
}

/// The same, its volumes' device links in `volume_dir` (the sshd here has
/// no `/dev/disk/by-id` to present: a folder of files stands in for it).
fn droplet_with_volumes(
    fake: &FakeDo,
    sshd: &sshd::Sshd,
    device: &Path,
    volume_dir: Option<&Path>,
) -> DigitalOceanCloud {
    let mut client = DoClient::new(Some(&fake.base), Secret::new(TOKEN.into())).unwrap();
    client.pacing = Pacing {
        first_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        attempts: 6,
        poll_every: Duration::from_millis(10),
        poll_deadline: Duration::from_secs(60),
    };
    DigitalOceanCloud::new("do-test", client)
        .with_jurisdiction(Some("DE".into()))
        .with_ssh(SshAccess {
            user: Some(sshd.user()),
            options: sshd.options_for_address(true),
            sudo: false,
            device: Some(device.display().to_string()),
            volume_dir: volume_dir.map(|d| d.display().to_string()),
            agent_binary: Some(sshd::agent_binary()),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_droplet_cutover_sends_the_quiesced_changes_and_shuts_the_droplet_down() {
    let fake = FakeDo::start().await;
    let sshd = sshd::Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    // The droplet's "/dev/vda": 1 GiB, sparse, data in a few blocks.
    let device = dir.path().join("vda.raw");
    let file = std::fs::File::create(&device).unwrap();
    file.set_len(1 << 30).unwrap();
    let data = [0u64, 1, 100, 2047];
    for &b in &data {
        file.write_all_at(&block_content(b, 1), b * BLOCK_SIZE)
            .unwrap();
    }
    drop(file);
    // The quiesce command changes one block, fills a hole, zeroes another.
    let v2 = dir.path().join("block-100.v2");
    std::fs::write(&v2, block_content(100, 2)).unwrap();
    let quiesce = format!(
        "dd if={v2} of={dev} bs={BLOCK_SIZE} seek=100 count=1 conv=notrunc status=none && \
         dd if={v2} of={dev} bs={BLOCK_SIZE} seek=500 count=1 conv=notrunc status=none && \
         dd if=/dev/zero of={dev} bs={BLOCK_SIZE} seek=1 count=1 conv=notrunc status=none",
        v2 = v2.display(),
        dev = device.display()
    );
    let id = fake.add_droplet("db", 1, "127.0.0.1");
    let source = Arc::new(droplet_cloud(&fake, &sshd, &device));
    source.cutover_support(&id.to_string()).await.unwrap();

    let lab = Lab::new(dir.path());
    let mut source_inventory = source.inventory().await.unwrap();
    source_inventory.instances[0].vcpus = 1;
    source_inventory.instances[0].memory = Bytes::gib(1);
    let target_inventory = lab.west().inventory().await.unwrap();
    let plan = build(
        &Side {
            cloud: "do-test",
            provider: "digitalocean".into(),
            jurisdiction: Some("DE".into()),
            inventory: &source_inventory,
        },
        &Side {
            cloud: "lab-west",
            provider: "lab".into(),
            jurisdiction: Some("DE".into()),
            inventory: &target_inventory,
        },
        &Request {
            select: vec!["db".into()],
            cutover: Some(Cutover {
                quiesce: Some(quiesce),
                thaw: None,
                power_off: true,
                max_delta_passes: 1,
            }),
            ..Request::default()
        },
        &Throughput {
            bytes_per_second: 100_000_000,
            basis: "test".into(),
        },
        "tester@localhost",
    )
    .unwrap();
    assert!(
        fake.mutating().is_empty(),
        "planning changed the cloud: {:?}",
        fake.mutating()
    );

    let mut handle = engine::start(
        approve(plan),
        source.clone(),
        lab.west(),
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
    // The source was down from the quiesce to the validation, and the report says how long.
    let downtime = report.instances[0]
        .downtime_ms
        .expect("a cutover reports its downtime");
    eprintln!("droplet cutover downtime: {downtime} ms");
    // Full: the four data blocks; one delta pass while running finds
    // nothing; final: exactly the changed, the filled and the zeroed block.
    assert_eq!(
        passes,
        vec![
            (PassKind::Full, data.len() as u64),
            (PassKind::Delta, 0),
            (PassKind::Final, 3),
        ]
    );
    let copied = lab.disk_of("db");
    assert!(
        std::fs::read(&copied).unwrap() == std::fs::read(&device).unwrap(),
        "the lab copy differs from the droplet's disk after the cutover"
    );
    let shutdowns: Vec<String> = fake
        .mutating()
        .into_iter()
        .filter(|r| r.contains(&format!("/v2/droplets/{id}/actions")))
        .collect();
    assert_eq!(
        shutdowns.len(),
        1,
        "one shutdown action expected: {:?}",
        fake.mutating()
    );
}

/// A droplet with a 1 GiB volume `data` whose bytes differ from its boot
/// disk's: each disk is read from its own device (the volume from
/// `scsi-0DO_Volume_data`, as DigitalOcean names it) and lands byte-identical
/// in its own place on the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_droplet_with_a_volume_migrates_each_disk_from_its_own_device() {
    let fake = FakeDo::start().await;
    let sshd = sshd::Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let write_disk = |path: &Path, blocks: &[u64], version: u8| {
        let file = std::fs::File::create(path).unwrap();
        file.set_len(1 << 30).unwrap();
        for &b in blocks {
            file.write_all_at(&block_content(b, version), b * BLOCK_SIZE)
                .unwrap();
        }
    };
    let boot = dir.path().join("vda.raw");
    write_disk(&boot, &[0, 1, 100], 1);
    let by_id = dir.path().join("by-id");
    std::fs::create_dir(&by_id).unwrap();
    let volume = by_id.join("scsi-0DO_Volume_data");
    write_disk(&volume, &[0, 7, 900, 2047], 9);
    assert_ne!(
        std::fs::read(&boot).unwrap(),
        std::fs::read(&volume).unwrap()
    );
    let id = fake.add_droplet("db", 1, "127.0.0.1");
    fake.attach_volume(id, "data", 1);
    let source = Arc::new(droplet_with_volumes(&fake, &sshd, &boot, Some(&by_id)));

    let lab = Lab::new(dir.path());
    let mut source_inventory = source.inventory().await.unwrap();
    source_inventory.instances[0].vcpus = 1;
    source_inventory.instances[0].memory = Bytes::gib(1);
    assert_eq!(source_inventory.instances[0].disks.len(), 2);
    let target_inventory = lab.west().inventory().await.unwrap();
    let plan = build(
        &Side {
            cloud: "do-test",
            provider: "digitalocean".into(),
            jurisdiction: Some("DE".into()),
            inventory: &source_inventory,
        },
        &Side {
            cloud: "lab-west",
            provider: "lab".into(),
            jurisdiction: Some("DE".into()),
            inventory: &target_inventory,
        },
        &Request {
            select: vec!["db".into()],
            ..Request::default()
        },
        &Throughput {
            bytes_per_second: 100_000_000,
            basis: "test".into(),
        },
        "tester@localhost",
    )
    .unwrap();
    let mut handle = engine::start(
        approve(plan),
        source.clone(),
        lab.west(),
        &dir.path().join("state"),
        EngineOptions::default(),
    )
    .unwrap();
    while handle.events.recv().await.is_some() {}
    let report = handle.done.await.unwrap().unwrap().report;
    assert!(report.ok, "{report:#?}");
    let west = lab.root.join("lab-west");
    let text = std::fs::read_to_string(west.join("instances/db.toml")).unwrap();
    let manifest: altishift::cloud::lab::manifest::InstanceManifest =
        toml::from_str(&text).unwrap();
    assert_eq!(manifest.disks.len(), 2, "{text}");
    let copied: Vec<Vec<u8>> = manifest
        .disks
        .iter()
        .map(|d| std::fs::read(west.join(&d.file)).unwrap())
        .collect();
    assert!(
        copied[0] == std::fs::read(&boot).unwrap(),
        "the boot disk's copy differs from the droplet's boot disk"
    );
    assert!(
        copied[1] == std::fs::read(&volume).unwrap(),
        "the volume's copy is not the volume's bytes (the boot disk's again?)"
    );
}
