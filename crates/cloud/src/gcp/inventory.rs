//! Compute Engine inventory, read-only: instances and disks through
//! `aggregatedList`, machine types, zones (as the plan's regions), networks,
//! subnetworks, firewalls and the project's images, each followed by
//! `pageToken` to the last page. int64 fields arrive as strings.

use super::client::{Client, int64, last_segment};
use crate::CloudError;
use crate::inventory::config::{ConfigRules, FirewallRules, PeerKind, TagRules};
use crate::inventory::{Disk, DiskFormat, Instance, InstanceState, Inventory, Nic, Region, Size};
use crate::units::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// GCE instance status → our state (TERMINATED is GCE's word for stopped).
pub fn state(status: &str) -> InstanceState {
    match status {
        "RUNNING" => InstanceState::Running,
        "TERMINATED" | "STOPPED" | "SUSPENDED" | "SUSPENDING" | "STOPPING" => {
            InstanceState::Stopped
        }
        "PROVISIONING" | "STAGING" | "REPAIRING" => InstanceState::Pending,
        _ => InstanceState::Unknown,
    }
}

/// Where a region's data lives, from Google's published locations.
pub fn jurisdiction(zone_or_region: &str) -> String {
    let region = match zone_or_region.rsplit_once('-') {
        Some((r, z)) if z.len() == 1 => r,
        _ => zone_or_region,
    };
    let code = match region {
        "europe-west1" => "BE",
        "europe-west2" => "GB",
        "europe-west3" | "europe-west10" => "DE",
        "europe-west4" => "NL",
        "europe-west6" => "CH",
        "europe-west8" | "europe-west12" => "IT",
        "europe-west9" => "FR",
        "europe-north1" => "FI",
        "europe-north2" => "SE",
        "europe-central2" => "PL",
        "europe-southwest1" => "ES",
        r if r.starts_with("us-") => "US",
        r if r.starts_with("northamerica-") => "CA",
        "asia-northeast1" | "asia-northeast2" => "JP",
        "asia-northeast3" => "KR",
        "asia-southeast1" => "SG",
        "asia-south1" | "asia-south2" => "IN",
        "asia-east1" => "TW",
        "asia-east2" => "HK",
        r if r.starts_with("australia-") => "AU",
        r if r.starts_with("southamerica-") => "BR",
        _ => "unknown",
    };
    code.to_string()
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_string()
}

/// Machine types by name (the same type exists in many zones).
pub fn sizes(types: &[Value]) -> Vec<Size> {
    let mut by_name: BTreeMap<String, Size> = BTreeMap::new();
    for t in types {
        if t["deprecated"]["state"]
            .as_str()
            .is_some_and(|s| s != "ACTIVE")
        {
            continue;
        }
        let name = text(t, "name");
        let (Some(cpus), Some(mb)) = (t["guestCpus"].as_u64(), int64(&t["memoryMb"])) else {
            continue;
        };
        by_name.entry(name.clone()).or_insert(Size {
            name,
            vcpus: cpus as u32,
            memory: Bytes(mb << 20),
        });
    }
    by_name.into_values().collect()
}

