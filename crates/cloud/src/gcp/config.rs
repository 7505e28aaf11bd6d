//! Configuration on Compute Engine: the plan's firewalls as firewall rules
//! that reach their instances by network tag, SSH keys as `ssh-keys`
//! metadata lines, user-data as `user-data` metadata, an external address
//! (`ONE_TO_ONE_NAT` access config) when planned, and what an instance
//! carries, read back for validation.
//!
//! A source rule set becomes one network tag (the id the run journals) and
//! one firewall rule per direction and peer, all with that target tag: a
//! Compute Engine firewall has one source (or destination) list for all its
//! `allowed` entries, so rules with different peers cannot share one
//! without widening. Each carries `altishift:plan=<hash>` in its
//! description: Compute Engine firewalls have no labels.

use super::GcpCloud;
use super::client::last_segment;
use crate::configure::{ConfigObject, DeployConfig, FoundConfig};
use crate::inventory::config::{Direction, Peer, Rule};
use crate::{Capability, CloudError, CreatedResource, ResourceKind};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Firewall names, network tags: RFC 1035, 1–63 characters, lowercase
/// letters, digits and `-`, starting with a letter, not ending with `-`.
pub fn rfc1035(text: &str, max: usize) -> String {
    let mut out: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "x-");
    }
    out.truncate(max);
    let trimmed = out.trim_end_matches('-').len();
    out.truncate(trimmed);
    out
}

/// The network tag of a plan's firewall: its name and the plan's short
/// hash, so no firewall someone else made for a tag `web` reaches the
/// migrated instance (that would widen what it lets in).
pub fn network_tag(name: &str, plan: &str) -> String {
    let plan: String = plan
        .to_ascii_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect();
    format!("{}-{plan}", rfc1035(name, 50))
}

/// The description marker of what a plan made (`altishift:plan=<hash>`).
pub fn marker(cap: &Capability) -> String {
    let (key, value) = cap.tag();
    format!("{key}={value}")
}

/// `tcp`/`udp`/`icmp`/`all` as the API spells them; other protocols by
/// number (`icmpv6` is 58).
fn ip_protocol(protocol: &str) -> String {
    match protocol {
        "icmpv6" => "58".into(),
        other => other.to_string(),
    }
}

fn peer_of(rule: &Rule) -> Result<(&'static str, String), CloudError> {
    match (&rule.direction, &rule.peer) {
        (Direction::In, Peer::Cidr(c)) => Ok(("sourceRanges", c.clone())),
        (Direction::In, Peer::Tag(t)) => Ok(("sourceTags", t.clone())),
        (Direction::Out, Peer::Cidr(c)) => Ok(("destinationRanges", c.clone())),
        (_, other) => Err(CloudError::Unsupported(format!(
            "a Compute Engine firewall rule made by altishift cannot name {other} ({rule})"
        ))),
    }
}

/// The firewall rules of one rule set: one per direction and peer, named
/// `<tag>-<n>`, each reaching the instances that carry `tag`.
pub fn firewall_bodies(
    tag: &str,
    network: &str,
    rules: &[Rule],
    description: &str,
) -> Result<Vec<Value>, CloudError> {
    // (direction, field, peer) → (protocol, ports) entries, in rule order.
    type Peering = (Direction, &'static str, String);
    let mut groups: Vec<(Peering, Vec<Value>)> = Vec::new();
    for rule in rules {
        let (field, peer) = peer_of(rule)?;
        let mut entry = json!({"IPProtocol": ip_protocol(&rule.protocol)});
        if let Some(p) = rule.ports {
            if !matches!(rule.protocol.as_str(), "tcp" | "udp" | "sctp") {
                return Err(CloudError::Unsupported(format!(
                    "Compute Engine takes ports for tcp, udp and sctp only ({rule})"
                )));
            }
            let ports = if p.from == p.to {
                p.from.to_string()
            } else {
                format!("{}-{}", p.from, p.to)
            };
            entry["ports"] = json!([ports]);
        }
        let key = (rule.direction, field, peer);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, entries)) => entries.push(entry),
            None => groups.push((key, vec![entry])),
        }
    }
    let base = rfc1035(tag, 58);
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(n, ((direction, field, peer), allowed))| {
            let mut body = json!({
                "name": format!("{base}-{n}"),
                "network": network,
                "direction": if direction == Direction::In { "INGRESS" } else { "EGRESS" },
                "priority": 1000,
                "allowed": allowed,
                "targetTags": [tag],
                "description": description,
            });
            body[field] = json!([peer]);
            body
        })
        .collect())
}

