//! What a target is asked to create for an instance's configuration, and
//! how what it reports back is checked against the plan (validation).

use super::Check;
use crate::inventory::config::Rule;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A configuration object to create before the instances that use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigObject {
    Firewall {
        name: String,
        /// Target network id it belongs in (a security group's VPC is its
        /// subnet's); None: the target's default.
        network: Option<String>,
        /// Translated rules; a `Group` peer names another firewall of the
        /// plan by its target name.
        rules: Vec<Rule>,
        /// Where it came from, for its description.
        source: String,
    },
    SshKey {
        name: String,
        public_key: String,
    },
}

impl ConfigObject {
    pub fn describe(&self) -> String {
        match self {
            ConfigObject::Firewall { name, .. } => format!("firewall '{name}'"),
            ConfigObject::SshKey { name, .. } => format!("ssh key '{name}'"),
        }
    }
}

/// The configuration a deployed instance is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployConfig {
    /// Target network / subnet id; None: the target's default.
    #[serde(default)]
    pub network: Option<String>,
    /// Some: ask for (or refuse) a public address.
    #[serde(default)]
    pub public_ip: Option<bool>,
    /// Ids of the firewalls this run created for the instance.
    #[serde(default)]
    pub firewalls: Vec<String>,
    /// Ids (AWS: key pair names) of the keys this run imported.
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    #[serde(default)]
    pub user_data: Option<String>,
    /// Translated tags (also in [`super::DeploySpec::tags`]), to check.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl DeployConfig {
    pub fn is_empty(&self) -> bool {
        *self == DeployConfig::default()
    }
}

/// What a target reports of a deployed instance's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoundConfig {
    pub network: Option<String>,
    pub public_ip: Option<bool>,
    pub firewalls: Vec<String>,
    pub ssh_keys: Vec<String>,
    /// None: the target did not say (not the same as "no user-data").
    pub user_data: Option<Option<String>>,
    pub tags: BTreeMap<String, String>,
}

/// Checks of what the target reports against what the plan asked for; one
/// per part the plan set.
pub fn checks(wanted: &DeployConfig, found: &FoundConfig) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(network) = &wanted.network {
        out.push(Check::new(
            "network",
            found.network.as_ref() == Some(network),
            format!(
                "{} (plan: {network})",
                found.network.as_deref().unwrap_or("none")
            ),
        ));
    }
    if let Some(public) = wanted.public_ip {
        out.push(Check::new(
            "public address",
            found.public_ip == Some(public),
            format!(
                "{} (plan: {})",
                match found.public_ip {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "not told",
                },
                if public { "yes" } else { "no" }
            ),
        ));
    }
    if !wanted.firewalls.is_empty() {
        let missing: Vec<&String> = wanted
            .firewalls
            .iter()
            .filter(|f| !found.firewalls.contains(f))
            .collect();
        out.push(Check::new(
            "firewalls",
            missing.is_empty(),
            if missing.is_empty() {
                wanted.firewalls.join(", ")
            } else {
                format!("missing {missing:?} (has {:?})", found.firewalls)
            },
        ));
    }
    if !wanted.ssh_keys.is_empty() {
        let missing: Vec<&String> = wanted
            .ssh_keys
            .iter()
            .filter(|k| !found.ssh_keys.contains(k))
            .collect();
        out.push(Check::new(
            "ssh keys",
            missing.is_empty(),
            if missing.is_empty() {
                wanted.ssh_keys.join(", ")
            } else {
                format!("missing {missing:?} (has {:?})", found.ssh_keys)
            },
        ));
    }
    if !wanted.tags.is_empty() {
        let wrong: Vec<String> = wanted
            .tags
            .iter()
            .filter(|(k, v)| found.tags.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push(Check::new(
            "tags",
            wrong.is_empty(),
            if wrong.is_empty() {
                format!("{} tags as planned", wanted.tags.len())
            } else {
                format!("missing or different: {}", wrong.join(", "))
            },
        ));
    }
    if let Some(data) = &wanted.user_data {
        let (passed, detail) = match &found.user_data {
            Some(Some(got)) if got == data => (true, format!("{} bytes as planned", data.len())),
            Some(Some(got)) => (
                false,
                format!("{} bytes, not the planned {}", got.len(), data.len()),
            ),
            Some(None) => (false, "none on the instance".to_string()),
            None => (false, "the target does not report it".to_string()),
        };
        out.push(Check::new("user-data", passed, detail));
    }
    out
}
