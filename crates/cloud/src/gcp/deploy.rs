//! Instances from imported images (`instances.insert`, zone operation,
//! wait RUNNING), their checks, and removal of what a run created.

use super::{GcpCloud, tar};
use crate::CloudError;
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
    pub(super) fn deploy_zone(&self, region: &str) -> Result<String, CloudError> {
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
}

pub(super) fn split_instance(id: &str) -> Result<(&str, &str), CloudError> {
    id.split_once('/')
        .ok_or_else(|| CloudError::Permanent(format!("instance id '{id}' is not ZONE/NAME")))
}

/// Label keys and values: lowercase letters, digits, `-` and `_`, ≤ 63.
pub(super) fn label(text: &str) -> String {
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