/// The `ssh-keys` metadata line of a key: `USERNAME:KEY_VALUE`, the user
/// named after the key.
pub fn key_line(name: &str, public_key: &str) -> String {
    let user: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{user}:{}", public_key.trim())
}

/// The parts of an `instances.insert` body the plan's configuration sets:
/// `tags.items` (the firewalls' network tags), `metadata.items` (ssh-keys,
/// user-data) and an external address when asked for.
pub fn instance_parts(config: &DeployConfig, body: &mut Value) {
    if !config.firewalls.is_empty() {
        body["tags"] = json!({"items": config.firewalls});
    }
    let mut items = Vec::new();
    if !config.ssh_keys.is_empty() {
        items.push(json!({"key": "ssh-keys", "value": config.ssh_keys.join("\n")}));
    }
    if let Some(data) = &config.user_data {
        items.push(json!({"key": "user-data", "value": data}));
    }
    if !items.is_empty() {
        body["metadata"] = json!({"items": items});
    }
    if config.public_ip == Some(true) {
        body["networkInterfaces"][0]["accessConfigs"] =
            json!([{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]);
    }
}

fn metadata<'a>(instance: &'a Value, key: &str) -> Option<&'a str> {
    instance["metadata"]["items"]
        .as_array()?
        .iter()
        .find(|i| i["key"] == key)
        .and_then(|i| i["value"].as_str())
}

/// What an instance carries; `network` is its subnetwork's id when known.
pub fn found(instance: &Value, network: Option<String>) -> FoundConfig {
    let nic = &instance["networkInterfaces"][0];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    FoundConfig {
        network,
        public_ip: Some(
            nic["accessConfigs"]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c["type"] == "ONE_TO_ONE_NAT")),
        ),
        firewalls: strings(&instance["tags"]["items"]),
        ssh_keys: metadata(instance, "ssh-keys")
            .map(|v| v.lines().map(str::to_string).collect())
            .unwrap_or_default(),
        user_data: Some(metadata(instance, "user-data").map(str::to_string)),
        tags: instance["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default(),
    }
}

impl GcpCloud {
    /// Creates a configuration object of the approved plan: a firewall's
    /// rules (its id: the network tag), or an SSH key, which Compute Engine
    /// keeps in the instance's metadata (its id: the `ssh-keys` line;
    /// nothing is created until the instance).
    pub async fn create_config(
        &self,
        cap: &Capability,
        object: &ConfigObject,
    ) -> Result<String, CloudError> {
        match object {
            ConfigObject::Firewall {
                name,
                network,
                rules,
                source,
            } => {
                self.create_firewall(cap, name, network.as_deref(), rules, source)
                    .await
            }
            ConfigObject::SshKey { name, public_key } => Ok(key_line(name, public_key)),
        }
    }

    /// The instance's interface: the plan's subnetwork (in its own
    /// network), else the profile's network.
    pub(super) async fn interface(&self, config: &DeployConfig) -> Result<Value, CloudError> {
        Ok(match &config.network {
            Some(id) => {
                let sub = self.subnetwork(id).await?;
                let network = last_segment(sub["network"].as_str().unwrap_or_default());
                json!({"network": format!("global/networks/{network}"), "subnetwork": sub["selfLink"]})
            }
            None => json!({"network": format!("global/networks/{}", self.network)}),
        })
    }

    /// Validation of the plan's configuration on `instance` (its answer).
    pub(super) async fn config_checks(
        &self,
        instance: &Value,
        config: &DeployConfig,
    ) -> Result<Vec<crate::Check>, CloudError> {
        if config.is_empty() {
            return Ok(Vec::new());
        }
        // The subnetwork's id, as the plan names it.
        let link = instance["networkInterfaces"][0]["subnetwork"].as_str();
        let network = match (&config.network, link) {
            (Some(id), Some(link)) => {
                let sub = self.subnetwork(id).await?;
                let same = sub["selfLink"].as_str().map(last_segment) == Some(last_segment(link));
                Some(if same {
                    id.clone()
                } else {
                    last_segment(link).to_string()
                })
            }
            _ => None,
        };
        Ok(crate::configure::checks(config, &found(instance, network)))
    }

