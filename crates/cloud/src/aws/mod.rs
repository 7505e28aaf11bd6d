//! Amazon Web Services: EC2 inventory, disks out and in through the EBS
//! direct APIs (no import/export tasks, no S3 staging), AMIs and instances.
//!
//! Ids that live outside the profile's region are written `region/id`
//! (`us-west-2/snap-0abc…`); ids in the profile's region are plain.

pub mod client;
pub mod config;
pub mod cutover;
mod deploy;
pub mod inventory;
mod leftovers;
pub mod neutral;
pub mod paging;
pub mod profile;
pub mod source;
pub mod target;
mod whole_xml;

use crate::ProviderKind;
use crate::inventory::Inventory;
use crate::secret::Prompter;
use crate::{
    Capability, Cloud, CloudError, CreatedResource, CutoverSource, ResourceKind, Source, Target,
};
use async_trait::async_trait;
use client::{Access, Clients};
use profile::AwsProfile;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Snapshots this process completed (staging id = written id on EBS).
pub(crate) type Completed = Arc<Mutex<HashSet<String>>>;

/// `region/id` → (Some(region), id); a plain id → (None, id).
pub fn split_region(id: &str) -> (Option<&str>, &str) {
    match id.split_once('/') {
        Some((region, rest)) if !region.is_empty() => (Some(region), rest),
        _ => (None, id),
    }
}

pub fn join_region(region: Option<&str>, id: &str) -> String {
    match region {
        Some(r) => format!("{r}/{id}"),
        None => id.to_string(),
    }
}

/// How long and how often to wait for snapshots and instances.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    pub first: Duration,
    pub max: Duration,
    pub deadline: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_secs(2),
            max: Duration::from_secs(15),
            deadline: Duration::from_secs(6 * 3600),
        }
    }
}

impl PollPolicy {
    pub fn waiter(self) -> Waiter {
        Waiter {
            policy: self,
            started: Instant::now(),
            delay: self.first,
        }
    }
}

pub struct Waiter {
    policy: PollPolicy,
    started: Instant,
    delay: Duration,
}

impl Waiter {
    /// Sleeps before the next poll, growing the delay; errors past the deadline.
    pub async fn wait(&mut self, what: &str) -> Result<(), CloudError> {
        if self.started.elapsed() >= self.policy.deadline {
            return Err(CloudError::Permanent(format!(
                "gave up waiting for {what} after {}",
                humantime::format_duration(self.policy.deadline)
            )));
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(self.policy.max);
        Ok(())
    }
}

pub struct AwsCloud {
    name: String,
    clients: Clients,
    jurisdiction: Option<String>,
    in_flight: usize,
    completed: Completed,
    /// Where deployed instances go (the profile's `subnet`,
    /// `security_groups`); None: the region's default VPC and group.
    subnet: Option<String>,
    security_groups: Option<Vec<String>>,
    /// Tests shorten polling.
    pub poll: PollPolicy,
}

impl AwsCloud {
    /// From a `[clouds.NAME]` profile: region, endpoint, profile, role_arn,
    /// api_key/secret_key (`env:`/`prompt`), jurisdiction, in_flight.
    pub async fn from_profile(
        name: &str,
        profile: &AwsProfile,
        prompt: Prompter<'_>,
    ) -> Result<AwsCloud, CloudError> {
        let clients = Clients::connect(name, profile, prompt).await?;
        Ok(AwsCloud {
            name: name.to_string(),
            clients,
            jurisdiction: profile.jurisdiction.clone(),
            in_flight: profile.in_flight.unwrap_or(32).max(1),
            completed: Arc::default(),
            subnet: profile.subnet.clone(),
            security_groups: profile.security_groups.clone(),
            poll: PollPolicy::default(),
        })
    }

    /// Where the credentials came from and when they expire (no values).
    pub fn access(&self) -> &Access {
        &self.clients.access
    }

    /// The profile's region.
    pub fn region(&self) -> &str {
        self.clients.region()
    }

