//! What an approval covers beyond the plan file: the configured clouds.
//!
//! A plan names clouds (`lab-west`, `prod`); the config says what those names
//! mean (a folder, an endpoint, a bucket, a host, the power-off command run as
//! root). At plan time every such setting — never a secret — is recorded in
//! the plan, so the hash the operator approves covers it. At approve and at
//! apply the settings are read again from the live config and the
//! jurisdictions and cross-border flag are derived again from the connected
//! clouds: a plan whose clouds changed, or whose safety facts were edited, is
//! refused with the setting that differs.

use super::Plan;
use super::build::{Side, crosses_border};
use crate::config::{CloudTable, Config};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The settings of one configured cloud that decide where data goes or what
/// runs, as `key = value` text (lists as JSON). Never holds a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CloudFingerprint(pub BTreeMap<String, String>);

/// Profile keys that hold where a secret comes from: the secret itself never
/// reaches a plan, and which variable holds it does not decide where data goes
/// (the account it unlocks is recorded as `account` when the provider says).
const SECRET_KEYS: [&str; 3] = ["api_key", "secret_key", "token"];
/// Tuning that changes speed only.
const TUNING_KEYS: [&str; 1] = ["in_flight"];
/// Keys that hold a path relative to the config file: recorded resolved, so
/// moving the config or pointing a name elsewhere is seen.
const PATH_KEYS: [&str; 3] = ["path", "credentials_file", "worker_ssh_public_key"];

impl CloudFingerprint {
    /// The fingerprint of `[clouds.NAME]` in `config`, from its keys as
    /// written (the cloud crate has checked them against the provider's
    /// profile). Every key is covered except secrets and tuning, so a key
    /// added to profiles later is covered without anyone remembering to
    /// list it.
    pub fn of_table(config: &Config, table: &CloudTable) -> CloudFingerprint {
        let mut settings = BTreeMap::new();
        let value = serde_json::to_value(table.values()).unwrap_or_default();
        let Some(fields) = value.as_object() else {
            return CloudFingerprint(settings);
        };
        for (key, value) in fields {
            if SECRET_KEYS.contains(&key.as_str()) || TUNING_KEYS.contains(&key.as_str()) {
                continue;
            }
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) if PATH_KEYS.contains(&key.as_str()) => {
                    resolved_path(config, s)
                }
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            settings.insert(key.clone(), text);
        }
        CloudFingerprint(settings)
    }

    /// The fingerprint of the named cloud of `config`, with the account the
    /// connected provider reports (when it reports one).
    pub fn of_cloud(
        config: &Config,
        name: &str,
        account: Option<String>,
    ) -> Result<CloudFingerprint, crate::config::ConfigError> {
        let mut print = CloudFingerprint::of_table(config, config.cloud(name)?);
        if let Some(account) = account {
            print.0.insert("account".into(), account);
        }
        Ok(print)
    }
}

/// A path as the config resolves it, through symlinks when it exists.
fn resolved_path(config: &Config, text: &str) -> String {
    let path = config.resolve(std::path::Path::new(text));
    let path = std::path::absolute(&path).unwrap_or(path);
    std::fs::canonicalize(&path)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The clouds as configured and connected now.
pub struct Live<'a> {
    pub source: Side<'a>,
    pub target: Side<'a>,
    /// Fingerprint per cloud name, from the live config.
    pub fingerprints: BTreeMap<String, CloudFingerprint>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error(
        "the plan records no settings for cloud '{cloud}' (made by an older altishift, or edited): make a new plan"
    )]
    NoFingerprint { cloud: String },
    #[error(
        "the plan records settings for '{cloud}', which it does not migrate between: make a new plan"
    )]
    ExtraFingerprint { cloud: String },
    #[error(
        "[clouds.{cloud}] '{key}' changed since the plan was made (planned {planned}, now {now}): review the config, then make and approve a new plan"
    )]
    SettingChanged {
        cloud: String,
        key: String,
        planned: String,
        now: String,
    },
    #[error("the plan says the {side} is '{planned}', but it is '{now}': make a new plan")]
    SideChanged {
        side: &'static str,
        planned: String,
        now: String,
    },
    #[error(
        "the plan's {side} jurisdiction is '{planned}', but the configured clouds put it in '{derived}': the plan was edited or the config changed — make a new plan"
    )]
    Jurisdiction {
        side: &'static str,
        planned: String,
        derived: String,
    },
    #[error(
        "the plan's cross-border section does not match the clouds: data moves from {from} to {to}{what} — make a new plan"
    )]
    CrossBorder {
        from: String,
        to: String,
        what: &'static str,
    },
    #[error("instance '{instance}' is no longer in cloud '{cloud}': make a new plan")]
    InstanceGone { instance: String, cloud: String },
}

/// Shown around a value in an error: `'x'`, or `(unset)`.
fn shown(value: Option<&String>) -> String {
    value.map_or_else(|| "(unset)".to_string(), |v| format!("'{v}'"))
}

