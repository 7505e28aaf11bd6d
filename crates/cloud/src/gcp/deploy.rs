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
    /// Returns the running instance.
    pub(super) async fn wait_running(
        &self,
        zone: &str,
        name: &str,
    ) -> Result<serde_json::Value, CloudError> {
        let path = format!("zones/{zone}/instances/{name}");
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let instance = self.client.get(&path).await?;
            match instance["status"].as_str().unwrap_or_default() {
                "RUNNING" => return Ok(instance),
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

/// Bytes of serial output read per check at most: the API keeps the last
/// 1 MB, and a marker shows near the end of a boot.
const SERIAL_READ_MAX: usize = 1 << 20;

impl GcpCloud {
    /// Serial port 1's output (`instances.getSerialPortOutput`), read from
    /// the oldest byte the API keeps, following `next` until an answer
    /// brings nothing new (output the guest writes meanwhile comes in the
    /// following answers).
    pub(super) async fn serial_output(&self, zone: &str, name: &str) -> Result<String, CloudError> {
        let mut text = String::new();
        let mut start: u64 = 0;
        loop {
            let answer = self
                .client
                .get(&format!(
                    "zones/{zone}/instances/{name}/serialPort?port=1&start={start}"
                ))
                .await?;
            let contents = answer["contents"].as_str().unwrap_or_default();
            // int64 fields come as JSON strings.
            let next = int64(&answer["next"]).ok_or_else(|| {
                CloudError::Permanent(format!(
                    "instances.getSerialPortOutput {name}: no 'next' in the answer"
                ))
            })?;
            text.push_str(contents);
            if contents.is_empty() || next <= start || text.len() >= SERIAL_READ_MAX {
                return Ok(text);
            }
            start = next;
        }
    }
}

fn int64(value: &serde_json::Value) -> Option<u64> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| value.as_u64())
}

/// The address the jump host reaches an instance at: the first interface's
/// external NAT address, else its internal one.
pub(super) fn address_of(instance: &serde_json::Value) -> Option<String> {
    let nic = &instance["networkInterfaces"][0];
    nic["accessConfigs"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|a| a["natIP"].as_str())
        .or(nic["networkIP"].as_str())
        .filter(|a| !a.is_empty())
        .map(str::to_string)
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
