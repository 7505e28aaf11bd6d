//! The Google Cloud provider against a faithful Compute Engine fake (its
//! token endpoint verifies our RS256 JWTs) and the real Cloud Storage
//! emulator behind a recording proxy: paging to the end, resumable uploads
//! that survive broken chunks, archives checked with GNU tar and gzip, and
//! a lab → gcp migration through the engine with nothing changed before
//! approval and no credential in any output.

use altishift_testkit::gce_fake;

use altishift::cloud::gcp::GcpCloud;
use altishift::cloud::gcp::auth::ServiceAccount;
use altishift::cloud::{Cloud, CloudError, DeploySpec, Target};
use altishift::units::{BLOCK_SIZE, Bytes};
use gce_fake::PROJECT;
use gce_fake::testkit::*;
use std::collections::BTreeMap;

#[tokio::test]
async fn our_jwt_verifies_at_the_token_endpoint_and_a_foreign_key_is_refused() {
    let gcp = Gcp::start().await;
    let inventory = gcp.cloud().inventory().await.unwrap();
    assert!(!inventory.instances.is_empty());
    {
        let s = gcp.fake.state();
        assert!(
            s.refused_assertions.is_empty(),
            "{:?}",
            s.refused_assertions
        );
        assert_eq!(s.assertions.len(), 1, "one token for the whole inventory");
        let claims = &s.assertions[0];
        assert_eq!(claims["iss"], gce_fake::CLIENT_EMAIL);
        assert_eq!(claims["aud"], gcp.fake.token_uri.as_str());
        assert_eq!(
            claims["scope"],
            "https://www.googleapis.com/auth/cloud-platform"
        );
        assert!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap() <= 3600);
        assert!(s.received.iter().all(|r| r.authorized));
    }
    // Same service account name, another key: the signature does not verify.
    let other = tempfile::tempdir().unwrap();
    let foreign = TestKey::generate(other.path());
    let account = ServiceAccount::from_file(&foreign.file).unwrap();
    let cloud = GcpCloud::new("gcp-test", PROJECT, account, gcp.endpoints()).unwrap();
    let err = cloud.inventory().await.unwrap_err();
    assert!(matches!(err, CloudError::Auth(_)), "{err}");
    assert!(err.to_string().contains("Invalid JWT Signature"), "{err}");
    assert!(!format!("{err:?}").contains(&foreign.fingerprint()));
}

#[tokio::test]
async fn tokens_are_refreshed_when_they_expire_or_are_refused() {
    let gcp = Gcp::start().await;
    gcp.fake.state().token_lifetime = 0;
    let cloud = gcp.cloud();
    cloud.client().get("zones").await.unwrap();
    cloud.client().get("zones").await.unwrap();
    assert_eq!(gcp.fake.state().assertions.len(), 2, "expired token reused");
    // The server forgets every token: the client gets a 401 and asks again.
    gcp.fake.state().token_lifetime = 3600;
    cloud.client().get("zones").await.unwrap();
    gcp.fake.state().tokens.clear();
    cloud.client().get("zones").await.unwrap();
    let s = gcp.fake.state();
    assert_eq!(s.assertions.len(), 4);
    assert_eq!(s.received.iter().filter(|r| r.status == 401).count(), 1);
}

#[tokio::test]
async fn a_broken_upload_resumes_and_gnu_tar_reads_the_exact_disk() {
    let gcp = Gcp::start().await;
    let cloud = gcp.cloud();
    let dir = gcp.dir.path();
    // 1.5 GiB + 100 KiB: rounded up to 2 GiB; a short last block.
    let size = (3 << 29) + 100 * 1024;
    let last = size / BLOCK_SIZE;
    let mut blocks: Vec<u64> = (0..40).collect();
    blocks.extend([700, 701, 1500, last]);
    // The second and third data chunks break half-way.
    gcp.storage.break_chunks(1, 2);
    let raw = dir.join("source.raw");
    let written = upload(&cloud, "web-1-disk0", size, &blocks, &raw)
        .await
        .unwrap();
    assert_eq!(written.virtual_size, Bytes(2 << 30));
    let broken = gcp
        .storage
        .received()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    assert_eq!(broken, 2, "no upload chunk was broken");
    // The staging parts are composed into one object; check it with GNU tools.
    let objects = gcp.objects().await;
    let archive_name = objects
        .iter()
        .find(|o| o.ends_with("/disk.tar.gz"))
        .unwrap_or_else(|| panic!("no archive in {objects:?}"))
        .clone();
    assert_eq!(objects.len(), 1, "staging parts left: {objects:?}");
    std::fs::write(dir.join("disk.tar.gz"), gcp.object(&archive_name).await).unwrap();
    sh("gzip", &["-t", "disk.tar.gz"], dir);
    let listing = sh("tar", &["-tvzf", "disk.tar.gz"], dir);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 1, "{listing}");
    let fields: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(fields[2], (2u64 << 30).to_string(), "{listing}");
    assert_eq!(fields.last(), Some(&"disk.raw"));
    std::fs::create_dir(dir.join("out")).unwrap();
    sh("tar", &["-xzSf", "disk.tar.gz", "-C", "out"], dir);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&raw)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    sh("cmp", &["source.raw", "out/disk.raw"], dir);
    // The image was imported from that object.
    let image = gcp.fake.image(&written.id).unwrap();
    assert_eq!(image["status"], "READY");
    assert_eq!(image["diskSizeGb"], "2");
    assert!(
        image["rawDisk"]["source"]
            .as_str()
            .unwrap()
            .ends_with(&archive_name)
    );
}

