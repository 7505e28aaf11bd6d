//! EC2 answers → the cloud-neutral inventory: instances with their platform,
//! VPCs and subnets, security groups as one line per rule, the account's AMIs.
//!
//! An item without its id is an answer we cannot use (a truncated or
//! hand-made document, a broken proxy): that is an error naming the call,
//! never a silently shorter list. Anything else missing is "not told".

use crate::CloudError;
use crate::inventory::{
    Disk, DiskFormat, Firewall, Image, Instance, InstanceState, Network, Nic, Platform, Size,
};
use crate::units::Bytes;
use aws_sdk_ec2::types as ec2;
use std::collections::{BTreeMap, HashMap};

/// An error for an item of `call`'s answer that lacks `field`.
fn missing(call: &str, what: &str, field: &str, near: &str) -> CloudError {
    CloudError::Permanent(format!(
        "ec2 {call}: the answer holds {what} without <{field}>{near}; not a usable answer"
    ))
}

pub fn tags_of(tags: &[ec2::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

/// EC2 states in the neutral five; a state this code does not know (AWS
/// adds some now and then) is `Unknown`, not a failure.
pub fn state_of(name: Option<&ec2::InstanceStateName>) -> InstanceState {
    use ec2::InstanceStateName as S;
    match name {
        Some(S::Running) => InstanceState::Running,
        Some(S::Stopped) | Some(S::Stopping) => InstanceState::Stopped,
        Some(S::Pending) => InstanceState::Pending,
        Some(S::Terminated) | Some(S::ShuttingDown) => InstanceState::Terminated,
        _ => InstanceState::Unknown,
    }
}

/// What the target image must carry over. `platformDetails` (`Linux/UNIX`,
/// `Red Hat Enterprise Linux`, `Windows`) is the OS text; the older
/// `platform` (only ever `windows` on AWS) stands in when it is absent.
/// The boot mode is the one the instance actually booted with
/// (`currentInstanceBootMode`), else the AMI's when it is definite
/// (`uefi-preferred` says nothing about this instance: not told).
pub fn platform_of(i: &ec2::Instance) -> Platform {
    let boot_mode = i
        .current_instance_boot_mode()
        .map(|m| m.as_str().to_string())
        .or_else(|| match i.boot_mode() {
            Some(ec2::BootModeValues::Uefi) => Some("uefi".to_string()),
            Some(ec2::BootModeValues::LegacyBios) => Some("legacy-bios".to_string()),
            _ => None,
        });
    Platform {
        os: i
            .platform_details()
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .or_else(|| i.platform().map(|p| p.as_str().to_string())),
        boot_mode,
        architecture: i.architecture().map(|a| a.as_str().to_string()),
        ena: i.ena_support(),
    }
}

/// One instance of a DescribeInstances page. `sizes` gives vCPU/memory by
/// type, `volume_gib` the size of each volume.
pub fn instance(
    i: &ec2::Instance,
    region: &str,
    sizes: &HashMap<&str, &Size>,
    volume_gib: &HashMap<&str, u64>,
) -> Result<Instance, CloudError> {
    let id = i.instance_id().filter(|id| !id.is_empty()).ok_or_else(|| {
        let near = i
            .private_ip_address()
            .map(|a| format!(" (address {a})"))
            .unwrap_or_default();
        missing("DescribeInstances", "an instance", "instanceId", &near)
    })?;
    let tags = tags_of(i.tags());
    let size = i
        .instance_type()
        .map(|t| t.as_str().to_string())
        .unwrap_or_default();
    let known = sizes.get(size.as_str());
    let root = i.root_device_name().unwrap_or("");
    let mut disks = Vec::new();
    for m in i.block_device_mappings() {
        // Instance-store and other non-EBS mappings have no volume to move.
        let Some(ebs) = m.ebs() else { continue };
        let volume = ebs.volume_id().filter(|v| !v.is_empty()).ok_or_else(|| {
            missing(
                "DescribeInstances",
                &format!("an EBS mapping of {id}"),
                "volumeId",
                "",
            )
        })?;
        let device = m.device_name().unwrap_or("").to_string();
        disks.push(Disk {
            id: volume.to_string(),
            boot: device == root,
            device,
            format: DiskFormat::Raw,
            virtual_size: Bytes::gib(volume_gib.get(volume).copied().unwrap_or(0)),
            allocated: None,
        });
    }
    // AWS always maps the root device; moto names it /dev/xvda and maps
    // /dev/sda1. An instance with one EBS disk boots from it whatever the names.
    if let [only] = disks.as_mut_slice() {
        only.boot = true;
    }
    disks.sort_by_key(|d| !d.boot);
    let nics = i
        .network_interfaces()
        .iter()
        .map(|n| Nic {
            name: n.network_interface_id().unwrap_or("").to_string(),
            network: n.subnet_id().unwrap_or("").to_string(),
            address: n.private_ip_address().map(str::to_string),
        })
        .collect::<Vec<_>>();
    // Older answers (and EC2-Classic) carry the address on the instance only.
    let nics = if nics.is_empty() && i.private_ip_address().is_some() {
        vec![Nic {
            name: "primary".into(),
            network: i.subnet_id().unwrap_or("").to_string(),
            address: i.private_ip_address().map(str::to_string),
        }]
    } else {
        nics
    };
    Ok(Instance {
        id: id.to_string(),
        name: tags.get("Name").cloned().unwrap_or_else(|| id.to_string()),
        state: state_of(i.state().and_then(|s| s.name())),
        vcpus: known.map_or(0, |s| s.vcpus),
        memory: known.map_or(Bytes::ZERO, |s| s.memory),
        size,
        region: region.to_string(),
        disks,
        nics,
        tags,
        platform: platform_of(i),
        // Filled by `config::fill`, which needs the groups and key pairs.
        config: Default::default(),
    })
}

/// A VPC: kind `vpc`, its primary CIDR, regional.
pub fn vpc(v: &ec2::Vpc, region: &str) -> Result<Network, CloudError> {
    let id = v
        .vpc_id()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("DescribeVpcs", "a VPC", "vpcId", ""))?;
    Ok(Network {
        id: id.to_string(),
        name: tags_of(v.tags())
            .remove("Name")
            .unwrap_or_else(|| id.to_string()),
        kind: "vpc".into(),
        cidr: v.cidr_block().map(str::to_string),
        region: Some(region.to_string()),
        parent: None,
    })
}

/// A subnet: kind `subnet`, its VPC as parent, its availability zone as region.
pub fn subnet(s: &ec2::Subnet) -> Result<Network, CloudError> {
    let id = s
        .subnet_id()
        .filter(|x| !x.is_empty())
        .ok_or_else(|| missing("DescribeSubnets", "a subnet", "subnetId", ""))?;
    Ok(Network {
        id: id.to_string(),
        name: tags_of(s.tags())
            .remove("Name")
            .unwrap_or_else(|| id.to_string()),
        kind: "subnet".into(),
        cidr: s.cidr_block().map(str::to_string),
        region: s.availability_zone().map(str::to_string),
        parent: s.vpc_id().map(str::to_string),
    })
}

/// A security group with one line per (rule, peer).
pub fn firewall(g: &ec2::SecurityGroup) -> Result<Firewall, CloudError> {
    let id = g.group_id().filter(|x| !x.is_empty()).ok_or_else(|| {
        let near = g
            .group_name()
            .map(|n| format!(" (named {n})"))
            .unwrap_or_default();
        missing("DescribeSecurityGroups", "a group", "groupId", &near)
    })?;
    let mut rules = Vec::new();
    for p in g.ip_permissions() {
        rules.extend(rule_lines("in", p));
    }
    for p in g.ip_permissions_egress() {
        rules.extend(rule_lines("out", p));
    }
    Ok(Firewall {
        id: id.to_string(),
        name: g.group_name().unwrap_or(id).to_string(),
        network: g.vpc_id().filter(|v| !v.is_empty()).map(str::to_string),
        rules,
    })
}

/// `in tcp 22 from 0.0.0.0/0`, `in tcp 6000-7000 from sg-1`, `out all to
/// 0.0.0.0/0`, `in icmp 8 from ::/0` (ICMP: type, and `type:code` when a
/// code is set), `in udp from pl-1` (all ports): one line per peer (CIDR,
/// IPv6 CIDR, prefix list, group). A rule with no peer at all still gets a
/// line (`… from nowhere`) so it is not lost from view.
pub fn rule_lines(direction: &str, p: &ec2::IpPermission) -> Vec<String> {
    let protocol = match p.ip_protocol().unwrap_or("-1") {
        "-1" | "" => "all".to_string(),
        "6" => "tcp".to_string(),
        "17" => "udp".to_string(),
        "1" => "icmp".to_string(),
        "58" => "icmpv6".to_string(),
        other => other.to_ascii_lowercase(),
    };
    let ports = match (protocol.as_str(), p.from_port(), p.to_port()) {
        ("all", _, _) | (_, None, _) | (_, Some(-1), _) => String::new(),
        ("icmp" | "icmpv6", Some(kind), Some(code)) if code >= 0 => format!(" {kind}:{code}"),
        ("icmp" | "icmpv6", Some(kind), _) => format!(" {kind}"),
        (_, Some(0), Some(65535)) => String::new(),
        (_, Some(from), Some(to)) if to != from => format!(" {from}-{to}"),
        (_, Some(from), _) => format!(" {from}"),
    };
    let word = if direction == "in" { "from" } else { "to" };
    let mut peers: Vec<String> = Vec::new();
    peers.extend(
        p.ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip())
            .map(str::to_string),
    );
    peers.extend(
        p.ipv6_ranges()
            .iter()
            .filter_map(|r| r.cidr_ipv6())
            .map(str::to_string),
    );
    peers.extend(
        p.prefix_list_ids()
            .iter()
            .filter_map(|r| r.prefix_list_id())
            .map(str::to_string),
    );
    peers.extend(
        p.user_id_group_pairs()
            .iter()
            .filter_map(|g| g.group_id().or(g.group_name()).map(str::to_string)),
    );
    if peers.is_empty() {
        peers.push("nowhere".into());
    }
    peers
        .into_iter()
        .map(|peer| format!("{direction} {protocol}{ports} {word} {peer}"))
        .collect()
}

