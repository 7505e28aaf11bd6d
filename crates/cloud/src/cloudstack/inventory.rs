//! CloudStack inventory: VMs, volumes, offerings and zones, each listed to
//! the last page, mapped onto the cloud-neutral inventory types.

use super::client::{Client, as_u64, id_string};
use crate::CloudError;
use crate::inventory::config::{ConfigRules, FirewallRules, PeerKind, TagRules};
use crate::inventory::{Disk, DiskFormat, Instance, InstanceState, Inventory, Nic, Region, Size};
use crate::units::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The disk format CloudStack keeps volumes in for a hypervisor.
pub fn hypervisor_format(hypervisor: &str) -> DiskFormat {
    match hypervisor.to_ascii_lowercase().as_str() {
        "kvm" => DiskFormat::Qcow2,
        "xenserver" | "xen" | "xcpng" | "hyperv" => DiskFormat::Vhd,
        "vmware" => DiskFormat::Vmdk,
        _ => DiskFormat::Raw,
    }
}

/// The `format` value CloudStack's upload and register calls expect.
pub fn cloudstack_format_name(format: DiskFormat) -> &'static str {
    match format {
        DiskFormat::Qcow2 => "QCOW2",
        DiskFormat::Vhd => "VHD",
        DiskFormat::Vmdk => "OVA",
        DiskFormat::Raw => "RAW",
    }
}

pub fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(|v| v.as_str().map(str::to_string).or_else(|| id_string(v)))
        .unwrap_or_default()
}

pub fn state_of(state: &str) -> InstanceState {
    match state {
        "Running" => InstanceState::Running,
        "Stopped" => InstanceState::Stopped,
        "Starting" | "Stopping" | "Migrating" => InstanceState::Pending,
        "Destroyed" | "Expunging" | "Expunged" => InstanceState::Terminated,
        _ => InstanceState::Unknown,
    }
}

/// A volume as a neutral disk.
pub fn disk_of(volume: &Value) -> Disk {
    let device = volume.get("deviceid").and_then(as_u64).unwrap_or(0);
    let letter = (b'a' + (device.min(25) as u8)) as char;
    Disk {
        id: text(volume, "id"),
        device: format!("vd{letter}"),
        format: hypervisor_format(&text(volume, "hypervisor")),
        virtual_size: Bytes(volume.get("size").and_then(as_u64).unwrap_or(0)),
        allocated: volume.get("physicalsize").and_then(as_u64).map(Bytes),
        boot: text(volume, "type") == "ROOT",
    }
}

/// A VM with its volumes as a neutral instance.
pub fn instance_of(vm: &Value, volumes: &[&Value]) -> Instance {
    let mut disks: Vec<Disk> = volumes.iter().map(|v| disk_of(v)).collect();
    disks.sort_by(|a, b| b.boot.cmp(&a.boot).then(a.device.cmp(&b.device)));
    let nics = vm
        .get("nic")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(n, nic)| Nic {
                    name: format!("eth{n}"),
                    network: text(nic, "networkname"),
                    address: nic
                        .get("ipaddress")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    let tags: BTreeMap<String, String> = vm
        .get("tags")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|t| (text(t, "key"), text(t, "value")))
                .collect()
        })
        .unwrap_or_default();
    Instance {
        id: text(vm, "id"),
        name: text(vm, "name"),
        state: state_of(&text(vm, "state")),
        size: text(vm, "serviceofferingname"),
        vcpus: vm.get("cpunumber").and_then(as_u64).unwrap_or(0) as u32,
        memory: Bytes::mib(vm.get("memory").and_then(as_u64).unwrap_or(0)),
        region: text(vm, "zonename"),
        disks,
        nics,
        tags,
        platform: Default::default(),
        config: config_of(vm),
    }
}

