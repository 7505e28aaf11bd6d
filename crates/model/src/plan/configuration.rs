//! Configuration translation: for each instance, the target network, the
//! firewalls to create (one per source rule set, rules translated one by
//! one), tags fitted to the target's rules, SSH keys to import, user-data
//! and a public address. Everything reads the rules the target's provider
//! declares ([`ConfigRules`]); what cannot be carried exactly is a **lossy**
//! line with its reason, and approval needs `--ack-lossy` for those.

use super::tags::{self, TagPlan};
use crate::inventory::config::{ConfigRules, Direction, FirewallRules, Peer, PortRange, Rule};
use crate::inventory::{Instance, Inventory};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The operator's overrides (`--network-map`, `--no-firewall`, `--no-tags`,
/// `--public-ip`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigRequest {
    /// Source network (name, subnet or CIDR) → target network (name or id).
    pub network_map: BTreeMap<String, String>,
    pub no_firewall: bool,
    pub no_tags: bool,
    /// Some: every instance gets (or does not get) a public address.
    pub public_ip: Option<bool>,
}

/// What one instance gets on the target besides its disks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkChoice>,
    /// Some: ask the target for (or against) a public address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewalls: Vec<FirewallPlan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagPlan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<KeyPlan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// What is not carried exactly, with the reason: approval needs
    /// `--ack-lossy` when any item has one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lossy: Vec<String>,
}

impl ItemConfig {
    pub fn is_empty(&self) -> bool {
        *self == ItemConfig::default()
    }

    /// The tags the target instance is given (key → value).
    pub fn target_tags(&self) -> BTreeMap<String, String> {
        self.tags
            .iter()
            .filter_map(|t| Some((t.key.clone()?, t.value.clone())))
            .collect()
    }
}

/// Where the instance is attached on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkChoice {
    /// The source network (and CIDR).
    pub source: String,
    /// The target network's id; None: the target's default network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// How it was chosen, for the operator.
    pub how: String,
}

/// A firewall (security group) to create on the target, from one source
/// rule set. Instances sharing the source set share it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallPlan {
    /// Its name on the target.
    pub name: String,
    /// The source rule set it comes from.
    pub source: String,
    /// The target network it is made in (a security group belongs to a VPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default)]
    pub rules: Vec<RulePlan>,
}

/// An SSH public key to import, under its name on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPlan {
    /// Its name in the source.
    pub source: String,
    /// Its name on the target.
    pub name: String,
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// One source rule and its translation (None: not carried, see `lossy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulePlan {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Rule>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--network-map {from}={to}: {cloud} has no {kind} '{to}' (it has: {known})")]
    UnknownNetwork {
        from: String,
        to: String,
        cloud: String,
        kind: String,
        known: String,
    },
}

/// Names on the target of every source rule set the plan migrates, keyed
/// by the source set's name and id: a rule naming one of them can name the
/// new group instead.
pub fn firewall_names(
    instances: &[&Instance],
    source_cloud: &str,
    target: &Inventory,
) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for set in instances.iter().flat_map(|i| &i.config.rule_sets) {
        let base: String = set
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        // A group of that name on the target (every VPC has `default`) is
        // someone else's: ours carries the source cloud's name.
        let name = object_name(
            &base,
            target.firewalls.iter().map(|f| &f.name),
            source_cloud,
        );
        names.insert(set.name.clone(), name.clone());
        if let Some(id) = &set.id {
            names.insert(id.clone(), name);
        }
    }
    names
}

/// `name`, or `name-<source cloud>` when the target already has one by
/// that name (someone else's: never reused, never overwritten).
fn object_name<'a>(
    name: &str,
    mut existing: impl Iterator<Item = &'a String>,
    source_cloud: &str,
) -> String {
    if existing.any(|n| n == name) {
        format!("{name}-{source_cloud}")
    } else {
        name.to_string()
    }
}

