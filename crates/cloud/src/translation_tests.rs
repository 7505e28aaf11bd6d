//! Translation tests: the rules each provider declares, applied by the plan's
//! translation to rule sets, tags, keys and overrides. They live here, beside
//! the providers' declarations, because the model cannot name a provider.

use crate::inventory::config::{Attachment, InstanceConfig, KeyRef, RuleSet};
use crate::inventory::config::{ConfigRules, Direction, Peer, PortRange, Rule};
use crate::inventory::{Instance, InstanceState, Inventory, Network};
use crate::plan::configuration::*;
use crate::units::Bytes;
use std::collections::BTreeMap;

fn rule(protocol: &str, port: Option<u16>, peer: Peer) -> Rule {
    Rule {
        direction: Direction::In,
        protocol: protocol.into(),
        ports: port.map(|p| PortRange { from: p, to: p }),
        peer,
        description: None,
    }
}

fn instance(sets: Vec<RuleSet>, tags: &[(&str, &str)]) -> Instance {
    Instance {
        id: "i-1".into(),
        name: "app".into(),
        state: InstanceState::Running,
        size: "m".into(),
        vcpus: 1,
        memory: Bytes::gib(1),
        region: "r".into(),
        disks: vec![],
        nics: vec![],
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        platform: Default::default(),
        config: InstanceConfig {
            networks: vec![Attachment {
                network: "prod".into(),
                subnet: Some("subnet-1".into()),
                cidr: Some("10.0.1.0/24".into()),
                private_address: Some("10.0.1.5".into()),
                public: true,
            }],
            rule_sets: sets,
            ssh_keys: vec![KeyRef {
                name: "ops".into(),
                public_key: Some("ssh-ed25519 AAAA ops".into()),
                fingerprint: None,
            }],
            user_data: Some("#cloud-config\n".into()),
            unread: vec![],
        },
    }
}

fn target(rules: ConfigRules, networks: Vec<Network>) -> Inventory {
    Inventory {
        cloud: "t".into(),
        provider: "x".into(),
        networks,
        config_rules: Some(rules),
        ..Default::default()
    }
}

/// As Compute Engine declares it, but creating (to see translations
/// rather than "not yet").
fn gce() -> ConfigRules {
    ConfigRules {
        creates: true,
        ..crate::gcp::inventory::config_rules()
    }
}

#[test]
fn an_aws_rule_naming_another_group_is_lossy_on_compute_engine() {
    let source = instance(
        vec![RuleSet {
            name: "web".into(),
            id: Some("sg-1".into()),
            rules: vec![
                rule("tcp", Some(443), Peer::Cidr("0.0.0.0/0".into())),
                rule("tcp", Some(22), Peer::Group("sg-bastion".into())),
            ],
        }],
        &[],
    );
    let groups = firewall_names(&[&source], "aws", &target(gce(), vec![]));
    let got = translate(
        &source,
        "aws",
        "gce",
        &target(gce(), vec![]),
        &ConfigRequest::default(),
        &groups,
    )
    .unwrap();
    let fw = &got.firewalls[0];
    assert_eq!(fw.name, "web");
    assert!(fw.rules[0].target.is_some());
    assert_eq!(fw.rules[1].target, None);
    assert_eq!(
        got.lossy,
        vec![
            "rule 'in tcp 22 from group sg-bastion' of 'web': a firewall rule cannot name other security groups"
        ]
    );
}