/// What the VM answer says of its configuration: its security groups with
/// their ingress and egress rules (`protocol`, `startport`/`endport`,
/// `icmptype`/`icmpcode`, `cidr` or `securitygroupname`) and its key pair
/// names (`keypair`, comma-separated in newer releases). The answer holds no
/// public key and no userdata: keys are named only (the plan says they
/// cannot be imported) and user-data is not read.
fn config_of(vm: &Value) -> crate::inventory::InstanceConfig {
    use crate::inventory::config::{Direction, KeyRef, Peer, PortRange, Rule, RuleSet};
    let port = |r: &Value, key: &str| {
        r.get(key)
            .and_then(as_u64)
            .and_then(|n| u16::try_from(n).ok())
    };
    let rules_of = |list: Option<&Value>, direction: Direction| -> Vec<Rule> {
        list.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let protocol = text(r, "protocol").to_ascii_lowercase();
                let ports = if protocol == "icmp" {
                    port(r, "icmptype").map(|t| PortRange {
                        from: t,
                        to: port(r, "icmpcode").unwrap_or(u16::MAX),
                    })
                } else {
                    port(r, "startport").map(|from| PortRange {
                        from,
                        to: port(r, "endport").unwrap_or(from),
                    })
                };
                let peer = match (
                    r.get("cidr").and_then(Value::as_str),
                    r.get("securitygroupname").and_then(Value::as_str),
                ) {
                    (Some(cidr), _) if !cidr.is_empty() => Peer::Cidr(cidr.to_string()),
                    (_, Some(group)) if !group.is_empty() => Peer::Group(group.to_string()),
                    _ => return None,
                };
                Some(Rule {
                    direction,
                    protocol: if protocol.is_empty() {
                        "all".into()
                    } else {
                        protocol
                    },
                    ports,
                    peer,
                    description: None,
                })
            })
            .collect()
    };
    let rule_sets = vm
        .get("securitygroup")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|g| {
            let mut rules = rules_of(g.get("ingressrule"), Direction::In);
            rules.extend(rules_of(g.get("egressrule"), Direction::Out));
            RuleSet {
                name: text(g, "name"),
                id: g.get("id").and_then(Value::as_str).map(str::to_string),
                rules,
            }
        })
        .collect();
    let ssh_keys = text(vm, "keypair")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|name| KeyRef {
            name: name.to_string(),
            public_key: None,
            fingerprint: None,
        })
        .collect();
    crate::inventory::InstanceConfig {
        rule_sets,
        ssh_keys,
        ..Default::default()
    }
}

pub fn size_of(offering: &Value) -> Size {
    Size {
        name: text(offering, "name"),
        vcpus: offering.get("cpunumber").and_then(as_u64).unwrap_or(0) as u32,
        memory: Bytes::mib(offering.get("memory").and_then(as_u64).unwrap_or(0)),
    }
}

/// Reads the whole inventory, every list to its last page.
pub async fn read(
    client: &Client,
    cloud: &str,
    jurisdiction: &str,
) -> Result<Inventory, CloudError> {
    let all = [("listall", "true".to_string())];
    let vms = client
        .list_all("listVirtualMachines", "virtualmachine", &all)
        .await?;
    let volumes = client.list_all("listVolumes", "volume", &all).await?;
    let offerings = client
        .list_all("listServiceOfferings", "serviceoffering", &[])
        .await?;
    let zones = client.list_all("listZones", "zone", &[]).await?;

    let mut by_vm: HashMap<String, Vec<&Value>> = HashMap::new();
    for volume in &volumes {
        let owner = text(volume, "virtualmachineid");
        if !owner.is_empty() {
            by_vm.entry(owner).or_default().push(volume);
        }
    }
    let instances = vms
        .iter()
        .map(|vm| {
            instance_of(
                vm,
                by_vm.get(&text(vm, "id")).map(Vec::as_slice).unwrap_or(&[]),
            )
        })
        .collect();
    Ok(Inventory {
        cloud: cloud.to_string(),
        provider: "cloudstack".into(),
        instances,
        sizes: offerings.iter().map(size_of).collect(),
        regions: zones
            .iter()
            .map(|z| Region {
                name: text(z, "name"),
                jurisdiction: jurisdiction.to_string(),
            })
            .collect(),
        config_rules: Some(config_rules()),
        rules: super::cutover::rules(),
        ..Default::default()
    })
}