/// Translates the configuration of every selected item. After selection,
/// all at once: a rule naming another group of the plan names the group the
/// plan creates for it. `source` and `target` are (cloud name, inventory).
pub fn translate_items(
    items: &mut [super::PlanItem],
    source: (&str, &Inventory),
    target: (&str, &Inventory),
    request: &ConfigRequest,
) -> Result<(), ConfigError> {
    let selected: Vec<&Instance> = items
        .iter()
        .filter_map(|i| source.1.instance(&i.instance_id))
        .collect();
    let groups = firewall_names(&selected, source.0, target.1);
    for (item, instance) in items.iter_mut().zip(&selected) {
        item.configuration = translate(instance, source.0, target.0, target.1, request, &groups)?;
    }
    Ok(())
}

/// Translates one instance's configuration for `target`.
pub fn translate(
    instance: &Instance,
    source_cloud: &str,
    target_cloud: &str,
    target: &Inventory,
    request: &ConfigRequest,
    groups: &BTreeMap<String, String>,
) -> Result<ItemConfig, ConfigError> {
    let config = &instance.config;
    let mut out = ItemConfig::default();
    let Some(rules) = &target.config_rules else {
        if !config.is_empty() || !instance.tags.is_empty() {
            out.lossy.push(format!(
                "{target_cloud} declares no configuration rules: networks, firewalls, tags, keys and user-data are not carried"
            ));
        }
        return Ok(out);
    };
    let not_yet = |what: &str| {
        format!(
            "{what}: altishift does not create configuration on {target_cloud} yet; not carried"
        )
    };
    for part in &config.unread {
        out.lossy.push(format!(
            "{part} (could not be read from the source, so it is not carried)"
        ));
    }
    out.network = network(
        instance,
        target_cloud,
        target,
        rules,
        request,
        &mut out.lossy,
    )?;
    let source_public = config.networks.first().is_some_and(|a| a.public);
    let public = request.public_ip.unwrap_or(source_public);
    if rules.public_ip {
        if request.public_ip.is_some() || !config.networks.is_empty() {
            out.public_ip = Some(public);
        }
    } else if request.public_ip.is_some() || !config.networks.is_empty() {
        out.lossy.push(format!(
            "public address ({}): {target_cloud} gives no choice of one per instance",
            if public { "yes" } else { "no" }
        ));
    }
    if request.no_firewall {
        // The operator's choice, shown in the plan, not a loss.
    } else {
        for set in &config.rule_sets {
            let name = groups
                .get(&set.name)
                .cloned()
                .unwrap_or_else(|| set.name.clone());
            let mut plan = FirewallPlan {
                name,
                source: set.name.clone(),
                network: out.network.as_ref().and_then(|n| n.target.clone()),
                rules: Vec::new(),
            };
            let mut counts: BTreeMap<Direction, usize> = BTreeMap::new();
            for rule in &set.rules {
                let translated = translate_rule(rule, &rules.firewall, groups);
                let translated = match translated {
                    Ok(r) => {
                        let count = counts.entry(r.direction).or_default();
                        *count += 1;
                        match rules.firewall.max_rules {
                            Some(max) if *count > max => Err(format!(
                                "more than {max} rules per {} and direction",
                                rules.firewall.word
                            )),
                            _ => Ok(r),
                        }
                    }
                    Err(e) => Err(e),
                };
                if let Ok(r) = &translated
                    && r.protocol == "all"
                    && !rules.firewall.any_protocol
                {
                    out.lossy.push(format!(
                        "rule '{rule}' of '{}': a {} has no 'all'; it becomes {} (other IP protocols are not carried)",
                        set.name,
                        rules.firewall.word,
                        rules.firewall.all_as.join(", ")
                    ));
                }
                match translated {
                    Ok(r) if rules.creates => plan.rules.push(RulePlan {
                        source: rule.to_string(),
                        target: Some(r),
                    }),
                    Ok(_) => {
                        out.lossy
                            .push(not_yet(&format!("rule '{rule}' of '{}'", set.name)));
                        plan.rules.push(RulePlan {
                            source: rule.to_string(),
                            target: None,
                        });
                    }
                    Err(why) => {
                        out.lossy
                            .push(format!("rule '{rule}' of '{}': {why}", set.name));
                        plan.rules.push(RulePlan {
                            source: rule.to_string(),
                            target: None,
                        });
                    }
                }
            }
            out.firewalls.push(plan);
        }
    }
    if !request.no_tags {
        let room = rules.tags.max_count.saturating_sub(rules.tags.own_tags + 1);
        out.tags = tags::fit(&instance.tags, &rules.tags, room);
        for tag in &out.tags {
            if tag.lossy {
                out.lossy.push(format!(
                    "tag '{}': {}",
                    tag.source_key,
                    tag.note.clone().unwrap_or_default()
                ));
            }
        }
        if !rules.creates && out.tags.iter().any(|t| t.key.is_some()) {
            out.lossy.push(not_yet("tags"));
            for tag in &mut out.tags {
                tag.key = None;
            }
        }
    }
    for key in &config.ssh_keys {
        let why = if !rules.ssh_keys {
            Some(format!("{target_cloud} imports no SSH keys"))
        } else if !rules.creates {
            Some(not_yet("key"))
        } else if key.public_key.is_none() {
            Some(
                "its public key is not known (the source gives its name or fingerprint only)"
                    .into(),
            )
        } else if rules.max_keys.is_some_and(|max| out.ssh_keys.len() >= max) {
            Some(format!(
                "{target_cloud} gives an instance {} key(s) at launch",
                rules.max_keys.unwrap_or(0)
            ))
        } else {
            None
        };
        match (why, &key.public_key) {
            (None, Some(public_key)) => out.ssh_keys.push(KeyPlan {
                source: key.name.clone(),
                name: object_name(
                    &key.name,
                    target.ssh_keys.iter().map(|k| &k.name),
                    source_cloud,
                ),
                public_key: public_key.clone(),
                fingerprint: key.fingerprint.clone(),
            }),
            (Some(why), _) => out.lossy.push(format!("ssh key '{}': {why}", key.name)),
            (None, None) => {}
        }
    }
    if let Some(data) = &config.user_data {
        match rules.user_data_max {
            Some(_) if !rules.creates => out.lossy.push(not_yet("user-data")),
            Some(max) if data.len() as u64 > max => out.lossy.push(format!(
                "user-data: {} bytes, {target_cloud} takes at most {max}",
                data.len()
            )),
            Some(_) => out.user_data = Some(data.clone()),
            None => out
                .lossy
                .push(format!("user-data: {target_cloud} takes none")),
        }
    }
    Ok(out)
}