#[tokio::test]
async fn a_failed_import_operation_fails_the_disk_with_its_error() {
    let gcp = Gcp::start().await;
    let cloud = gcp.cloud();
    gcp.fake
        .fail_next_import("The image file is not a valid disk image");
    let raw = gcp.dir.path().join("x.raw");
    let err = upload(&cloud, "x-disk0", 1 << 30, &[0, 3], &raw)
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Permanent(_)), "{err}");
    assert!(err.to_string().contains("INVALID_IMAGE_FILE"), "{err}");
    assert!(err.to_string().contains("not a valid disk image"), "{err}");
}

#[tokio::test]
async fn deploy_waits_for_running_and_probe_checks_the_machine_type() {
    let gcp = Gcp::start().await;
    let cloud = gcp.cloud();
    let raw = gcp.dir.path().join("boot.raw");
    let disk = upload(&cloud, "app-disk0", 1 << 30, &[0, 1, 2], &raw)
        .await
        .unwrap();
    let spec = DeploySpec {
        name: "app".into(),
        size: "n1-standard-2".into(),
        region: ZONE.into(),
        disks: vec![disk],
        tags: BTreeMap::from([("Owner".to_string(), "ops team".to_string())]),
        platform: Default::default(),
        config: Default::default(),
    };
    let deployed = cloud.deploy(&capability(), &spec).await.unwrap();
    let vm = gcp.fake.instance("app").unwrap();
    assert_eq!(vm["status"], "RUNNING");
    assert!(
        vm["machineType"]
            .as_str()
            .unwrap()
            .ends_with("/zones/europe-west1-b/machineTypes/n1-standard-2")
    );
    let checks = cloud.probe(&deployed, &spec).await.unwrap();
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    // The address validation reaches it at: the NAT address, else the internal.
    let nic = &vm["networkInterfaces"][0];
    let expected = nic["accessConfigs"][0]["natIP"]
        .as_str()
        .or(nic["networkIP"].as_str());
    assert_eq!(deployed.address.as_deref(), expected);
    assert!(deployed.address.is_some());
    // A machine type the zone lacks: Google's 404, as a clear error.
    let mut bad = spec.clone();
    bad.name = "app2".into();
    bad.size = "n9-imaginary-1".into();
    let err = cloud.deploy(&capability(), &bad).await.unwrap_err();
    assert!(err.to_string().contains("n9-imaginary-1"), "{err}");
}

#[tokio::test]
async fn a_one_gib_disk_boots_from_a_disk_of_the_documented_minimum_size() {
    let gcp = Gcp::start().await;
    let cloud = gcp.cloud();
    let raw = gcp.dir.path().join("small.raw");
    let disk = upload(&cloud, "small-disk0", 1 << 30, &[0, 1], &raw)
        .await
        .unwrap();
    assert_eq!(gcp.fake.image(&disk.id).unwrap()["diskSizeGb"], "1");
    // Compute Engine refuses a pd-standard disk under 10 GB, whatever the image.
    let refused = cloud
        .client()
        .post(
            &format!("zones/{ZONE}/disks"),
            &serde_json::json!({"name": "tiny", "sizeGb": "1"}),
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("cannot be smaller than 10 GB"),
        "{refused}"
    );
    let spec = DeploySpec {
        name: "small".into(),
        size: "n1-standard-2".into(),
        region: ZONE.into(),
        disks: vec![disk],
        tags: BTreeMap::new(),
        platform: Default::default(),
        config: Default::default(),
    };
    cloud.deploy(&capability(), &spec).await.unwrap();
    assert_eq!(gcp.fake.instance("small").unwrap()["status"], "RUNNING");
    let boot = gcp.fake.disk(ZONE, "small").unwrap();
    assert_eq!(boot["sizeGb"], "10", "{boot}");
}

