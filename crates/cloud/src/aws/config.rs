//! Configuration on EC2: what an instance carries (its security groups'
//! rules, key pair, user-data, subnet, public address), the rules AWS
//! declares for a target, and creating security groups and key pairs.

use super::client::{RegionClients, classify};
use crate::configure::FoundConfig;
use crate::inventory::config::{
    Attachment, ConfigRules, Direction, FirewallRules, KeyRef, Peer, PeerKind, PortRange, Rule,
    RuleSet, TagRules,
};
use crate::inventory::{Instance, Network};
use crate::{Capability, CloudError};
use aws_sdk_ec2::types::{
    self as ec2, Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, Tag,
    TagSpecification, UserIdGroupPair,
};
use base64::Engine as _;
use std::collections::HashMap;

/// What an EC2 target takes (AWS tag restrictions: 50 per resource, keys
/// ≤ 128, values ≤ 256 characters, letters, digits, spaces and `+-=._:/@`,
/// `aws:` reserved; one key pair per instance; user-data ≤ 16 KiB).
pub fn config_rules() -> ConfigRules {
    ConfigRules {
        creates: true,
        tags: TagRules {
            word: "tags".into(),
            max_count: 50,
            // Name, altishift:plan, altishift:image.
            own_tags: 3,
            key_max: 128,
            value_max: 256,
            lowercase: false,
            extra_chars: " +-=._:/@".into(),
            unicode_letters: true,
            key_starts_with_letter: false,
            reserved_prefixes: vec!["aws:".into()],
            reserved_keys: vec!["Name".into()],
            joined: None,
        },
        firewall: FirewallRules {
            word: "security group".into(),
            egress: true,
            icmp_types: true,
            any_protocol: true,
            peers: vec![PeerKind::Cidr, PeerKind::Group, PeerKind::PrefixList],
            all_as: Vec::new(),
            egress_peers: None,
            // The default quota of inbound (and outbound) rules per group.
            max_rules: Some(60),
        },
        network_kind: "subnet".into(),
        max_keys: Some(1),
        ssh_keys: true,
        user_data_max: Some(16 * 1024),
        public_ip: true,
    }
}

/// The rules of one IpPermission, one per peer.
pub fn rules_of(direction: Direction, p: &IpPermission) -> Vec<Rule> {
    let protocol = match p.ip_protocol().unwrap_or("-1") {
        "-1" | "" => "all".to_string(),
        "6" => "tcp".to_string(),
        "17" => "udp".to_string(),
        "1" => "icmp".to_string(),
        "58" => "icmpv6".to_string(),
        other => other.to_ascii_lowercase(),
    };
    let port = |n: Option<i32>| n.and_then(|n| u16::try_from(n).ok());
    let ports = match (protocol.as_str(), port(p.from_port()), p.to_port()) {
        ("all", _, _) | (_, None, _) => None,
        // ICMP: from = type, to = code (-1: any code).
        ("icmp" | "icmpv6", Some(kind), code) => Some(PortRange {
            from: kind,
            to: port(code).unwrap_or(u16::MAX),
        }),
        (_, Some(0), Some(65535)) => None,
        (_, Some(from), to) => Some(PortRange {
            from,
            to: port(to).unwrap_or(from),
        }),
    };
    let mut peers: Vec<(Peer, Option<&str>)> = Vec::new();
    for r in p.ip_ranges() {
        if let Some(c) = r.cidr_ip() {
            peers.push((Peer::Cidr(c.into()), r.description()));
        }
    }
    for r in p.ipv6_ranges() {
        if let Some(c) = r.cidr_ipv6() {
            peers.push((Peer::Cidr(c.into()), r.description()));
        }
    }
    for r in p.prefix_list_ids() {
        if let Some(id) = r.prefix_list_id() {
            peers.push((Peer::PrefixList(id.into()), r.description()));
        }
    }
    for g in p.user_id_group_pairs() {
        if let Some(id) = g.group_id().or(g.group_name()) {
            peers.push((Peer::Group(id.into()), g.description()));
        }
    }
    peers
        .into_iter()
        .map(|(peer, description)| Rule {
            direction,
            protocol: protocol.clone(),
            ports,
            peer,
            description: description.map(str::to_string),
        })
        .collect()
}

