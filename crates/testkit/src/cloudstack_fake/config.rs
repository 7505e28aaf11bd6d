//! Security groups, key pairs, tags and user data of the CloudStack fake,
//! as the API reference states them (listSecurityGroups_default.json is the
//! recorded shape of a group and its rules):
//! - createSecurityGroup (sync): `name` required, unique in the account;
//!   answers `securitygroup` with empty `ingressrule`/`egressrule`/`tags`;
//! - authorizeSecurityGroupIngress/Egress (async): `securitygroupid`;
//!   `protocol` tcp, udp, icmp, all or a number; tcp/udp take `startport`
//!   and `endport`, icmp `icmptype` and `icmpcode` (-1: any); the peer is
//!   `cidrlist` or `usersecuritygrouplist[0].account`/`.group`;
//! - deleteSecurityGroup (sync) refuses a group a VM still uses;
//! - registerSSHKeyPair (sync): `name`, `publickey`; a name taken or a key
//!   that is not `ssh-<type> <base64>` is refused (431, as recorded in
//!   registerSSHKeyPair_error.json); listSSHKeyPairs/deleteSSHKeyPair;
//! - createTags (async): `resourceids`, `resourcetype` (UserVm,
//!   SecurityGroup…), `tags[n].key`/`.value`;
//! - deployVirtualMachine takes `securitygroupids`, `keypairs` (or
//!   `keypair`) and base64 `userdata` (at most 32 KB decoded);
//!   getVirtualMachineUserData gives it back.

use super::api::{need, new_job, not_found};
use super::{JobOutcome, State};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;

type Answer = Result<Value, (u16, String)>;

/// What a deployed VM was given besides its disks.
#[derive(Debug, Clone, Default)]
pub struct VmConfig {
    pub groups: Vec<String>,
    pub keypairs: Vec<String>,
    pub userdata: Option<String>,
    pub tags: Vec<(String, String)>,
}

fn invalid(text: String) -> (u16, String) {
    (431, text)
}

fn indexed(p: &BTreeMap<String, String>, prefix: &str, field: &str) -> Vec<String> {
    (0..)
        .map_while(|i| p.get(&format!("{prefix}[{i}].{field}")).cloned())
        .collect()
}

fn authorize(s: &mut State, command: &str, p: &BTreeMap<String, String>, key: &str) -> Answer {
    let id = need(p, "securitygroupid", command)?.clone();
    let Some(at) = s.sec_groups.iter().position(|g| g["id"] == id.as_str()) else {
        return Err(not_found("security group", &id));
    };
    let protocol = p.get("protocol").cloned().unwrap_or_else(|| "tcp".into());
    let known = matches!(protocol.as_str(), "tcp" | "udp" | "icmp" | "all")
        || protocol.parse::<u8>().is_ok();
    if !known {
        return Err(invalid(format!("Invalid protocol {protocol}")));
    }
    let mut rule = json!({"ruleid": format!("rule-{}", s.new_id()), "protocol": protocol});
    match protocol.as_str() {
        "tcp" | "udp" => {
            let port = |k: &str| p.get(k).and_then(|v| v.parse::<u16>().ok());
            let (Some(from), Some(to)) = (port("startport"), port("endport")) else {
                return Err(invalid(
                    "Start port and end port are required for tcp and udp".into(),
                ));
            };
            if from > to || from == 0 {
                return Err(invalid(format!("Invalid port range {from}-{to}")));
            }
            rule["startport"] = from.into();
            rule["endport"] = to.into();
        }
        "icmp" => {
            let code = |k: &str| p.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(-1);
            rule["icmptype"] = code("icmptype").into();
            rule["icmpcode"] = code("icmpcode").into();
        }
        _ => {}
    }
    let groups = indexed(p, "usersecuritygrouplist", "group");
    match (p.get("cidrlist"), groups.first()) {
        (Some(cidr), _) => rule["cidr"] = cidr.clone().into(),
        (None, Some(group)) => {
            let account = indexed(p, "usersecuritygrouplist", "account");
            if !s.sec_groups.iter().any(|g| g["name"] == group.as_str()) {
                return Err(not_found("security group", group));
            }
            rule["securitygroupname"] = group.clone().into();
            rule["account"] = account.first().cloned().unwrap_or_default().into();
        }
        (None, None) => rule["cidr"] = "0.0.0.0/0".into(),
    }
    s.sec_groups[at][key]
        .as_array_mut()
        .expect("rule list")
        .push(rule);
    let result = json!({"securitygroup": s.sec_groups[at].clone()});
    let job = new_job(s, command, JobOutcome::Done(result));
    Ok(json!({"jobid": job}))
}

