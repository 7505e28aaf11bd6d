//! CloudStack transfers through the engine and the provider: whole
//! migrations lab ↔ cloudstack, hole handling, interrupted downloads, and
//! the throughput benchmark against curl.

use altishift_testkit::cloudstack_fake;

use altishift::cloud::{Cloud, DiskRef, Source};
use altishift::units::{BLOCK_SIZE, BlockIndex};
use cloudstack_fake::FakeCloudStack;
use cloudstack_fake::testkit::*;

#[tokio::test]
async fn cloudstack_to_lab_migration_is_byte_identical_and_cleans_up() {
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let blocks = [0, 1, 2, 50, 51, 127];
    let seed = Seed::new(dir.path(), "app", 64 << 20, &blocks);
    fake.add_vm(
        "app-1",
        "Medium Instance",
        Some((seed.qcow2.clone(), seed.size)),
    );
    let staging = dir.path().join("cs-staging");
    let cloud = connect(&fake, &staging);
    let lab = Lab::new(dir.path());
    let source_inventory = cloud.inventory().await.unwrap();
    let plan = plan_between(
        ("cs-test", "cloudstack", &source_inventory),
        ("lab-west", "lab", &lab.west_inventory().await),
        &["app-1"],
    );
    assert_eq!(
        fake.mutating_received(),
        Vec::<String>::new(),
        "planning changed the cloud"
    );
    let report = run(
        approve(plan),
        std::sync::Arc::new(cloud),
        lab.west(),
        &dir.path().join("state"),
    )
    .await;
    assert!(report.ok, "{report:#?}");
    for disk in &report.disks {
        assert_eq!(disk.status, "done");
        assert!(disk.source_digest.is_some());
        assert_eq!(disk.source_digest, disk.target_digest, "{}", disk.disk);
    }
    let target = lab.instance_disks("lab-west", "app-1");
    assert_eq!(target.len(), 1);
    assert!(
        same_guest_content(&target[0], &seed.raw),
        "lab copy differs from the CloudStack volume"
    );
    let s = fake.state();
    assert!(s.snapshots.is_empty(), "snapshot left behind");
    assert_eq!(s.volumes.len(), 1, "temporary volume copy left behind");
    assert!(staging_is_empty(&staging), "local download left behind");
}

#[tokio::test]
async fn lab_to_cloudstack_migration_is_byte_identical_with_the_mapped_offering() {
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("cs-staging");
    let cloud = connect(&fake, &staging);
    let lab = Lab::new(dir.path());
    let target_inventory = cloud.inventory().await.unwrap();
    let plan = plan_between(
        ("lab-east", "lab", &lab.east_inventory().await),
        ("cs-test", "cloudstack", &target_inventory),
        &["web-2"],
    );
    let offering = plan.items[0].target_size.clone();
    assert_eq!(fake.mutating_received(), Vec::<String>::new());
    let report = run(
        approve(plan),
        lab.east(),
        std::sync::Arc::new(cloud),
        &dir.path().join("state"),
    )
    .await;
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.disks.len(), 2);
    for disk in &report.disks {
        assert_eq!(disk.source_digest, disk.target_digest, "{}", disk.disk);
    }
    let source = lab.instance_disks("lab-east", "web-2");
    let s = fake.state();
    let vm = s
        .vms
        .iter()
        .find(|v| v.name == "web-2")
        .expect("VM deployed");
    assert_eq!(vm.state, "Running");
    let mapped = s.offerings.iter().find(|o| o.id == vm.offering_id).unwrap();
    assert_eq!(mapped.name, offering);
    let mut attached: Vec<_> = s
        .volumes
        .iter()
        .filter(|v| v.vm.as_ref() == Some(&vm.id))
        .cloned()
        .collect();
    attached.sort_by_key(|v| v.device);
    assert_eq!(attached.len(), 2);
    assert_eq!(attached[0].kind, "ROOT");
    for (volume, lab_disk) in attached.iter().zip(&source) {
        assert!(
            same_guest_content(volume.data.as_ref().unwrap(), lab_disk),
            "{} differs",
            volume.name
        );
    }
    assert!(staging_is_empty(&staging), "staging files left behind");
}

/// Zero blocks on either side are holes, never sent.
#[tokio::test]
async fn block_reads_skip_nothing_but_holes() {
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed::new(dir.path(), "z", 8 << 20, &[5]);
    let (vm, volume) = fake.add_vm(
        "z-1",
        "Small Instance",
        Some((seed.qcow2.clone(), seed.size)),
    );
    let cloud = connect(&fake, dir.path());
    let cap = capability();
    let snapshot = cloud
        .snapshot_disk(
            &cap,
            &DiskRef {
                instance_id: vm,
                disk_id: volume,
            },
            "z",
        )
        .await
        .unwrap();
    let reader = cloud.open_disk_reader(&snapshot).await.unwrap();
    let ranges: Vec<u64> = reader
        .allocated_blocks()
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ranges, [5]);
    let block = reader.read_block(BlockIndex(4)).await.unwrap();
    assert!(block.bytes.iter().all(|&b| b == 0));
}

