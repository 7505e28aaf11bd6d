//! Droplets, volumes, sizes and regions as the cloud-neutral inventory.

use super::client::DoClient;
use crate::cloud::CloudError;
use crate::inventory::{Disk, DiskFormat, Instance, InstanceState, Inventory, Nic, Region, Size};
use crate::units::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Lists everything the console shows, each listing to its last page.
pub async fn fetch(client: &DoClient, cloud: &str) -> Result<Inventory, CloudError> {
    let droplets = client.list("/v2/droplets", "droplets").await?;
    let volumes = client.list("/v2/volumes", "volumes").await?;
    let sizes = client.list("/v2/sizes", "sizes").await?;
    let regions = client.list("/v2/regions", "regions").await?;
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
        ..Default::default()
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
        id: "disk-0".into(),
        device: "/dev/vda".into(),
        format: DiskFormat::Raw,
        virtual_size: Bytes(d["disk"].as_u64().unwrap_or(0) << 30),
        allocated: None,
        boot: true,
    }];
    let volume_ids = d["volume_ids"].as_array().cloned().unwrap_or_default();
    for (n, volume_id) in volume_ids.iter().filter_map(Value::as_str).enumerate() {
        let gb = volumes
            .get(volume_id)
            .and_then(|v| v["size_gigabytes"].as_u64())
            .unwrap_or(0);
        disks.push(Disk {
            id: volume_id.to_string(),
            device: format!("/dev/sd{}", (b'a' + (n as u8 % 26)) as char),
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
        platform: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_droplet_becomes_an_instance() {
        let text = include_str!("../../../tests/fixtures/digitalocean/list_nodes_page_1.json");
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
}
