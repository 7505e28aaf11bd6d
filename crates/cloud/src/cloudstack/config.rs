//! Configuration on CloudStack: the plan's firewalls as security groups
//! (`createSecurityGroup`, then `authorizeSecurityGroupIngress`/`Egress`
//! per rule), tagged with the plan (`createTags`); SSH keys registered as
//! key pairs (`registerSSHKeyPair`); the deploy parameters that give a VM
//! its groups, key pairs and base64 `userdata`; and what a VM carries, read
//! back for validation.

use super::client::{Client, id_string};
use super::inventory::text;
use crate::configure::{ConfigObject, DeployConfig, FoundConfig};
use crate::inventory::config::{Direction, Peer, Rule};
use crate::{Capability, CloudError, CreatedResource, ResourceKind};
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;

/// Creates a configuration object of the approved plan; returns its id
/// (a group's id, a key pair's name).
pub async fn create(
    client: &Client,
    cap: &Capability,
    object: &ConfigObject,
) -> Result<String, CloudError> {
    match object {
        ConfigObject::Firewall {
            name,
            rules,
            source,
            ..
        } => create_group(client, cap, name, rules, source).await,
        ConfigObject::SshKey { name, public_key } => register_key(client, name, public_key).await,
    }
}

/// Removes a security group or key pair this run made.
pub async fn remove(client: &Client, kind: ResourceKind, id: &str) -> Result<(), CloudError> {
    match kind {
        ResourceKind::Firewall => remove_group(client, id).await,
        ResourceKind::SshKey => remove_key(client, id).await,
        other => Err(CloudError::Unsupported(format!(
            "{other:?} is not a configuration object"
        ))),
    }
}

fn tags_of(v: &Value) -> BTreeMap<String, String> {
    v.get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| (text(t, "key"), text(t, "value")))
        .collect()
}

fn carries(v: &Value, (key, value): &(String, String)) -> bool {
    tags_of(v).get(key) == Some(value)
}