/// The cutover role on CloudStack: two volume snapshots of a running VM
/// (the guest wrote between them, into its qcow2), the delta of the second's
/// extracted copy against what the target holds found from block digests,
/// the guest's last writes landing as stopVirtualMachine shuts it down, and
/// the VM started again. A quiesce command cannot run (no guest shell).
#[tokio::test]
async fn a_cutover_hashes_the_delta_between_snapshots_and_stops_the_vm() {
    use altishift::block::BlockDigest;
    use altishift::cloud::CutoverSource;
    use cloudstack_fake::guest::GuestWrites;
    use std::collections::BTreeMap;
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let blocks = [0, 5, 9];
    let seed = Seed::new(dir.path(), "db", 8 << 20, &blocks);
    let (vm, volume) = fake.add_vm(
        "db-1",
        "Small Instance",
        Some((seed.qcow2.clone(), seed.size)),
    );
    // While pass 1 runs: block 5 rewritten, block 9 zeroed, a hole filled
    // (block 12); as the VM stops: block 14.
    let new = |index: u64| vec![index as u8 ^ 0x5a; BLOCK_SIZE as usize];
    fake.script_writes(
        &volume,
        GuestWrites {
            before_snapshot: [
                Vec::new(),
                vec![(5, Some(new(5))), (9, None), (12, Some(new(12)))],
            ]
            .into(),
            at_stop: vec![(14, Some(new(14)))],
        },
    );
    let cloud = connect(&fake, dir.path());
    cloud.cutover_support(&vm).await.unwrap();
    assert!(cloud.cutover_support("no-such-vm").await.is_err());
    assert!(
        fake.mutating_received().is_empty(),
        "the check changed nothing"
    );
    let cap = capability();
    let at = DiskRef {
        instance_id: vm.clone(),
        disk_id: volume.clone(),
    };
    let first = cloud.snapshot_disk(&cap, &at, "cut-p1").await.unwrap();
    let second = cloud.snapshot_disk(&cap, &at, "cut-p2").await.unwrap();
    let held: BTreeMap<BlockIndex, BlockDigest> = blocks
        .iter()
        .map(|&i| (BlockIndex(i), BlockDigest::of(&seed.block(i))))
        .collect();
    let delta = cloud
        .open_snapshot_delta(Some(&first), &second, &held)
        .await
        .unwrap();
    let sent: Vec<u64> = delta
        .allocated_blocks()
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(sent, [5, 9, 12]);
    assert!(delta.read_block(BlockIndex(5)).await.unwrap().bytes == new(5));
    let zeroed = delta.read_block(BlockIndex(9)).await.unwrap().bytes;
    assert!(zeroed.iter().all(|&b| b == 0), "block 9 reads as zeros");

    let refused = cloud
        .quiesce(&cap, &vm, Some("systemctl stop db"), None)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("no shell on the guest"),
        "{refused}"
    );
    cloud.quiesce(&cap, &vm, None, None).await.unwrap();
    let state = |fake: &FakeCloudStack| {
        fake.state()
            .vms
            .iter()
            .find(|v| v.id == vm)
            .map(|v| v.state.clone())
            .unwrap()
    };
    assert_eq!(state(&fake), "Stopped");
    // The final snapshot holds the guest's last write.
    let last = cloud.snapshot_disk(&cap, &at, "cut-p3").await.unwrap();
    let reader = cloud.open_disk_reader(&last).await.unwrap();
    assert!(reader.read_block(BlockIndex(14)).await.unwrap().bytes == new(14));
    // Powering off a stopped VM sends no second stop.
    cloud.power_off(&cap, &vm).await.unwrap();
    assert_eq!(fake.state().stops, vec![vm.clone()]);
    cloud.thaw(&cap, &vm, None).await.unwrap();
    assert_eq!(state(&fake), "Running");
    let commands: Vec<String> = fake
        .mutating_received()
        .into_iter()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.ends_with("virtualmachine"))
        .collect();
    assert_eq!(commands, ["stopvirtualmachine", "startvirtualmachine"]);
}