/// A security group as a rule set.
pub fn rule_set(g: &ec2::SecurityGroup) -> RuleSet {
    let mut rules = Vec::new();
    for p in g.ip_permissions() {
        rules.extend(rules_of(Direction::In, p));
    }
    for p in g.ip_permissions_egress() {
        rules.extend(rules_of(Direction::Out, p));
    }
    RuleSet {
        name: g.group_name().or(g.group_id()).unwrap_or("").to_string(),
        id: g.group_id().map(str::to_string),
        rules,
    }
}

/// Fills each instance's configuration: subnet and addresses from the
/// answer, rules of its groups, its key pair (public key when the account
/// returns it) and user-data (DescribeInstanceAttribute, one call each).
pub async fn fill(
    c: &RegionClients,
    raw: &[ec2::Instance],
    instances: &mut [Instance],
    groups: &[ec2::SecurityGroup],
    networks: &[Network],
) -> Result<(), CloudError> {
    let by_id: HashMap<&str, &ec2::SecurityGroup> = groups
        .iter()
        .filter_map(|g| Some((g.group_id()?, g)))
        .collect();
    // Key pairs and user-data are read when allowed: a policy without
    // ec2:DescribeKeyPairs or ec2:DescribeInstanceAttribute still lists
    // instances, and the plan says what could not be read.
    let keys = if raw.iter().any(|i| i.key_name().is_some()) {
        c.ec2
            .describe_key_pairs()
            .include_public_key(true)
            .send()
            .await
            .map_err(|e| classify("ec2 DescribeKeyPairs", e).to_string())
    } else {
        Err(String::new())
    };
    for (i, out) in raw.iter().zip(instances.iter_mut()) {
        let subnet = i.subnet_id().map(str::to_string);
        let cidr = subnet
            .as_ref()
            .and_then(|s| networks.iter().find(|n| &n.id == s))
            .and_then(|n| n.cidr.clone());
        if let Some(subnet) = subnet {
            out.config.networks.push(Attachment {
                network: networks
                    .iter()
                    .find(|n| n.id == subnet)
                    .map(|n| n.name.clone())
                    .unwrap_or_else(|| subnet.clone()),
                subnet: Some(subnet),
                cidr,
                private_address: i.private_ip_address().map(str::to_string),
                public: i.public_ip_address().is_some_and(|a| !a.is_empty()),
            });
        }
        let mut ids: Vec<&str> = Vec::new();
        for g in i
            .security_groups()
            .iter()
            .chain(i.network_interfaces().iter().flat_map(|n| n.groups()))
        {
            if let Some(id) = g.group_id().filter(|id| !ids.contains(id)) {
                ids.push(id);
            }
        }
        for id in ids {
            if let Some(group) = by_id.get(id) {
                out.config.rule_sets.push(rule_set(group));
            }
        }
        if let Some(name) = i.key_name() {
            let pair = match &keys {
                Ok(keys) => keys.key_pairs().iter().find(|k| k.key_name() == Some(name)),
                Err(why) => {
                    out.config.unread.push(format!("ssh key '{name}': {why}"));
                    None
                }
            };
            out.config.ssh_keys.push(KeyRef {
                name: name.to_string(),
                public_key: pair.and_then(|k| k.public_key()).map(str::to_string),
                fingerprint: pair.and_then(|k| k.key_fingerprint()).map(str::to_string),
            });
        }
        if let Some(id) = i.instance_id() {
            match user_data(c, id).await {
                Ok(data) => out.config.user_data = data,
                Err(e) => out.config.unread.push(format!("user-data: {e}")),
            }
        }
    }
    Ok(())
}

async fn user_data(c: &RegionClients, id: &str) -> Result<Option<String>, CloudError> {
    let answer = c
        .ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(ec2::InstanceAttributeName::UserData)
        .send()
        .await
        .map_err(|e| classify(&format!("ec2 DescribeInstanceAttribute userData {id}"), e))?;
    let Some(encoded) = answer.user_data().and_then(|v| v.value()) else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| {
            CloudError::Permanent(format!(
                "ec2 DescribeInstanceAttribute userData {id}: not base64 ({e})"
            ))
        })?;
    Ok(Some(match String::from_utf8(bytes) {
        Ok(text) => text,
        // gzip and other binary user-data stays as it came.
        Err(_) => format!("base64:{}", encoded.trim()),
    }))
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// The VPC of a subnet, or the region's default VPC.
async fn vpc_of(c: &RegionClients, subnet: Option<&str>) -> Result<Option<String>, CloudError> {
    let ask = c.ec2.describe_subnets();
    let ask = match subnet {
        Some(id) => ask.subnet_ids(id),
        None => ask.filters(
            Filter::builder()
                .name("default-for-az")
                .values("true")
                .build(),
        ),
    };
    let answer = ask
        .send()
        .await
        .map_err(|e| classify("ec2 DescribeSubnets", e))?;
    Ok(answer
        .subnets()
        .first()
        .and_then(|s| s.vpc_id())
        .map(str::to_string))
}

