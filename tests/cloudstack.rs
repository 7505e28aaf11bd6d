//! The CloudStack provider against the faithful fake: signatures, paging to
//! the end, approval before any change, failed jobs, broken uploads, flaky
//! extract URLs, and whole migrations lab ↔ cloudstack through the engine.

use altishift_testkit::cloudstack_fake;

use altishift::cloud::{Cloud, CloudError, DiskRef, Source, Target};
use altishift::units::{BLOCK_SIZE, Bytes};
use cloudstack_fake::testkit::*;
use cloudstack_fake::{FakeCloudStack, fixture};
use serde_json::Value;
use std::time::SystemTime;

#[tokio::test]
async fn recorded_cs_requests_verify_at_the_fake_except_tilde_as_the_server_would() {
    let fake = FakeCloudStack::start().await;
    let vectors: Vec<Value> = serde_json::from_value(fixture("signatures.json")).unwrap();
    fake.set_keys(
        vectors[0]["api_key"].as_str().unwrap(),
        vectors[0]["secret_key"].as_str().unwrap(),
    );
    fake.freeze_clock(humantime::parse_rfc3339("2025-01-15T12:00:00Z").unwrap());
    let origin = fake.endpoint.trim_end_matches("/client/api").to_string();
    let http = reqwest::Client::new();
    for vector in &vectors {
        let name = vector["name"].as_str().unwrap();
        let (status, _) = replay(&http, &origin, vector, None).await;
        let accepted = fake.received().last().unwrap().accepted;
        if name == "list_templates_tilde" {
            // cs signs '~' literally; the server's URLEncoder makes it %7E.
            assert!(!accepted, "{name}");
            assert_eq!(status, 401, "{name}");
        } else {
            assert!(accepted, "{name} should verify");
        }
    }
    // A tampered parameter fails, with CloudStack's 401 body.
    let (status, body) = replay(
        &http,
        &origin,
        &vectors[0],
        Some(("listall=true", "listall=false")),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["listvirtualmachinesresponse"]["errorcode"], 401);
    assert!(
        body["listvirtualmachinesresponse"]["errortext"]
            .as_str()
            .unwrap()
            .contains("signature")
    );
    // Today those vectors have long expired; the one without expiry still verifies.
    fake.freeze_clock(SystemTime::now());
    replay(&http, &origin, &vectors[0], None).await;
    assert!(
        !fake.received().last().unwrap().accepted,
        "expired signature accepted"
    );
    let no_expiry = vectors
        .iter()
        .find(|v| v["name"] == "list_zones_no_expiry")
        .unwrap();
    replay(&http, &origin, no_expiry, None).await;
    assert!(fake.received().last().unwrap().accepted);
}

#[tokio::test]
async fn our_requests_verify_and_a_wrong_secret_is_refused_with_a_clear_error() {
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = connect(&fake, dir.path());
    // '~' and spaces in a value: signed the server's way, accepted.
    cloud
        .client()
        .call(
            "listTemplates",
            &[
                ("templatefilter", "self".into()),
                ("keyword", "~backup v1.0*".into()),
            ],
        )
        .await
        .unwrap();
    assert!(fake.received().iter().all(|r| r.accepted));
    let wrong = connect_with(
        &fake,
        dir.path(),
        cloudstack_fake::API_KEY,
        "not-the-secret",
    );
    let err = wrong.inventory().await.unwrap_err();
    assert!(matches!(err, CloudError::Auth(_)), "{err}");
    assert!(err.to_string().contains("unable to verify"), "{err}");
    assert!(
        !err.to_string().contains("not-the-secret"),
        "secret leaked into an error"
    );
    assert!(!fake.received().last().unwrap().accepted);
}