/// What a CloudStack target takes (security groups with ingress and
/// egress rules by CIDR or another group, ICMP type and code; key pairs;
/// base64 userdata up to 32 KiB by POST; no per-instance choice of a public
/// address in a basic zone).
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
            extra_chars: " +-=._:/@".into(),
            unicode_letters: true,
            key_starts_with_letter: false,
            reserved_prefixes: Vec::new(),
            reserved_keys: Vec::new(),
            joined: None,
        },
        firewall: FirewallRules {
            word: "security group".into(),
            egress: true,
            icmp_types: true,
            any_protocol: true,
            peers: vec![PeerKind::Cidr, PeerKind::Group],
            all_as: Vec::new(),
            egress_peers: None,
            max_rules: None,
        },
        network_kind: "network".into(),
        max_keys: None,
        ssh_keys: true,
        user_data_max: Some(32 * 1024),
        public_ip: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudstack::client::unwrap_response;

    #[test]
    fn security_group_rules_and_key_names_come_from_the_vm_answer() {
        // Field names as listVirtualMachines' securitygroup(*) and its
        // ingressrule(*)/egressrule(*) responses give them.
        let vm = serde_json::json!({
            "id": "vm-1", "name": "web",
            "keypair": "ops,deploy",
            "securitygroup": [{
                "id": "sg-1", "name": "web",
                "ingressrule": [
                    {"ruleid": "r1", "protocol": "tcp", "startport": 80, "endport": 80, "cidr": "0.0.0.0/0"},
                    {"ruleid": "r2", "protocol": "icmp", "icmptype": 8, "icmpcode": 0, "cidr": "10.0.0.0/8"},
                    {"ruleid": "r3", "protocol": "tcp", "startport": 22, "endport": 22, "securitygroupname": "bastion", "account": "admin"}
                ],
                "egressrule": []
            }]
        });
        let config = config_of(&vm);
        let rules: Vec<String> = config.rule_sets[0]
            .rules
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            rules,
            vec![
                "in tcp 80 from 0.0.0.0/0",
                "in icmp 8:0 from 10.0.0.0/8",
                "in tcp 22 from group bastion",
            ]
        );
        let keys: Vec<&str> = config.ssh_keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(keys, vec!["ops", "deploy"]);
        assert!(config.ssh_keys.iter().all(|k| k.public_key.is_none()));
    }

    fn fixture(command: &str, name: &str) -> Value {
        let path = format!(
            "{}/../../tests/fixtures/cloudstack/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        unwrap_response(command, 200, &std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn recorded_vms_volumes_and_offerings_map() {
        let vms = fixture("listVirtualMachines", "listVirtualMachines_default.json");
        let first = &vms["virtualmachine"][0];
        let volumes = fixture("listVolumes", "listVolumes_default.json");
        let root = &volumes["volume"][0];
        let instance = instance_of(first, &[root]);
        assert_eq!(instance.id, "2600");
        assert_eq!(instance.state, InstanceState::Running);
        assert!(!instance.size.is_empty());
        assert_eq!(instance.disks[0].format, DiskFormat::Qcow2);
        assert!(instance.disks[0].boot);
        assert_eq!(instance.disks[0].virtual_size, Bytes(139264));
        let offerings = fixture("listServiceOfferings", "listServiceOfferings_default.json");
        let sizes: Vec<Size> = offerings["serviceoffering"]
            .as_array()
            .unwrap()
            .iter()
            .map(size_of)
            .collect();
        assert_eq!(sizes.len(), 5);
        assert!(sizes.iter().all(|s| s.vcpus > 0 && s.memory.0 > 0));
    }

    #[test]
    fn formats_follow_the_hypervisor() {
        assert_eq!(hypervisor_format("KVM"), DiskFormat::Qcow2);
        assert_eq!(hypervisor_format("XenServer"), DiskFormat::Vhd);
        assert_eq!(hypervisor_format("VMware"), DiskFormat::Vmdk);
    }
}