/// The insert acts, then its answer is lost (a 503). The retry carries the
/// same `requestId`, so Compute Engine answers with the first operation and
/// exactly one instance exists.
#[tokio::test]
async fn an_insert_whose_answer_is_lost_is_repeated_with_its_request_id_and_acts_once() {
    let gcp = Gcp::start().await;
    let cloud = gcp.cloud();
    let raw = gcp.dir.path().join("once.raw");
    let disk = upload(&cloud, "once-disk0", 1 << 30, &[0], &raw)
        .await
        .unwrap();
    let spec = DeploySpec {
        name: "once".into(),
        size: "n1-standard-2".into(),
        region: ZONE.into(),
        disks: vec![disk],
        tags: BTreeMap::new(),
        platform: Default::default(),
        config: Default::default(),
    };
    gcp.fake.lose_answer(&format!("zones/{ZONE}/instances"));
    cloud.deploy(&capability(), &spec).await.unwrap();
    let inserts: Vec<_> = gcp
        .fake
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == format!("zones/{ZONE}/instances"))
        .collect();
    assert_eq!(inserts.len(), 2, "{inserts:?}");
    assert_eq!(inserts[0].status, 503);
    assert!(inserts[0].query.starts_with("requestId="), "{inserts:?}");
    assert_eq!(inserts[0].query, inserts[1].query, "a new requestId");
    let s = gcp.fake.state();
    let named = s.instances.iter().filter(|(_, i)| i["name"] == "once");
    assert_eq!(named.count(), 1);
}

#[tokio::test]
async fn lab_to_gcp_migration_is_byte_identical_with_nothing_changed_before_approval() {
    let gcp = Gcp::start().await;
    let lab = Lab::new(gcp.dir.path());
    let cloud = gcp.cloud();
    let target_inventory = cloud.inventory().await.unwrap();
    let source_inventory = lab.east().inventory().await.unwrap();
    let plan = plan_to_gcp(&source_inventory, &target_inventory, &["web-2"]);
    let size = plan.items[0].target_size.clone();
    assert_eq!(
        gcp.fake.mutating_received(),
        Vec::<String>::new(),
        "planning changed Compute Engine"
    );
    assert_eq!(
        gcp.storage.mutating_received(),
        Vec::<String>::new(),
        "planning changed Cloud Storage"
    );
    let state = gcp.dir.path().join("state");
    let report = run(
        approve(plan),
        lab.east(),
        std::sync::Arc::new(cloud),
        &state,
    )
    .await;
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.disks.len(), 2);
    let vm = gcp.fake.instance("web-2").expect("instance deployed");
    assert_eq!(vm["status"], "RUNNING");
    assert!(
        vm["machineType"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/machineTypes/{size}"))
    );
    let attached = vm["disks"].as_array().unwrap();
    assert_eq!(attached.len(), 2);
    assert_eq!(attached[0]["boot"], true);
    // Each image holds the lab disk, byte for byte (zero-padded to whole GiB).
    let images: Vec<String> = gcp
        .fake
        .state()
        .images
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(images.len(), 2, "{images:?}");
    for lab_disk in lab.instance_disks("web-2") {
        let stem = lab_disk.file_stem().unwrap().to_string_lossy().to_string();
        let image = images
            .iter()
            .find(|i| i.starts_with(&format!("{stem}-")))
            .unwrap_or_else(|| panic!("no image for {stem} in {images:?}"));
        let file = gcp.fake.image_file(image).unwrap();
        let same = std::process::Command::new("qemu-img")
            .args(["compare", "-q"])
            .arg(&lab_disk)
            .arg(&file)
            .status()
            .unwrap()
            .success();
        assert!(same, "image {image} differs from {}", lab_disk.display());
    }
    // Staging objects were removed at cleanup.
    assert!(
        gcp.objects().await.is_empty(),
        "staging left: {:?}",
        gcp.objects().await
    );
    // No credential anywhere: report, journal, audit log, any file written.
    let report_text = format!("{report:?}");
    let tokens = gcp.fake.state().tokens.clone();
    let mut texts = vec![report_text];
    for entry in walk(&state) {
        texts.push(String::from_utf8_lossy(&std::fs::read(entry).unwrap()).into_owned());
    }
    for text in &texts {
        assert!(!text.contains(&gcp.key.fingerprint()), "private key leaked");
        assert!(!text.contains("PRIVATE KEY"), "private key leaked");
        for token in &tokens {
            assert!(!text.contains(token.as_str()), "access token leaked");
        }
        assert!(!text.contains("upload_id="), "upload session URI leaked");
    }
}