#[tokio::test]
async fn more_than_500_vms_are_all_listed_across_pages() {
    let fake = FakeCloudStack::start().await;
    fake.add_many_vms(1234);
    let dir = tempfile::tempdir().unwrap();
    let inventory = connect(&fake, dir.path()).inventory().await.unwrap();
    assert_eq!(inventory.instances.len(), 1234);
    let mut names: Vec<&str> = inventory
        .instances
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 1234, "duplicates or gaps across pages");
    assert!(
        inventory
            .instances
            .iter()
            .all(|i| i.disks.len() == 1 && i.size == "Small Instance")
    );
    let pages: Vec<String> = fake
        .received()
        .iter()
        .filter(|r| r.command == "listVirtualMachines")
        .map(|r| format!("{}/{}", r.params["page"], r.params["pagesize"]))
        .collect();
    assert_eq!(pages, ["1/500", "2/500", "3/500"]);
    // The trap: a lister that does not page gets the server's first 500.
    let unpaged = connect(&fake, dir.path())
        .client()
        .call("listVirtualMachines", &[])
        .await
        .unwrap();
    assert_eq!(unpaged["virtualmachine"].as_array().unwrap().len(), 500);
    assert_eq!(unpaged["count"], 1234);
}

#[tokio::test]
async fn a_snapshot_reads_back_byte_identical_through_a_flaky_extract_url() {
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let blocks = [0, 1, 7, 8, 9, 63, 100];
    let seed = Seed::new(dir.path(), "app", 64 << 20, &blocks);
    let (vm, volume) = fake.add_vm(
        "app-1",
        "Medium Instance",
        Some((seed.qcow2.clone(), seed.size)),
    );
    let mut cloud = connect(&fake, &dir.path().join("staging"));
    cloud.transfer.chunk = 4 * BLOCK_SIZE;
    let cap = capability();
    let snapshot = cloud
        .snapshot_disk(
            &cap,
            &DiskRef {
                instance_id: vm,
                disk_id: volume.clone(),
            },
            "altishift-test",
        )
        .await
        .unwrap();
    assert!(snapshot.created_by_run);
    assert_eq!(snapshot.virtual_size, Bytes(seed.size));
    // Secondary storage answers 503 for a while: retried, then it recovers.
    fake.fail_next_downloads(7);
    let served_before = fake.state().downloads_served;
    let reader = cloud.open_disk_reader(&snapshot).await.unwrap();
    assert!(fake.state().downloads_served - served_before > 7);
    assert_eq!(reader.virtual_size(), Bytes(seed.size));
    let read = read_all(&*reader).await;
    assert_eq!(read.keys().copied().collect::<Vec<_>>(), blocks);
    for (index, bytes) in &read {
        assert_eq!(bytes, &seed.block(*index), "block {index}");
    }
    // Cleanup removes the copy volume and the snapshot; the original stays.
    let resource = created(altishift::cloud::ResourceKind::Snapshot, &snapshot.id);
    cloud.delete(&cap, &resource).await.unwrap();
    let s = fake.state();
    assert!(s.snapshots.is_empty());
    assert_eq!(
        s.volumes.iter().map(|v| v.id.clone()).collect::<Vec<_>>(),
        [volume]
    );
}

#[tokio::test]
async fn a_failed_job_is_a_clear_error_naming_job_and_command_and_leaves_nothing() {
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed::new(dir.path(), "app", 8 << 20, &[0, 3]);
    let (vm, volume) = fake.add_vm(
        "app-1",
        "Small Instance",
        Some((seed.qcow2.clone(), seed.size)),
    );
    let cloud = connect(&fake, dir.path());
    let cap = capability();
    fake.fail_next_job("createVolume", "Insufficient capacity on primary storage");
    let err = cloud
        .snapshot_disk(
            &cap,
            &DiskRef {
                instance_id: vm,
                disk_id: volume,
            },
            "altishift-test",
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("createVolume") && text.contains("Insufficient capacity"),
        "{text}"
    );
    assert!(text.contains("job "), "names the job: {text}");
    assert!(
        fake.state().snapshots.is_empty(),
        "the snapshot taken before the failure was removed"
    );
    assert_eq!(fake.state().volumes.len(), 1);

    // A deployment whose job fails leaves no VM behind (CloudStack keeps it in Error).
    let written = upload_disk(&cloud, &cap, "app-root", &seed).await.unwrap();
    fake.fail_next_job(
        "deployVirtualMachine",
        "Unable to create a deployment for VM",
    );
    let spec = deploy_spec("app-copy", "Small Instance", vec![written]);
    let err = cloud.deploy(&cap, &spec).await.unwrap_err();
    assert!(err.to_string().contains("deployVirtualMachine"), "{err}");
    assert!(
        !fake.state().vms.iter().any(|v| v.name == "app-copy"),
        "half-deployed VM left"
    );
}

