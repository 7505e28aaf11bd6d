//! The lab's configuration: networks in `cloud.toml`, rule sets in
//! `firewalls/NAME.toml`, public keys in `keys/NAME.toml`, and per instance
//! the names of those it uses and its user-data. `lab init` fills them like a
//! small real estate (web, database, the rest); a migration onto the lab
//! writes new ones, tagged with the plan.

use super::manifest::{self, FirewallManifest, InstanceManifest, KeyManifest};
use crate::configure::FoundConfig;
use crate::inventory::config::{
    Attachment, ConfigRules, Direction, FirewallRules, KeyRef, Peer, PeerKind, PortRange, Rule,
    RuleSet, TagRules,
};
use crate::inventory::{Firewall, InstanceConfig, Network, SshKey};
use crate::{CloudError, CreatedResource, ResourceKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The lab keeps whatever it is given: it is the reference target.
pub fn config_rules() -> ConfigRules {
    ConfigRules {
        creates: true,
        tags: TagRules {
            word: "tags".into(),
            max_count: 1000,
            own_tags: 1,
            key_max: 1024,
            value_max: 4096,
            lowercase: false,
            extra_chars: " +-=._:/@".into(),
            unicode_letters: true,
            key_starts_with_letter: false,
            reserved_prefixes: Vec::new(),
            reserved_keys: Vec::new(),
            joined: None,
        },
        firewall: FirewallRules {
            word: "firewall".into(),
            egress: true,
            icmp_types: true,
            any_protocol: true,
            peers: vec![
                PeerKind::Cidr,
                PeerKind::Group,
                PeerKind::Tag,
                PeerKind::ServiceAccount,
                PeerKind::PrefixList,
            ],
            all_as: Vec::new(),
            egress_peers: None,
            max_rules: None,
        },
        network_kind: "network".into(),
        max_keys: None,
        ssh_keys: true,
        user_data_max: Some(1 << 20),
        public_ip: true,
    }
}

/// The operators' key `lab init` puts on every instance (a public key only).
pub const OPS_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO+SfsrrmWcMaArgVF650TcDZEItpfO9oBu6LAPPqpV+ ops@lab";

fn rule(direction: Direction, protocol: &str, port: Option<u16>, peer: Peer, what: &str) -> Rule {
    Rule {
        direction,
        protocol: protocol.into(),
        ports: port.map(|p| PortRange { from: p, to: p }),
        peer,
        description: Some(what.into()),
    }
}

/// Networks, firewalls and keys of a new lab cloud whose subnets are
/// `10.<net>.x.0/24`.
pub fn seed(root: &Path, net: u8) -> Result<Vec<Network>, String> {
    let cidr = |n: u8| format!("10.{net}.{n}.0/24");
    let networks = ["web-net", "db-net", "app-net"]
        .iter()
        .zip(1u8..)
        .map(|(name, n)| Network {
            id: name.to_string(),
            name: name.to_string(),
            kind: "network".into(),
            cidr: Some(cidr(n)),
            region: None,
            parent: None,
        })
        .collect();
    let all_out = rule(
        Direction::Out,
        "all",
        None,
        Peer::Cidr("0.0.0.0/0".into()),
        "anything out",
    );
    let anywhere = || Peer::Cidr("0.0.0.0/0".into());
    let firewalls = [
        FirewallManifest {
            name: "web".into(),
            tags: BTreeMap::new(),
            rules: vec![
                rule(Direction::In, "tcp", Some(22), anywhere(), "ssh"),
                rule(Direction::In, "tcp", Some(80), anywhere(), "http"),
                rule(Direction::In, "tcp", Some(443), anywhere(), "https"),
                all_out.clone(),
            ],
        },
        FirewallManifest {
            name: "db".into(),
            tags: BTreeMap::new(),
            rules: vec![
                rule(
                    Direction::In,
                    "tcp",
                    Some(5432),
                    Peer::Cidr(cidr(1)),
                    "postgres from the web subnet",
                ),
                rule(
                    Direction::In,
                    "tcp",
                    Some(22),
                    Peer::Cidr("10.0.0.0/8".into()),
                    "ssh from inside",
                ),
                all_out.clone(),
            ],
        },
        FirewallManifest {
            name: "legacy".into(),
            tags: BTreeMap::new(),
            rules: vec![
                rule(
                    Direction::In,
                    "tcp",
                    Some(8080),
                    Peer::Group("web".into()),
                    "the app, behind the web proxies",
                ),
                rule(
                    Direction::In,
                    "tcp",
                    Some(22),
                    Peer::Cidr("10.0.0.0/8".into()),
                    "ssh from inside",
                ),
                all_out.clone(),
            ],
        },
        FirewallManifest {
            name: "base".into(),
            tags: BTreeMap::new(),
            rules: vec![
                rule(
                    Direction::In,
                    "tcp",
                    Some(22),
                    Peer::Cidr("10.0.0.0/8".into()),
                    "ssh from inside",
                ),
                Rule {
                    ports: Some(PortRange { from: 8, to: 0 }),
                    ..rule(
                        Direction::In,
                        "icmp",
                        None,
                        Peer::Cidr("10.0.0.0/8".into()),
                        "ping from inside",
                    )
                },
                all_out,
            ],
        },
    ];
    for f in &firewalls {
        manifest::save(&path(root, "firewalls", &f.name)?, f)?;
    }
    let key = KeyManifest {
        name: "ops".into(),
        public_key: OPS_KEY.into(),
        tags: BTreeMap::new(),
    };
    manifest::save(&path(root, "keys", &key.name)?, &key)?;
    Ok(networks)
}

/// Where an instance of this name sits: (network, host number base,
/// firewall, public address).
pub fn placement(instance: &str) -> (&'static str, u8, &'static str, bool) {
    if instance.starts_with("web") || instance.starts_with("api") {
        ("web-net", 1, "web", true)
    } else if instance.starts_with("db") {
        ("db-net", 2, "db", false)
    } else if instance.starts_with("legacy") {
        ("app-net", 3, "legacy", false)
    } else {
        ("app-net", 3, "base", false)
    }
}

/// cloud-init user-data for a lab instance.
pub fn user_data(instance: &str) -> String {
    format!(
        "#cloud-config\nhostname: {instance}\npackage_update: true\nruncmd:\n  - [systemctl, enable, --now, node-exporter]\n"
    )
}

fn path(root: &Path, folder: &str, name: &str) -> Result<PathBuf, String> {
    let file = crate::fsutil::file_name(name)
        .map_err(|why| format!("name '{}': {why}", crate::text::safe(name)))?;
    Ok(root.join(folder).join(format!("{file}.toml")))
}

fn read_all<T: serde::de::DeserializeOwned>(root: &Path, folder: &str) -> Result<Vec<T>, String> {
    let dir = root.join(folder);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| manifest::load(p)).collect()
}

