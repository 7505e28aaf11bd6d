//! Which firewall rules apply to a Compute Engine instance, as rule sets.
//! Compute Engine keeps firewalls per network, not per instance: a rule
//! reaches the instances of its network that carry one of its target tags,
//! run as one of its target service accounts, or all of them when it names
//! no target. Rules reaching the instance the same way form one set, named
//! after that target (the tag, the account's name, or `<network>-all` for
//! network-wide rules), so a target gets one firewall per way in.

use super::client::last_segment;
use crate::inventory::config::{Direction, Peer, PortRange, Rule, RuleSet};
use serde_json::Value;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// The rule sets reaching `instance` (an `instances.get` answer) among
/// `firewalls` (`firewalls.list` items), and what cannot be expressed as
/// allow rules (deny rules), for the plan to list as not carried.
pub fn rule_sets(instance: &Value, firewalls: &[Value]) -> (Vec<RuleSet>, Vec<String>) {
    let networks: Vec<String> = instance["networkInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| last_segment(n["network"].as_str().unwrap_or_default()).to_string())
        .collect();
    let tags = strings(&instance["tags"]["items"]);
    let accounts: Vec<String> = instance["serviceAccounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["email"].as_str().map(str::to_string))
        .collect();
    let mut sets: Vec<RuleSet> = Vec::new();
    let mut unread = Vec::new();
    for f in firewalls {
        let network = last_segment(f["network"].as_str().unwrap_or_default()).to_string();
        if f["disabled"] == true || !networks.contains(&network) {
            continue;
        }
        let (target_tags, target_accounts) = (
            strings(&f["targetTags"]),
            strings(&f["targetServiceAccounts"]),
        );
        let set = if let Some(t) = target_tags.iter().find(|t| tags.contains(t)) {
            t.clone()
        } else if let Some(a) = target_accounts.iter().find(|a| accounts.contains(a)) {
            a.split('@').next().unwrap_or(a).to_string()
        } else if target_tags.is_empty() && target_accounts.is_empty() {
            // Not the bare network name: `default` is every AWS VPC's and
            // CloudStack account's own group, so plans would contend for it.
            format!("{network}-all")
        } else {
            continue;
        };
        let name = f["name"].as_str().unwrap_or_default();
        if f["denied"].as_array().is_some_and(|d| !d.is_empty()) {
            unread.push(format!(
                "firewall rule '{name}' denies traffic (a deny rule has no equivalent among \
                 allow rules)"
            ));
            continue;
        }
        let rules = rules_of(f, name);
        match sets.iter_mut().find(|s| s.name == set) {
            Some(s) => s.rules.extend(rules),
            None => sets.push(RuleSet {
                name: set,
                id: None,
                rules,
            }),
        }
    }
    (sets, unread)
}

/// One firewall's allow entries as rules, one per protocol, port range and
/// peer. A rule naming no source (destination) applies from (to) anywhere.
fn rules_of(f: &Value, name: &str) -> Vec<Rule> {
    let egress = f["direction"] == "EGRESS";
    let mut peers: Vec<Peer> = Vec::new();
    if egress {
        peers.extend(strings(&f["destinationRanges"]).into_iter().map(Peer::Cidr));
    } else {
        peers.extend(strings(&f["sourceRanges"]).into_iter().map(Peer::Cidr));
        peers.extend(strings(&f["sourceTags"]).into_iter().map(Peer::Tag));
        peers.extend(
            strings(&f["sourceServiceAccounts"])
                .into_iter()
                .map(Peer::ServiceAccount),
        );
    }
    if peers.is_empty() {
        peers.push(Peer::Cidr("0.0.0.0/0".into()));
    }
    let direction = if egress {
        Direction::Out
    } else {
        Direction::In
    };
    let mut out = Vec::new();
    for entry in f["allowed"].as_array().into_iter().flatten() {
        let protocol = entry["IPProtocol"].as_str().unwrap_or("all").to_string();
        let ports: Vec<Option<PortRange>> = match strings(&entry["ports"]) {
            p if p.is_empty() => vec![None],
            p => p.iter().map(|p| port_range(p)).collect(),
        };
        for range in ports {
            for peer in &peers {
                out.push(Rule {
                    direction,
                    protocol: protocol.clone(),
                    ports: range,
                    peer: peer.clone(),
                    description: Some(name.to_string()),
                });
            }
        }
    }
    out
}

/// `"22"` or `"1000-2000"`; None (every port) for `"0-65535"` and for
/// what is neither.
fn port_range(text: &str) -> Option<PortRange> {
    let (from, to) = text.split_once('-').unwrap_or((text, text));
    let range = PortRange {
        from: from.trim().parse().ok()?,
        to: to.trim().parse().ok()?,
    };
    (range.from, range.to).ne(&(0, u16::MAX)).then_some(range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_reach_an_instance_by_network_tag_account_or_all() {
        let net = "https://compute.googleapis.com/compute/v1/projects/p/global/networks/default";
        let vm = json!({
            "networkInterfaces": [{"network": net}],
            "tags": {"items": ["web"]},
            "serviceAccounts": [{"email": "app@p.iam.gserviceaccount.com"}],
        });
        let firewalls = vec![
            json!({"name": "allow-ssh", "network": net, "direction": "INGRESS",
                "sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
            json!({"name": "web-lb", "network": net, "direction": "INGRESS",
                "sourceTags": ["lb"], "targetTags": ["web"],
                "allowed": [{"IPProtocol": "tcp", "ports": ["80", "8000-8080"]},
                            {"IPProtocol": "udp", "ports": ["0-65535"]}]}),
            json!({"name": "app", "network": net, "direction": "INGRESS",
                "targetServiceAccounts": ["app@p.iam.gserviceaccount.com"],
                "allowed": [{"IPProtocol": "icmp"}]}),
            json!({"name": "db-only", "network": net, "direction": "INGRESS",
                "targetTags": ["db"], "allowed": [{"IPProtocol": "tcp", "ports": ["5432"]}]}),
            json!({"name": "other-net", "network": "x/global/networks/custom",
                "direction": "INGRESS", "allowed": [{"IPProtocol": "all"}]}),
            json!({"name": "off", "network": net, "disabled": true,
                "direction": "INGRESS", "allowed": [{"IPProtocol": "all"}]}),
            json!({"name": "no-smtp", "network": net, "direction": "EGRESS",
                "destinationRanges": ["0.0.0.0/0"],
                "denied": [{"IPProtocol": "tcp", "ports": ["25"]}]}),
        ];
        let (sets, unread) = rule_sets(&vm, &firewalls);
        let shown: Vec<(String, Vec<String>)> = sets
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.rules.iter().map(ToString::to_string).collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    "default-all".into(),
                    vec!["in tcp 22 from 0.0.0.0/0".into()]
                ),
                (
                    "web".into(),
                    vec![
                        "in tcp 80 from tag lb".into(),
                        "in tcp 8000-8080 from tag lb".into(),
                        "in udp from tag lb".into()
                    ]
                ),
                ("app".into(), vec!["in icmp from 0.0.0.0/0".into()]),
            ]
        );
        assert_eq!(unread.len(), 1, "{unread:?}");
        assert!(unread[0].contains("no-smtp"), "{unread:?}");
    }
}
