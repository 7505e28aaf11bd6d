//! Compute Engine inventory against the faithful fake: every list followed
//! by `pageToken` to the end, int64 strings, the fake's answers checked
//! against the recordings in tests/fixtures/gce, and the configuration
//! around instances (networks, subnetworks, firewalls, images, platform,
//! who the calls are made as and until when).

use altishift_testkit::gce_fake;

use altishift::cloud::{Cloud, CloudError};
use altishift::units::Bytes;
use gce_fake::testkit::*;
use gce_fake::{PROJECT, fixture};
use serde_json::Value;

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
    let check = check_shape;
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
    // Networks, images, and the source side's snapshot, disk and operations.
    gcp.fake.seed_recorded_images();
    let networks = client.get("global/networks").await.unwrap();
    check(&networks, &fixture("global_networks.json"), "networkList");
    for (served, recorded) in networks["items"]
        .as_array()
        .unwrap()
        .iter()
        .zip(fixture("global_networks.json")["items"].as_array().unwrap())
    {
        check(served, recorded, "network");
    }
    let images = client.get("global/images?maxResults=1").await.unwrap();
    check(&images, &fixture("global_images_paged.json"), "imageList");
    check(
        &images["items"][0],
        &fixture("global_images_paged.json")["items"][0],
        "image",
    );
    let disk = gcp.dir.path().join("d.raw");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    gcp.fake.add_source_vm(ZONE, "shape-vm", "f1-micro", &disk);
    let op = client
        .post(
            &format!("zones/{ZONE}/disks/shape-vm/createSnapshot"),
            &serde_json::json!({"name": "shape-snap"}),
        )
        .await
        .unwrap();
    check(
        &op,
        &fixture("zones_us-central1-a_disks_lcdisk_createSnapshot_post.json"),
        "createSnapshot operation",
    );
    let snap = client.get("global/snapshots/shape-snap").await.unwrap();
    check(
        &snap,
        &fixture("global_snapshots_lcsnapshot.json"),
        "snapshot",
    );
    let op = client
        .post(
            &format!("zones/{ZONE}/disks"),
            &serde_json::json!({"name": "shape-copy", "sourceSnapshot": "global/snapshots/shape-snap"}),
        )
        .await
        .unwrap();
    check(
        &op,
        &fixture("zones_us-central1-a_disks_post.json"),
        "disks.insert operation",
    );
    let copy = client
        .get(&format!("zones/{ZONE}/disks/shape-copy"))
        .await
        .unwrap();
    assert_eq!(copy["sizeGb"], "1");
    let recorded_disk = fixture("zones_us-central1-a_disks_lcdisk.json");
    let mut disk_model = recorded_disk.clone();
    // Fields of a disk made from a snapshot (REST reference; not recorded).
    for key in ["sourceSnapshot", "sourceSnapshotId", "labels"] {
        disk_model[key] = copy[key].clone();
    }
    check(&copy, &disk_model, "disk");
    // The source disk is in use by its instance: Google refuses to delete it.
    let err = client
        .delete(&format!("zones/{ZONE}/disks/shape-vm"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("resourceInUseByAnotherResource"),
        "{err}"
    );
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
async fn networks_firewalls_images_platform_and_access_reach_the_inventory() {
    let gcp = Gcp::start().await;
    gcp.fake.seed_recorded_images();
    gcp.fake.set_page_size(1);
    // A UEFI Debian instance on an Arm machine, and a Shielded VM (fields
    // from the REST reference: the recordings predate them).
    {
        let mut s = gcp.fake.state();
        let (_, vm) = s
            .instances
            .iter_mut()
            .find(|(_, i)| i["name"] == "node-name")
            .unwrap();
        vm["disks"][0]["licenses"] = serde_json::json!([
            "https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12-bookworm"
        ]);
        vm["disks"][0]["guestOsFeatures"] =
            serde_json::json!([{"type": "UEFI_COMPATIBLE"}, {"type": "VIRTIO_SCSI_MULTIQUEUE"}]);
        vm["disks"][0]["architecture"] = "ARM64".into();
        let (_, vm) = s
            .instances
            .iter_mut()
            .find(|(_, i)| i["name"] == "libcloud-demo-np-node")
            .unwrap();
        vm["shieldedInstanceConfig"] = serde_json::json!({
            "enableSecureBoot": true, "enableVtpm": true, "enableIntegrityMonitoring": true
        });
    }
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let inventory = gcp.cloud().inventory().await.unwrap();
    // Networks: the three recorded, then their five subnetworks (one a page).
    let kinds: Vec<(&str, &str)> = inventory
        .networks
        .iter()
        .map(|n| (n.kind.as_str(), n.name.as_str()))
        .collect();
    assert_eq!(kinds.len(), 3 + 5, "{kinds:?}");
    assert_eq!(
        &kinds[..3],
        [
            ("network", "cf"),
            ("network", "custom"),
            ("network", "default")
        ]
    );
    let legacy = &inventory.networks[2];
    assert_eq!(legacy.cidr.as_deref(), Some("10.240.0.0/16"));
    let subnet1 = inventory
        .networks
        .iter()
        .find(|n| n.name == "subnet1")
        .unwrap();
    assert_eq!(subnet1.kind, "subnetwork");
    assert_eq!(subnet1.region.as_deref(), Some("us-central1"));
    assert_eq!(subnet1.parent.as_deref(), Some("custom"));
    assert!(subnet1.cidr.as_deref().unwrap().ends_with("/20"));
    // Firewalls as rule lines.
    let ssh = inventory
        .firewalls
        .iter()
        .find(|f| f.name == "default-allow-ssh")
        .unwrap();
    assert_eq!(ssh.network.as_deref(), Some("default"));
    assert_eq!(ssh.rules, ["in tcp 22 from 0.0.0.0/0"]);
    let web = inventory
        .firewalls
        .iter()
        .find(|f| f.name == "web-from-lb")
        .unwrap();
    assert_eq!(
        web.rules,
        ["in tcp 80,443 from 130.211.0.0/22,35.191.0.0/16 on tag:web"]
    );
    let smtp = inventory
        .firewalls
        .iter()
        .find(|f| f.name == "no-smtp-out")
        .unwrap();
    assert_eq!(smtp.rules, ["deny out tcp 25 to 0.0.0.0/0"]);
    assert_eq!(inventory.firewalls.len(), 4);
    // The project's own images, private.
    let images: Vec<&str> = inventory.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(images, ["custom-image1", "custom-image2"], "{images:?}");
    let custom = &inventory.images[0];
    assert!(custom.private);
    assert_eq!(custom.size, Some(Bytes(10 << 30)));
    assert_eq!(
        custom.os.as_deref(),
        Some("custom"),
        "the family when no license"
    );
    assert_eq!(inventory.images[1].os, None);
    // Every list was paged (page size 1), networks and firewalls included.
    let received = gcp.fake.received();
    for path in [
        "global/networks",
        "aggregated/subnetworks",
        "global/firewalls",
        "global/images",
    ] {
        let pages = received
            .iter()
            .filter(|r| r.path == path && r.query.contains("pageToken"))
            .count();
        assert!(pages >= 1, "{path} was not paged");
    }
    // Platform.
    let node = inventory.instance("node-name").unwrap();
    assert_eq!(node.platform.os.as_deref(), Some("debian-12-bookworm"));
    assert_eq!(node.platform.boot_mode.as_deref(), Some("uefi"));
    assert_eq!(node.platform.architecture.as_deref(), Some("arm64"));
    let shielded = inventory.instance("libcloud-demo-np-node").unwrap();
    assert_eq!(shielded.platform.boot_mode.as_deref(), Some("uefi"));
    assert_eq!(shielded.platform.architecture.as_deref(), Some("x86_64"));
    let plain = inventory.instance("libcloud-demo-persist-node").unwrap();
    assert_eq!(plain.platform.boot_mode, None, "unknown stays unknown");
    // Who and until when: the service account, the token's expiry.
    let access = inventory.access.as_ref().unwrap();
    assert_eq!(access.identity, gce_fake::CLIENT_EMAIL);
    let expires = access.expires_at.unwrap();
    assert!(
        (started + 3600..=started + 3600 + 60).contains(&expires),
        "{expires}"
    );
    assert!(gcp.fake.mutating_received().is_empty());
}
