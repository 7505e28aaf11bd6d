//! Instances from imported images (`instances.insert`, zone operation,
//! wait RUNNING), their checks, and removal of what a run created.

use super::client::last_segment;
use super::{GcpCloud, resource_name, tar, upload};
use crate::cloud::{
    Capability, Check, CloudError, CreatedResource, DeploySpec, DeployedInstance, ResourceKind,
};
use serde_json::{Value, json};
use std::time::Instant;

/// The smallest disk of the type our requests get (`pd-standard`, Compute
/// Engine's default when `diskType` is omitted; `pd-balanced` and `pd-ssd`
/// share it): the API refuses anything under 10 GB.
pub(super) const MIN_DISK_GB: u64 = 10;

/// The `diskSizeGb` for a disk holding `bytes`: whole GiB (Compute Engine's
/// "GB"), never below the image and never below the type's minimum.
pub(super) fn disk_size_gb(bytes: u64) -> u64 {
    (tar::round_up_gib(bytes) >> 30).max(MIN_DISK_GB)
}

/// A zone name is a region plus `-a`..`-z`.
fn is_zone(name: &str) -> bool {
    name.rsplit_once('-')
        .is_some_and(|(_, z)| z.len() == 1 && z.chars().all(|c| c.is_ascii_lowercase()))
}

impl GcpCloud {
    /// The zone to deploy in: the plan's region when it is a zone, else the profile's.
    fn deploy_zone(&self, region: &str) -> Result<String, CloudError> {
        if is_zone(region) {
            return Ok(region.to_string());
        }
        self.zone.clone().ok_or_else(|| {
            CloudError::Permanent(format!(
                "{}: '{region}' is not a zone; set 'zone' in the profile",
                self.name
            ))
        })
    }

    pub(super) async fn deploy_instance(
        &self,
        _cap: &Capability,
        spec: &DeploySpec,
    ) -> Result<DeployedInstance, CloudError> {
        let zone = self.deploy_zone(&spec.region)?;
        let name = resource_name(&spec.name);
        let disks: Vec<Value> = spec
            .disks
            .iter()
            .enumerate()
            .map(|(i, disk)| {
                json!({
                    "boot": i == 0,
                    "autoDelete": true,
                    "deviceName": format!("disk{i}"),
                    "initializeParams": {
                        "sourceImage": format!("global/images/{}", disk.id),
                        "diskSizeGb": disk_size_gb(disk.virtual_size.0).to_string(),
                    },
                })
            })
            .collect();
        let labels: serde_json::Map<String, Value> = spec
            .tags
            .iter()
            .map(|(k, v)| (label(k), Value::from(label(v))))
            .filter(|(k, _)| !k.is_empty())
            .collect();
        let nic = match &spec.config.network {
            // The plan's subnetwork, in its own network.
            Some(id) => {
                let sub = self.subnetwork(id).await?;
                json!({
                    "network": format!("global/networks/{}",
                        last_segment(sub["network"].as_str().unwrap_or_default())),
                    "subnetwork": sub["selfLink"],
                })
            }
            None => json!({"network": format!("global/networks/{}", self.network)}),
        };
        let mut body = json!({
            "name": name,
            "machineType": format!("zones/{zone}/machineTypes/{}", spec.size),
            "disks": disks,
            "networkInterfaces": [nic],
            "labels": labels,
        });
        super::config::instance_parts(&spec.config, &mut body);
        let op = self
            .client
            .post(&format!("zones/{zone}/instances"), &body)
            .await?;
        self.client.wait(op).await?;
        self.wait_running(&zone, &name).await?;
        Ok(DeployedInstance {
            id: format!("{zone}/{name}"),
            name: name.clone(),
        })
    }

