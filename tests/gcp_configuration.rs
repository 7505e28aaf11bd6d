//! Configuration from the lab to Google Cloud, against the Compute Engine
//! fake (which checks firewalls, labels, network tags and metadata as the
//! REST reference states them): the plan shows the firewall, labels, key,
//! user-data and external address before approval; the run creates the
//! firewall rules before the instance, which carries the network tag, the
//! labels, the `ssh-keys` and `user-data` metadata and an external address,
//! all read back from the fake's API store. A rule Compute Engine cannot
//! express is lossy and cannot be approved without the acknowledgement.

use altishift_testkit::gce_fake;

use altishift::cloud::Cloud;
use altishift::cloud::lab::config::{OPS_KEY, user_data};
use altishift::plan::approval;
use gce_fake::testkit::*;
use serde_json::json;

#[tokio::test]
async fn lab_to_gcp_carries_firewall_labels_key_user_data_and_external_ip() {
    let gcp = Gcp::start().await;
    let lab = Lab::new(gcp.dir.path());
    let cloud = gcp.cloud();
    let target_inventory = cloud.inventory().await.unwrap();
    let source_inventory = lab.east().inventory().await.unwrap();
    let plan = plan_to_gcp(&source_inventory, &target_inventory, &["web-2"]);
    assert_eq!(gcp.fake.mutating_received(), Vec::<String>::new());

    // What the plan shows before approval.
    let c = &plan.items[0].configuration;
    assert!(c.lossy.is_empty(), "{:?}", c.lossy);
    assert_eq!(c.public_ip, Some(true));
    assert_eq!(c.firewalls.len(), 1);
    assert_eq!(c.firewalls[0].name, "web");
    assert!(c.firewalls[0].rules.iter().all(|r| r.target.is_some()));
    assert_eq!(c.ssh_keys[0].public_key, OPS_KEY);
    assert_eq!(c.user_data.as_deref(), Some(user_data("web-2").as_str()));
    let labels = c.target_tags();
    assert_eq!(labels.get("env").map(String::as_str), Some("lab"));
    let listed: Vec<String> = plan
        .actions
        .iter()
        .map(|a| format!("{} {}", a.verb, a.resource))
        .collect();
    assert!(
        listed.iter().any(|a| a.contains("web")) && listed.iter().any(|a| a.contains("ops")),
        "{listed:?}"
    );

    let short = plan.hash().short().to_string();
    let state = gcp.dir.path().join("state");
    let report = run(
        approve(plan),
        lab.east(),
        std::sync::Arc::new(cloud),
        &state,
    )
    .await;
    assert!(report.ok, "{report:#?}");
    let checks = &report.instances[0].checks;
    for name in [
        "firewalls",
        "ssh keys",
        "user-data",
        "tags",
        "public address",
    ] {
        let check = checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} check in {checks:#?}"));
        assert!(check.passed, "{check:?}");
    }

    // The firewall rules: target tag `web-<plan>`, on the default network,
    // one per direction and peer, marked with the plan.
    let tag = format!("web-{short}");
    let ours: Vec<serde_json::Value> = gcp
        .fake
        .state()
        .firewalls
        .iter()
        .filter(|f| f["targetTags"] == json!([tag]))
        .cloned()
        .collect();
    let all: Vec<_> = gcp
        .fake
        .state()
        .firewalls
        .iter()
        .map(|f| (f["name"].clone(), f["targetTags"].clone()))
        .collect();
    assert_eq!(ours.len(), 2, "{all:?}");
    let ingress = ours.iter().find(|f| f["direction"] == "INGRESS").unwrap();
    assert_eq!(ingress["sourceRanges"], json!(["0.0.0.0/0"]));
    assert_eq!(
        ingress["allowed"],
        json!([
            {"IPProtocol": "tcp", "ports": ["22"]},
            {"IPProtocol": "tcp", "ports": ["80"]},
            {"IPProtocol": "tcp", "ports": ["443"]},
        ])
    );
    assert!(
        ingress["network"]
            .as_str()
            .unwrap()
            .ends_with("/global/networks/default")
    );
    assert!(
        ingress["description"]
            .as_str()
            .unwrap()
            .contains(&format!("altishift:plan={short}")),
        "{ingress}"
    );
    let egress = ours.iter().find(|f| f["direction"] == "EGRESS").unwrap();
    assert_eq!(egress["destinationRanges"], json!(["0.0.0.0/0"]));
    assert_eq!(egress["allowed"], json!([{"IPProtocol": "all"}]));

    // The instance: network tag, labels, metadata, external address.
    let vm = gcp.fake.instance("web-2").expect("deployed");
    assert_eq!(vm["tags"]["items"], json!([tag]));
    assert_eq!(vm["labels"]["env"], "lab");
    let item = |key: &str| {
        vm["metadata"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"] == key)
            .map(|i| i["value"].as_str().unwrap().to_string())
    };
    assert_eq!(item("ssh-keys"), Some(format!("ops:{OPS_KEY}")));
    assert_eq!(item("user-data"), Some(user_data("web-2")));
    assert_eq!(
        vm["networkInterfaces"][0]["accessConfigs"][0]["type"],
        "ONE_TO_ONE_NAT"
    );
    // Firewalls before the instance.
    let mutating = gcp.fake.mutating_received();
    let first_fw = mutating.iter().position(|r| r == "POST global/firewalls");
    let vm_insert = mutating
        .iter()
        .position(|r| r.ends_with("/instances") && r.starts_with("POST zones/"));
    assert!(first_fw < vm_insert && first_fw.is_some(), "{mutating:?}");
}

#[tokio::test]
async fn a_rule_naming_a_group_cannot_be_approved_for_gcp_without_ack_lossy() {
    let gcp = Gcp::start().await;
    let lab = Lab::new(gcp.dir.path());
    let target_inventory = gcp.cloud().inventory().await.unwrap();
    let source_inventory = lab.east().inventory().await.unwrap();
    let mut plan = plan_to_gcp(&source_inventory, &target_inventory, &["legacy-app"]);
    let c = &plan.items[0].configuration;
    let fw = &c.firewalls[0];
    // `in tcp 8080 from group web` cannot be said; ssh from 10/8 can.
    assert_eq!(fw.rules.iter().filter(|r| r.target.is_some()).count(), 2);
    assert!(
        c.lossy.iter().any(
            |l| l.contains("from group web") && l.contains("cannot name other security groups")
        ),
        "{:?}",
        c.lossy
    );
    let short = plan.hash().short().to_string();
    let refused = approval::approve_with(
        &mut plan,
        &short,
        approval::Acks {
            cross_border: true,
            lossy: false,
        },
        "tester@localhost",
    );
    assert!(
        refused.is_err(),
        "a lossy plan was approved without --ack-lossy"
    );
    assert_eq!(gcp.fake.mutating_received(), Vec::<String>::new());
}