    /// None for the profile's own region, else the region.
    fn other_region<'a>(&self, region: &'a str) -> Option<&'a str> {
        (!region.is_empty() && region != self.clients.region()).then_some(region)
    }
}

#[async_trait]
impl Cloud for AwsCloud {
    fn as_source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    fn as_cutover(&self) -> Option<&dyn CutoverSource> {
        Some(self)
    }
    fn as_target(&self) -> Option<&dyn Target> {
        Some(self)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn provider(&self) -> ProviderKind {
        ProviderKind::Aws
    }

    fn jurisdiction(&self) -> Option<String> {
        self.jurisdiction.clone()
    }

    fn default_in_flight(&self) -> usize {
        self.in_flight
    }

    async fn inventory(&self) -> Result<Inventory, CloudError> {
        let c = self.clients.get(None)?;
        let mut inventory = inventory::read(
            &c,
            &self.name,
            self.clients.region(),
            self.jurisdiction.as_deref(),
        )
        .await?;
        inventory.access = Some(self.clients.identity().await?);
        Ok(inventory)
    }

    /// The account id STS reports for the credentials.
    async fn account(&self) -> Result<Option<String>, CloudError> {
        self.clients.account().await
    }

    /// Temporary snapshots and the configuration objects of the plan
    /// (see `leftovers.rs`).
    async fn find_leftovers(
        &self,
        tag: &(String, String),
    ) -> Result<Vec<CreatedResource>, CloudError> {
        let mut found = leftovers::snapshots(&self.clients, &self.name, tag).await?;
        let c = self.clients.get(None)?;
        found.extend(leftovers::configuration(&c, &self.name, tag).await?);
        Ok(found)
    }

    async fn delete(&self, cap: &Capability, resource: &CreatedResource) -> Result<(), CloudError> {
        let _ = cap;
        let (region, id) = split_region(&resource.id);
        let c = self.clients.get(region)?;
        match resource.kind {
            ResourceKind::Snapshot | ResourceKind::Disk => deploy::remove_snapshot(&c, id).await,
            ResourceKind::StagingDisk => {
                // On EBS the staging snapshot becomes the written disk when
                // CompleteSnapshot succeeds: only a snapshot that never
                // completed is staging to remove. (moto reports EBS-direct
                // snapshots `completed` from the start, so there this keeps
                // them; the engine keeps failed disks' staging anyway.)
                let done = self
                    .completed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&resource.id);
                if done {
                    return Ok(());
                }
                let state = c
                    .ec2
                    .describe_snapshots()
                    .snapshot_ids(id)
                    .send()
                    .await
                    .map(|a| {
                        a.snapshots()
                            .first()
                            .and_then(|s| s.state())
                            .map(|s| s.as_str().to_string())
                    });
                match state {
                    Ok(Some(s)) if s == "completed" => Ok(()),
                    _ => deploy::remove_snapshot(&c, id).await,
                }
            }
            ResourceKind::Image => deploy::remove_image(&c, id).await,
            ResourceKind::Instance => deploy::remove_instance(&c, id).await,
            // This provider creates no access keys of its own.
            ResourceKind::AccessKey => Ok(()),
            ResourceKind::Firewall => config::remove_group(&c, id).await,
            ResourceKind::SshKey => config::remove_key(&c, id).await,
        }
    }

    async fn revoke(&self) -> Result<Vec<String>, CloudError> {
        let access = self.clients.access.clone();
        self.clients.wipe();
        let mut revoked = vec![format!(
            "{}: credentials ({}) wiped from memory",
            self.name, access.source
        )];
        if let Some(expires) = access.expires {
            revoked.push(format!(
                "{}: STS session held no further; it expires by itself at {expires}",
                self.name
            ));
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_qualified_ids_round_trip() {
        assert_eq!(split_region("snap-1"), (None, "snap-1"));
        assert_eq!(
            split_region("us-west-2/snap-1"),
            (Some("us-west-2"), "snap-1")
        );
        assert_eq!(join_region(Some("us-west-2"), "i-1"), "us-west-2/i-1");
        assert_eq!(join_region(None, "i-1"), "i-1");
    }
}
