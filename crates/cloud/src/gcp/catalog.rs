//! The configuration around instances, into the neutral inventory:
//! networks and subnetworks, firewall rules as summary lines, the
//! project's own images, and each instance's platform.

use super::client::{Client, int64, last_segment};
use crate::CloudError;
use crate::inventory::{Firewall, Image, Network, Platform};
use crate::units::Bytes;
use serde_json::Value;

fn text(value: &Value, key: &str) -> Option<String> {
    value[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn id(value: &Value) -> String {
    int64(&value["id"])
        .map(|n| n.to_string())
        .or_else(|| text(value, "name"))
        .unwrap_or_default()
}

/// A VPC network (global; legacy networks carry a CIDR of their own).
pub fn network(item: &Value) -> Network {
    Network {
        id: id(item),
        name: text(item, "name").unwrap_or_default(),
        kind: "network".into(),
        cidr: text(item, "IPv4Range"),
        region: None,
        parent: None,
    }
}

/// A subnetwork: regional, with its primary range and its network.
pub fn subnetwork(item: &Value) -> Network {
    Network {
        id: id(item),
        name: text(item, "name").unwrap_or_default(),
        kind: "subnetwork".into(),
        cidr: text(item, "ipCidrRange"),
        region: item["region"].as_str().map(|r| last_segment(r).to_string()),
        parent: item["network"]
            .as_str()
            .map(|n| last_segment(n).to_string()),
    }
}

/// `in tcp 22 from 0.0.0.0/0` per protocol entry; `deny` in front of
/// denied ones, ` on tag:web` / ` on sa:…` when the rule targets some
/// instances only, `(disabled)` when it is off.
pub fn rule_lines(item: &Value) -> Vec<String> {
    let egress = item["direction"] == "EGRESS";
    let direction = if egress { "out" } else { "in" };
    let list = |key: &str| -> Vec<String> {
        item[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let peers = if egress {
        let ranges = list("destinationRanges");
        format!(
            "to {}",
            if ranges.is_empty() {
                "0.0.0.0/0".to_string()
            } else {
                ranges.join(",")
            }
        )
    } else {
        let mut from = list("sourceRanges");
        from.extend(list("sourceTags").into_iter().map(|t| format!("tag:{t}")));
        from.extend(
            list("sourceServiceAccounts")
                .into_iter()
                .map(|a| format!("sa:{a}")),
        );
        format!(
            "from {}",
            if from.is_empty() {
                "0.0.0.0/0".to_string()
            } else {
                from.join(",")
            }
        )
    };
    let mut targets: Vec<String> = list("targetTags")
        .into_iter()
        .map(|t| format!("tag:{t}"))
        .collect();
    targets.extend(
        list("targetServiceAccounts")
            .into_iter()
            .map(|a| format!("sa:{a}")),
    );
    let on = if targets.is_empty() {
        String::new()
    } else {
        format!(" on {}", targets.join(","))
    };
    let off = if item["disabled"] == true {
        " (disabled)"
    } else {
        ""
    };
    let mut lines = Vec::new();
    for (key, prefix) in [("allowed", ""), ("denied", "deny ")] {
        for entry in item[key].as_array().into_iter().flatten() {
            let protocol = entry["IPProtocol"].as_str().unwrap_or("all");
            let ports: Vec<String> = entry["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect();
            let ports = if ports.is_empty() {
                "all".to_string()
            } else {
                ports.join(",")
            };
            let ports = if matches!(protocol, "tcp" | "udp" | "sctp") {
                format!(" {ports}")
            } else {
                String::new()
            };
            lines.push(format!(
                "{prefix}{direction} {protocol}{ports} {peers}{on}{off}"
            ));
        }
    }
    lines
}

pub fn firewall(item: &Value) -> Firewall {
    Firewall {
        id: id(item),
        name: text(item, "name").unwrap_or_default(),
        network: item["network"]
            .as_str()
            .map(|n| last_segment(n).to_string()),
        rules: rule_lines(item),
    }
}

/// OS name from licenses (`…/licenses/debian-12-bookworm`), else from the
/// WINDOWS guest OS feature.
fn os_of(licenses: &Value, features: &[String]) -> Option<String> {
    let license = licenses
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str())
        .map(last_segment)
        .find(|l| !l.is_empty());
    license.map(str::to_string).or_else(|| {
        features
            .iter()
            .any(|f| f == "WINDOWS")
            .then(|| "windows".into())
    })
}

fn features(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|list| {
        list.iter()
            .filter_map(|f| f["type"].as_str().map(str::to_string))
            .collect()
    })
}

/// A project image (this project's own: private).
pub fn image(item: &Value) -> Image {
    let feats = features(&item["guestOsFeatures"]).unwrap_or_default();
    Image {
        id: id(item),
        name: text(item, "name").unwrap_or_default(),
        os: os_of(&item["licenses"], &feats).or_else(|| text(item, "family")),
        region: item["storageLocations"][0].as_str().map(str::to_string),
        size: int64(&item["diskSizeGb"]).map(|gb| Bytes(gb << 30)),
        private: true,
    }
}

/// Machine families that run on Arm (every other Compute Engine family is x86).
fn arm_machine(machine: &str) -> bool {
    ["t2a-", "c4a-", "n4a-", "a4x-"]
        .iter()
        .any(|p| machine.starts_with(p))
}

/// OS, boot mode and architecture of an instance, from its boot disk's
/// licenses and guest OS features, its Shielded VM settings (only UEFI
/// images run as Shielded VMs) and the disk's or machine's architecture.
pub fn platform(item: &Value) -> Platform {
    let disks = item["disks"].as_array().cloned().unwrap_or_default();
    let boot = disks
        .iter()
        .find(|d| d["boot"] == true)
        .or(disks.first())
        .cloned()
        .unwrap_or(Value::Null);
    let feats = features(&boot["guestOsFeatures"]);
    let shielded = &item["shieldedInstanceConfig"];
    let shielded_on = [
        "enableSecureBoot",
        "enableVtpm",
        "enableIntegrityMonitoring",
    ]
    .iter()
    .any(|k| shielded[k] == true);
    let uefi = feats
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == "UEFI_COMPATIBLE"));
    let boot_mode = if uefi || shielded_on {
        Some("uefi".to_string())
    } else if feats.is_some() {
        // The features were listed and UEFI is not among them: BIOS boot.
        Some("legacy-bios".to_string())
    } else {
        None
    };
    let machine = last_segment(item["machineType"].as_str().unwrap_or_default());
    let architecture = match boot["architecture"].as_str() {
        Some("ARM64") => Some("arm64".to_string()),
        Some("X86_64") => Some("x86_64".to_string()),
        _ if machine.is_empty() => None,
        _ if arm_machine(machine) => Some("arm64".to_string()),
        _ => Some("x86_64".to_string()),
    };
    Platform {
        os: os_of(&boot["licenses"], feats.as_deref().unwrap_or_default()),
        boot_mode,
        architecture,
        ena: None,
    }
}

/// Networks then subnetworks, firewalls, the project's images.
/// Networks and subnetworks, firewalls (as listed: instances' rule sets
/// are made from them) and images.
pub async fn read(client: &Client) -> Result<(Vec<Network>, Vec<Value>, Vec<Image>), CloudError> {
    let mut networks: Vec<Network> = client
        .list_all("global/networks")
        .await?
        .iter()
        .map(network)
        .collect();
    networks.extend(
        client
            .aggregated("aggregated/subnetworks", "subnetworks")
            .await?
            .iter()
            .map(subnetwork),
    );
    let firewalls = client.list_all("global/firewalls").await?;
    let images = client
        .list_all("global/images")
        .await?
        .iter()
        .map(image)
        .collect();
    Ok((networks, firewalls, images))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn firewall_rules_read_as_lines() {
        let rule = json!({
            "name": "allow-ssh", "direction": "INGRESS",
            "network": "https://x/global/networks/default",
            "sourceRanges": ["0.0.0.0/0"],
            "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}, {"IPProtocol": "icmp"}],
        });
        assert_eq!(
            rule_lines(&rule),
            ["in tcp 22 from 0.0.0.0/0", "in icmp from 0.0.0.0/0"]
        );
        let out = json!({
            "direction": "EGRESS", "destinationRanges": ["10.0.0.0/8"], "targetTags": ["db"],
            "denied": [{"IPProtocol": "udp", "ports": ["53", "5000-5100"]}], "disabled": true,
        });
        assert_eq!(
            rule_lines(&out),
            ["deny out udp 53,5000-5100 to 10.0.0.0/8 on tag:db (disabled)"]
        );
        assert_eq!(firewall(&rule).network.as_deref(), Some("default"));
    }

    #[test]
    fn platform_from_licenses_features_and_shielded_config() {
        let vm = json!({
            "machineType": "zones/z/machineTypes/e2-small",
            "disks": [{"boot": true, "architecture": "X86_64",
                "licenses": ["https://x/projects/debian-cloud/global/licenses/debian-12-bookworm"],
                "guestOsFeatures": [{"type": "UEFI_COMPATIBLE"}, {"type": "GVNIC"}]}],
        });
        let p = platform(&vm);
        assert_eq!(p.os.as_deref(), Some("debian-12-bookworm"));
        assert_eq!(p.boot_mode.as_deref(), Some("uefi"));
        assert_eq!(p.architecture.as_deref(), Some("x86_64"));
        let old = json!({"machineType": "t2a-standard-1",
            "disks": [{"boot": true, "guestOsFeatures": [{"type": "WINDOWS"}]}]});
        let p = platform(&old);
        assert_eq!(p.boot_mode.as_deref(), Some("legacy-bios"));
        assert!(p.is_windows());
        assert_eq!(p.architecture.as_deref(), Some("arm64"));
        let shielded = json!({"shieldedInstanceConfig": {"enableSecureBoot": false, "enableVtpm": true},
            "disks": [{"boot": true}]});
        assert_eq!(platform(&shielded).boot_mode.as_deref(), Some("uefi"));
        assert!(platform(&json!({"disks": [{"boot": true}]})).is_unknown());
    }
}
