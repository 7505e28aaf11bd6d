//! The plan's configuration objects (firewalls, SSH keys) on the target:
//! created once per plan before any instance, only as the approved actions
//! list them, journaled (`config/…` keys) so a re-run reuses them; and each
//! instance's [`DeployConfig`] naming what was created.

use super::Run;
use super::wrap_up::kind_label;
use crate::cloud::configure::{ConfigObject, DeployConfig};
use crate::cloud::{CloudError, CreatedResource, ResourceKind};
use crate::journal::{self, Record};
use crate::pipeline::TransferError;
use crate::plan::PlanItem;
use crate::plan::config_text::object_action;
use crate::plan::configuration::{Object, objects};
use crate::report::{CleanupReport, CreatedReport};
use crate::{EngineError, Event, Level};
use std::collections::BTreeMap;

impl Run {
    /// Creates every firewall and key of the plan not created yet.
    pub(super) async fn create_configuration(&self) -> Result<(), EngineError> {
        let plan = self.approved.plan();
        let made = self.configuration_ids()?;
        let target = &*self.target;
        let tell = |key: &str, kind: ResourceKind, id: &str, state: &str| {
            self.send(Event::Created(CreatedReport {
                kind: kind_label(kind).into(),
                name: key.rsplit('/').next().unwrap_or(key).to_string(),
                id: id.to_string(),
                cloud: target.name().to_string(),
                state: state.into(),
            }));
        };
        for object in objects(plan) {
            let key = object.key();
            let kind = match object {
                Object::Firewall(_) => ResourceKind::Firewall,
                Object::Key(_) => ResourceKind::SshKey,
            };
            if let Some(id) = made.get(&key) {
                tell(&key, kind, id, "reused");
                continue;
            }
            let (verb, resource, _) = object_action(&object);
            let approved = plan
                .actions
                .iter()
                .any(|a| a.verb == verb && a.resource == resource && a.cloud == plan.target.cloud);
            if !approved {
                return Err(EngineError::Preflight(format!(
                    "the approved plan does not list '{verb} {resource}' on {}: nothing was \
                     created; make the plan again and approve it",
                    plan.target.cloud
                )));
            }
            let (request, action) = match object {
                Object::Firewall(f) => (
                    ConfigObject::Firewall {
                        name: f.name.clone(),
                        network: f.network.clone(),
                        rules: f.rules.iter().filter_map(|r| r.target.clone()).collect(),
                        source: format!("{}/{}", plan.source.cloud, f.source),
                    },
                    "create_firewall",
                ),
                Object::Key(k) => (
                    ConfigObject::SshKey {
                        name: k.name.clone(),
                        public_key: k.public_key.clone(),
                    },
                    "import_key",
                ),
            };
            let role = target
                .target_role()
                .map_err(|e| EngineError::Preflight(e.to_string()))?;
            let created = self
                .audited_create(
                    target,
                    action,
                    &resource,
                    role.create_config_object(&self.cap, &request),
                    |id: &String| {
                        self.journal.append_durable(&Record::Created {
                            disk: Some(key.clone()),
                            resource: CreatedResource {
                                cloud: target.name().to_string(),
                                kind,
                                id: id.clone(),
                                temporary: false,
                            },
                        })?;
                        Ok(())
                    },
                )
                .await;
            match created {
                Ok(id) => {
                    self.log(
                        Level::Info,
                        format!("{}: {verb} {resource} → {id}", target.name()),
                    );
                    tell(&key, kind, &id, "created");
                }
                Err(e) => {
                    return Err(EngineError::Preflight(format!(
                        "{verb} {resource} on {}: {e}; no instance was deployed (apply again \
                         resumes and reuses what was created)",
                        target.name()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Cleanup of an abandoned run: removes the firewalls and keys it
    /// created, newest first (a group named by another's rule goes after
    /// it), except those an instance this run deployed (and did not
    /// remove) still uses — they are part of the result, so kept and said.
    pub(super) async fn remove_configuration(&self) -> Result<Vec<CleanupReport>, EngineError> {
        let plan = self.approved.plan();
        let state = journal::replay(self.journal.path())?;
        let live_instances: Vec<&str> = state
            .deployed
            .values()
            .filter(|d| {
                !state
                    .deleted
                    .iter()
                    .any(|r| r.kind == ResourceKind::Instance && r.id == d.id)
            })
            .map(|d| d.id.as_str())
            .collect();
        let users = |key: &str| -> Vec<String> {
            plan.items
                .iter()
                .filter(|item| {
                    state
                        .deployed
                        .get(&item.target_name)
                        .is_some_and(|d| live_instances.contains(&d.id.as_str()))
                })
                .filter(|item| {
                    let c = &item.configuration;
                    c.firewalls
                        .iter()
                        .any(|f| key == format!("config/firewall/{}", f.name))
                        || c.ssh_keys
                            .iter()
                            .any(|k| key == format!("config/key/{}", k.name))
                })
                .map(|item| item.target_name.clone())
                .collect()
        };
        let mut reports = Vec::new();
        let mut made = state.live_resources();
        made.reverse();
        for (key, resource) in made {
            let Some(key) = key.filter(|k| k.starts_with("config/")) else {
                continue;
            };
            let used = users(&key);
            if !used.is_empty() {
                reports.push(CleanupReport {
                    resource: format!("{:?} {}", resource.kind, resource.id).to_lowercase(),
                    cloud: resource.cloud.clone(),
                    outcome: format!("kept: deployed {} use(s) it", used.join(", ")),
                });
                continue;
            }
            reports.push(
                self.remove(
                    &*self.target,
                    &resource,
                    "delete",
                    ("deleted", "NOT deleted"),
                )
                .await?,
            );
        }
        Ok(reports)
    }

    /// `config/…` key → id on the target, of what this run created.
    fn configuration_ids(&self) -> Result<BTreeMap<String, String>, journal::JournalError> {
        let state = journal::replay(self.journal.path())?;
        Ok(state
            .live_resources()
            .into_iter()
            .filter_map(|(key, r)| Some((key.filter(|k| k.starts_with("config/"))?, r.id)))
            .collect())
    }

    /// What the instance is deployed with: the plan's network, address,
    /// tags and user-data, and the ids of the firewalls and keys created.
    pub(super) fn deploy_config(&self, item: &PlanItem) -> Result<DeployConfig, TransferError> {
        let c = &item.configuration;
        let ids = self.configuration_ids()?;
        let id = |key: String| {
            ids.get(&key).cloned().ok_or_else(|| {
                TransferError::Cloud(CloudError::Permanent(format!(
                    "{key} was not created: the instance is not deployed without it"
                )))
            })
        };
        let mut config = DeployConfig {
            network: c.network.as_ref().and_then(|n| n.target.clone()),
            public_ip: c.public_ip,
            user_data: c.user_data.clone(),
            tags: c.target_tags(),
            ..DeployConfig::default()
        };
        for object in objects(self.approved.plan()) {
            let ours = match &object {
                Object::Firewall(f) => c.firewalls.iter().any(|x| x.name == f.name),
                Object::Key(k) => c.ssh_keys.iter().any(|x| x.name == k.name),
            };
            if !ours {
                continue;
            }
            let found = id(object.key())?;
            match object {
                Object::Firewall(_) => config.firewalls.push(found),
                Object::Key(_) => config.ssh_keys.push(found),
            }
        }
        Ok(config)
    }
}
