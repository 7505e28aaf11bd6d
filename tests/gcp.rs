//! The Google Cloud provider against a faithful Compute Engine fake (its
//! token endpoint verifies our RS256 JWTs) and the real Cloud Storage
//! emulator behind a recording proxy: paging to the end, resumable uploads
//! that survive broken chunks, archives checked with GNU tar and gzip, and
//! a lab → gcp migration through the engine with nothing changed before
//! approval and no credential in any output.

#[path = "support/gce_fake/mod.rs"]
mod gce_fake;

use altishift::block::BlockDigest;
use altishift::cloud::gcp::GcpCloud;
use altishift::cloud::gcp::auth::ServiceAccount;
use altishift::cloud::{Cloud, CloudError, DeploySpec, TargetDiskSpec, WrittenDisk};
use altishift::inventory::DiskFormat;
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use gce_fake::testkit::*;
use gce_fake::{PROJECT, fixture};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Pseudo-random (incompressible) content for block `index`.
fn block(index: u64) -> Vec<u8> {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..BLOCK_SIZE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Writes `blocks` of a disk of `size` through the provider's writer, the
/// way the engine does (ascending, zero blocks never sent); also writes the
/// same disk to `raw` for comparison.
async fn upload(
    cloud: &GcpCloud,
    name: &str,
    size: u64,
    blocks: &[u64],
    raw: &Path,
) -> Result<WrittenDisk, CloudError> {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::File::create(raw).unwrap();
    file.set_len(size).unwrap();
    let spec = TargetDiskSpec {
        name: name.into(),
        virtual_size: Bytes(size),
        format: DiskFormat::Raw,
        region: ZONE.into(),
        boot: true,
        resume: None,
    };
    let writer = cloud.open_disk_writer(&capability(), &spec).await?;
    for &index in blocks {
        let data = block(index);
        let len = (size - index * BLOCK_SIZE).min(BLOCK_SIZE) as usize;
        file.write_all_at(&data[..len], index * BLOCK_SIZE).unwrap();
        writer
            .write_block(
                BlockIndex(index),
                &data[..len],
                BlockDigest::of(&data[..len]),
            )
            .await?;
        if index % 7 == 0 {
            writer.flush().await?;
        }
    }
    writer.flush().await?;
    writer.finish(blocks.len() as u64).await
}

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
async fn inventory_follows_page_tokens_to_the_end_and_reads_int64_strings() {
    let gcp = Gcp::start().await;
    gcp.fake.add_many_instances(ZONE, 23);
    gcp.fake.set_page_size(4);
    let inventory = gcp.cloud().inventory().await.unwrap();
    assert_eq!(inventory.instances.len(), 8 + 23);
    let mut names: Vec<&str> = inventory
        .instances
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 31, "duplicates or gaps across pages");
    let paged = gcp
        .fake
        .received()
        .iter()
        .filter(|r| r.path == "aggregated/instances" && r.query.contains("pageToken"))
        .count();
    assert_eq!(paged, 31usize.div_ceil(4) - 1);
    // 100 machine types over 5 zones: 20 distinct names, 9 of them DEPRECATED.
    assert_eq!(inventory.sizes.len(), 11);
    assert!(inventory.size("n1-standard-1-d").is_none());
    let n1 = inventory.size("n1-standard-1").unwrap();
    assert_eq!((n1.vcpus, n1.memory), (1, Bytes(3840 << 20)));
    // node-name: sizeGb "25" (a string) from disks.aggregatedList.
    let node = inventory.instance("node-name").unwrap();
    assert_eq!(node.disks[0].virtual_size, Bytes(25 << 30));
    assert_eq!(node.size, "n1-standard-1");
    assert_eq!(node.vcpus, 1);
    // Zones are the regions; the deprecated one is left out, ours first.
    assert_eq!(inventory.regions[0].name, ZONE);
    assert_eq!(inventory.regions[0].jurisdiction, "BE");
    assert!(inventory.region("us-central2-a").is_none());
    assert!(gcp.fake.mutating_received().is_empty());
}

