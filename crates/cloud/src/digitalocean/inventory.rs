//! Droplets, volumes, sizes, regions, images, SSH keys, VPCs and firewalls
//! as the cloud-neutral inventory, each listing paged to its end.

use super::client::DoClient;
use crate::CloudError;
use crate::inventory::config::{ConfigRules, FirewallRules, PeerKind, TagRules};
use crate::inventory::{
    Access, Disk, DiskFormat, Firewall, Image, Instance, InstanceState, Inventory, Network, Nic,
    Platform, Region, Size, SshKey,
};
use crate::units::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Lists everything the console shows, each listing to its last page.
pub async fn fetch(client: &DoClient, cloud: &str) -> Result<Inventory, CloudError> {
    let droplets = client.list("/v2/droplets", "droplets").await?;
    let volumes = client.list("/v2/volumes", "volumes").await?;
    let sizes = client.list("/v2/sizes", "sizes").await?;
    let regions = client.list("/v2/regions", "regions").await?;
    let images = client.list("/v2/images", "images").await?;
    let keys = client.list("/v2/account/keys", "ssh_keys").await?;
    let vpcs = client.list("/v2/vpcs", "vpcs").await?;
    let firewalls = client.list("/v2/firewalls", "firewalls").await?;
    let account = client.get("/v2/account").await?;
    let volumes: HashMap<String, &Value> = volumes
        .iter()
        .filter_map(|v| Some((v["id"].as_str()?.to_string(), v)))
        .collect();
    Ok(Inventory {
        cloud: cloud.to_string(),
        provider: "digitalocean".into(),
        instances: droplets
            .iter()
            .map(|d| instance(d, &volumes))
            .collect::<Result<_, _>>()?,
        sizes: sizes
            .iter()
            .filter(|s| s["available"].as_bool() != Some(false))
            .filter_map(|s| {
                Some(Size {
                    name: s["slug"].as_str()?.to_string(),
                    vcpus: s["vcpus"].as_u64()? as u32,
                    memory: Bytes(s["memory"].as_u64()? << 20),
                })
            })
            .collect(),
        regions: regions
            .iter()
            .filter(|r| r["available"].as_bool() != Some(false))
            .filter_map(|r| {
                let slug = r["slug"].as_str()?;
                Some(Region {
                    name: slug.to_string(),
                    jurisdiction: jurisdiction(slug).to_string(),
                })
            })
            .collect(),
        images: images.iter().filter_map(image).collect(),
        ssh_keys: keys.iter().filter_map(ssh_key).collect(),
        networks: vpcs.iter().filter_map(vpc).collect(),
        config_rules: Some(config_rules()),
        rules: super::rules(),
        firewalls: firewalls.iter().filter_map(firewall).collect(),
        access: access(&account["account"]),
    })
}

/// A DigitalOcean id: a number for droplets, images and keys, a UUID string
/// for VPCs, firewalls and volumes.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn image(i: &Value) -> Option<Image> {
    Some(Image {
        id: id_text(&i["id"])?,
        name: i["name"].as_str().unwrap_or_default().to_string(),
        os: os_text(i),
        region: i["regions"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(Value::as_str)
            .map(str::to_string),
        size: i["size_gigabytes"]
            .as_f64()
            .filter(|gb| *gb > 0.0)
            .map(|gb| Bytes((gb * 1e9).round() as u64)),
        private: i["public"].as_bool() == Some(false),
    })
}

/// `Ubuntu 24.04 (LTS) x64` from an image's distribution and name; the name
/// alone when the distribution is `Unknown` (custom images).
fn os_text(image: &Value) -> Option<String> {
    let name = image["name"].as_str().unwrap_or_default().trim();
    let distribution = image["distribution"].as_str().unwrap_or_default().trim();
    let known = !distribution.is_empty() && !distribution.eq_ignore_ascii_case("unknown");
    match (known, name.is_empty()) {
        (true, true) => Some(distribution.to_string()),
        (true, false)
            if name
                .to_lowercase()
                .starts_with(&distribution.to_lowercase()) =>
        {
            Some(name.to_string())
        }
        (true, false) => Some(format!("{distribution} {name}")),
        (false, false) => Some(name.to_string()),
        (false, true) => None,
    }
}

