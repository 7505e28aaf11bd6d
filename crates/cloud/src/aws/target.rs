//! AWS as a target: the EBS direct write path (StartSnapshot with a
//! ClientToken and the plan's tag, PutSnapshotBlock with each block's base64
//! SHA-256, CompleteSnapshot with ChangedBlocksCount and the LINEAR
//! aggregate), then RegisterImage + RunInstances and the checks.

use super::client::{RegionClients, classify};
use super::config;
use super::source::{EbsReader, note_block_size};
use super::{AwsCloud, join_region, split_region};
use crate::block::{BlockDigest, DigestBuilder};
use crate::inventory::DiskFormat;
use crate::units::{BLOCK_SIZE, BlockIndex, Bytes};
use crate::{
    Capability, Check, CloudError, DeploySpec, DeployedInstance, DiskReader, DiskWriter, Target,
    TargetDiskSpec, WriteOrder, WrittenDisk,
};
use async_trait::async_trait;
use aws_sdk_ebs::types::{ChecksumAggregationMethod, ChecksumAlgorithm};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

/// Minutes a started snapshot may stay pending: long enough for an
/// interrupted run to resume the next day (AWS allows 10–4320).
pub const PENDING_TIMEOUT_MINUTES: i32 = 1440;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Idempotency token for StartSnapshot: the same plan and disk give the
/// same token, so a retried call after a lost answer returns the same
/// snapshot (on AWS; moto ignores ClientToken).
pub fn client_token(plan_hash: &str, disk_name: &str) -> String {
    let digest = Sha256::digest(format!("{plan_hash}\n{disk_name}").as_bytes());
    crate::block::to_hex(&digest)[..64].to_string()
}

/// The LINEAR aggregate EBS expects: SHA-256 over the per-block SHA-256s in
/// block order, base64 (the same rule as [`DigestBuilder::finish`], in hex).
pub fn linear_checksum(digests: &DigestBuilder) -> String {
    let mut outer = Sha256::new();
    for d in digests.blocks().values() {
        outer.update(d.0);
    }
    b64(&outer.finalize())
}

/// EBS volumes are whole GiB.
pub fn volume_gib(size: Bytes) -> i64 {
    size.0.div_ceil(1 << 30).max(1) as i64
}

/// Writes one EBS snapshot through the EBS direct API.
pub struct EbsWriter {
    clients: RegionClients,
    snapshot_id: String,
    /// Region-qualified id to journal.
    staging: String,
    size: Bytes,
    resumed: bool,
    digests: Mutex<DigestBuilder>,
    completed: super::Completed,
    poll: super::PollPolicy,
    cloud: String,
}

#[async_trait]
impl DiskWriter for EbsWriter {
    fn order(&self) -> WriteOrder {
        WriteOrder::Any
    }

    fn staging_id(&self) -> String {
        self.staging.clone()
    }

