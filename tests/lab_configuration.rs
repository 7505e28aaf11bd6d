//! Configuration from one lab cloud to the other through the real CLI:
//! the target lab's manifests carry the firewalls (a rule naming another
//! migrated group names the new group), the key, the network, a public
//! address and the user-data, read back through the lab provider.

use altishift_testkit::cli as support;

use altishift::cloud::Cloud;
use altishift::cloud::lab::LabCloud;
use altishift::inventory::config::Peer;
use support::{Lab, text};

#[tokio::test]
async fn lab_to_lab_carries_rules_keys_network_and_user_data() {
    let lab = Lab::new();
    let out = lab.plan(&["web-1", "legacy-app"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("LOSSY"), "{}", text(&out));
    assert!(lab.approve().status.success());
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));

    let west = LabCloud::open("lab-west", &lab.root().join("lab-west"), None).unwrap();
    let inventory = west.inventory().await.unwrap();
    let web = inventory.instance("web-1").expect("web-1 deployed");
    let config = &web.config;
    // lab-west has its own `web` firewall and `ops` key: ours are renamed.
    assert_eq!(config.rule_sets.len(), 1);
    assert_eq!(config.rule_sets[0].name, "web-lab-east");
    let rules: Vec<String> = config.rule_sets[0]
        .rules
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        rules,
        vec![
            "in tcp 22 from 0.0.0.0/0",
            "in tcp 80 from 0.0.0.0/0",
            "in tcp 443 from 0.0.0.0/0",
            "out all to 0.0.0.0/0",
        ]
    );
    assert_eq!(config.ssh_keys[0].name, "ops-lab-east");
    assert_eq!(
        config.ssh_keys[0].public_key.as_deref(),
        Some(altishift::cloud::lab::config::OPS_KEY)
    );
    assert_eq!(config.networks[0].network, "web-net");
    assert!(config.networks[0].public, "web-1 had a public address");
    assert_eq!(
        config.user_data.as_deref(),
        Some(altishift::cloud::lab::config::user_data("web-1").as_str())
    );
    assert_eq!(web.tags.get("role").map(String::as_str), Some("web"));

    let legacy = inventory
        .instance("legacy-app")
        .expect("legacy-app deployed");
    let set = &legacy.config.rule_sets[0];
    assert_eq!(set.name, "legacy-lab-east");
    assert!(
        set.rules
            .iter()
            .any(|r| r.peer == Peer::Group("web-lab-east".into())),
        "the rule names the migrated web group: {set:?}"
    );
    assert!(!legacy.config.networks[0].public);
    // The new objects are in the target's lists, beside its own.
    for name in ["web", "web-lab-east", "legacy-lab-east"] {
        assert!(
            inventory.firewalls.iter().any(|f| f.name == name),
            "{name} missing"
        );
    }
}