/// The target network: `--network-map` first, then the same name, then the
/// same CIDR; otherwise the target's default.
fn network(
    instance: &Instance,
    target_cloud: &str,
    target: &Inventory,
    rules: &ConfigRules,
    request: &ConfigRequest,
    lossy: &mut Vec<String>,
) -> Result<Option<NetworkChoice>, ConfigError> {
    let attachments = &instance.config.networks;
    for extra in attachments.iter().skip(1) {
        lossy.push(format!(
            "network interface on '{}': only the first interface is carried",
            extra.network
        ));
    }
    let Some(first) = attachments.first() else {
        return Ok(None);
    };
    let candidates: Vec<_> = target
        .networks
        .iter()
        .filter(|n| n.kind == rules.network_kind)
        .collect();
    let source = match &first.cidr {
        Some(cidr) => format!("{} ({cidr})", first.network),
        None => first.network.clone(),
    };
    let mapped = [
        Some(&first.network),
        first.subnet.as_ref(),
        first.cidr.as_ref(),
    ]
    .into_iter()
    .flatten()
    .find_map(|k| request.network_map.get(k).map(|to| (k, to)));
    if let Some((from, to)) = mapped {
        let found = candidates.iter().find(|n| &n.name == to || &n.id == to);
        return match found {
            Some(n) => Ok(Some(NetworkChoice {
                source,
                target: Some(n.id.clone()),
                how: format!("--network-map {from}={to}"),
            })),
            None => Err(ConfigError::UnknownNetwork {
                from: from.clone(),
                to: to.clone(),
                cloud: target_cloud.into(),
                kind: rules.network_kind.clone(),
                known: candidates
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        };
    }
    if let Some(n) = candidates.iter().find(|n| n.name == first.network) {
        return Ok(Some(NetworkChoice {
            source,
            target: Some(n.id.clone()),
            how: "same name".into(),
        }));
    }
    if let Some(n) = candidates
        .iter()
        .find(|n| first.cidr.is_some() && n.cidr == first.cidr)
    {
        return Ok(Some(NetworkChoice {
            source,
            target: Some(n.id.clone()),
            how: format!("same CIDR, {}", n.name),
        }));
    }
    Ok(Some(NetworkChoice {
        source,
        target: None,
        how: format!(
            "no {} of that name or CIDR: the target's default (--network-map to choose)",
            rules.network_kind
        ),
    }))
}

/// One rule in the target's terms, or why it cannot be.
fn translate_rule(
    rule: &Rule,
    rules: &FirewallRules,
    groups: &BTreeMap<String, String>,
) -> Result<Rule, String> {
    if rule.direction == Direction::Out && !rules.egress {
        return Err(format!("{}s take no outbound rules", rules.word));
    }
    let kind = rule.peer.kind();
    if !rules.peers.contains(&kind) {
        return Err(format!("a {} cannot name {kind}", rules.word));
    }
    if rule.direction == Direction::Out
        && rules
            .egress_peers
            .as_ref()
            .is_some_and(|p| !p.contains(&kind))
    {
        return Err(format!(
            "a {}'s outbound rules cannot name {kind}",
            rules.word
        ));
    }
    let peer = match &rule.peer {
        Peer::Group(g) => match groups.get(g) {
            Some(name) => Peer::Group(name.clone()),
            None => {
                return Err(format!(
                    "names group '{g}', which this plan does not migrate"
                ));
            }
        },
        other => other.clone(),
    };
    let protocol = rule.protocol.to_ascii_lowercase();
    let plain = matches!(protocol.as_str(), "tcp" | "udp" | "icmp")
        || (protocol == "all" && !rules.all_as.is_empty());
    if !plain && !rules.any_protocol {
        return Err(format!("a {} takes only tcp, udp and icmp", rules.word));
    }
    let ports: Option<PortRange> = match (protocol.starts_with("icmp"), rule.ports) {
        // Dropping the type would open every ICMP type: refuse, never widen.
        (true, Some(_)) if !rules.icmp_types => {
            return Err(format!(
                "a {} cannot name ICMP types (carrying it would allow all)",
                rules.word
            ));
        }
        (_, ports) => ports,
    };
    Ok(Rule {
        direction: rule.direction,
        protocol,
        ports,
        peer,
        description: rule.description.clone(),
    })
}

/// Every lossy line of a plan, `instance: reason`, including those its
/// shape shows when the list lost them ([`super::lossy::unlisted`]).
pub fn lossy_lines(plan: &super::Plan) -> Vec<String> {
    plan.items
        .iter()
        .flat_map(|i| {
            i.configuration
                .lossy
                .iter()
                .cloned()
                .chain(super::lossy::unlisted(i))
                .map(move |l| format!("{}: {l}", i.instance_name))
        })
        .collect()
}

/// A configuration object the run creates on the target, once per plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object<'a> {
    Firewall(&'a FirewallPlan),
    Key(&'a KeyPlan),
}

impl Object<'_> {
    /// The journal's name for it (`config/firewall/web`).
    pub fn key(&self) -> String {
        match self {
            Object::Firewall(f) => format!("config/firewall/{}", f.name),
            Object::Key(k) => format!("config/key/{}", k.name),
        }
    }
}

/// The firewalls and keys of a plan, each once, firewalls that name other
/// groups of the plan after those groups.
pub fn objects(plan: &super::Plan) -> Vec<Object<'_>> {
    let mut firewalls: Vec<&FirewallPlan> = Vec::new();
    let mut keys: Vec<&KeyPlan> = Vec::new();
    for item in &plan.items {
        for f in &item.configuration.firewalls {
            if f.rules.iter().all(|r| r.target.is_none()) && !f.rules.is_empty() {
                continue;
            }
            if !firewalls.iter().any(|x| x.name == f.name) {
                firewalls.push(f);
            }
        }
        for k in &item.configuration.ssh_keys {
            if !keys.iter().any(|x| x.name == k.name) {
                keys.push(k);
            }
        }
    }
    let names_group = |f: &FirewallPlan| {
        f.rules
            .iter()
            .filter_map(|r| r.target.as_ref())
            .any(|r| matches!(r.peer, Peer::Group(_)))
    };
    firewalls.sort_by_key(|f| names_group(f));
    keys.into_iter()
        .map(Object::Key)
        .chain(firewalls.into_iter().map(Object::Firewall))
        .collect()
}