fn key_ok(key: &str) -> bool {
    let mut words = key.split_whitespace();
    let kind = words.next().unwrap_or_default();
    let body = words.next().unwrap_or_default();
    (kind.starts_with("ssh-") || kind.starts_with("ecdsa-"))
        && base64::engine::general_purpose::STANDARD
            .decode(body)
            .is_ok_and(|b| !b.is_empty())
}

/// The configuration commands; None for every other command.
pub fn mutate(s: &mut State, command: &str, p: &BTreeMap<String, String>) -> Option<Answer> {
    Some(match command {
        "createsecuritygroup" => (|| {
            let name = need(p, "name", command)?.clone();
            if s.sec_groups.iter().any(|g| g["name"] == name.as_str()) {
                return Err(invalid(format!(
                    "Unable to create security group, a group with name {name} already exists."
                )));
            }
            let group = json!({
                "id": format!("sg-{}", s.new_id()), "name": name,
                "description": p.get("description").cloned().unwrap_or_default(),
                "account": "admin", "domainid": "ab53d864", "domain": "ROOT",
                "ingressrule": [], "egressrule": [], "tags": [],
            });
            s.sec_groups.push(group.clone());
            Ok(json!({"securitygroup": group}))
        })(),
        "authorizesecuritygroupingress" => authorize(s, command, p, "ingressrule"),
        "authorizesecuritygroupegress" => authorize(s, command, p, "egressrule"),
        "deletesecuritygroup" => (|| {
            let id = need(p, "id", command)?.clone();
            if s.vm_config.values().any(|c| c.groups.contains(&id)) {
                return Err(invalid(format!(
                    "Cannot delete security group {id}: it is in use"
                )));
            }
            let before = s.sec_groups.len();
            s.sec_groups.retain(|g| g["id"] != id.as_str());
            if before == s.sec_groups.len() {
                return Err(not_found("security group", &id));
            }
            Ok(json!({"success": true}))
        })(),
        "registersshkeypair" => (|| {
            let name = need(p, "name", command)?.clone();
            let key = need(p, "publickey", command)?.clone();
            if !key_ok(&key) {
                return Err(invalid("Public key is invalid".into()));
            }
            if s.keypairs.iter().any(|k| k["name"] == name.as_str()) {
                return Err(invalid(format!(
                    "A key pair with name '{name}' already exists."
                )));
            }
            let pair = json!({"name": name, "fingerprint": format!("4a:{:02x}:de", s.keypairs.len()),
                "publickey": key});
            s.keypairs.push(pair.clone());
            Ok(json!({"keypair": {"name": pair["name"], "fingerprint": pair["fingerprint"]}}))
        })(),
        "deletesshkeypair" => (|| {
            let name = need(p, "name", command)?.clone();
            let before = s.keypairs.len();
            s.keypairs.retain(|k| k["name"] != name.as_str());
            if before == s.keypairs.len() {
                return Err(not_found("key pair", &name));
            }
            Ok(json!({"success": true}))
        })(),
        "createtags" => (|| {
            let kind = need(p, "resourcetype", command)?.clone();
            let ids = need(p, "resourceids", command)?.clone();
            let keys = indexed(p, "tags", "key");
            let values = indexed(p, "tags", "value");
            let tags: Vec<(String, String)> = keys.into_iter().zip(values).collect();
            for id in ids.split(',') {
                match kind.as_str() {
                    "SecurityGroup" => {
                        let g = s
                            .sec_groups
                            .iter_mut()
                            .find(|g| g["id"] == id)
                            .ok_or_else(|| not_found("security group", id))?;
                        for (k, v) in &tags {
                            g["tags"].as_array_mut().expect("tags").push(json!({
                                "key": k, "value": v, "resourcetype": "SecurityGroup", "resourceid": id}));
                        }
                    }
                    "UserVm" => {
                        if !s.vms.iter().any(|v| v.id == id) {
                            return Err(not_found("vm", id));
                        }
                        let c = s.vm_config.entry(id.to_string()).or_default();
                        c.tags.extend(tags.iter().cloned());
                    }
                    other => return Err(invalid(format!("Unsupported resource type {other}"))),
                }
            }
            let job = new_job(s, command, JobOutcome::Done(json!({"success": true})));
            Ok(json!({"jobid": job}))
        })(),
        _ => return None,
    })
}

