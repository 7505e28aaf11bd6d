//! Configuration on DigitalOcean (API v2): the plan's firewalls as cloud
//! firewalls that reach their droplets by tag, SSH keys imported into the
//! account (`POST /v2/account/keys`), and what a droplet carries, read back
//! for validation.
//!
//! A cloud firewall applies to the droplets carrying one of its `tags`:
//! each firewall of a plan gets its own, `altishift-<plan>-<name>`, which
//! the droplet is given at create. That tag also finds the firewall again
//! on a re-run and when cleanup looks for leftovers (cloud firewalls have
//! no labels of their own).

use super::client::DoClient;
use crate::configure::{ConfigObject, FoundConfig};
use crate::inventory::config::{Direction, Peer, Rule};
use crate::{Capability, CloudError, CreatedResource, ResourceKind};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Creates a configuration object of the approved plan; returns its id
/// (a firewall's UUID, a key's number).
pub async fn create(
    client: &DoClient,
    cap: &Capability,
    object: &ConfigObject,
) -> Result<String, CloudError> {
    match object {
        ConfigObject::Firewall { name, rules, .. } => {
            create_firewall(client, cap, name, rules).await
        }
        ConfigObject::SshKey { name, public_key } => import_key(client, name, public_key).await,
    }
}

/// Removes a firewall or key this run made (gone already counts as done).
pub async fn remove(client: &DoClient, kind: ResourceKind, id: &str) -> Result<(), CloudError> {
    match kind {
        ResourceKind::Firewall => client.delete(&format!("/v2/firewalls/{id}")).await,
        ResourceKind::SshKey => client.delete(&format!("/v2/account/keys/{id}")).await,
        other => Err(CloudError::Unsupported(format!(
            "{other:?} is not a configuration object"
        ))),
    }
}

/// Tag names: letters, digits, `:`, `-` and `_`, at most 255 characters.
fn tag_text(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(255);
    out
}

/// The tag that applies the plan's firewall `name` to its droplets.
pub fn firewall_tag(plan: &(String, String), name: &str) -> String {
    tag_text(&format!("altishift-{}-{name}", plan.1))
}

/// Firewall names: an alphanumeric first, then alphanumerics, `.` and `-`.
pub fn firewall_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.insert(0, 'x');
    }
    out
}

/// One plan rule as DigitalOcean rules: `all` becomes tcp, udp and icmp
/// (the plan said so); ports are `"22"`, `"8000-9000"` or `"0"` (every
/// port); ICMP rules take no ports. Returns (inbound?, rule) pairs.
pub fn rules_of(rule: &Rule) -> Result<Vec<(bool, Value)>, CloudError> {
    let inbound = rule.direction == Direction::In;
    let field = if inbound { "sources" } else { "destinations" };
    let who = match &rule.peer {
        Peer::Cidr(c) => json!({"addresses": [c]}),
        Peer::Tag(t) => json!({"tags": [t]}),
        other => {
            return Err(CloudError::Unsupported(format!(
                "a DigitalOcean cloud firewall cannot name {other} ({rule})"
            )));
        }
    };
    let protocols: Vec<&str> = match rule.protocol.as_str() {
        "all" => vec!["tcp", "udp", "icmp"],
        p @ ("tcp" | "udp" | "icmp") => vec![p],
        other => {
            return Err(CloudError::Unsupported(format!(
                "a DigitalOcean cloud firewall takes tcp, udp and icmp, not {other}"
            )));
        }
    };
    Ok(protocols
        .into_iter()
        .map(|protocol| {
            let mut body = json!({"protocol": protocol});
            if protocol != "icmp" {
                body["ports"] = match rule.ports {
                    Some(p) if p.from == p.to => p.from.to_string(),
                    Some(p) => format!("{}-{}", p.from, p.to),
                    None => "0".to_string(),
                }
                .into();
            }
            body[field] = who.clone();
            (inbound, body)
        })
        .collect())
}

