//! Cutover on an AWS source: the instance keeps running while successive EBS
//! snapshots of its volumes are copied; each delta pass sends the blocks
//! that changed between the snapshot the target holds and a fresh one, as
//! EBS direct `ListChangedBlocks` lists them. Where that call is refused
//! (permissions, snapshots of another lineage) or no earlier snapshot is
//! known (a resumed pass), the fresh snapshot's blocks are hashed against
//! what the target holds instead. The instance is stopped through EC2 (an
//! approved step) before the final snapshot.

use super::client::{RegionClients, classify};
use super::paging::collect_pages;
use super::source::{EbsReader, note_block_size, to_ranges};
use super::{AwsCloud, split_region};
use crate::block::BlockDigest;
use crate::inventory::declared::{GuestNeeds, ProviderRules, SourceRules, TargetRules};
use crate::units::{BLOCK_SIZE, BlockIndex, Bytes};
use crate::{BlockData, Capability, CloudError, CutoverSource, DiskReader, SnapshotRef};
use async_trait::async_trait;
use aws_sdk_ebs::error::SdkError;
use aws_sdk_ec2::types::InstanceStateName;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::AtomicBool;

/// What AWS declares for plans: a cutover stops the instance through EC2
/// (nothing reaches the guest to freeze its filesystems).
pub fn rules() -> ProviderRules {
    ProviderRules {
        source: SourceRules {
            quiesce: Some(
                "stops the instance (EC2 StopInstances) so the final snapshot holds every write"
                    .into(),
            ),
            ..SourceRules::default()
        },
        // Nitro instances: disks on NVMe, network on ENA; cloud-init's EC2
        // metadata.
        target: TargetRules {
            guest: GuestNeeds::new(&[&["nvme"], &["ena"]], Some("Ec2")),
            ..TargetRules::default()
        },
    }
}

/// How a delta pass found its blocks (for the log and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaMethod {
    /// EBS direct ListChangedBlocks between two snapshots.
    ChangedBlocks,
    /// Every block of the fresh snapshot read and hashed.
    Hashing,
}