/// One of the account's AMIs (`Owners=self`, so private to it). Its size is
/// the sum of its EBS snapshots' volume sizes, when they are given.
pub fn image(i: &ec2::Image, region: &str) -> Result<Image, CloudError> {
    let id = i
        .image_id()
        .filter(|x| !x.is_empty())
        .ok_or_else(|| missing("DescribeImages", "an image", "imageId", ""))?;
    let gib: Vec<u64> = i
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs()?.volume_size())
        .map(|g| g.max(0) as u64)
        .collect();
    Ok(Image {
        id: id.to_string(),
        name: i.name().unwrap_or(id).to_string(),
        os: i
            .platform_details()
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .or_else(|| i.platform().map(|p| p.as_str().to_string())),
        region: Some(region.to_string()),
        size: (!gib.is_empty()).then(|| Bytes::gib(gib.iter().sum())),
        private: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(
        protocol: &str,
        from: Option<i32>,
        to: Option<i32>,
    ) -> ec2::builders::IpPermissionBuilder {
        ec2::IpPermission::builder()
            .ip_protocol(protocol)
            .set_from_port(from)
            .set_to_port(to)
    }

    #[test]
    fn rules_become_one_line_per_peer() {
        let ssh = perm("tcp", Some(22), Some(22))
            .ip_ranges(ec2::IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .ipv6_ranges(ec2::Ipv6Range::builder().cidr_ipv6("::/0").build())
            .build();
        assert_eq!(
            rule_lines("in", &ssh),
            vec!["in tcp 22 from 0.0.0.0/0", "in tcp 22 from ::/0"]
        );
        let range = perm("tcp", Some(6000), Some(7000))
            .user_id_group_pairs(ec2::UserIdGroupPair::builder().group_id("sg-b").build())
            .build();
        assert_eq!(rule_lines("in", &range), vec!["in tcp 6000-7000 from sg-b"]);
        let all = perm("-1", None, None)
            .ip_ranges(ec2::IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        assert_eq!(rule_lines("out", &all), vec!["out all to 0.0.0.0/0"]);
        let ping = perm("icmp", Some(8), Some(-1))
            .prefix_list_ids(ec2::PrefixListId::builder().prefix_list_id("pl-1").build())
            .build();
        assert_eq!(rule_lines("in", &ping), vec!["in icmp 8 from pl-1"]);
        let udp = perm("17", Some(0), Some(65535)).build();
        assert_eq!(rule_lines("in", &udp), vec!["in udp from nowhere"]);
    }

    #[test]
    fn an_unknown_state_is_unknown_and_the_platform_is_read() {
        let i = ec2::Instance::builder()
            .instance_id("i-1")
            .state(
                ec2::InstanceState::builder()
                    .name(ec2::InstanceStateName::from("hibernating"))
                    .build(),
            )
            .boot_mode(ec2::BootModeValues::UefiPreferred)
            .architecture(ec2::ArchitectureValues::Arm64)
            .platform_details("Linux/UNIX")
            .ena_support(true)
            .build();
        let got = instance(&i, "eu-west-1", &HashMap::new(), &HashMap::new()).unwrap();
        assert_eq!(got.state, InstanceState::Unknown);
        assert_eq!(
            got.platform,
            Platform {
                os: Some("Linux/UNIX".into()),
                boot_mode: None,
                architecture: Some("arm64".into()),
                ena: Some(true),
            }
        );
        let i = ec2::Instance::builder()
            .current_instance_boot_mode(ec2::InstanceBootModeValues::Uefi)
            .build();
        let err = instance(&i, "eu-west-1", &HashMap::new(), &HashMap::new()).unwrap_err();
        assert!(
            err.to_string().contains(
                "ec2 DescribeInstances: the answer holds an instance without <instanceId>"
            ),
            "{err}"
        );
        assert_eq!(platform_of(&i).boot_mode.as_deref(), Some("uefi"));
    }
}