pub fn list(s: &State, command: &str, p: &BTreeMap<String, String>) -> Option<Answer> {
    Some(match command {
        "listsecuritygroups" => {
            let items = s
                .sec_groups
                .iter()
                .filter(|g| {
                    p.get("securitygroupname")
                        .is_none_or(|n| g["name"] == n.as_str())
                })
                .filter(|g| p.get("id").is_none_or(|id| g["id"] == id.as_str()))
                .cloned()
                .collect();
            super::api::page(items, p, "securitygroup")
        }
        "listsshkeypairs" => {
            let items = s
                .keypairs
                .iter()
                .filter(|k| p.get("name").is_none_or(|n| k["name"] == n.as_str()))
                .map(|k| json!({"name": k["name"], "fingerprint": k["fingerprint"]}))
                .collect();
            super::api::page(items, p, "sshkeypair")
        }
        "getvirtualmachineuserdata" => (|| {
            let id = need(p, "virtualmachineid", command)?.clone();
            if !s.vms.iter().any(|v| v.id == id) {
                return Err(not_found("vm", &id));
            }
            let data = s.vm_config.get(&id).and_then(|c| c.userdata.clone());
            Ok(
                json!({"virtualmachineuserdata": {"virtualmachineid": id, "userdata": data.unwrap_or_default()}}),
            )
        })(),
        _ => return None,
    })
}

/// The configuration parameters of deployVirtualMachine, checked.
pub fn deploy_config(s: &State, p: &BTreeMap<String, String>) -> Result<VmConfig, (u16, String)> {
    let mut c = VmConfig::default();
    for id in p
        .get("securitygroupids")
        .into_iter()
        .flat_map(|v| v.split(','))
    {
        if !s.sec_groups.iter().any(|g| g["id"] == id) {
            return Err(not_found("security group", id));
        }
        c.groups.push(id.to_string());
    }
    for name in p
        .get("keypairs")
        .or(p.get("keypair"))
        .into_iter()
        .flat_map(|v| v.split(','))
    {
        if !s.keypairs.iter().any(|k| k["name"] == name) {
            return Err(invalid(format!("Unable to find key pair by name {name}")));
        }
        c.keypairs.push(name.to_string());
    }
    if let Some(data) = p.get("userdata") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| invalid("User data is not base64 encoded".into()))?;
        if bytes.len() > 32 * 1024 {
            return Err(invalid("User data is too long".into()));
        }
        c.userdata = Some(data.clone());
    }
    Ok(c)
}

/// The configuration fields of a VM answer.
pub fn vm_fields(s: &State, vm_id: &str, out: &mut Value) {
    let Some(c) = s.vm_config.get(vm_id) else {
        return;
    };
    out["securitygroup"] = c
        .groups
        .iter()
        .filter_map(|id| {
            s.sec_groups
                .iter()
                .find(|g| g["id"] == id.as_str())
                .cloned()
        })
        .collect();
    if !c.keypairs.is_empty() {
        out["keypair"] = c.keypairs.join(",").into();
    }
    out["tags"] = c
        .tags
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v, "resourcetype": "UserVm", "resourceid": vm_id}))
        .collect();
}