#[tokio::test]
async fn an_interrupted_download_resumes_without_fetching_finished_chunks_again() {
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<u64> = (0..48).step_by(2).collect();
    let seed = Seed::new(dir.path(), "big", 64 << 20, &blocks);
    let (vm, volume) = fake.add_vm(
        "big-1",
        "Small Instance",
        Some((seed.qcow2.clone(), seed.size)),
    );
    let mut cloud = connect(&fake, &dir.path().join("staging"));
    cloud.transfer.chunk = 4 * BLOCK_SIZE;
    cloud.transfer.parallel = 1;
    cloud.transfer.attempts = 2;
    let chunks = std::fs::metadata(&seed.qcow2)
        .unwrap()
        .len()
        .div_ceil(4 * BLOCK_SIZE);
    assert!(chunks > 5, "{chunks}");
    let cap = capability();
    let at = DiskRef {
        instance_id: vm,
        disk_id: volume,
    };
    let snapshot = cloud.snapshot_disk(&cap, &at, "resume").await.unwrap();
    // The server dies after the size probe and three chunks.
    fake.fail_downloads_after(Some(4));
    let err = cloud
        .open_disk_reader(&snapshot)
        .await
        .err()
        .expect("download fails");
    assert!(err.is_transient(), "{err}");
    fake.fail_downloads_after(None);
    let before = fake.state().downloads_served;
    let reader = cloud.open_disk_reader(&snapshot).await.unwrap();
    let requests = fake.state().downloads_served - before;
    assert_eq!(
        requests,
        1 + (chunks - 3),
        "probe plus the chunks not yet on disk"
    );
    let read = read_all(&*reader).await;
    assert_eq!(read.keys().copied().collect::<Vec<_>>(), blocks);
    assert!(read.iter().all(|(i, b)| b == &seed.block(*i)));
}

/// Benchmark, not a test: `cargo test --test cloudstack -- --ignored bench --nocapture`.
/// Download (ranged, parallel and single-stream) and upload (multipart POST)
/// against the fake on loopback, next to `curl` doing the same single-stream
/// transfer in the same run.
#[tokio::test]
#[ignore]
async fn bench_transfer_throughput_against_curl() {
    use altishift::cloud::cloudstack::download::{self, DownloadPolicy};
    use altishift::cloud::cloudstack::target::{UploadHeaders, post_file};
    use std::time::Instant;
    let mb: u64 = std::env::var("CS_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("payload.bin");
    {
        // Incompressible, no zero blocks: nothing can be skipped.
        let seed = Seed::new(dir.path(), "unit", 4 * BLOCK_SIZE, &[]);
        let mut data = Vec::with_capacity((mb << 20) as usize);
        let mut index = 1;
        while (data.len() as u64) < mb << 20 {
            data.extend_from_slice(&seed.block(index));
            index += 1;
        }
        std::fs::write(&source, &data).unwrap();
    }
    let rate = |secs: f64| (mb << 20) as f64 / secs / 1e6;
    let cloud = connect(&fake, dir.path());
    let http = cloud.client().http().clone();
    let mut rows = Vec::new();

    for (label, parallel) in [
        ("altishift download, 1 stream", 1),
        ("altishift download, 6 streams", 6),
    ] {
        let url = fake.serve_file(&source);
        let dest = dir.path().join(format!("down-{parallel}.bin"));
        let policy = DownloadPolicy {
            parallel,
            chunk: 16 * BLOCK_SIZE,
            ..DownloadPolicy::default()
        };
        let started = Instant::now();
        download::download(&http, &url, &dest, "bench", policy)
            .await
            .unwrap();
        rows.push((label.to_string(), rate(started.elapsed().as_secs_f64())));
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            std::fs::read(&source).unwrap()
        );
    }
    let url = fake.serve_file(&source);
    let started = Instant::now();
    let status = tokio::process::Command::new("curl")
        .args(["-sS", "--fail", "-o"])
        .arg(dir.path().join("curl-down.bin"))
        .arg(&url)
        .status()
        .await
        .expect("curl runs (run scripts/test: it installs curl)");
    assert!(status.success());
    rows.push((
        "curl download, 1 stream".into(),
        rate(started.elapsed().as_secs_f64()),
    ));

    let zone_id = fake.state().zone_id.clone();
    let slot = || async {
        let params = [
            ("name", "bench".to_string()),
            ("format", "RAW".into()),
            ("zoneid", zone_id.clone()),
        ];
        let answer = cloud
            .client()
            .call("getUploadParamsForVolume", &params)
            .await
            .unwrap();
        let p = &answer["getuploadparams"];
        let field = |k: &str| p[k].as_str().unwrap().to_string();
        (
            field("postURL"),
            UploadHeaders {
                signature: field("signature"),
                metadata: field("metadata"),
                expires: field("expires"),
            },
        )
    };
    let (url, headers) = slot().await;
    let started = Instant::now();
    post_file(&http, &url, &headers, &source, "bench")
        .await
        .unwrap();
    rows.push((
        "altishift upload (multipart POST)".into(),
        rate(started.elapsed().as_secs_f64()),
    ));
    let (url, headers) = slot().await;
    let started = Instant::now();
    let status = tokio::process::Command::new("curl")
        .args(["-sS", "--fail", "-o", "/dev/null"])
        .args(["-H", &format!("X-signature: {}", headers.signature)])
        .args(["-H", &format!("X-metadata: {}", headers.metadata)])
        .args(["-H", &format!("X-expires: {}", headers.expires)])
        .args(["-F", &format!("files[]=@{}", source.display())])
        .arg(&url)
        .status()
        .await
        .expect("curl runs (run scripts/test: it installs curl)");
    assert!(status.success());
    rows.push((
        "curl upload (multipart POST)".into(),
        rate(started.elapsed().as_secs_f64()),
    ));

    println!("\n{mb} MiB over loopback against the CloudStack fake:");
    for (label, mbps) in &rows {
        println!("  {label:<36} {mbps:8.1} MB/s");
    }
    let get = |l: &str| rows.iter().find(|(x, _)| x == l).map(|(_, v)| *v).unwrap();
    println!(
        "  ratio download 1 stream / curl: {:.2}; 6 streams / curl: {:.2}; upload / curl: {:.2}",
        get("altishift download, 1 stream") / get("curl download, 1 stream"),
        get("altishift download, 6 streams") / get("curl download, 1 stream"),
        get("altishift upload (multipart POST)") / get("curl upload (multipart POST)")
    );
}