    async fn write_block(
        &self,
        index: BlockIndex,
        data: bytes::Bytes,
        digest: BlockDigest,
    ) -> Result<(), CloudError> {
        let what = format!("ebs PutSnapshotBlock {} #{}", self.snapshot_id, index.0);
        let block_index = i32::try_from(index.0)
            .map_err(|_| CloudError::Permanent(format!("{what}: block index out of range")))?;
        if index.0 * BLOCK_SIZE >= self.size.0.div_ceil(1 << 30).max(1) << 30 {
            return Err(CloudError::Permanent(format!(
                "{what}: beyond the volume size"
            )));
        }
        // EBS takes whole 512 KiB blocks: a short last block is padded with
        // zeros, and its checksum is then that of the padded block.
        let (body, digest) = if data.len() as u64 == BLOCK_SIZE {
            (data, digest)
        } else if (data.len() as u64) < BLOCK_SIZE {
            let mut padded = data.to_vec();
            padded.resize(BLOCK_SIZE as usize, 0);
            let digest = BlockDigest::of(&padded);
            (bytes::Bytes::from(padded), digest)
        } else {
            return Err(CloudError::Permanent(format!(
                "{what}: {} bytes is more than one block",
                data.len()
            )));
        };
        self.clients
            .ebs
            .put_snapshot_block()
            .snapshot_id(&self.snapshot_id)
            .block_index(block_index)
            .data_length(BLOCK_SIZE as i32)
            .checksum(b64(&digest.0))
            .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
            .block_data(aws_sdk_ebs::primitives::ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        self.digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(index, digest);
        Ok(())
    }

    async fn flush(&self) -> Result<(), CloudError> {
        // A PutSnapshotBlock that answered 201 is durable: nothing to flush.
        Ok(())
    }

    async fn finish(self: Box<Self>, blocks_written: u64) -> Result<WrittenDisk, CloudError> {
        let what = format!("ebs CompleteSnapshot {}", self.snapshot_id);
        let count = i32::try_from(blocks_written)
            .map_err(|_| CloudError::Permanent(format!("{what}: too many blocks")))?;
        let digests = self
            .digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut call = self
            .clients
            .ebs
            .complete_snapshot()
            .snapshot_id(&self.snapshot_id)
            .changed_blocks_count(count);
        // The aggregate needs every block's digest; a resumed writer saw only
        // the blocks sent after the interruption, so it leaves it out and the
        // read-back comparison is the check.
        if digests.len() as u64 == blocks_written && !self.resumed {
            call = call
                .checksum(linear_checksum(&digests))
                .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
                .checksum_aggregation_method(ChecksumAggregationMethod::ChecksumAggregationLinear);
        } else {
            tracing::info!(snapshot = %self.snapshot_id, "aws: resumed snapshot completed without an aggregate checksum; the read-back compares digests");
        }
        let answer = call.send().await.map_err(|e| classify(&what, e))?;
        let status = answer.status().map(|s| s.as_str().to_string());
        if status.as_deref() == Some("error") {
            return Err(CloudError::Permanent(format!(
                "{what}: the snapshot failed (aggregate checksum or block count refused)"
            )));
        }
        // Completing takes a while on AWS: wait until EC2 says `completed`.
        let mut waiter = self.poll.waiter();
        loop {
            let answer = self
                .clients
                .ec2
                .describe_snapshots()
                .snapshot_ids(&self.snapshot_id)
                .send()
                .await
                .map_err(|e| classify(&format!("ec2 DescribeSnapshots {}", self.snapshot_id), e))?;
            use aws_sdk_ec2::types::SnapshotState as S;
            match answer.snapshots().first().and_then(|s| s.state()) {
                Some(S::Completed) => break,
                Some(S::Error) => {
                    return Err(CloudError::Permanent(format!(
                        "snapshot {} ended in error after CompleteSnapshot",
                        self.snapshot_id
                    )));
                }
                _ => {
                    waiter
                        .wait(&format!("snapshot {} to complete", self.snapshot_id))
                        .await?
                }
            }
        }
        self.completed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.staging.clone());
        tracing::debug!(cloud = %self.cloud, snapshot = %self.snapshot_id, "aws: snapshot completed");
        Ok(WrittenDisk {
            id: self.staging.clone(),
            format: DiskFormat::Raw,
            virtual_size: self.size,
        })
    }
}

/// Device names for the image: root, then data disks.
pub fn device_name(position: usize) -> String {
    if position == 0 {
        "/dev/xvda".to_string()
    } else {
        // xvdb, xvdc, … (AWS allows up to xvdz for EBS data volumes here).
        let letter = (b'a' + (position as u8).min(25)) as char;
        format!("/dev/xvd{letter}")
    }
}

#[async_trait]
impl Target for AwsCloud {
    async fn open_disk_writer(
        &self,
        cap: &Capability,
        spec: &TargetDiskSpec,
    ) -> Result<Box<dyn DiskWriter>, CloudError> {
        let region = self.other_region(&spec.region);
        let c = self.clients.get(region)?;
        let warned = AtomicBool::new(false);
        let snapshot_id = match &spec.resume {
            Some(staging) => {
                // Reopen the snapshot the interrupted run started; it must still exist.
                let (_, id) = split_region(staging);
                c.ec2
                    .describe_snapshots()
                    .snapshot_ids(id)
                    .send()
                    .await
                    .map_err(|e| classify(&format!("ec2 DescribeSnapshots {id}"), e))?;
                id.to_string()
            }
            None => {
                let (key, value) = cap.tag();
                let what = format!("ebs StartSnapshot {}", spec.name);
                let answer = c
                    .ebs
                    .start_snapshot()
                    .volume_size(volume_gib(spec.virtual_size))
                    .client_token(client_token(&cap.plan_hash().0, &spec.name))
                    .timeout(PENDING_TIMEOUT_MINUTES)
                    .description(format!("altishift: {}", spec.name))
                    .tags(
                        aws_sdk_ebs::types::Tag::builder()
                            .key(key)
                            .value(value)
                            .build(),
                    )
                    .tags(
                        aws_sdk_ebs::types::Tag::builder()
                            .key("Name")
                            .value(&spec.name)
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| classify(&what, e))?;
                note_block_size(&what, answer.block_size(), &warned);
                answer.snapshot_id().map(str::to_string).ok_or_else(|| {
                    CloudError::Permanent(format!("{what}: no snapshot id in the answer"))
                })?
            }
        };
        Ok(Box::new(EbsWriter {
            clients: c,
            staging: join_region(region, &snapshot_id),
            snapshot_id,
            size: spec.virtual_size,
            resumed: spec.resume.is_some(),
            digests: Mutex::new(DigestBuilder::default()),
            completed: self.completed.clone(),
            poll: self.poll,
            cloud: self.name.clone(),
        }))
    }