/// Security groups named `name` (in `vpc` when known).
async fn groups_named(
    c: &RegionClients,
    name: &str,
    vpc: Option<&str>,
) -> Result<Vec<ec2::SecurityGroup>, CloudError> {
    let mut ask = c
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name("group-name").values(name).build());
    if let Some(vpc) = vpc {
        ask = ask.filters(Filter::builder().name("vpc-id").values(vpc).build());
    }
    let answer = ask
        .send()
        .await
        .map_err(|e| classify(&format!("ec2 DescribeSecurityGroups group-name={name}"), e))?;
    Ok(answer.security_groups().to_vec())
}

fn has_tag(tags: &[Tag], (key, value): &(String, String)) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(key) && t.value() == Some(value))
}

/// One rule as an IpPermission; group peers are looked up by name in `vpc`.
async fn permission(
    c: &RegionClients,
    rule: &Rule,
    vpc: Option<&str>,
) -> Result<IpPermission, CloudError> {
    let protocol = match rule.protocol.as_str() {
        "all" => "-1",
        other => other,
    };
    let mut p = IpPermission::builder().ip_protocol(protocol);
    if let Some(ports) = rule.ports {
        let to = if protocol.starts_with("icmp") && ports.to == u16::MAX {
            -1
        } else {
            i32::from(ports.to)
        };
        p = p.from_port(i32::from(ports.from)).to_port(to);
    } else if protocol == "tcp" || protocol == "udp" {
        p = p.from_port(0).to_port(65535);
    } else if protocol.starts_with("icmp") {
        p = p.from_port(-1).to_port(-1);
    }
    let description = rule.description.clone();
    p = match &rule.peer {
        Peer::Cidr(c) if c.contains(':') => p.ipv6_ranges(
            Ipv6Range::builder()
                .cidr_ipv6(c)
                .set_description(description)
                .build(),
        ),
        Peer::Cidr(c) => p.ip_ranges(
            IpRange::builder()
                .cidr_ip(c)
                .set_description(description)
                .build(),
        ),
        Peer::PrefixList(id) => p.prefix_list_ids(
            PrefixListId::builder()
                .prefix_list_id(id)
                .set_description(description)
                .build(),
        ),
        Peer::Group(name) => {
            let found = groups_named(c, name, vpc).await?;
            let id = found
                .first()
                .and_then(|g| g.group_id())
                .ok_or_else(|| CloudError::NotFound(format!("security group '{name}'")))?;
            p.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(id)
                    .set_description(description)
                    .build(),
            )
        }
        other => {
            return Err(CloudError::Unsupported(format!(
                "a security group rule cannot name {other}"
            )));
        }
    };
    Ok(p.build())
}

fn opens_all_outbound(rule: &Rule) -> bool {
    rule.direction == Direction::Out
        && rule.protocol == "all"
        && rule.peer == Peer::Cidr("0.0.0.0/0".into())
}