/// The lab's firewall, key, tags and user-data reach a CloudStack VM: a
/// security group (tagged with the plan) with every rule, a registered key
/// pair, base64 userdata, and the VM's tags, read back from the API's store.
#[tokio::test]
async fn lab_to_cloudstack_carries_the_security_group_key_pair_tags_and_userdata() {
    use altishift::cloud::lab::config::{OPS_KEY, user_data};
    use base64::Engine as _;
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("cs-staging");
    let cloud = connect(&fake, &staging);
    let lab = Lab::new(dir.path());
    let target_inventory = cloud.inventory().await.unwrap();
    let plan = plan_between(
        ("lab-east", "lab", &lab.east_inventory().await),
        ("cs-test", "cloudstack", &target_inventory),
        &["web-1"],
    );
    let short = plan.hash().short().to_string();
    let c = plan.items[0].configuration.clone();
    assert_eq!(c.firewalls[0].name, "web");
    assert!(c.firewalls[0].rules.iter().all(|r| r.target.is_some()));
    assert_eq!(c.ssh_keys[0].name, "ops");
    assert_eq!(c.user_data.as_deref(), Some(user_data("web-1").as_str()));
    assert_eq!(fake.mutating_received(), Vec::<String>::new());
    let report = run(
        approve(plan),
        lab.east(),
        std::sync::Arc::new(cloud),
        &dir.path().join("state"),
    )
    .await;
    assert!(report.ok, "{report:#?}");
    let checks = &report.instances[0].checks;
    for name in ["firewalls", "ssh keys", "user-data", "tags"] {
        let check = checks.iter().find(|c| c.name == name);
        assert!(check.is_some_and(|c| c.passed), "{name}: {checks:#?}");
    }
    let mutating = fake.mutating_received();
    let group_at = mutating.iter().position(|c| c == "createSecurityGroup");
    let vm_at = mutating.iter().position(|c| c == "deployVirtualMachine");
    assert!(group_at.is_some() && group_at < vm_at, "{mutating:?}");

    let s = fake.state();
    let group = s
        .sec_groups
        .iter()
        .find(|g| g["name"] == "web")
        .expect("the security group");
    assert!(
        group["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "altishift:plan" && t["value"] == short.as_str()),
        "{group}"
    );
    let ingress: Vec<(String, u64, String)> = group["ingressrule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["protocol"].as_str().unwrap().to_string(),
                r["startport"].as_u64().unwrap(),
                r["cidr"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let any = || "0.0.0.0/0".to_string();
    assert_eq!(
        ingress,
        vec![
            ("tcp".into(), 22, any()),
            ("tcp".into(), 80, any()),
            ("tcp".into(), 443, any())
        ]
    );
    assert_eq!(group["egressrule"][0]["protocol"], "all");
    assert_eq!(group["egressrule"][0]["cidr"], "0.0.0.0/0");
    let pair = s
        .keypairs
        .iter()
        .find(|k| k["name"] == "ops")
        .expect("key pair");
    assert_eq!(pair["publickey"], OPS_KEY);
    let vm = s
        .vms
        .iter()
        .find(|v| v.name == "web-1")
        .expect("VM deployed");
    let given = &s.vm_config[&vm.id];
    assert_eq!(
        given.groups,
        vec![group["id"].as_str().unwrap().to_string()]
    );
    assert_eq!(given.keypairs, vec!["ops".to_string()]);
    let data = base64::engine::general_purpose::STANDARD
        .decode(given.userdata.as_deref().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(data).unwrap(), user_data("web-1"));
    assert!(
        given.tags.contains(&("env".to_string(), "lab".to_string())),
        "{:?}",
        given.tags
    );
}