    async fn create_config_object(
        &self,
        cap: &Capability,
        object: &crate::configure::ConfigObject,
    ) -> Result<String, CloudError> {
        use crate::configure::ConfigObject;
        // Objects go where instances go: the profile's region.
        let c = self.clients.get(None)?;
        match object {
            ConfigObject::Firewall {
                name,
                network,
                rules,
                source,
            } => {
                // The plan's subnet, else the profile's (instances land there).
                let subnet = network.as_deref().or(self.subnet.as_deref());
                config::create_group(&c, cap, name, subnet, rules, source).await
            }
            ConfigObject::SshKey { name, public_key } => {
                config::import_key(&c, cap, name, public_key).await
            }
        }
    }

    /// RegisterImage from the written snapshots (root first) with ENA and
    /// the boot mode carried over, then RunInstances with the mapped type
    /// and tags; waits until the instance runs. The AMI id is tagged on the
    /// instance so cleanup of a test migration can deregister it.
    async fn deploy(
        &self,
        cap: &Capability,
        spec: &DeploySpec,
    ) -> Result<DeployedInstance, CloudError> {
        let region = self.other_region(&spec.region);
        let c = self.clients.get(region)?;
        super::deploy::deploy(self, &c, region, cap, spec).await
    }

    /// Reads a written snapshot back (ListSnapshotBlocks + GetSnapshotBlock).
    async fn read_back(
        &self,
        disk: &WrittenDisk,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        let (region, id) = split_region(&disk.id);
        let c = self.clients.get(region)?;
        Ok(Some(Box::new(EbsReader::new(c, id, disk.virtual_size))))
    }

    async fn probe(
        &self,
        instance: &DeployedInstance,
        spec: &DeploySpec,
    ) -> Result<Vec<Check>, CloudError> {
        let (region, id) = split_region(&instance.id);
        let c = self.clients.get(region)?;
        super::deploy::probe(self, &c, id, spec).await
    }

    async fn serial_console(
        &self,
        instance: &DeployedInstance,
    ) -> Result<Option<String>, CloudError> {
        let (region, id) = split_region(&instance.id);
        let c = self.clients.get(region)?;
        super::deploy::console_output(&c, id).await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_checksum_matches_the_engine_digest() {
        let mut d = DigestBuilder::default();
        d.insert(BlockIndex(4), BlockDigest::of(b"b"));
        d.insert(BlockIndex(1), BlockDigest::of(b"a"));
        let hex = d.finish().linear_sha256;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(linear_checksum(&d))
            .unwrap();
        assert_eq!(crate::block::to_hex(&raw), hex);
    }

    #[test]
    fn tokens_are_stable_and_short_enough() {
        let a = client_token("abc", "web-1-vol");
        assert_eq!(a, client_token("abc", "web-1-vol"));
        assert_ne!(a, client_token("abc", "web-1-vol2"));
        assert!(a.len() <= 64);
    }

    #[test]
    fn sizes_round_up_to_gib_and_devices_are_named() {
        assert_eq!(volume_gib(Bytes::mib(1)), 1);
        assert_eq!(volume_gib(Bytes::gib(2)), 2);
        assert_eq!(volume_gib(Bytes((2 << 30) + 1)), 3);
        assert_eq!(device_name(0), "/dev/xvda");
        assert_eq!(device_name(1), "/dev/xvdb");
    }
}