#[tokio::test]
async fn an_upload_broken_mid_way_is_retried_and_one_that_keeps_breaking_leaves_nothing() {
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed::new(dir.path(), "disk", 16 << 20, &[0, 2, 30]);
    let cloud = connect(&fake, &dir.path().join("staging"));
    let cap = capability();
    fake.break_next_uploads(1);
    let written = upload_disk(&cloud, &cap, "web-root", &seed).await.unwrap();
    assert!(written.id.starts_with("template:"), "{}", written.id);
    assert_eq!(fake.state().upload_attempts, 2);
    let template = fake.state().templates[0].clone();
    assert!(template.ready, "{}", template.status);
    assert!(same_guest_content(
        template.data.as_ref().unwrap(),
        &seed.raw
    ));
    // Read back from the cloud (extractTemplate) gives the same blocks.
    let reader = cloud
        .read_back(&written)
        .await
        .unwrap()
        .expect("templates read back");
    assert_eq!(
        read_all(&*reader).await.keys().copied().collect::<Vec<_>>(),
        [0, 2, 30]
    );

    fake.break_next_uploads(100);
    let err = upload_disk(&cloud, &cap, "web-data1", &seed)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("upload"), "{err}");
    let s = fake.state();
    assert_eq!(s.templates.len(), 1, "no second template");
    assert!(s.volumes.is_empty(), "the half-uploaded volume was deleted");
}

#[tokio::test]
async fn nothing_mutates_before_approval() {
    let fake = FakeCloudStack::start().await;
    fake.add_many_vms(3);
    let dir = tempfile::tempdir().unwrap();
    let cloud = connect(&fake, dir.path());
    let inventory = cloud.inventory().await.unwrap();
    let lab = Lab::new(dir.path());
    let plan = plan_between(
        ("cs-test", "cloudstack", &inventory),
        ("lab-west", "lab", &lab.west_inventory().await),
        &["vm-0001"],
    );
    assert!(
        altishift::plan::approval::verify(plan.clone()).is_err(),
        "unapproved plan yields no capability"
    );
    assert!(!fake.received().is_empty());
    assert_eq!(fake.mutating_received(), Vec::<String>::new());
    // Approval, and only approval, opens the door.
    let cap = approve(plan).capability();
    let vm = inventory.instance("vm-0001").unwrap();
    let at = DiskRef {
        instance_id: vm.id.clone(),
        disk_id: vm.disks[0].id.clone(),
    };
    let _ = cloud.snapshot_disk(&cap, &at, "n").await;
    assert!(
        fake.mutating_received()
            .contains(&"createSnapshot".to_string())
    );
}