#[test]
fn a_gce_rule_on_a_service_account_is_lossy_on_aws_and_labels_are_renamed() {
    let source = instance(
        vec![RuleSet {
            name: "allow-api".into(),
            id: None,
            rules: vec![
                rule(
                    "tcp",
                    Some(8080),
                    Peer::ServiceAccount("api@p.iam.gserviceaccount.com".into()),
                ),
                rule("tcp", Some(80), Peer::Cidr("10.0.0.0/8".into())),
            ],
        }],
        &[
            ("Name", "app"),
            ("aws:cloudformation:stack", "s"),
            ("team", "web"),
        ],
    );
    let aws = target(
        crate::aws::config::config_rules(),
        vec![Network {
            id: "subnet-9".into(),
            name: "other".into(),
            kind: "subnet".into(),
            cidr: Some("10.0.1.0/24".into()),
            region: None,
            parent: None,
        }],
    );
    let got = translate(
        &source,
        "gce",
        "aws",
        &aws,
        &ConfigRequest::default(),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(
        got.lossy,
        vec![
            "rule 'in tcp 8080 from service account api@p.iam.gserviceaccount.com' of 'allow-api': a security group cannot name service accounts"
        ]
    );
    let network = got.network.clone().unwrap();
    assert_eq!(network.target.as_deref(), Some("subnet-9"));
    assert_eq!(network.how, "same CIDR, other");
    assert_eq!(got.public_ip, Some(true));
    assert_eq!(got.ssh_keys[0].name, "ops");
    let tags: Vec<String> = got.tags.iter().map(|t| t.line()).collect();
    assert_eq!(
        tags,
        vec![
            "Name=app → (not written) (the target sets 'Name' itself from the plan's target name)",
            "aws:cloudformation:stack=s → (not written) ('aws:' is reserved for the target cloud's own tags)",
            "team=web → team=web",
        ]
    );

    // AWS labels onto Compute Engine: lowercased, characters replaced.
    let source = instance(vec![], &[("Cost Center", "CC/42")]);
    let got = translate(
        &source,
        "aws",
        "gce",
        &target(gce(), vec![]),
        &ConfigRequest::default(),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(
        got.tags[0].line(),
        "Cost Center=CC/42 → cost_center=cc_42 (renamed to fit labels)"
    );
}

#[test]
fn overrides_and_a_target_that_creates_nothing_yet() {
    let source = instance(
        vec![RuleSet {
            name: "web".into(),
            id: None,
            rules: vec![rule("icmp", Some(8), Peer::Cidr("0.0.0.0/0".into()))],
        }],
        &[("env", "prod")],
    );
    let request = ConfigRequest {
        network_map: BTreeMap::from([("prod".to_string(), "nowhere".to_string())]),
        ..ConfigRequest::default()
    };
    let err = translate(
        &source,
        "a",
        "gce",
        &target(gce(), vec![]),
        &request,
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("--network-map prod=nowhere"),
        "{err}"
    );

    let request = ConfigRequest {
        no_firewall: true,
        no_tags: true,
        public_ip: Some(false),
        ..ConfigRequest::default()
    };
    let got = translate(
        &source,
        "a",
        "gce",
        &target(gce(), vec![]),
        &request,
        &BTreeMap::new(),
    )
    .unwrap();
    assert!(got.firewalls.is_empty() && got.tags.is_empty() && got.lossy.is_empty());
    assert_eq!(got.public_ip, Some(false));

    // Without --no-firewall the ICMP type cannot be kept: refused, not widened.
    let got = translate(
        &source,
        "a",
        "gce",
        &target(gce(), vec![]),
        &ConfigRequest::default(),
        &BTreeMap::new(),
    )
    .unwrap();
    assert!(
        got.lossy[0].contains("cannot name ICMP types"),
        "{:?}",
        got.lossy
    );

    // DigitalOcean as declared: keys, user-data and tags are carried; every
    // droplet has a public address (no choice), and the ICMP type is lost.
    let got = translate(
        &source,
        "a",
        "do",
        &target(crate::digitalocean::inventory::config_rules(), vec![]),
        &ConfigRequest::default(),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(got.ssh_keys.len(), 1);
    assert!(got.user_data.is_some());
    assert!(got.tags.iter().all(|t| t.key.is_some()));
    let text = got.lossy.join("\n");
    for part in ["public address (yes)", "cannot name ICMP types"] {
        assert!(text.contains(part), "{part} missing in {text}");
    }
}