/// Creates a security group (tagged with the plan) with the translated
/// rules, or returns the one this plan made before. A new group allows all
/// outbound traffic: that rule is revoked unless the source had it too.
pub async fn create_group(
    c: &RegionClients,
    cap: &Capability,
    name: &str,
    subnet: Option<&str>,
    rules: &[Rule],
    source: &str,
) -> Result<String, CloudError> {
    let plan_tag = cap.tag();
    let vpc = vpc_of(c, subnet).await?;
    if let Some(g) = groups_named(c, name, vpc.as_deref()).await?.first() {
        return match g.group_id() {
            Some(id) if has_tag(g.tags(), &plan_tag) => Ok(id.to_string()),
            _ => Err(CloudError::Permanent(format!(
                "security group '{name}' already exists and was not created by this plan"
            ))),
        };
    }
    let created = c
        .ec2
        .create_security_group()
        .group_name(name)
        .description(format!("altishift: from {source}"))
        .set_vpc_id(vpc.clone())
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroup)
                .tags(tag(&plan_tag.0, &plan_tag.1))
                .tags(tag("Name", name))
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify(&format!("ec2 CreateSecurityGroup {name}"), e))?;
    let id = created
        .group_id()
        .ok_or_else(|| CloudError::Permanent("ec2 CreateSecurityGroup: no group id".into()))?
        .to_string();
    let mut ingress = Vec::new();
    let mut egress = Vec::new();
    for rule in rules {
        if opens_all_outbound(rule) {
            continue;
        }
        let p = permission(c, rule, vpc.as_deref()).await?;
        match rule.direction {
            Direction::In => ingress.push(p),
            Direction::Out => egress.push(p),
        }
    }
    if !ingress.is_empty() {
        c.ec2
            .authorize_security_group_ingress()
            .group_id(&id)
            .set_ip_permissions(Some(ingress))
            .send()
            .await
            .map_err(|e| classify(&format!("ec2 AuthorizeSecurityGroupIngress {id}"), e))?;
    }
    if !egress.is_empty() {
        c.ec2
            .authorize_security_group_egress()
            .group_id(&id)
            .set_ip_permissions(Some(egress))
            .send()
            .await
            .map_err(|e| classify(&format!("ec2 AuthorizeSecurityGroupEgress {id}"), e))?;
    }
    if !rules.iter().any(opens_all_outbound) {
        let all = IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        c.ec2
            .revoke_security_group_egress()
            .group_id(&id)
            .ip_permissions(all)
            .send()
            .await
            .map_err(|e| classify(&format!("ec2 RevokeSecurityGroupEgress {id}"), e))?;
    }
    Ok(id)
}

/// Imports a public key as a key pair (tagged with the plan), or returns
/// the one this plan imported before. Its id is its name (RunInstances
/// takes the name).
pub async fn import_key(
    c: &RegionClients,
    cap: &Capability,
    name: &str,
    public_key: &str,
) -> Result<String, CloudError> {
    let plan_tag = cap.tag();
    let existing = c
        .ec2
        .describe_key_pairs()
        .filters(Filter::builder().name("key-name").values(name).build())
        .send()
        .await
        .map_err(|e| classify(&format!("ec2 DescribeKeyPairs {name}"), e))?;
    if let Some(pair) = existing.key_pairs().first() {
        return if has_tag(pair.tags(), &plan_tag) {
            Ok(name.to_string())
        } else {
            Err(CloudError::Permanent(format!(
                "key pair '{name}' already exists and was not imported by this plan"
            )))
        };
    }
    c.ec2
        .import_key_pair()
        .key_name(name)
        .public_key_material(aws_sdk_ec2::primitives::Blob::new(public_key.as_bytes()))
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::KeyPair)
                .tags(tag(&plan_tag.0, &plan_tag.1))
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify(&format!("ec2 ImportKeyPair {name}"), e))?;
    Ok(name.to_string())
}

/// Gone already counts as done.
fn gone(result: Result<(), CloudError>) -> Result<(), CloudError> {
    match result {
        Err(CloudError::NotFound(_)) => Ok(()),
        other => other,
    }
}

pub async fn remove_group(c: &RegionClients, id: &str) -> Result<(), CloudError> {
    gone(
        c.ec2
            .delete_security_group()
            .group_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&format!("ec2 DeleteSecurityGroup {id}"), e)),
    )
}

pub async fn remove_key(c: &RegionClients, name: &str) -> Result<(), CloudError> {
    gone(
        c.ec2
            .delete_key_pair()
            .key_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&format!("ec2 DeleteKeyPair {name}"), e)),
    )
}

/// What a deployed instance carries, read back for validation.
pub async fn found(c: &RegionClients, i: &ec2::Instance) -> Result<FoundConfig, CloudError> {
    let id = i.instance_id().unwrap_or("");
    Ok(FoundConfig {
        network: i.subnet_id().map(str::to_string),
        public_ip: Some(i.public_ip_address().is_some_and(|a| !a.is_empty())),
        // The instance's groups are its interfaces' (moto lists those of an
        // interface given at launch only on the interface).
        firewalls: i
            .security_groups()
            .iter()
            .chain(i.network_interfaces().iter().flat_map(|n| n.groups()))
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
        ssh_keys: i.key_name().map(str::to_string).into_iter().collect(),
        user_data: Some(user_data(c, id).await?),
        tags: super::neutral::tags_of(i.tags()),
    })
}