/// The parameters of one authorize call for `rule` (without the group).
pub fn rule_params(
    rule: &Rule,
    group_account: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, CloudError> {
    let mut p = vec![("protocol".to_string(), rule.protocol.clone())];
    match (rule.protocol.as_str(), rule.ports) {
        ("icmp", Some(t)) => {
            let code = if t.to == u16::MAX {
                "-1".to_string()
            } else {
                t.to.to_string()
            };
            p.push(("icmptype".into(), t.from.to_string()));
            p.push(("icmpcode".into(), code));
        }
        ("icmp", None) => {
            p.push(("icmptype".into(), "-1".into()));
            p.push(("icmpcode".into(), "-1".into()));
        }
        ("tcp" | "udp", ports) => {
            // CloudStack refuses port 0 in a range; no traffic uses it, so
            // a range from 0 (a whole-range rule from elsewhere) starts at 1.
            let (from, to) = ports.map_or((1, 65535), |r| (r.from.max(1), r.to));
            p.push(("startport".into(), from.to_string()));
            p.push(("endport".into(), to.to_string()));
        }
        _ => {}
    }
    match &rule.peer {
        Peer::Cidr(c) => p.push(("cidrlist".into(), c.clone())),
        Peer::Group(g) => {
            let account = group_account(g).ok_or_else(|| {
                CloudError::NotFound(format!("security group '{g}' named by rule '{rule}'"))
            })?;
            p.push(("usersecuritygrouplist[0].account".into(), account));
            p.push(("usersecuritygrouplist[0].group".into(), g.clone()));
        }
        other => {
            return Err(CloudError::Unsupported(format!(
                "a CloudStack security group rule cannot name {other}"
            )));
        }
    }
    Ok(p)
}

async fn group_named(client: &Client, name: &str) -> Result<Option<Value>, CloudError> {
    let found = client
        .list_all(
            "listSecurityGroups",
            "securitygroup",
            &[("securitygroupname", name.to_string())],
        )
        .await?;
    Ok(found.into_iter().find(|g| text(g, "name") == name))
}

fn owned(params: &[(String, String)]) -> Vec<(&str, String)> {
    params
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect()
}

/// Creates a security group with the translated rules, tagged with the
/// plan, or returns the one this plan made before.
pub async fn create_group(
    client: &Client,
    cap: &Capability,
    name: &str,
    rules: &[Rule],
    source: &str,
) -> Result<String, CloudError> {
    let plan = cap.tag();
    if let Some(g) = group_named(client, name).await? {
        return if carries(&g, &plan) {
            Ok(text(&g, "id"))
        } else {
            Err(CloudError::Permanent(format!(
                "security group '{name}' already exists and was not created by this plan"
            )))
        };
    }
    // Every group rule's account, looked up before anything is made.
    let mut accounts: BTreeMap<String, String> = BTreeMap::new();
    for rule in rules {
        if let Peer::Group(g) = &rule.peer
            && let Some(found) = group_named(client, g).await?
        {
            accounts.insert(g.clone(), text(&found, "account"));
        }
    }
    let mut calls = Vec::new();
    for rule in rules {
        calls.push((
            rule.direction,
            rule_params(rule, |g| accounts.get(g).cloned())?,
        ));
    }
    let created = client
        .call(
            "createSecurityGroup",
            &[
                ("name", name.to_string()),
                ("description", format!("altishift: from {source}")),
            ],
        )
        .await?;
    let id = created
        .get("securitygroup")
        .and_then(|g| g.get("id"))
        .and_then(id_string)
        .ok_or_else(|| CloudError::Permanent("createSecurityGroup: no group id".into()))?;
    client
        .call_async(
            "createTags",
            &[
                ("resourceids", id.clone()),
                ("resourcetype", "SecurityGroup".into()),
                ("tags[0].key", plan.0.clone()),
                ("tags[0].value", plan.1.clone()),
            ],
        )
        .await?;
    for (direction, params) in calls {
        let mut params = owned(&params);
        params.push(("securitygroupid", id.clone()));
        let command = match direction {
            Direction::In => "authorizeSecurityGroupIngress",
            Direction::Out => "authorizeSecurityGroupEgress",
        };
        client.call_async(command, &params).await?;
    }
    Ok(id)
}

/// Registers a public key as a key pair; its id is its name (deploy takes
/// names). A key pair of that name already there is not ours (key pairs
/// take no tags, so it cannot be told apart): refused.
pub async fn register_key(
    client: &Client,
    name: &str,
    public_key: &str,
) -> Result<String, CloudError> {
    let existing = client
        .list_all(
            "listSSHKeyPairs",
            "sshkeypair",
            &[("name", name.to_string())],
        )
        .await?;
    if existing.iter().any(|k| text(k, "name") == name) {
        return Err(CloudError::Permanent(format!(
            "key pair '{name}' already exists and cannot be told from one this plan registered \
             (CloudStack key pairs take no tags); remove it or rename the source key"
        )));
    }
    client
        .call(
            "registerSSHKeyPair",
            &[
                ("name", name.to_string()),
                ("publickey", public_key.trim().to_string()),
            ],
        )
        .await?;
    Ok(name.to_string())
}

pub async fn remove_group(client: &Client, id: &str) -> Result<(), CloudError> {
    match client
        .call("deleteSecurityGroup", &[("id", id.to_string())])
        .await
    {
        Ok(_) | Err(CloudError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn remove_key(client: &Client, name: &str) -> Result<(), CloudError> {
    match client
        .call("deleteSSHKeyPair", &[("name", name.to_string())])
        .await
    {
        Ok(_) | Err(CloudError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Security groups the plan whose tag is `plan` made.
pub async fn leftovers(
    client: &Client,
    cloud: &str,
    plan: &(String, String),
) -> Result<Vec<CreatedResource>, CloudError> {
    let groups = client
        .list_all("listSecurityGroups", "securitygroup", &[])
        .await?;
    Ok(groups
        .iter()
        .filter(|g| carries(g, plan))
        .map(|g| CreatedResource {
            cloud: cloud.to_string(),
            kind: ResourceKind::Firewall,
            id: text(g, "id"),
            temporary: false,
        })
        .collect())
}

/// The deployVirtualMachine parameters of the plan's configuration.
pub fn deploy_params(config: &DeployConfig) -> Vec<(&'static str, String)> {
    let mut p = Vec::new();
    if !config.firewalls.is_empty() {
        p.push(("securitygroupids", config.firewalls.join(",")));
    }
    if !config.ssh_keys.is_empty() {
        p.push(("keypairs", config.ssh_keys.join(",")));
    }
    if let Some(data) = &config.user_data {
        p.push((
            "userdata",
            base64::engine::general_purpose::STANDARD.encode(data.as_bytes()),
        ));
    }
    if let Some(network) = &config.network {
        p.push(("networkids", network.clone()));
    }
    p
}

/// Tags the VM with the plan's tags (`createTags`, resource type UserVm).
pub async fn tag_vm(
    client: &Client,
    vm: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), CloudError> {
    if tags.is_empty() {
        return Ok(());
    }
    let mut params = vec![
        ("resourceids".to_string(), vm.to_string()),
        ("resourcetype".to_string(), "UserVm".to_string()),
    ];
    for (i, (k, v)) in tags.iter().enumerate() {
        params.push((format!("tags[{i}].key"), k.clone()));
        params.push((format!("tags[{i}].value"), v.clone()));
    }
    client.call_async("createTags", &owned(&params)).await?;
    Ok(())
}

/// Validation of the plan's configuration on a VM (its list answer).
pub async fn checks(
    client: &Client,
    vm: &Value,
    config: &DeployConfig,
) -> Result<Vec<crate::Check>, CloudError> {
    if config.is_empty() {
        return Ok(Vec::new());
    }
    let found = found(client, vm).await?;
    Ok(crate::configure::checks(config, &found))
}

/// What a VM carries (listVirtualMachines answer; userdata from
/// getVirtualMachineUserData).
pub async fn found(client: &Client, vm: &Value) -> Result<FoundConfig, CloudError> {
    let id = text(vm, "id");
    let data = client
        .call("getVirtualMachineUserData", &[("virtualmachineid", id)])
        .await?;
    let encoded = data
        .get("virtualmachineuserdata")
        .map(|u| text(u, "userdata"))
        .unwrap_or_default();
    let user_data = if encoded.is_empty() {
        None
    } else {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| CloudError::Permanent(format!("getVirtualMachineUserData: {e}")))?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    let nic = vm
        .get("nic")
        .and_then(Value::as_array)
        .and_then(|n| n.first())
        .cloned()
        .unwrap_or(Value::Null);
    Ok(FoundConfig {
        network: Some(text(&nic, "networkid")).filter(|n| !n.is_empty()),
        public_ip: None,
        firewalls: vm
            .get("securitygroup")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|g| text(g, "id"))
            .collect(),
        ssh_keys: text(vm, "keypair")
            .split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect(),
        user_data: Some(user_data),
        tags: tags_of(vm),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::config::PortRange;

    fn rule(protocol: &str, ports: Option<(u16, u16)>, peer: Peer) -> Rule {
        Rule {
            direction: Direction::In,
            protocol: protocol.into(),
            ports: ports.map(|(from, to)| PortRange { from, to }),
            peer,
            description: None,
        }
    }

    #[test]
    fn rules_become_authorize_parameters() {
        let any = || Peer::Cidr("0.0.0.0/0".into());
        let none = |_: &str| None;
        let p = rule_params(&rule("tcp", Some((22, 22)), any()), none).unwrap();
        assert_eq!(
            p,
            vec![
                ("protocol".to_string(), "tcp".to_string()),
                ("startport".into(), "22".into()),
                ("endport".into(), "22".into()),
                ("cidrlist".into(), "0.0.0.0/0".into()),
            ]
        );
        // CloudStack refuses a range from port 0 (errorcode 431).
        let p = rule_params(&rule("udp", Some((0, 1024)), any()), none).unwrap();
        assert!(p.contains(&("startport".into(), "1".into())), "{p:?}");
        let p = rule_params(&rule("icmp", Some((8, u16::MAX)), any()), none).unwrap();
        assert!(p.contains(&("icmptype".into(), "8".into())));
        assert!(p.contains(&("icmpcode".into(), "-1".into())));
        let group = rule("tcp", Some((8080, 8080)), Peer::Group("web".into()));
        assert!(rule_params(&group, none).is_err());
        let p = rule_params(&group, |_| Some("admin".into())).unwrap();
        assert!(p.contains(&("usersecuritygrouplist[0].group".into(), "web".into())));
        let config = DeployConfig {
            firewalls: vec!["sg-1".into(), "sg-2".into()],
            ssh_keys: vec!["ops".into()],
            user_data: Some("#cloud-config\n".into()),
            ..DeployConfig::default()
        };
        let d = deploy_params(&config);
        assert_eq!(d[0], ("securitygroupids", "sg-1,sg-2".to_string()));
        assert_eq!(d[2].1, "I2Nsb3VkLWNvbmZpZwo=");
    }
}