#[tokio::test]
async fn a_gcp_profile_in_config_toml_connects_through_the_registry() {
    let gcp = Gcp::start().await;
    let config_path = gcp.dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "[clouds.gce]\nprovider = \"gcp\"\nproject = \"{PROJECT}\"\ninsecure_endpoint = true\n\
             credentials_file = \"service-account.json\"\nzone = \"{ZONE}\"\n\
             bucket = \"{BUCKET}\"\nendpoint = \"{}\"\nstorage_endpoint = \"{}\"\n\
             token_uri = \"{}\"\n",
            gcp.fake.base_url, gcp.storage.base_url, gcp.fake.token_uri
        ),
    )
    .unwrap();
    let config = altishift::config::Config::load(&config_path).unwrap();
    let cloud = altishift::cloud::connect(&config, "gce", &mut |_| None)
        .await
        .unwrap();
    assert_eq!(cloud.provider().to_string(), "gcp");
    let inventory = cloud.inventory().await.unwrap();
    assert_eq!(inventory.regions[0].name, ZONE);
    let revoked = cloud.revoke().await.unwrap();
    assert!(revoked[0].contains("wiped"), "{revoked:?}");
    // Wiped means wiped: no new token can be had.
    gcp.fake.state().tokens.clear();
    let err = cloud.inventory().await.unwrap_err();
    assert!(err.to_string().contains("wiped"), "{err}");
}

/// Reopening a writer with the journal's staging id (a run that was
/// interrupted) cannot rebuild the gzip stream and sparse map: the old
/// session is cancelled, partial objects removed, and the writer says it
/// restarted so the engine sends the disk again from block 0.
#[tokio::test]
async fn a_reopened_writer_cancels_the_old_session_and_starts_again_from_block_zero() {
    use altishift::block::BlockDigest;
    use altishift::cloud::TargetDiskSpec;
    use altishift::inventory::DiskFormat;
    use altishift::units::BlockIndex;
    let gcp = Gcp::start().await;
    let cloud = gcp.cloud();
    let spec = TargetDiskSpec {
        name: "db-disk0".into(),
        virtual_size: Bytes(1 << 30),
        format: DiskFormat::Raw,
        region: ZONE.into(),
        boot: true,
        resume: None,
        platform: Default::default(),
    };
    async fn send(writer: &dyn altishift::cloud::DiskWriter, blocks: Vec<u64>) {
        for i in blocks {
            let data = block(i);
            writer
                .write_block(BlockIndex(i), data.clone().into(), BlockDigest::of(&data))
                .await
                .unwrap();
        }
        writer.flush().await.unwrap();
    }
    // The first run sends 24 MiB (three gzip members, one upload chunk) and dies.
    let first = cloud.open_disk_writer(&capability(), &spec).await.unwrap();
    assert!(!first.restarted());
    send(&*first, (0..48).collect()).await;
    let staging = first.staging_id();
    drop(first);
    let committed: Vec<_> = gcp
        .storage
        .received()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.status == 308)
        .collect();
    assert!(!committed.is_empty(), "nothing reached the session");
    // What a finish that died half-way leaves: a part under the prefix.
    let put = format!(
        "{}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={staging}head",
        gcp.emulator.base_url
    );
    reqwest::Client::new()
        .post(put)
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(gcp.objects().await, [format!("{staging}head")]);

    let mut resumed = spec.clone();
    resumed.resume = Some(staging.clone());
    let writer = cloud
        .open_disk_writer(&capability(), &resumed)
        .await
        .unwrap();
    assert!(writer.restarted());
    assert_eq!(writer.staging_id(), staging);
    let cancels: Vec<_> = gcp
        .storage
        .received()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path.starts_with("/upload/"))
        .collect();
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert!(cancels[0].query.contains("upload_id=") && cancels[0].status == 499);
    assert!(gcp.objects().await.is_empty(), "{:?}", gcp.objects().await);
    // Everything again from block 0 (and one more block): the image holds it.
    send(&*writer, (0..48).chain([1000]).collect()).await;
    let written = writer.finish(49).await.unwrap();
    let image = gcp.fake.image_file(&written.id).unwrap();
    let bytes = std::fs::read(&image).unwrap();
    assert_eq!(bytes.len(), 1 << 30);
    for i in (0..48).chain([1000]) {
        let at = (i * BLOCK_SIZE) as usize;
        assert!(
            bytes[at..at + BLOCK_SIZE as usize] == block(i)[..],
            "block {i}"
        );
    }
    assert!(
        bytes[48 * BLOCK_SIZE as usize..1000 * BLOCK_SIZE as usize]
            .iter()
            .all(|b| *b == 0)
    );
    // Another process knows no session (its URI is never journaled): it
    // still restarts, removing the objects and the image of the earlier run.
    let other = gcp.cloud();
    let again = other
        .open_disk_writer(&capability(), &resumed)
        .await
        .unwrap();
    assert!(again.restarted());
    assert!(gcp.objects().await.is_empty());
    assert!(gcp.fake.image(&written.id).is_none());
    let cancels = gcp
        .storage
        .received()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.starts_with("/upload/"))
        .count();
    assert_eq!(cancels, 1);
}