    /// The subnetwork with this id (the plan's network choice).
    pub(super) async fn subnetwork(&self, id: &str) -> Result<Value, CloudError> {
        let all = self
            .client
            .aggregated("aggregated/subnetworks", "subnetworks")
            .await?;
        all.into_iter()
            .find(|s| {
                super::client::int64(&s["id"])
                    .map(|n| n.to_string())
                    .as_deref()
                    == Some(id)
            })
            .ok_or_else(|| CloudError::NotFound(format!("subnetwork {id}")))
    }

    /// The network a firewall of the plan belongs to: its subnetwork's, or
    /// the profile's.
    async fn firewall_network(&self, subnetwork: Option<&str>) -> Result<String, CloudError> {
        match subnetwork {
            Some(id) => {
                let s = self.subnetwork(id).await?;
                let link = s["network"].as_str().unwrap_or_default();
                Ok(format!("global/networks/{}", last_segment(link)))
            }
            None => Ok(format!("global/networks/{}", self.network)),
        }
    }

    /// Creates the firewall rules of one rule set (or finds those this plan
    /// made); returns the network tag that applies them to an instance.
    pub(super) async fn create_firewall(
        &self,
        cap: &Capability,
        name: &str,
        subnetwork: Option<&str>,
        rules: &[Rule],
        source: &str,
    ) -> Result<String, CloudError> {
        let tag = network_tag(name, &cap.tag().1);
        let network = self.firewall_network(subnetwork).await?;
        let ours = marker(cap);
        let description = format!("{ours} from {source}");
        for body in firewall_bodies(&tag, &network, rules, &description)? {
            let fw_name = body["name"].as_str().unwrap_or_default().to_string();
            match self
                .client
                .get(&format!("global/firewalls/{fw_name}"))
                .await
            {
                Ok(existing) => {
                    let mine = existing["description"]
                        .as_str()
                        .is_some_and(|d| d.split_whitespace().any(|w| w == ours));
                    if mine {
                        continue;
                    }
                    return Err(CloudError::Permanent(format!(
                        "firewall rule '{fw_name}' already exists and was not created by this plan"
                    )));
                }
                Err(CloudError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            let op = self.client.post("global/firewalls", &body).await?;
            self.client.wait(op).await?;
        }
        Ok(tag)
    }

    /// This plan's firewall rules (by description), as `(name, tag)`.
    async fn plan_firewalls(&self, ours: &str) -> Result<Vec<(String, String)>, CloudError> {
        let all = self.client.list_all("global/firewalls").await?;
        Ok(all
            .iter()
            .filter(|f| {
                f["description"]
                    .as_str()
                    .is_some_and(|d| d.split_whitespace().any(|w| w == ours))
            })
            .filter_map(|f| {
                Some((
                    f["name"].as_str()?.to_string(),
                    f["targetTags"][0].as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// Removes every firewall rule this plan made for the network tag `tag`.
    pub(super) async fn remove_firewall(
        &self,
        cap: &Capability,
        tag: &str,
    ) -> Result<(), CloudError> {
        for (name, _) in self
            .plan_firewalls(&marker(cap))
            .await?
            .into_iter()
            .filter(|(_, t)| t == tag)
        {
            match self
                .client
                .delete(&format!("global/firewalls/{name}"))
                .await
            {
                Ok(op) if op.is_object() => {
                    self.client.wait(op).await?;
                }
                Ok(_) | Err(CloudError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The firewalls (one per network tag) the plan whose tag is `plan`
    /// made, found by their description.
    pub async fn firewall_leftovers(
        &self,
        plan: &(String, String),
    ) -> Result<Vec<CreatedResource>, CloudError> {
        let ours = format!("{}={}", plan.0, plan.1);
        let mut tags: Vec<String> = self
            .plan_firewalls(&ours)
            .await?
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags
            .into_iter()
            .map(|id| CreatedResource {
                cloud: self.name.clone(),
                kind: ResourceKind::Firewall,
                id,
                temporary: false,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::config::PortRange;

    fn rule(direction: Direction, protocol: &str, ports: Option<(u16, u16)>, peer: Peer) -> Rule {
        Rule {
            direction,
            protocol: protocol.into(),
            ports: ports.map(|(from, to)| PortRange { from, to }),
            peer,
            description: None,
        }
    }

    #[test]
    fn a_rule_set_becomes_one_firewall_per_direction_and_peer() {
        let any = || Peer::Cidr("0.0.0.0/0".into());
        let rules = vec![
            rule(Direction::In, "tcp", Some((22, 22)), any()),
            rule(Direction::In, "tcp", Some((8000, 9000)), any()),
            rule(Direction::In, "udp", None, Peer::Cidr("10.0.0.0/8".into())),
            rule(Direction::In, "icmp", None, Peer::Tag("lb".into())),
            rule(Direction::Out, "all", None, any()),
        ];
        let bodies = firewall_bodies(
            "web",
            "global/networks/default",
            &rules,
            "altishift:plan=abc",
        )
        .unwrap();
        assert_eq!(bodies.len(), 4);
        assert_eq!(bodies[0]["name"], "web-0");
        assert_eq!(
            bodies[0]["allowed"],
            json!([{"IPProtocol": "tcp", "ports": ["22"]}, {"IPProtocol": "tcp", "ports": ["8000-9000"]}])
        );
        assert_eq!(bodies[0]["sourceRanges"], json!(["0.0.0.0/0"]));
        assert_eq!(bodies[0]["targetTags"], json!(["web"]));
        assert_eq!(bodies[1]["sourceRanges"], json!(["10.0.0.0/8"]));
        assert_eq!(bodies[1]["allowed"], json!([{"IPProtocol": "udp"}]));
        assert_eq!(bodies[2]["sourceTags"], json!(["lb"]));
        assert_eq!(bodies[3]["direction"], "EGRESS");
        assert_eq!(bodies[3]["destinationRanges"], json!(["0.0.0.0/0"]));
        assert!(bodies[3].get("sourceRanges").is_none());
        let sa = vec![rule(
            Direction::In,
            "tcp",
            None,
            Peer::ServiceAccount("a@b".into()),
        )];
        assert!(firewall_bodies("web", "n", &sa, "d").is_err());
    }

    #[test]
    fn names_keys_and_instance_parts() {
        assert_eq!(rfc1035("Web_Servers", 63), "web-servers");
        assert_eq!(rfc1035("9lives", 63), "x-9lives");
        assert_eq!(network_tag("Web", "ab12cd34"), "web-ab12cd34");
        assert_eq!(network_tag("web", "544b0370"), "web-544b0370");
        assert_eq!(
            key_line("Ops", "ssh-ed25519 AAAA ops@lab\n"),
            "ops:ssh-ed25519 AAAA ops@lab"
        );
        let config = DeployConfig {
            firewalls: vec!["web".into()],
            ssh_keys: vec!["ops:ssh-ed25519 AAAA ops@lab".into()],
            user_data: Some("#cloud-config\n".into()),
            public_ip: Some(true),
            ..DeployConfig::default()
        };
        let mut body = json!({"networkInterfaces": [{"network": "global/networks/default"}]});
        instance_parts(&config, &mut body);
        assert_eq!(body["tags"]["items"], json!(["web"]));
        assert_eq!(body["metadata"]["items"][0]["key"], "ssh-keys");
        assert_eq!(body["metadata"]["items"][1]["value"], "#cloud-config\n");
        assert_eq!(
            body["networkInterfaces"][0]["accessConfigs"][0]["type"],
            "ONE_TO_ONE_NAT"
        );
        let got = found(&body, None);
        assert_eq!(got.firewalls, vec!["web"]);
        assert_eq!(got.ssh_keys, config.ssh_keys);
        assert_eq!(got.user_data, Some(config.user_data.clone()));
        assert_eq!(got.public_ip, Some(true));
    }
}