impl AwsCloud {
    /// Read-only: whether `instance` can be a cutover source: it exists and
    /// every disk is an EBS volume (instance-store disks have no snapshots).
    pub async fn cutover_check(&self, instance: &str) -> Result<(), CloudError> {
        let (region, id) = split_region(instance);
        let c = self.clients.get(region)?;
        let answer = c
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| classify(&format!("ec2 DescribeInstances {id}"), e))?;
        let found = answer
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(id))
            .ok_or_else(|| CloudError::NotFound(format!("instance {id} in {}", self.name)))?;
        if found
            .root_device_type()
            .is_some_and(|t| t.as_str() != "ebs")
        {
            return Err(CloudError::Unsupported(format!(
                "{id} boots from an instance store: only EBS volumes can be snapshotted for \
                 delta passes"
            )));
        }
        Ok(())
    }

    /// Source: a reader of the blocks of `fresh` that differ from what the
    /// target holds (`held`, which is the content of `base` when `base` is
    /// given). Blocks that became zero are included and read as zeros.
    pub async fn open_changed_reader(
        &self,
        base: Option<&SnapshotRef>,
        fresh: &SnapshotRef,
        held: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<(Box<dyn DiskReader>, DeltaMethod), CloudError> {
        let (region, fresh_id) = split_region(&fresh.id);
        let c = self.clients.get(region)?;
        let size = fresh.virtual_size;
        let reader = EbsReader::new(c.clone(), fresh_id, size);
        if let Some(base) = base {
            let (_, base_id) = split_region(&base.id);
            match list_changed_blocks(&c, base_id, fresh_id).await {
                Ok(changed) => {
                    let wanted = to_ranges(changed);
                    return Ok((
                        Box::new(Delta {
                            inner: reader,
                            wanted,
                        }),
                        DeltaMethod::ChangedBlocks,
                    ));
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => tracing::warn!(
                    error = %e,
                    "aws: ListChangedBlocks refused; hashing the snapshot's blocks instead"
                ),
            }
        }
        let wanted = hashed_delta(&reader, held).await?;
        Ok((
            Box::new(Delta {
                inner: reader,
                wanted: to_ranges(wanted),
            }),
            DeltaMethod::Hashing,
        ))
    }

    /// Source: stops the instance and waits until EC2 says `stopped`, so
    /// the next snapshot holds everything it wrote. A stopped instance (the
    /// quiesce stopped it before the power-off) is left alone.
    pub async fn stop_instance(&self, _cap: &Capability, instance: &str) -> Result<(), CloudError> {
        let (region, id) = split_region(instance);
        let c = self.clients.get(region)?;
        if self.instance_state(&c, id).await? == Some(InstanceStateName::Stopped) {
            return Ok(());
        }
        c.ec2
            .stop_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| classify(&format!("ec2 StopInstances {id}"), e))?;
        self.wait_instance(&c, id, InstanceStateName::Stopped).await
    }

    /// Source: the cutover's quiesce. EC2 reaches no guest, so the
    /// instance is stopped; an operator's quiesce command cannot run here.
    pub async fn quiesce_by_stopping(
        &self,
        cap: &Capability,
        instance: &str,
        command: Option<&str>,
    ) -> Result<(), CloudError> {
        if let Some(command) = command {
            return Err(CloudError::Unsupported(format!(
                "{}: an AWS source is stopped through EC2 for the final pass and cannot run                  the quiesce command `{command}` (no shell on the guest): plan without --quiesce",
                self.name
            )));
        }
        self.stop_instance(cap, instance).await
    }

    /// Source: starts a stopped instance again (a cutover that leaves the
    /// source running, or one that failed after the stop).
    pub async fn start_instance(
        &self,
        _cap: &Capability,
        instance: &str,
    ) -> Result<(), CloudError> {
        let (region, id) = split_region(instance);
        let c = self.clients.get(region)?;
        c.ec2
            .start_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| classify(&format!("ec2 StartInstances {id}"), e))?;
        self.wait_instance(&c, id, InstanceStateName::Running).await
    }

    async fn instance_state(
        &self,
        c: &RegionClients,
        id: &str,
    ) -> Result<Option<InstanceStateName>, CloudError> {
        let answer = c
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| classify(&format!("ec2 DescribeInstances {id}"), e))?;
        Ok(answer
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(id))
            .and_then(|i| i.state())
            .and_then(|s| s.name())
            .cloned())
    }

    async fn wait_instance(
        &self,
        c: &RegionClients,
        id: &str,
        wanted: InstanceStateName,
    ) -> Result<(), CloudError> {
        let mut waiter = self.poll.waiter();
        loop {
            let state = self.instance_state(c, id).await?;
            if state.as_ref() == Some(&wanted) {
                return Ok(());
            }
            if matches!(
                state,
                Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
            ) {
                return Err(CloudError::Permanent(format!(
                    "instance {id} is {} while waiting for it to be {}",
                    state.as_ref().map_or("gone", |s| s.as_str()),
                    wanted.as_str()
                )));
            }
            waiter
                .wait(&format!("instance {id} to be {}", wanted.as_str()))
                .await?;
        }
    }
}

/// ListChangedBlocks to the last page: the indices that differ between the
/// two snapshots (a block only the second holds, or only the first, too).
async fn list_changed_blocks(
    c: &RegionClients,
    first: &str,
    second: &str,
) -> Result<Vec<u64>, CloudError> {
    let what = format!("ebs ListChangedBlocks {first} → {second}");
    let warned = AtomicBool::new(false);
    collect_pages(&what, |token| {
        let what = what.clone();
        let warned = &warned;
        async move {
            let answer = c
                .ebs
                .list_changed_blocks()
                .first_snapshot_id(first)
                .second_snapshot_id(second)
                .set_next_token(token)
                .max_results(10_000)
                .send()
                .await;
            match answer {
                Ok(page) => {
                    note_block_size(&what, page.block_size(), warned);
                    let list = page
                        .changed_blocks()
                        .iter()
                        .filter_map(|b| b.block_index().map(|i| i.max(0) as u64))
                        .collect();
                    Ok((list, page.next_token().map(str::to_string)))
                }
                Err(err) => {
                    // moto sends string indices for blocks written through
                    // this SDK, which the SDK refuses to parse.
                    let lenient = match &err {
                        SdkError::ResponseError(r) => {
                            r.raw().body().bytes().and_then(lenient_changed)
                        }
                        _ => None,
                    };
                    lenient.ok_or_else(|| classify(&what, err))
                }
            }
        }
    })
    .await
}