/// The lab's firewalls and keys, for the inventory's lists.
pub fn lists(root: &Path) -> Result<(Vec<Firewall>, Vec<SshKey>), CloudError> {
    let firewalls: Vec<FirewallManifest> =
        read_all(root, "firewalls").map_err(CloudError::Permanent)?;
    let keys: Vec<KeyManifest> = read_all(root, "keys").map_err(CloudError::Permanent)?;
    Ok((
        firewalls
            .into_iter()
            .map(|f| Firewall {
                id: f.name.clone(),
                name: f.name,
                network: None,
                rules: f.rules.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        keys.into_iter()
            .map(|k| SshKey {
                id: k.name.clone(),
                name: k.name,
                fingerprint: None,
            })
            .collect(),
    ))
}

/// One instance's configuration from its manifest and the files it names.
pub fn instance_config(
    root: &Path,
    networks: &[Network],
    m: &InstanceManifest,
) -> Result<InstanceConfig, CloudError> {
    let mut config = InstanceConfig {
        networks: m
            .nics
            .iter()
            .map(|n| Attachment {
                network: n.network.clone(),
                subnet: None,
                cidr: networks
                    .iter()
                    .find(|x| x.name == n.network)
                    .and_then(|x| x.cidr.clone()),
                private_address: n.address.clone(),
                public: n.public,
            })
            .collect(),
        user_data: m.user_data.clone(),
        ..InstanceConfig::default()
    };
    for name in &m.firewalls {
        let f: FirewallManifest =
            manifest::load(&path(root, "firewalls", name).map_err(CloudError::Permanent)?)
                .map_err(CloudError::Permanent)?;
        config.rule_sets.push(RuleSet {
            name: f.name,
            id: None,
            rules: f.rules,
        });
    }
    for name in &m.ssh_keys {
        let k: KeyManifest =
            manifest::load(&path(root, "keys", name).map_err(CloudError::Permanent)?)
                .map_err(CloudError::Permanent)?;
        config.ssh_keys.push(KeyRef {
            name: k.name,
            public_key: Some(k.public_key),
            fingerprint: None,
        });
    }
    Ok(config)
}

/// Writes `firewalls/NAME.toml` tagged with the plan; one this plan wrote
/// before is reused, anyone else's is refused. Returns its name (the id).
pub fn create_firewall(
    root: &Path,
    tag: &(String, String),
    name: &str,
    rules: &[Rule],
) -> Result<String, CloudError> {
    let file = path(root, "firewalls", name).map_err(CloudError::Permanent)?;
    if file.exists() {
        let existing: FirewallManifest = manifest::load(&file).map_err(CloudError::Permanent)?;
        return ours(&existing.tags, tag, "firewall", name);
    }
    let mut tags = BTreeMap::new();
    tags.insert(tag.0.clone(), tag.1.clone());
    let made = FirewallManifest {
        name: name.to_string(),
        tags,
        rules: rules.to_vec(),
    };
    std::fs::create_dir_all(root.join("firewalls"))
        .map_err(|e| CloudError::from_io("firewalls", e))?;
    manifest::save(&file, &made).map_err(CloudError::Permanent)?;
    Ok(name.to_string())
}

/// Writes `keys/NAME.toml` tagged with the plan (same rules as firewalls).
pub fn import_key(
    root: &Path,
    tag: &(String, String),
    name: &str,
    public_key: &str,
) -> Result<String, CloudError> {
    let file = path(root, "keys", name).map_err(CloudError::Permanent)?;
    if file.exists() {
        let existing: KeyManifest = manifest::load(&file).map_err(CloudError::Permanent)?;
        return ours(&existing.tags, tag, "key", name);
    }
    let mut tags = BTreeMap::new();
    tags.insert(tag.0.clone(), tag.1.clone());
    let made = KeyManifest {
        name: name.to_string(),
        public_key: public_key.to_string(),
        tags,
    };
    std::fs::create_dir_all(root.join("keys")).map_err(|e| CloudError::from_io("keys", e))?;
    manifest::save(&file, &made).map_err(CloudError::Permanent)?;
    Ok(name.to_string())
}

fn ours(
    tags: &BTreeMap<String, String>,
    (key, value): &(String, String),
    what: &str,
    name: &str,
) -> Result<String, CloudError> {
    if tags.get(key) == Some(value) {
        Ok(name.to_string())
    } else {
        Err(CloudError::Permanent(format!(
            "{what} '{name}' already exists and was not created by this plan"
        )))
    }
}

/// The firewalls and keys carrying the plan's tag `(key, value)`, for
/// cleanup to find those a killed run never journaled.
pub fn leftovers(
    root: &Path,
    cloud: &str,
    (key, value): &(String, String),
) -> Result<Vec<CreatedResource>, CloudError> {
    let ours = |tags: &BTreeMap<String, String>| tags.get(key) == Some(value);
    let resource = |kind, id: String| CreatedResource {
        cloud: cloud.to_string(),
        kind,
        id,
        temporary: false,
    };
    let firewalls: Vec<FirewallManifest> =
        read_all(root, "firewalls").map_err(CloudError::Permanent)?;
    let keys: Vec<KeyManifest> = read_all(root, "keys").map_err(CloudError::Permanent)?;
    let mut found: Vec<CreatedResource> = firewalls
        .into_iter()
        .filter(|f| ours(&f.tags))
        .map(|f| resource(ResourceKind::Firewall, f.name))
        .collect();
    found.extend(
        keys.into_iter()
            .filter(|k| ours(&k.tags))
            .map(|k| resource(ResourceKind::SshKey, k.name)),
    );
    Ok(found)
}

/// The file of a firewall or key the run created (for removal).
pub fn file(root: &Path, folder: &str, name: &str) -> Result<PathBuf, CloudError> {
    path(root, folder, name).map_err(CloudError::Permanent)
}

/// What a deployed instance's manifest says, for validation.
pub fn found(m: &InstanceManifest) -> FoundConfig {
    FoundConfig {
        network: m.nics.first().map(|n| n.network.clone()),
        public_ip: m.nics.first().map(|n| n.public),
        firewalls: m.firewalls.clone(),
        ssh_keys: m.ssh_keys.clone(),
        user_data: Some(m.user_data.clone()),
        tags: m.tags.clone(),
    }
}