#[tokio::test]
async fn fake_answers_have_the_recorded_shapes() {
    let gcp = Gcp::start().await;
    let cloud = gcp.cloud();
    let client = cloud.client();
    client.get("zones").await.unwrap();
    let token = gcp.fake.state().tokens[0].clone();
    let check = |served: &Value, recorded: &Value, what: &str| {
        let (Value::Object(s), Value::Object(r)) = (served, recorded) else {
            panic!("{what}: not objects");
        };
        for (key, value) in s {
            let model = r
                .get(key)
                .unwrap_or_else(|| panic!("{what}: '{key}' not in the recording"));
            assert_eq!(
                std::mem::discriminant(value),
                std::mem::discriminant(model),
                "{what}: '{key}' is {value} here, {model} recorded"
            );
        }
    };
    let zones = client.get("zones").await.unwrap();
    check(&zones, &fixture("zones.json"), "zones");
    check(
        &zones["items"][0],
        &fixture("zones.json")["items"][0],
        "zone",
    );
    let vm = client
        .get("zones/us-central1-a/instances/node-name")
        .await
        .unwrap();
    check(
        &vm,
        &fixture("zones_us-central1-a_instances_node-name.json"),
        "instance",
    );
    let agg = client
        .get("aggregated/machineTypes?maxResults=2")
        .await
        .unwrap();
    assert!(agg["nextPageToken"].is_string());
    check(
        &agg,
        &fixture("aggregated_machineTypes.json"),
        "aggregatedList",
    );
    let agg = client.get("aggregated/instances").await.unwrap();
    check(
        &agg,
        &fixture("aggregated_instances.json"),
        "aggregatedList",
    );
    let empty = agg["items"]["zones/europe-west1-b"].clone();
    assert_eq!(empty["warning"]["code"], "NO_RESULTS_ON_PAGE");
    // A 404 in Google's error shape.
    let err = client.get("global/images/nope").await.unwrap_err();
    assert!(matches!(err, CloudError::NotFound(_)), "{err}");
    let raw = reqwest::Client::new()
        .get(format!(
            "{}/compute/v1/projects/{PROJECT}/global/images/family/coreos-stable",
            gcp.fake.base_url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 404);
    let body: Value = raw.json().await.unwrap();
    check(
        &body["error"],
        &fixture("global_images_family_notfound.json")["error"],
        "404 body",
    );
    // An unauthorised call is refused before anything happens.
    let raw = reqwest::get(format!(
        "{}/compute/v1/projects/{PROJECT}/zones",
        gcp.fake.base_url
    ))
    .await
    .unwrap();
    assert_eq!(raw.status(), 401);
    // 429 and 503 are retried; a foreign project is 403.
    gcp.fake.fail_next(&[429, 503]);
    client.get("zones").await.unwrap();
    let foreign = reqwest::Client::new()
        .get(format!(
            "{}/compute/v1/projects/someone-else/zones",
            gcp.fake.base_url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
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
    // A machine type the zone lacks: Google's 404, as a clear error.
    let mut bad = spec.clone();
    bad.name = "app2".into();
    bad.size = "n9-imaginary-1".into();
    let err = cloud.deploy(&capability(), &bad).await.unwrap_err();
    assert!(err.to_string().contains("n9-imaginary-1"), "{err}");
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

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Benchmark, not a test (`cargo test --test gcp bench -- --ignored --nocapture`):
/// our sparse tar.gz stream + resumable upload against
/// `tar --format=oldgnu -Scf - | gzip -1 > file; curl -T file` of the same disk, both
/// into the same emulator. Size from ALTISHIFT_BENCH_GIB (virtual, default 4)
/// and ALTISHIFT_BENCH_ALLOC_MIB (allocated, default 512); half the
/// allocated blocks are random, half compressible text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_tar_gz_upload_against_gnu_tar_gzip_curl() {
    use std::os::unix::fs::FileExt as _;
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let virtual_size = env("ALTISHIFT_BENCH_GIB", 4) << 30;
    let allocated_blocks = (env("ALTISHIFT_BENCH_ALLOC_MIB", 512) << 20) / BLOCK_SIZE;
    let gcp = Gcp::start().await;
    let dir = gcp.dir.path();
    let raw = dir.join("disk.raw");
    let file = std::fs::File::create(&raw).unwrap();
    file.set_len(virtual_size).unwrap();
    // Eight extents spread over the disk.
    let total_blocks = virtual_size / BLOCK_SIZE;
    let per_extent = allocated_blocks / 8;
    let mut blocks = Vec::new();
    for e in 0..8 {
        let start = e * (total_blocks / 8);
        blocks.extend(start..start + per_extent);
    }
    let text: Vec<u8> = (0..BLOCK_SIZE)
        .map(|i| b"altishift moves disks between clouds; "[(i % 38) as usize])
        .collect();
    let content = |i: u64| {
        if i.is_multiple_of(2) {
            block(i)
        } else {
            text.clone()
        }
    };
    for &i in &blocks {
        file.write_all_at(&content(i), i * BLOCK_SIZE).unwrap();
    }
    drop(file);
    let cloud = gcp.cloud();
    let spec = TargetDiskSpec {
        name: "bench-disk0".into(),
        virtual_size: Bytes(virtual_size),
        format: DiskFormat::Raw,
        region: ZONE.into(),
        boot: true,
        resume: None,
    };
    // Ours: blocks read from the file, streamed, compressed, uploaded.
    let started = std::time::Instant::now();
    let writer = cloud.open_disk_writer(&capability(), &spec).await.unwrap();
    let source = std::fs::File::open(&raw).unwrap();
    let mut buf = vec![0u8; BLOCK_SIZE as usize];
    for &i in &blocks {
        source.read_exact_at(&mut buf, i * BLOCK_SIZE).unwrap();
        writer
            .write_block(BlockIndex(i), &buf, BlockDigest::of(&buf))
            .await
            .unwrap();
    }
    writer.flush().await.unwrap();
    let streamed = started.elapsed();
    writer.finish(blocks.len() as u64).await.unwrap();
    let ours_total = started.elapsed();
    let archive = gcp
        .objects()
        .await
        .into_iter()
        .find(|o| o.ends_with("disk.tar.gz"))
        .unwrap();
    let ours_bytes = gcp.object(&archive).await.len();
    // Baseline: GNU tar + gzip -1 + curl into the same emulator.
    let started = std::time::Instant::now();
    let url = format!(
        "{}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=baseline.tar.gz",
        gcp.emulator.base_url
    );
    // curl needs the length up front (the emulator speaks HTTP/1.0, no
    // chunked bodies) and --data-binary would hold it all in memory: the
    // baseline goes through a file, as a shell pipeline to GCS would.
    let script = format!(
        "tar --format=oldgnu -Scf - disk.raw | gzip -1 > baseline.tar.gz && \
         curl -sf -X POST -H 'content-type: application/gzip' -T baseline.tar.gz '{url}' >/dev/null && \
         rm baseline.tar.gz"
    );
    sh("bash", &["-o", "pipefail", "-c", &script], dir);
    let baseline = started.elapsed();
    let baseline_bytes = gcp.object("baseline.tar.gz").await.len();
    // Compression alone, no upload, for both.
    let started = std::time::Instant::now();
    sh(
        "bash",
        &[
            "-o",
            "pipefail",
            "-c",
            "tar --format=oldgnu -Scf - disk.raw | gzip -1 >/dev/null",
        ],
        dir,
    );
    let baseline_local = started.elapsed();
    println!(
        "disk: {} GiB virtual, {} MiB allocated ({} blocks, half random)",
        virtual_size >> 30,
        (blocks.len() as u64 * BLOCK_SIZE) >> 20,
        blocks.len()
    );
    println!(
        "ours: streamed+uploaded {:.2} s, with compose+verify+import {:.2} s, object {} bytes",
        streamed.as_secs_f64(),
        ours_total.as_secs_f64(),
        ours_bytes
    );
    println!(
        "baseline tar -S | gzip -1 > file; curl -T: {:.2} s, object {} bytes; tar | gzip -1 alone {:.2} s",
        baseline.as_secs_f64(),
        baseline_bytes,
        baseline_local.as_secs_f64()
    );
    println!(
        "ratio baseline/ours (streaming part): {:.2}x; (ours incl. verify+import): {:.2}x",
        baseline.as_secs_f64() / streamed.as_secs_f64(),
        baseline.as_secs_f64() / ours_total.as_secs_f64()
    );
}

#[tokio::test]
async fn a_gcp_profile_in_config_toml_connects_through_the_registry() {
    let gcp = Gcp::start().await;
    let config_path = gcp.dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "[clouds.gce]\nprovider = \"gcp\"\nproject = \"{PROJECT}\"\n\
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