/// An instance with its disks (sizes from the disks list, by selfLink).
pub fn instance(
    item: &Value,
    disks: &HashMap<String, Value>,
    sizes: &HashMap<String, Size>,
) -> Instance {
    let machine = last_segment(item["machineType"].as_str().unwrap_or_default()).to_string();
    let size = sizes.get(&machine);
    let zone = last_segment(item["zone"].as_str().unwrap_or_default()).to_string();
    let mut out_disks = Vec::new();
    for attached in item["disks"].as_array().into_iter().flatten() {
        let source = attached["source"].as_str().unwrap_or_default();
        let disk = disks.get(source).or_else(|| {
            // Older answers use www.googleapis.com, newer compute.googleapis.com.
            disks
                .iter()
                .find(|(link, _)| link.ends_with(source.rsplit("/projects/").next().unwrap_or("")))
                .map(|(_, d)| d)
        });
        let size_gb = disk
            .and_then(|d| int64(&d["sizeGb"]))
            .or_else(|| int64(&attached["diskSizeGb"]))
            .unwrap_or(0);
        out_disks.push(Disk {
            // NAME@ZONE: disk names are unique per zone, and ids become
            // path segments on other clouds (the lab's files), so no '/'.
            id: format!("{}@{zone}", last_segment(source)),
            device: text(attached, "deviceName"),
            format: DiskFormat::Raw,
            virtual_size: Bytes(size_gb << 30),
            allocated: None,
            boot: attached["boot"].as_bool().unwrap_or(false),
        });
    }
    let nics = item["networkInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| Nic {
            name: text(n, "name"),
            network: last_segment(n["network"].as_str().unwrap_or_default()).to_string(),
            address: n["networkIP"]
                .as_str()
                .or_else(|| n["accessConfigs"][0]["natIP"].as_str())
                .map(str::to_string),
        })
        .collect();
    let mut tags: BTreeMap<String, String> = item["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    for tag in item["tags"]["items"].as_array().into_iter().flatten() {
        if let Some(t) = tag.as_str() {
            tags.insert(format!("tag:{t}"), String::new());
        }
    }
    Instance {
        id: int64(&item["id"])
            .map(|n| n.to_string())
            .unwrap_or_else(|| text(item, "name")),
        name: text(item, "name"),
        state: state(item["status"].as_str().unwrap_or_default()),
        size: machine,
        vcpus: size.map(|s| s.vcpus).unwrap_or(0),
        memory: size.map(|s| s.memory).unwrap_or(Bytes(0)),
        region: zone,
        disks: out_disks,
        nics,
        tags,
        platform: super::catalog::platform(item),
        config: config_of(item),
    }
}

/// What the instance answer itself says of its configuration: interfaces
/// (network, subnetwork, address, an external address), the metadata's
/// `ssh-keys` (`user:ssh-ed25519 AAAA… comment` per line) and `user-data`.
/// Firewalls apply by network and target tag or account: `read` adds the
/// rule sets reaching each instance (`applied.rs`) from `firewalls.list`.
fn config_of(item: &Value) -> crate::inventory::InstanceConfig {
    use crate::inventory::config::{Attachment, KeyRef};
    let networks = item["networkInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| Attachment {
            network: last_segment(n["network"].as_str().unwrap_or_default()).to_string(),
            subnet: n["subnetwork"]
                .as_str()
                .map(|s| last_segment(s).to_string()),
            cidr: None,
            private_address: n["networkIP"].as_str().map(str::to_string),
            public: n["accessConfigs"].as_array().is_some_and(|a| !a.is_empty()),
        })
        .collect();
    let metadata = |key: &str| {
        item["metadata"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["key"].as_str() == Some(key))
            .and_then(|i| i["value"].as_str())
            .map(str::to_string)
    };
    let ssh_keys = metadata("ssh-keys")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (user, key) = line.split_once(':').unwrap_or(("", line));
            KeyRef {
                name: user.to_string(),
                public_key: Some(key.trim().to_string()),
                fingerprint: None,
            }
        })
        .collect();
    crate::inventory::InstanceConfig {
        networks,
        rule_sets: Vec::new(),
        ssh_keys,
        user_data: metadata("user-data"),
        unread: Vec::new(),
    }
}

/// Zones that are UP, the profile's zone first.
pub fn regions(zones: &[Value], preferred: Option<&str>) -> Vec<Region> {
    let mut out: Vec<Region> = zones
        .iter()
        .filter(|z| z["status"].as_str().is_none_or(|s| s == "UP"))
        .filter(|z| z["deprecated"]["state"].is_null())
        .map(|z| {
            let name = text(z, "name");
            Region {
                jurisdiction: jurisdiction(&name),
                name,
            }
        })
        .collect();
    if let Some(zone) = preferred
        && let Some(at) = out.iter().position(|r| r.name == zone)
    {
        let first = out.remove(at);
        out.insert(0, first);
    }
    out
}