/// Compares what the plan recorded with the live clouds. Ok means: the same
/// providers behind the same names with the same settings, and the plan's
/// jurisdictions and cross-border flag are what the clouds say today.
pub fn check(plan: &Plan, live: &Live) -> Result<(), TrustError> {
    for (side, planned, now) in [
        ("source cloud", &plan.source.cloud, live.source.cloud),
        ("target cloud", &plan.target.cloud, live.target.cloud),
        (
            "source provider",
            &plan.source.provider,
            &live.source.provider,
        ),
        (
            "target provider",
            &plan.target.provider,
            &live.target.provider,
        ),
    ] {
        if planned != now {
            return Err(TrustError::SideChanged {
                side,
                planned: planned.clone(),
                now: now.to_string(),
            });
        }
    }
    check_fingerprints(plan, live)?;
    let (source_j, target_j) = derive_jurisdictions(plan, &live.source, &live.target)?;
    for (side, planned, derived) in [
        ("source", &plan.source.jurisdiction, &source_j),
        ("target", &plan.target.jurisdiction, &target_j),
    ] {
        if planned != derived {
            return Err(TrustError::Jurisdiction {
                side,
                planned: planned.clone(),
                derived: derived.clone(),
            });
        }
    }
    let crosses = crosses_border(&source_j, &target_j);
    let recorded = plan
        .cross_border
        .as_ref()
        .map(|c| (c.from.as_str(), c.to.as_str()));
    let agrees = match recorded {
        Some((from, to)) => crosses && from == source_j && to == target_j,
        None => !crosses,
    };
    if !agrees {
        return Err(TrustError::CrossBorder {
            from: source_j,
            to: target_j,
            what: if crosses {
                ", which crosses a border the approval must acknowledge"
            } else {
                ", which crosses no border"
            },
        });
    }
    Ok(())
}

fn check_fingerprints(plan: &Plan, live: &Live) -> Result<(), TrustError> {
    let wanted = [live.source.cloud, live.target.cloud];
    if let Some(extra) = plan.clouds.keys().find(|c| !wanted.contains(&c.as_str())) {
        return Err(TrustError::ExtraFingerprint {
            cloud: extra.clone(),
        });
    }
    for cloud in wanted {
        let planned = plan
            .clouds
            .get(cloud)
            .ok_or_else(|| TrustError::NoFingerprint {
                cloud: cloud.to_string(),
            })?;
        let empty = CloudFingerprint::default();
        let now = live.fingerprints.get(cloud).unwrap_or(&empty);
        let keys: std::collections::BTreeSet<&String> =
            planned.0.keys().chain(now.0.keys()).collect();
        for key in keys {
            let (was, is) = (planned.0.get(key), now.0.get(key));
            if was != is {
                return Err(TrustError::SettingChanged {
                    cloud: cloud.to_string(),
                    key: key.clone(),
                    planned: shown(was),
                    now: shown(is),
                });
            }
        }
    }
    Ok(())
}

/// The source and target jurisdictions of the plan's items, derived from the
/// clouds (profile jurisdiction, else the region's), joined with `+` when
/// items differ — the same rule the plan builder uses.
pub fn derive_jurisdictions(
    plan: &Plan,
    source: &Side,
    target: &Side,
) -> Result<(String, String), TrustError> {
    let mut sources = Vec::new();
    let mut targets = Vec::new();
    for item in &plan.items {
        let instance = source
            .inventory
            .instance(&item.instance_id)
            .ok_or_else(|| TrustError::InstanceGone {
                instance: item.instance_name.clone(),
                cloud: source.cloud.to_string(),
            })?;
        sources.push(source.jurisdiction_of(&instance.region));
        targets.push(target.jurisdiction_of(&item.target_region));
    }
    let join = |mut list: Vec<String>| {
        list.sort();
        list.dedup();
        list.join("+")
    };
    Ok((join(sources), join(targets)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint is what approved plans hold: for a profile that did
    /// not change it must stay exactly this (strings as written, lists as
    /// JSON, paths resolved, secrets and tuning left out), whatever provider
    /// the table names.
    #[test]
    fn a_fingerprint_holds_every_setting_but_secrets_and_tuning() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "[clouds.c]\nprovider = \"example\"\npath = \"data\"\nendpoint = \"https://x\"\n\
             insecure_endpoint = false\nssh_options = [\"-F\", \"cfg\"]\napi_key = \"env:K\"\n\
             secret_key = \"prompt\"\ntoken = \"prompt\"\nin_flight = 8\nsudo = true\n",
        )
        .unwrap();
        let config = Config::load(&file).unwrap();
        let print = CloudFingerprint::of_cloud(&config, "c", Some("1234".into())).unwrap();
        let data = dir.path().join("data").display().to_string();
        let wanted: BTreeMap<String, String> = [
            ("account", "1234"),
            ("endpoint", "https://x"),
            ("insecure_endpoint", "false"),
            ("path", data.as_str()),
            ("provider", "example"),
            ("ssh_options", "[\"-F\",\"cfg\"]"),
            ("sudo", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(print.0, wanted);
    }
}