fn ssh_key(k: &Value) -> Option<SshKey> {
    Some(SshKey {
        id: id_text(&k["id"])?,
        name: k["name"].as_str().unwrap_or_default().to_string(),
        fingerprint: k["fingerprint"].as_str().map(str::to_string),
    })
}

fn vpc(v: &Value) -> Option<Network> {
    Some(Network {
        id: id_text(&v["id"])?,
        name: v["name"].as_str().unwrap_or_default().to_string(),
        kind: "vpc".into(),
        cidr: v["ip_range"].as_str().map(str::to_string),
        region: v["region"].as_str().map(str::to_string),
        parent: None,
    })
}

fn firewall(f: &Value) -> Option<Firewall> {
    let mut rules = Vec::new();
    for (direction, list, peers, word) in [
        ("in", &f["inbound_rules"], "sources", "from"),
        ("out", &f["outbound_rules"], "destinations", "to"),
    ] {
        for rule in list.as_array().into_iter().flatten() {
            rules.push(rule_line(direction, rule, &rule[peers], word));
        }
    }
    Some(Firewall {
        id: id_text(&f["id"])?,
        name: f["name"].as_str().unwrap_or_default().to_string(),
        network: None,
        rules,
    })
}

/// `in tcp 22 from 0.0.0.0/0,::/0`; port "0" (or none) is `all`; peers
/// other than addresses are named by kind (`tag:web`, `droplet:42`).
fn rule_line(direction: &str, rule: &Value, peers: &Value, word: &str) -> String {
    let protocol = rule["protocol"].as_str().unwrap_or("any");
    let ports = match rule["ports"].as_str().map(str::trim) {
        None | Some("") | Some("0") | Some("all") => "all",
        Some(p) => p,
    };
    let mut who: Vec<String> = Vec::new();
    for (field, prefix) in [
        ("addresses", ""),
        ("tags", "tag:"),
        ("droplet_ids", "droplet:"),
        ("load_balancer_uids", "load-balancer:"),
        ("kubernetes_ids", "kubernetes:"),
    ] {
        for peer in peers[field].as_array().into_iter().flatten() {
            if let Some(text) = id_text(peer) {
                who.push(format!("{prefix}{text}"));
            }
        }
    }
    let who = if who.is_empty() {
        "nowhere".to_string()
    } else {
        who.join(",")
    };
    format!("{direction} {protocol} {ports} {word} {who}")
}

/// Who the token acts as: the account's email, else its UUID. DigitalOcean
/// does not tell a token's expiry through the API, so none is shown.
fn access(account: &Value) -> Option<Access> {
    let identity = account["email"]
        .as_str()
        .filter(|e| !e.is_empty())
        .or_else(|| account["uuid"].as_str().filter(|u| !u.is_empty()))?;
    Some(Access {
        identity: identity.to_string(),
        expires_at: None,
        renews: false,
    })
}

/// Country of a DigitalOcean region slug.
pub fn jurisdiction(slug: &str) -> &'static str {
    match slug.trim_end_matches(|c: char| c.is_ascii_digit()) {
        "nyc" | "sfo" | "atl" => "US",
        "tor" => "CA",
        "ams" => "NL",
        "fra" => "DE",
        "lon" => "GB",
        "sgp" => "SG",
        "blr" => "IN",
        "syd" => "AU",
        _ => "unknown",
    }
}

pub fn public_ipv4(droplet: &Value) -> Option<String> {
    droplet["networks"]["v4"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == "public")
        .and_then(|n| n["ip_address"].as_str())
        .map(str::to_string)
}

/// The droplet's own disk; volumes carry their volume id.
pub const BOOT_DISK_ID: &str = "disk-0";