/// Parses a ListChangedBlocks answer whose `BlockIndex` values came as
/// strings of digits: (indices, next token).
pub fn lenient_changed(body: &[u8]) -> Option<(Vec<u64>, Option<String>)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let blocks = value
        .get("ChangedBlocks")?
        .as_array()?
        .iter()
        .map(|b| {
            let i = b.get("BlockIndex")?;
            i.as_u64()
                .or_else(|| i.as_str().and_then(|s| s.parse::<u64>().ok()))
        })
        .collect::<Option<Vec<u64>>>()?;
    let next = value
        .get("NextToken")
        .and_then(|t| t.as_str())
        .map(str::to_string);
    Some((blocks, next))
}

/// Reads every block `reader` lists and keeps those whose digest differs
/// from `held`; blocks `held` names that are no longer listed (or are now
/// all zero) are kept too, to be overwritten with zeros.
async fn hashed_delta(
    reader: &EbsReader,
    held: &BTreeMap<BlockIndex, BlockDigest>,
) -> Result<Vec<u64>, CloudError> {
    let mut wanted = Vec::new();
    let mut listed = std::collections::BTreeSet::new();
    for range in reader.allocated_blocks().await? {
        for index in range {
            listed.insert(index);
            let block = reader.read_block(BlockIndex(index)).await?;
            let now = (!block.bytes.iter().all(|&b| b == 0)).then(|| BlockDigest::of(&block.bytes));
            if now.as_ref() != held.get(&BlockIndex(index)) {
                wanted.push(index);
            }
        }
    }
    wanted.extend(held.keys().map(|i| i.0).filter(|i| !listed.contains(i)));
    Ok(wanted)
}

/// The fresh snapshot, limited to the blocks of a delta.
struct Delta {
    inner: EbsReader,
    wanted: Vec<Range<u64>>,
}

#[async_trait]
impl DiskReader for Delta {
    fn virtual_size(&self) -> Bytes {
        self.inner.virtual_size()
    }

    async fn allocated_blocks(&self) -> Result<Vec<Range<u64>>, CloudError> {
        let limit = self.inner.virtual_size().0.div_ceil(BLOCK_SIZE);
        Ok(self
            .wanted
            .iter()
            .filter(|r| r.start < limit)
            .map(|r| r.start..r.end.min(limit))
            .collect())
    }

    async fn read_block(&self, index: BlockIndex) -> Result<BlockData, CloudError> {
        self.inner.read_block(index).await
    }
}

/// The cutover role: each delta pass reads a fresh EBS snapshot, the stop
/// is EC2's.
#[async_trait]
impl CutoverSource for AwsCloud {
    async fn cutover_support(&self, instance: &str) -> Result<(), CloudError> {
        self.cutover_check(instance).await
    }

    fn delta_snapshots(&self) -> bool {
        true
    }

    async fn open_snapshot_delta(
        &self,
        base: Option<&SnapshotRef>,
        fresh: &SnapshotRef,
        held: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<Box<dyn DiskReader>, CloudError> {
        let (reader, method) = self.open_changed_reader(base, fresh, held).await?;
        tracing::info!(snapshot = %fresh.id, ?method, "aws: delta pass");
        Ok(reader)
    }

    async fn quiesce(
        &self,
        cap: &Capability,
        instance: &str,
        command: Option<&str>,
        _thaw: Option<&str>,
    ) -> Result<(), CloudError> {
        self.quiesce_by_stopping(cap, instance, command).await
    }

    async fn thaw(
        &self,
        cap: &Capability,
        instance: &str,
        _command: Option<&str>,
    ) -> Result<(), CloudError> {
        self.start_instance(cap, instance).await
    }

    async fn power_off(&self, cap: &Capability, instance: &str) -> Result<(), CloudError> {
        // Stopped at the quiesce already; stopping a stopped instance is no error.
        self.stop_instance(cap, instance).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_block_pages_parse_with_string_or_number_indices() {
        let moto = br#"{"ChangedBlocks": [{"BlockIndex": "3", "FirstBlockToken": "a", "SecondBlockToken": null}, {"BlockIndex": 9, "FirstBlockToken": "b", "SecondBlockToken": "c"}], "VolumeSize": 1, "BlockSize": 512, "NextToken": "n"}"#;
        let (blocks, next) = lenient_changed(moto).unwrap();
        assert_eq!(blocks, vec![3, 9]);
        assert_eq!(next.as_deref(), Some("n"));
        assert!(lenient_changed(br#"{"ChangedBlocks": [{"BlockIndex": "x"}]}"#).is_none());
        assert!(lenient_changed(b"{").is_none());
    }
}