/// The `POST /v2/firewalls` body of one plan firewall.
pub fn firewall_body(name: &str, tag: &str, rules: &[Rule]) -> Result<Value, CloudError> {
    let mut inbound = Vec::new();
    let mut outbound = Vec::new();
    for rule in rules {
        for (is_in, body) in rules_of(rule)? {
            if is_in {
                inbound.push(body);
            } else {
                outbound.push(body);
            }
        }
    }
    Ok(json!({
        "name": firewall_name(name),
        "inbound_rules": inbound,
        "outbound_rules": outbound,
        "tags": [tag],
    }))
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn has_tag(v: &Value, tag: &str) -> bool {
    v["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|x| x == tag))
}

/// Creates the cloud firewall (or finds the one this plan made, by its
/// tag); returns its id.
pub async fn create_firewall(
    client: &DoClient,
    cap: &Capability,
    name: &str,
    rules: &[Rule],
) -> Result<String, CloudError> {
    let tag = firewall_tag(&cap.tag(), name);
    let body = firewall_body(name, &tag, rules)?;
    if body["inbound_rules"].as_array().is_some_and(Vec::is_empty)
        && body["outbound_rules"].as_array().is_some_and(Vec::is_empty)
    {
        return Err(CloudError::Unsupported(format!(
            "firewall '{name}' has no rule DigitalOcean can take (a cloud firewall needs one)"
        )));
    }
    let existing = client.list("/v2/firewalls", "firewalls").await?;
    if let Some(id) = existing
        .iter()
        .find(|f| has_tag(f, &tag))
        .and_then(|f| id_text(&f["id"]))
    {
        return Ok(id);
    }
    let created = client.post("/v2/firewalls", &body).await?;
    id_text(&created["firewall"]["id"])
        .ok_or_else(|| CloudError::Permanent("POST /v2/firewalls gave no firewall id".into()))
}

/// The key's type and base64 body, which identify it (the comment does not).
fn key_body(public_key: &str) -> String {
    public_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Imports a public key under `name`, or returns the one imported under
/// that name before. The same key under another name is the account's:
/// DigitalOcean takes a key once, and cleanup would remove it.
pub async fn import_key(
    client: &DoClient,
    name: &str,
    public_key: &str,
) -> Result<String, CloudError> {
    let keys = client.list("/v2/account/keys", "ssh_keys").await?;
    let same = keys
        .iter()
        .find(|k| k["public_key"].as_str().map(key_body) == Some(key_body(public_key)));
    if let Some(k) = same {
        return match (k["name"].as_str(), id_text(&k["id"])) {
            (Some(n), Some(id)) if n == name => Ok(id),
            (n, _) => Err(CloudError::Permanent(format!(
                "ssh key '{name}': the account already holds this public key as '{}' (not imported \
                 by this plan; DigitalOcean takes a key once)",
                n.unwrap_or("?")
            ))),
        };
    }
    let created = client
        .post(
            "/v2/account/keys",
            &json!({"name": name, "public_key": public_key.trim()}),
        )
        .await?;
    id_text(&created["ssh_key"]["id"])
        .ok_or_else(|| CloudError::Permanent("POST /v2/account/keys gave no key id".into()))
}

/// The tags of the firewalls `ids` (what a droplet must carry for them).
pub async fn firewall_tags(client: &DoClient, ids: &[String]) -> Result<Vec<String>, CloudError> {
    let mut tags = Vec::new();
    for id in ids {
        let f = client.get(&format!("/v2/firewalls/{id}")).await?;
        for t in f["firewall"]["tags"].as_array().into_iter().flatten() {
            if let Some(t) = t.as_str() {
                tags.push(t.to_string());
            }
        }
    }
    Ok(tags)
}

/// This plan's firewalls, found by their tag (for cleanup's leftovers).
pub async fn leftovers(
    client: &DoClient,
    cloud: &str,
    plan: &(String, String),
) -> Result<Vec<CreatedResource>, CloudError> {
    let prefix = firewall_tag(plan, "");
    let all = client.list("/v2/firewalls", "firewalls").await?;
    Ok(all
        .iter()
        .filter(|f| {
            f["tags"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|x| x.as_str().is_some_and(|x| x.starts_with(&prefix)))
            })
        })
        .filter_map(|f| id_text(&f["id"]))
        .map(|id| CreatedResource {
            cloud: cloud.to_string(),
            kind: ResourceKind::Firewall,
            id,
            temporary: false,
        })
        .collect())
}

/// What a droplet carries: its VPC, the firewalls that apply to it (by
/// droplet id or tag) and its tags (`key:value` split back). Neither its
/// keys nor its user_data are in the droplet answer.
pub async fn found(client: &DoClient, droplet: &Value) -> Result<FoundConfig, CloudError> {
    let id = id_text(&droplet["id"]).unwrap_or_default();
    let tags: Vec<String> = droplet["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    let firewalls = client
        .list("/v2/firewalls", "firewalls")
        .await?
        .iter()
        .filter(|f| {
            f["droplet_ids"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| id_text(x).as_deref() == Some(id.as_str())))
                || tags.iter().any(|t| has_tag(f, t))
        })
        .filter_map(|f| id_text(&f["id"]))
        .collect();
    Ok(FoundConfig {
        network: droplet["vpc_uuid"].as_str().map(str::to_string),
        public_ip: None,
        firewalls,
        ssh_keys: Vec::new(),
        user_data: None,
        tags: tags
            .iter()
            .map(|t| match t.split_once(':') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (t.clone(), String::new()),
            })
            .collect::<BTreeMap<_, _>>(),
    })
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
    fn rules_take_digitalocean_shapes() {
        let any = || Peer::Cidr("0.0.0.0/0".into());
        let body = firewall_body(
            "web_1",
            "altishift-abc-web_1",
            &[
                rule(Direction::In, "tcp", Some((22, 22)), any()),
                rule(
                    Direction::In,
                    "tcp",
                    Some((8000, 9000)),
                    Peer::Tag("lb".into()),
                ),
                rule(Direction::In, "icmp", None, any()),
                rule(Direction::Out, "all", None, any()),
            ],
        )
        .unwrap();
        assert_eq!(body["name"], "web-1");
        assert_eq!(body["tags"], json!(["altishift-abc-web_1"]));
        assert_eq!(
            body["inbound_rules"],
            json!([
                {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}},
                {"protocol": "tcp", "ports": "8000-9000", "sources": {"tags": ["lb"]}},
                {"protocol": "icmp", "sources": {"addresses": ["0.0.0.0/0"]}},
            ])
        );
        let out = body["outbound_rules"].as_array().unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0]["ports"], "0");
        assert_eq!(
            out[2],
            json!({"protocol": "icmp", "destinations": {"addresses": ["0.0.0.0/0"]}})
        );
        let group = rule(Direction::In, "tcp", None, Peer::Group("db".into()));
        assert!(rules_of(&group).is_err());
        assert_eq!(
            firewall_tag(&("k".into(), "ab12".into()), "a b"),
            "altishift-ab12-a_b"
        );
    }
}