fn instance(d: &Value, volumes: &HashMap<String, &Value>) -> Result<Instance, CloudError> {
    let id = match &d["id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => {
            return Err(CloudError::Permanent(format!(
                "a droplet without an id ({other})"
            )));
        }
    };
    let state = match d["status"].as_str().unwrap_or_default() {
        "active" => InstanceState::Running,
        "off" => InstanceState::Stopped,
        "new" => InstanceState::Pending,
        "archive" => InstanceState::Terminated,
        _ => InstanceState::Unknown,
    };
    let mut disks = vec![Disk {
        id: BOOT_DISK_ID.into(),
        device: "/dev/vda".into(),
        format: DiskFormat::Raw,
        virtual_size: Bytes(d["disk"].as_u64().unwrap_or(0) << 30),
        allocated: None,
        boot: true,
    }];
    let volume_ids = d["volume_ids"].as_array().cloned().unwrap_or_default();
    for (n, volume_id) in volume_ids.iter().filter_map(Value::as_str).enumerate() {
        let volume = volumes.get(volume_id);
        let gb = volume
            .and_then(|v| v["size_gigabytes"].as_u64())
            .unwrap_or(0);
        // Where the guest sees it, as DigitalOcean documents it.
        let device = match volume.and_then(|v| v["name"].as_str()) {
            Some(name) => format!("/dev/disk/by-id/scsi-0DO_Volume_{name}"),
            None => format!("/dev/sd{}", (b'a' + (n as u8 % 26)) as char),
        };
        disks.push(Disk {
            id: volume_id.to_string(),
            device,
            format: DiskFormat::Raw,
            virtual_size: Bytes(gb << 30),
            allocated: None,
            boot: false,
        });
    }
    let mut nics = Vec::new();
    for (family, list) in [("v4", &d["networks"]["v4"]), ("v6", &d["networks"]["v6"])] {
        for net in list.as_array().into_iter().flatten() {
            nics.push(Nic {
                name: format!("{}-{family}", net["type"].as_str().unwrap_or("net")),
                network: d["vpc_uuid"]
                    .as_str()
                    .unwrap_or(net["type"].as_str().unwrap_or("public"))
                    .to_string(),
                address: net["ip_address"].as_str().map(str::to_string),
            });
        }
    }
    let tags: BTreeMap<String, String> = d["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|t| match t.split_once(':') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (t.to_string(), String::new()),
        })
        .collect();
    Ok(Instance {
        id,
        name: d["name"].as_str().unwrap_or_default().to_string(),
        state,
        size: d["size_slug"].as_str().unwrap_or_default().to_string(),
        vcpus: d["vcpus"].as_u64().unwrap_or(0) as u32,
        memory: Bytes(d["memory"].as_u64().unwrap_or(0) << 20),
        region: d["region"]["slug"].as_str().unwrap_or_default().to_string(),
        disks,
        nics,
        tags,
        platform: Platform {
            os: os_text(&d["image"]),
            ..Platform::default()
        },
        // The droplet answer names neither its firewalls nor its keys.
        config: Default::default(),
    })
}