    /// Polls an instance until RUNNING; a stop or the deadline is an error.
    pub(super) async fn wait_running(&self, zone: &str, name: &str) -> Result<(), CloudError> {
        let path = format!("zones/{zone}/instances/{name}");
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let instance = self.client.get(&path).await?;
            match instance["status"].as_str().unwrap_or_default() {
                "RUNNING" => return Ok(()),
                "TERMINATED" | "STOPPED" | "SUSPENDED" => {
                    return Err(CloudError::Permanent(format!(
                        "instance {name} in {zone} stopped instead of starting"
                    )));
                }
                _ if started.elapsed() > self.client.poll.deadline => {
                    return Err(CloudError::Transient(format!(
                        "instance {name} in {zone} not RUNNING after {:?}",
                        self.client.poll.deadline
                    )));
                }
                _ => {}
            }
            tokio::time::sleep(self.client.poll.delay(attempt)).await;
            attempt += 1;
        }
    }

    pub(super) async fn probe_instance(
        &self,
        deployed: &DeployedInstance,
        spec: &DeploySpec,
    ) -> Result<Vec<Check>, CloudError> {
        let (zone, name) = split_instance(&deployed.id)?;
        let instance = self
            .client
            .get(&format!("zones/{zone}/instances/{name}"))
            .await?;
        let status = instance["status"].as_str().unwrap_or("?").to_string();
        let machine = last_segment(instance["machineType"].as_str().unwrap_or_default());
        let disks = instance["disks"].as_array().map(Vec::len).unwrap_or(0);
        let mut checks = Vec::new();
        if !spec.config.is_empty() {
            // The subnetwork's id, as the plan names it.
            let network = match (
                &spec.config.network,
                instance["networkInterfaces"][0]["subnetwork"].as_str(),
            ) {
                (Some(id), Some(link)) => {
                    let sub = self.subnetwork(id).await?;
                    (sub["selfLink"].as_str().map(last_segment) == Some(last_segment(link)))
                        .then(|| id.clone())
                        .or_else(|| Some(last_segment(link).to_string()))
                }
                _ => None,
            };
            let found = super::config::found(&instance, network);
            checks = crate::cloud::configure::checks(&spec.config, &found);
        }
        let mut out = vec![
            Check {
                name: "running".into(),
                passed: status == "RUNNING",
                detail: format!("status {status}"),
            },
            Check {
                name: "size".into(),
                passed: machine == spec.size,
                detail: format!("machine type {machine} (planned {})", spec.size),
            },
            Check {
                name: "disks".into(),
                passed: disks == spec.disks.len(),
                detail: format!("{disks} attached (planned {})", spec.disks.len()),
            },
        ];
        out.extend(checks);
        Ok(out)
    }

    pub(super) async fn delete_resource(
        &self,
        cap: &Capability,
        resource: &CreatedResource,
    ) -> Result<(), CloudError> {
        let path = match resource.kind {
            ResourceKind::AccessKey => return Ok(()),
            ResourceKind::Firewall => return self.remove_firewall(cap, &resource.id).await,
            // A key lives in the instance's metadata: nothing of its own.
            ResourceKind::SshKey => return Ok(()),
            ResourceKind::StagingDisk => {
                // Every object under the disk's staging prefix.
                let bucket = self.bucket()?;
                for object in upload::list(&self.client, bucket, &resource.id).await? {
                    upload::delete(&self.client, bucket, &object).await?;
                }
                return Ok(());
            }
            ResourceKind::Image | ResourceKind::Disk => format!("global/images/{}", resource.id),
            ResourceKind::Snapshot => match super::WorkerSet::parse(&resource.id) {
                // A source read: worker, temporary disk and snapshot.
                Some(set) => return self.delete_worker_set(cap, &set).await,
                None => format!("global/snapshots/{}", resource.id),
            },
            ResourceKind::Instance => {
                let (zone, name) = split_instance(&resource.id)?;
                format!("zones/{zone}/instances/{name}")
            }
        };
        match self.client.delete(&path).await {
            Ok(op) if op.is_object() => self.client.wait(op).await.map(|_| ()),
            Ok(_) | Err(CloudError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn split_instance(id: &str) -> Result<(&str, &str), CloudError> {
    id.split_once('/')
        .ok_or_else(|| CloudError::Permanent(format!("instance id '{id}' is not ZONE/NAME")))
}

/// Label keys and values: lowercase letters, digits, `-` and `_`, ≤ 63.
fn label(text: &str) -> String {
    let mut out: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(63);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_labels() {
        assert!(is_zone("europe-west3-b"));
        assert!(!is_zone("europe-west3"));
        assert_eq!(label("Owner Team"), "owner_team");
    }

    #[test]
    fn disks_are_at_least_the_minimum_and_never_below_the_image() {
        assert_eq!(disk_size_gb(1), MIN_DISK_GB);
        assert_eq!(disk_size_gb(3 << 30), MIN_DISK_GB);
        assert_eq!(disk_size_gb((12 << 30) + 1), 13);
    }
}