/// The whole inventory of the project.
pub async fn read(
    client: &Client,
    cloud: &str,
    preferred_zone: Option<&str>,
    jurisdiction_override: Option<&str>,
) -> Result<Inventory, CloudError> {
    let types = client
        .aggregated("aggregated/machineTypes", "machineTypes")
        .await?;
    let sizes = sizes(&types);
    let size_map: HashMap<String, Size> =
        sizes.iter().map(|s| (s.name.clone(), s.clone())).collect();
    let disks: HashMap<String, Value> = client
        .aggregated("aggregated/disks", "disks")
        .await?
        .into_iter()
        .map(|d| (text(&d, "selfLink"), d))
        .collect();
    let raw_instances = client
        .aggregated("aggregated/instances", "instances")
        .await?;
    let mut instances: Vec<Instance> = raw_instances
        .iter()
        .map(|i| instance(i, &disks, &size_map))
        .collect();
    let zones = client.list_all("zones").await?;
    let mut regions = regions(&zones, preferred_zone);
    if let Some(j) = jurisdiction_override {
        for r in &mut regions {
            r.jurisdiction = j.to_string();
        }
    }
    let (networks, raw_firewalls, images) = super::catalog::read(client).await?;
    for (instance, raw) in instances.iter_mut().zip(&raw_instances) {
        let (sets, unread) = super::applied::rule_sets(raw, &raw_firewalls);
        instance.config.rule_sets = sets;
        instance.config.unread.extend(unread);
    }
    let firewalls = raw_firewalls.iter().map(super::catalog::firewall).collect();
    let access = client.auth.access().await;
    Ok(Inventory {
        cloud: cloud.to_string(),
        provider: "gcp".into(),
        instances,
        sizes,
        regions,
        networks,
        firewalls,
        images,
        ssh_keys: Vec::new(),
        access,
        config_rules: Some(config_rules()),
        rules: super::rules(),
    })
}

/// What a Compute Engine target takes (labels: at most 64, keys and values
/// ≤ 63 characters of lowercase letters, digits, `_` and `-`, keys start
/// with a letter; firewall rules by address range or network tag, ICMP
/// without types; metadata values ≤ 256 KB). The firewalls altishift makes
/// reach their instances by target tag, and a rule with source service
/// accounts cannot have target tags, so service-account peers are not
/// carried; egress rules name destination ranges only.
pub fn config_rules() -> ConfigRules {
    ConfigRules {
        creates: true,
        tags: TagRules {
            word: "labels".into(),
            max_count: 64,
            own_tags: 1,
            key_max: 63,
            value_max: 63,
            lowercase: true,
            extra_chars: "_-".into(),
            unicode_letters: false,
            key_starts_with_letter: true,
            reserved_prefixes: vec!["goog".into()],
            reserved_keys: Vec::new(),
            joined: None,
        },
        firewall: FirewallRules {
            word: "firewall rule".into(),
            egress: true,
            icmp_types: false,
            any_protocol: true,
            peers: vec![PeerKind::Cidr, PeerKind::Tag],
            all_as: Vec::new(),
            egress_peers: Some(vec![PeerKind::Cidr]),
            max_rules: None,
        },
        network_kind: "subnetwork".into(),
        max_keys: None,
        ssh_keys: true,
        user_data_max: Some(256 * 1024),
        public_ip: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jurisdictions_from_zone_names() {
        assert_eq!(jurisdiction("europe-west3-a"), "DE");
        assert_eq!(jurisdiction("europe-west1"), "BE");
        assert_eq!(jurisdiction("us-central1-f"), "US");
        assert_eq!(jurisdiction("mars-north1-a"), "unknown");
        assert_eq!(state("TERMINATED"), InstanceState::Stopped);
    }
}