#[tokio::test]
async fn served_answers_have_the_recorded_shapes() {
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed::new(dir.path(), "s", 4 << 20, &[1]);
    fake.add_vm(
        "shape-1",
        "Small Instance",
        Some((seed.qcow2.clone(), seed.size)),
    );
    let cloud = connect(&fake, dir.path());
    upload_disk(&cloud, &capability(), "shape-root", &seed)
        .await
        .unwrap();
    let checks = [
        (
            "listVirtualMachines",
            vec![("listall", "true")],
            "virtualmachine",
            "listVirtualMachines_default.json",
        ),
        (
            "listVolumes",
            vec![("listall", "true")],
            "volume",
            "listVolumes_default.json",
        ),
        (
            "listServiceOfferings",
            vec![],
            "serviceoffering",
            "listServiceOfferings_default.json",
        ),
        ("listZones", vec![], "zone", "listZones_deployip.json"),
        (
            "listNetworks",
            vec![],
            "network",
            "listNetworks_default.json",
        ),
        ("listOsTypes", vec![], "ostype", "listOsTypes_default.json"),
    ];
    for (command, params, key, recorded) in checks {
        let (status, served) = signed_get(&fake, command, &params).await;
        assert_eq!(status, 200, "{command}");
        let wrapper = format!("{}response", command.to_lowercase());
        let recorded = fixture(recorded);
        assert_same_shape(
            &served[&wrapper][key][0],
            &recorded[&wrapper][key][0],
            command,
        );
        assert!(served[&wrapper]["count"].is_number(), "{command}: count");
    }
    let (_, templates) = signed_get(&fake, "listTemplates", &[("templatefilter", "self")]).await;
    let recorded = fixture("queryAsyncJobResult_1300003.json");
    assert_same_shape(
        &templates["listtemplatesresponse"]["template"][0],
        &recorded["queryasyncjobresultresponse"]["jobresult"]["template"],
        "listTemplates",
    );
    // An empty list is `{}`, exactly as recorded.
    let (_, empty) = signed_get(
        &fake,
        "listTemplates",
        &[("templatefilter", "self"), ("id", "nope")],
    )
    .await;
    assert_eq!(empty, fixture("listTemplates_notemplates.json"));
    // Async start, job result, error.
    let volume = fake.state().volumes[0].id.clone();
    let (_, started) = signed_get(&fake, "createSnapshot", &[("volumeid", &volume)]).await;
    assert_same_shape(
        &started["createsnapshotresponse"],
        &fixture("createSnapshot_default.json")["createsnapshotresponse"],
        "createSnapshot",
    );
    let job = started["createsnapshotresponse"]["jobid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut done = Value::Null;
    for _ in 0..5 {
        (_, done) = signed_get(&fake, "queryAsyncJobResult", &[("jobid", &job)]).await;
        if done["queryasyncjobresultresponse"]["jobstatus"] != 0 {
            break;
        }
    }
    let recorded = fixture("queryAsyncJobResult_1300001.json");
    assert_same_shape(
        &done["queryasyncjobresultresponse"]["jobresult"]["snapshot"],
        &recorded["queryasyncjobresultresponse"]["jobresult"]["snapshot"],
        "snapshot job",
    );
    let mut top = done["queryasyncjobresultresponse"].clone();
    top.as_object_mut().unwrap().remove("jobresult");
    assert_same_shape(
        &top,
        &fixture("queryAsyncJobResult_11117.json")["queryasyncjobresultresponse"],
        "job",
    );
    let (status, error) = signed_get(
        &fake,
        "deployVirtualMachine",
        &[
            ("serviceofferingid", "104"),
            ("templateid", "x"),
            ("zoneid", "y"),
        ],
    )
    .await;
    assert_eq!(status, 431);
    let body = &error["deployvirtualmachineresponse"];
    assert_eq!(body["errorcode"], 431);
    assert!(body["errortext"].is_string());
    // Keep what the fake serves, for readers and other tools.
    record(
        "fake_listVirtualMachines.json",
        &signed_get(&fake, "listVirtualMachines", &[("listall", "true")])
            .await
            .1,
    );
    record("fake_queryAsyncJobResult_snapshot.json", &done);
    record("fake_deployVirtualMachine_error.json", &error);
}

/// The CLI reaches CloudStack through a profile whose keys come from the
/// environment; the secret never shows in what it prints.
#[tokio::test]
async fn cli_inventory_reads_a_cloudstack_profile_with_keys_from_the_environment() {
    let fake = FakeCloudStack::start().await;
    fake.add_many_vms(2);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let text = format!(
        "state_dir = \"state\"\n[clouds.cs]\nprovider = \"cloudstack\"\nendpoint = \"{}\"\ninsecure_endpoint = true\napi_key = \"env:CS_TEST_API_KEY\"\nsecret_key = \"env:CS_TEST_SECRET_KEY\"\njurisdiction = \"DE\"\npath = \"cs-staging\"\n",
        fake.endpoint
    );
    std::fs::write(&config, text).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_altishift"))
        .arg("--config")
        .arg(&config)
        .args(["inventory", "cs", "--json"])
        .env("CS_TEST_API_KEY", cloudstack_fake::API_KEY)
        .env("CS_TEST_SECRET_KEY", cloudstack_fake::SECRET_KEY)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let inventory: altishift::inventory::Inventory =
        serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(inventory.instances.len(), 2);
    assert!(
        !stdout.contains(cloudstack_fake::SECRET_KEY)
            && !stderr.contains(cloudstack_fake::SECRET_KEY)
    );
    assert_eq!(fake.mutating_received(), Vec::<String>::new());
}