/// What a DigitalOcean target takes (tags: single words of letters,
/// digits, `:`, `-`, `_`, ≤ 255 characters, so `key:value`; cloud firewalls
/// by address or tag, tcp/udp/icmp without ICMP types, `all` made of those
/// three; every droplet has a public address; user_data ≤ 64 KiB).
pub fn config_rules() -> ConfigRules {
    ConfigRules {
        creates: true,
        tags: TagRules {
            word: "tags".into(),
            max_count: usize::MAX,
            own_tags: 1,
            key_max: 255,
            value_max: 255,
            lowercase: false,
            extra_chars: ":-_".into(),
            unicode_letters: false,
            key_starts_with_letter: false,
            reserved_prefixes: Vec::new(),
            reserved_keys: Vec::new(),
            joined: Some(":".into()),
        },
        firewall: FirewallRules {
            word: "cloud firewall".into(),
            egress: true,
            icmp_types: false,
            any_protocol: false,
            peers: vec![PeerKind::Cidr, PeerKind::Tag],
            all_as: vec!["tcp".into(), "udp".into(), "icmp".into()],
            egress_peers: None,
            max_rules: None,
        },
        network_kind: "vpc".into(),
        max_keys: None,
        ssh_keys: true,
        user_data_max: Some(64 * 1024),
        public_ip: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_droplet_becomes_an_instance() {
        let text = include_str!("../../../../tests/fixtures/digitalocean/list_nodes_page_1.json");
        let page: Value = serde_json::from_str(text).unwrap();
        let d = &page["droplets"][0];
        let i = instance(d, &HashMap::new()).unwrap();
        assert_eq!(i.id, "3164444");
        assert_eq!(i.state, InstanceState::Running);
        assert_eq!(i.size, "512mb");
        assert_eq!(i.memory, Bytes(512 << 20));
        assert_eq!(i.disks[0].virtual_size, Bytes::gib(20));
        assert_eq!(i.region, "nyc3");
        assert_eq!(i.first_address(), Some("104.236.32.182"));
        assert_eq!(i.tags.get("environment").map(String::as_str), Some("prod"));
        assert_eq!(public_ipv4(d).as_deref(), Some("104.236.32.182"));
        assert_eq!(jurisdiction("fra1"), "DE");
    }

    #[test]
    fn recorded_images_and_keys_become_neutral_entries() {
        let text = include_str!("../../../../tests/fixtures/digitalocean/list_images.json");
        let page: Value = serde_json::from_str(text).unwrap();
        let images: Vec<Image> = page["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(image)
            .collect();
        assert_eq!(images.len(), 3);
        assert_eq!(images[0].id, "119192817");
        assert_eq!(images[0].os.as_deref(), Some("Ubuntu 14.04 x64"));
        assert_eq!(images[0].region.as_deref(), Some("nyc1"));
        assert!(!images[0].private && images[2].private);
        let text = include_str!("../../../../tests/fixtures/digitalocean/list_key_pairs.json");
        let page: Value = serde_json::from_str(text).unwrap();
        let key = ssh_key(&page["ssh_keys"][0]).unwrap();
        assert_eq!(key.id, "7717");
        assert_eq!(key.name, "test1");
        assert_eq!(
            key.fingerprint.as_deref(),
            Some("f5:d1:78:ed:28:72:5f:e1:ac:94:fd:1f:e0:a3:48:6d")
        );
        let text = include_str!("../../../../tests/fixtures/digitalocean/_v2_account.json");
        let account: Value = serde_json::from_str(text).unwrap();
        let who = access(&account["account"]).unwrap();
        assert_eq!(
            (who.identity.as_str(), who.expires_at),
            ("user@domain.tld", None)
        );
    }

    #[test]
    fn the_os_comes_from_the_image_distribution_and_name() {
        let os = |d: &str, n: &str| os_text(&serde_json::json!({"distribution": d, "name": n}));
        assert_eq!(
            os("Ubuntu", "24.04 (LTS) x64").as_deref(),
            Some("Ubuntu 24.04 (LTS) x64")
        );
        assert_eq!(
            os("Debian", "Debian 12 x64").as_deref(),
            Some("Debian 12 x64")
        );
        assert_eq!(
            os("Unknown", "windows-2022").as_deref(),
            Some("windows-2022")
        );
        assert_eq!(os("Fedora", "").as_deref(), Some("Fedora"));
        assert_eq!(os("", ""), None);
        assert_eq!(os_text(&Value::Null), None);
    }

    #[test]
    fn firewall_rules_become_one_line_each() {
        let f = serde_json::json!({
            "id": "bb4b2611-3d72-467b-8602-280330ecd65c", "name": "web",
            "inbound_rules": [
                {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0", "::/0"]}},
                {"protocol": "tcp", "ports": "8000-9000", "sources": {"tags": ["lb"], "droplet_ids": [42]}},
                {"protocol": "icmp", "ports": "0", "sources": {}}
            ],
            "outbound_rules": [
                {"protocol": "udp", "ports": "0", "destinations": {"addresses": ["0.0.0.0/0"]}}
            ]
        });
        let fw = firewall(&f).unwrap();
        assert_eq!(fw.id, "bb4b2611-3d72-467b-8602-280330ecd65c");
        assert_eq!(
            fw.rules,
            vec![
                "in tcp 22 from 0.0.0.0/0,::/0",
                "in tcp 8000-9000 from tag:lb,droplet:42",
                "in icmp all from nowhere",
                "out udp all to 0.0.0.0/0",
            ]
        );
    }
}
