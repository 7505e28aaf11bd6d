//! CloudStack deployment and removal: deployVirtualMachine from the boot
//! template with the mapped offering, data volumes attached, a half-made VM
//! destroyed on failure; validation probes; deleting what a run created.

use super::inventory::text;
use super::source::{Part, parse_parts, safe};
use super::{CloudStackCloud, download};
use crate::{CloudError, ResourceKind};
use serde_json::Value;

impl CloudStackCloud {
    pub(super) async fn destroy_quietly(&self, vm_id: &str) {
        if let Err(err) = self.delete_part(&Part::Vm(vm_id.to_string())).await {
            tracing::warn!(vm = %vm_id, error = %err, "cloudstack: could not destroy a half-deployed VM");
        }
    }

    /// The service offering named by the plan's target size.
    pub(super) async fn offering_id(&self, name: &str) -> Result<String, CloudError> {
        let offerings = self
            .client
            .list_all("listServiceOfferings", "serviceoffering", &[])
            .await?;
        offerings
            .iter()
            .find(|o| text(o, "name") == name || text(o, "id") == name)
            .map(|o| text(o, "id"))
            .ok_or_else(|| {
                let known: Vec<String> = offerings.iter().map(|o| text(o, "name")).collect();
                CloudError::NotFound(format!(
                    "service offering '{name}' in {} (offered: {})",
                    self.name,
                    known.join(", ")
                ))
            })
    }

    /// The zone's default guest network (advanced zones need one; basic zones none).
    pub(super) async fn network_id(&self, zone_id: &str) -> Result<Option<String>, CloudError> {
        let networks = self
            .client
            .list_all(
                "listNetworks",
                "network",
                &[("zoneid", zone_id.to_string())],
            )
            .await?;
        let usable = |n: &&Value| {
            n.get("canusefordeploy")
                .and_then(Value::as_bool)
                .unwrap_or(true)
        };
        let pick = networks
            .iter()
            .filter(usable)
            .find(|n| n.get("isdefault").and_then(Value::as_bool).unwrap_or(false))
            .or_else(|| networks.iter().find(usable));
        Ok(pick.map(|n| text(n, "id")))
    }

    pub(super) async fn delete_resource(
        &self,
        kind: ResourceKind,
        id: &str,
    ) -> Result<(), CloudError> {
        if kind == ResourceKind::StagingDisk && !id.contains(':') {
            // A local staging file of ours.
            crate::staging::check_staging_id(id)?;
            for path in [
                self.staging_path(id),
                download::complete_marker(&self.staging_path(id)),
            ] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(CloudError::from_io(path.display(), e)),
                }
            }
            return Ok(());
        }
        // Volumes before the snapshots they were made from.
        let mut parts = parse_parts(Some(kind), id);
        parts.reverse();
        for part in &parts {
            self.delete_part(part).await?;
        }
        Ok(())
    }

    /// Deletes one object; one that is already gone counts as deleted.
    pub(super) async fn delete_part(&self, part: &Part) -> Result<(), CloudError> {
        let result = match part {
            Part::Snapshot(id) => self
                .client
                .call_async("deleteSnapshot", &[("id", id.clone())])
                .await
                .map(|_| ()),
            Part::Template(id) => self
                .client
                .call_async("deleteTemplate", &[("id", id.clone())])
                .await
                .map(|_| ()),
            Part::Vm(id) => self
                .client
                .call_async(
                    "destroyVirtualMachine",
                    &[("id", id.clone()), ("expunge", "true".into())],
                )
                .await
                .map(|_| ()),
            Part::Volume(id) => {
                if let Ok(volume) = self.volume(id).await
                    && !text(&volume, "virtualmachineid").is_empty()
                {
                    self.client
                        .call_async("detachVolume", &[("id", id.clone())])
                        .await?;
                }
                let deleted = self
                    .client
                    .call("deleteVolume", &[("id", id.clone())])
                    .await
                    .map(|_| ());
                if deleted.is_ok() || matches!(deleted, Err(CloudError::NotFound(_))) {
                    self.remove_local_prefix(&format!("src-volume-{}.", safe(id)));
                }
                deleted
            }
        };
        match result {
            Err(CloudError::NotFound(_)) => Ok(()),
            other => other,
        }
    }
}

/// CloudStack VM names must be valid host names.
pub(super) fn host_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    let mut out: String = trimmed.chars().take(63).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("vm-{out}").chars().take(63).collect();
    }
    out
}