/// Through the engine: a run whose storage goes away mid-upload fails with
/// blocks journaled; the next run (a new provider, as a new process would
/// have) reopens the writer, which restarts, and the engine sends the disk
/// again from block 0 into a byte-identical image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_lab_to_gcp_run_resumes_by_restarting_the_disk() {
    use altishift::engine::{self, EngineOptions, RetryPolicy};
    let gcp = Gcp::start().await;
    let lab = Lab::new(gcp.dir.path());
    let target_inventory = gcp.cloud().inventory().await.unwrap();
    let source_inventory = lab.east().inventory().await.unwrap();
    let approved = approve(plan_to_gcp(
        &source_inventory,
        &target_inventory,
        &["monitor"],
    ));
    let state = gcp.dir.path().join("state");
    let options = EngineOptions {
        retry: RetryPolicy {
            attempts: 2,
            base_delay: std::time::Duration::from_millis(5),
            max_delay: std::time::Duration::from_millis(20),
        },
        throttle: Some(Bytes(4 << 20)),
        checkpoint_every: std::time::Duration::from_millis(50),
        ..EngineOptions::default()
    };
    gcp.storage.state.lock().unwrap().refuse_after = Some(2);
    let drive = |cloud: GcpCloud| {
        let handle = engine::start(
            approved.clone(),
            lab.east(),
            std::sync::Arc::new(cloud),
            &state,
            options.clone(),
        )
        .unwrap();
        async move {
            let mut events = handle.events;
            let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
            let outcome = handle.done.await.unwrap().unwrap();
            drain.abort();
            outcome.report
        }
    };
    let first = drive(gcp.cloud()).await;
    assert!(!first.ok, "the storage refused uploads: the run must fail");
    let journal = engine::run_dir(&state, &approved.hash().0).join("journal.jsonl");
    let key = "monitor/root".to_string();
    let before = engine::journal::replay(&journal).unwrap().disk(&key);
    assert!(!before.sent.is_empty(), "the first run journaled no block");

    gcp.storage.state.lock().unwrap().refuse_after = None;
    let second = drive(gcp.cloud()).await;
    assert!(second.ok, "{second:#?}");
    let disk = &second.disks[0];
    assert_eq!(disk.source_digest, disk.target_digest);
    assert_eq!(disk.bytes_resumed, Bytes(0), "{disk:?}");
    let after = engine::journal::replay(&journal).unwrap();
    assert!(after.disk(&key).restarted, "the restart is journaled");
    let images = gcp.fake.state().images.clone();
    assert_eq!(images.len(), 1);
    let file = gcp
        .fake
        .image_file(images[0]["name"].as_str().unwrap())
        .unwrap();
    let lab_disk = &lab.instance_disks("monitor")[0];
    let same = std::process::Command::new("qemu-img")
        .args(["compare", "-q"])
        .arg(lab_disk)
        .arg(&file)
        .status()
        .unwrap()
        .success();
    assert!(same, "the image differs from {}", lab_disk.display());
}
