//! AWS as a source: EC2 CreateSnapshot of a volume (tagged with the plan),
//! wait `completed`, then the EBS direct read path: ListSnapshotBlocks
//! (paginated; only written blocks are listed, so this is sparse by nature)
//! and GetSnapshotBlock, whose SHA-256 goes to the engine as the provider
//! digest it checks against the bytes.

use super::client::{RegionClients, classify};
use super::paging::collect_pages;
use super::{AwsCloud, split_region};
use crate::block::BlockDigest;
use crate::inventory::DiskFormat;
use crate::units::{BLOCK_SIZE, BlockIndex, Bytes};
use crate::{BlockData, Capability, CloudError, DiskReader, DiskRef, SnapshotRef, Source};
use async_trait::async_trait;
use aws_sdk_ebs::error::SdkError;
use aws_sdk_ec2::types::{ResourceType, SnapshotState, Tag, TagSpecification};
use base64::Engine as _;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::OnceCell;

/// Marks the source-side snapshots a run takes (and removes at cleanup), so
/// a search by plan tag never picks the snapshots that back a written disk.
pub const TEMPORARY_TAG: &str = "altishift:temporary";

/// The block size rule. The EBS direct APIs have one block size, 512 KiB
/// (AWS documents `BlockSize` as always 524288). A server that reports
/// another value (moto 5.2.5 says 512) is not believed: blocks are addressed
/// as index × 512 KiB whatever it says, and each block's length is checked
/// instead. Returns whether the reported value agreed.
pub fn block_size_agrees(reported: Option<i32>) -> bool {
    reported.is_none_or(|r| r as u64 == BLOCK_SIZE)
}

/// Logs (once per reader/writer) a reported block size we do not believe.
pub(super) fn note_block_size(what: &str, reported: Option<i32>, warned: &AtomicBool) {
    if !block_size_agrees(reported) && !warned.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            reported = reported.unwrap_or(0),
            used = BLOCK_SIZE,
            "{what}: the server reports an EBS block size other than 512 KiB; ignored (EBS direct blocks are 512 KiB)"
        );
    }
}

/// Turns a base64 SHA-256 from EBS into a digest; None for another algorithm.
pub fn decode_checksum(
    context: &str,
    checksum: Option<&str>,
    algorithm: Option<&str>,
) -> Result<Option<BlockDigest>, CloudError> {
    let Some(text) = checksum.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if algorithm.is_some_and(|a| a != "SHA256") {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| CloudError::Permanent(format!("{context}: checksum is not base64")))?;
    let array: [u8; 32] = bytes.try_into().map_err(|_| {
        CloudError::Permanent(format!("{context}: checksum is not a SHA-256 (32 bytes)"))
    })?;
    Ok(Some(BlockDigest(array)))
}

impl AwsCloud {
    /// Polls DescribeSnapshots until `completed` (or `error`, or the deadline).
    pub(super) async fn wait_snapshot(
        &self,
        c: &RegionClients,
        snapshot_id: &str,
    ) -> Result<(), CloudError> {
        let mut waiter = self.poll.waiter();
        loop {
            let answer = c
                .ec2
                .describe_snapshots()
                .snapshot_ids(snapshot_id)
                .send()
                .await
                .map_err(|e| classify(&format!("ec2 DescribeSnapshots {snapshot_id}"), e))?;
            let snapshot = answer.snapshots().first().ok_or_else(|| {
                CloudError::NotFound(format!("snapshot {snapshot_id} in {}", self.name))
            })?;
            match snapshot.state() {
                Some(SnapshotState::Completed) => return Ok(()),
                Some(SnapshotState::Error) => {
                    return Err(CloudError::Permanent(format!(
                        "snapshot {snapshot_id} failed: {}",
                        snapshot.state_message().unwrap_or("no reason given")
                    )));
                }
                Some(SnapshotState::Pending) | Some(SnapshotState::Recoverable) => {}
                other => {
                    return Err(CloudError::Permanent(format!(
                        "snapshot {snapshot_id}: unknown state {:?}",
                        other.map(|s| s.as_str())
                    )));
                }
            }
            waiter
                .wait(&format!("snapshot {snapshot_id} to complete"))
                .await?;
        }
    }
}

/// Reads an EBS snapshot block by block (EBS direct API).
pub struct EbsReader {
    clients: RegionClients,
    snapshot_id: String,
    size: Bytes,
    tokens: OnceCell<HashMap<u64, String>>,
    warned: AtomicBool,
    lenient: AtomicBool,
}

impl EbsReader {
    pub fn new(clients: RegionClients, snapshot_id: &str, size: Bytes) -> EbsReader {
        EbsReader {
            clients,
            snapshot_id: snapshot_id.to_string(),
            size,
            tokens: OnceCell::new(),
            warned: AtomicBool::new(false),
            lenient: AtomicBool::new(false),
        }
    }

    /// ListSnapshotBlocks to the last page: block index → block token.
    async fn tokens(&self) -> Result<&HashMap<u64, String>, CloudError> {
        self.tokens
            .get_or_try_init(|| async {
                let what = format!("ebs ListSnapshotBlocks {}", self.snapshot_id);
                let blocks = collect_pages(&what, |token| {
                    let what = what.clone();
                    async move {
                        let answer = self
                            .clients
                            .ebs
                            .list_snapshot_blocks()
                            .snapshot_id(&self.snapshot_id)
                            .set_next_token(token)
                            .max_results(10_000)
                            .send()
                            .await;
                        let page = match answer {
                            Ok(page) => page,
                            Err(err) => {
                                // A 200 answer the SDK could not parse: moto's string indices?
                                let lenient = match &err {
                                    SdkError::ResponseError(r) => {
                                        r.raw().body().bytes().and_then(lenient_page)
                                    }
                                    _ => None,
                                };
                                let Some(page) = lenient else {
                                    return Err(classify(&what, err));
                                };
                                if !self.lenient.swap(true, Ordering::Relaxed) {
                                    tracing::warn!("{what}: block indices came as strings (moto does this; AWS sends numbers); read leniently");
                                }
                                note_block_size(&what, page.2, &self.warned);
                                return Ok((page.0, page.1));
                            }
                        };
                        note_block_size(&what, page.block_size(), &self.warned);
                        let list: Vec<(u64, String)> = page
                            .blocks()
                            .iter()
                            .filter_map(|b| {
                                Some((b.block_index()?.max(0) as u64, b.block_token()?.to_string()))
                            })
                            .collect();
                        Ok((list, page.next_token().map(str::to_string)))
                    }
                })
                .await?;
                Ok(blocks.into_iter().collect())
            })
            .await
    }
}

/// One ListSnapshotBlocks page as (blocks, next token, block size).
type Page = (Vec<(u64, String)>, Option<String>, Option<i32>);

/// Parses a ListSnapshotBlocks answer the SDK refused because a
/// `BlockIndex` came as a string of digits (`"3"`): moto 5.2.5 answers so
/// for blocks written by this SDK, AWS answers numbers. Anything else that
/// is not a non-negative integer still fails (None: the SDK's error stands).
pub fn lenient_page(body: &[u8]) -> Option<Page> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let index = |v: &serde_json::Value| -> Option<u64> {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse::<u64>().ok()))
    };
    let blocks = value
        .get("Blocks")?
        .as_array()?
        .iter()
        .map(|b| {
            Some((
                index(b.get("BlockIndex")?)?,
                b.get("BlockToken")?.as_str()?.to_string(),
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    let next = value
        .get("NextToken")
        .and_then(|t| t.as_str())
        .map(str::to_string);
    let size = value
        .get("BlockSize")
        .and_then(|s| s.as_i64())
        .and_then(|s| i32::try_from(s).ok());
    Some((blocks, next, size))
}

/// Sorted block indices as ascending ranges.
pub fn to_ranges(mut indices: Vec<u64>) -> Vec<Range<u64>> {
    indices.sort_unstable();
    indices.dedup();
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for i in indices {
        match ranges.last_mut() {
            Some(r) if r.end == i => r.end = i + 1,
            _ => ranges.push(i..i + 1),
        }
    }
    ranges
}

#[async_trait]
impl DiskReader for EbsReader {
    fn virtual_size(&self) -> Bytes {
        self.size
    }

    async fn allocated_blocks(&self) -> Result<Vec<Range<u64>>, CloudError> {
        let tokens = self.tokens().await?;
        let limit = self.size.0.div_ceil(BLOCK_SIZE);
        let beyond: Vec<u64> = tokens.keys().copied().filter(|i| *i >= limit).collect();
        if !beyond.is_empty() {
            return Err(CloudError::Permanent(format!(
                "snapshot {}: lists block {} beyond its size {}",
                self.snapshot_id, beyond[0], self.size
            )));
        }
        Ok(to_ranges(tokens.keys().copied().collect()))
    }

    async fn read_block(&self, index: BlockIndex) -> Result<BlockData, CloudError> {
        let tokens = self.tokens().await?;
        let Some(token) = tokens.get(&index.0) else {
            // Not listed: never written, so zero.
            return Ok(BlockData {
                bytes: bytes::Bytes::from(vec![0; BLOCK_SIZE as usize]),
                provider_digest: None,
            });
        };
        let what = format!("ebs GetSnapshotBlock {} #{}", self.snapshot_id, index.0);
        let block_index = i32::try_from(index.0)
            .map_err(|_| CloudError::Permanent(format!("{what}: block index out of range")))?;
        let answer = self
            .clients
            .ebs
            .get_snapshot_block()
            .snapshot_id(&self.snapshot_id)
            .block_index(block_index)
            .block_token(token)
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        let digest = decode_checksum(
            &what,
            answer.checksum(),
            answer.checksum_algorithm().map(|a| a.as_str()),
        )?;
        let bytes = answer
            .block_data
            .collect()
            .await
            .map_err(|e| CloudError::Transient(format!("{what}: body cut short: {e}")))?
            .into_bytes();
        if bytes.len() as u64 != BLOCK_SIZE {
            return Err(CloudError::Transient(format!(
                "{what}: {} bytes, an EBS block is {BLOCK_SIZE}",
                bytes.len()
            )));
        }
        Ok(BlockData {
            bytes,
            provider_digest: digest,
        })
    }
}

#[async_trait]
impl Source for AwsCloud {
    /// CreateSnapshot of the volume (tagged with the plan and a name), then
    /// waits until it is `completed`; a failure deletes what was made.
    async fn snapshot_disk(
        &self,
        cap: &Capability,
        disk: &DiskRef,
        name: &str,
    ) -> Result<SnapshotRef, CloudError> {
        let (region, volume_id) = split_region(&disk.disk_id);
        let c = self.clients.get(region)?;
        let volumes = c
            .ec2
            .describe_volumes()
            .volume_ids(volume_id)
            .send()
            .await
            .map_err(|e| classify(&format!("ec2 DescribeVolumes {volume_id}"), e))?;
        let size_gib = volumes
            .volumes()
            .first()
            .and_then(|v| v.size())
            .ok_or_else(|| CloudError::NotFound(format!("volume {volume_id} in {}", self.name)))?;
        let (key, value) = cap.tag();
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Snapshot)
            .tags(Tag::builder().key(key).value(value).build())
            .tags(Tag::builder().key(TEMPORARY_TAG).value("true").build())
            .tags(Tag::builder().key("Name").value(name).build())
            .build();
        let created = c
            .ec2
            .create_snapshot()
            .volume_id(volume_id)
            .description(format!("altishift: {name}"))
            .tag_specifications(tags)
            .send()
            .await
            .map_err(|e| classify(&format!("ec2 CreateSnapshot {volume_id}"), e))?;
        let snapshot_id = created.snapshot_id().map(str::to_string).ok_or_else(|| {
            CloudError::Permanent("ec2 CreateSnapshot: no snapshot id in the answer".into())
        })?;
        if let Err(err) = self.wait_snapshot(&c, &snapshot_id).await {
            if let Err(cleanup) = c
                .ec2
                .delete_snapshot()
                .snapshot_id(&snapshot_id)
                .send()
                .await
            {
                tracing::warn!(snapshot = %snapshot_id, error = %classify("ec2 DeleteSnapshot", cleanup), "aws: could not remove a snapshot after a failure");
            }
            return Err(err);
        }
        Ok(SnapshotRef {
            id: super::join_region(region, &snapshot_id),
            virtual_size: Bytes::gib(size_gib.max(0) as u64),
            format: DiskFormat::Raw,
            created_by_run: true,
        })
    }

    /// Opens a snapshot for reading through the EBS direct APIs. Its size
    /// comes from DescribeSnapshots (the snapshot, not the plan, is the truth).
    async fn open_disk_reader(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn DiskReader>, CloudError> {
        let (region, id) = split_region(&snapshot.id);
        let c = self.clients.get(region)?;
        let answer = c
            .ec2
            .describe_snapshots()
            .snapshot_ids(id)
            .send()
            .await
            .map_err(|e| classify(&format!("ec2 DescribeSnapshots {id}"), e))?;
        let size = answer
            .snapshots()
            .first()
            .and_then(|s| s.volume_size())
            .map(|g| Bytes::gib(g.max(0) as u64))
            .ok_or_else(|| CloudError::NotFound(format!("snapshot {id} in {}", self.name)))?;
        Ok(Box::new(EbsReader::new(c, id, size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_524288_is_believed_as_a_block_size() {
        assert!(block_size_agrees(Some(524_288)));
        assert!(block_size_agrees(None));
        // moto 5.2.5 answers 512: not believed.
        assert!(!block_size_agrees(Some(512)));
    }

    #[test]
    fn checksums_decode_or_fail_clearly() {
        let d = BlockDigest::of(b"x");
        let b64 = base64::engine::general_purpose::STANDARD.encode(d.0);
        assert_eq!(
            decode_checksum("t", Some(&b64), Some("SHA256")).unwrap(),
            Some(d)
        );
        assert_eq!(decode_checksum("t", None, None).unwrap(), None);
        assert!(decode_checksum("t", Some("!!"), Some("SHA256")).is_err());
        assert!(decode_checksum("t", Some("AAAA"), Some("SHA256")).is_err());
    }

    #[test]
    fn a_string_block_index_is_read_leniently_anything_else_is_not() {
        let moto = br#"{"Blocks": [{"BlockIndex": "3", "BlockToken": "t3"}, {"BlockIndex": 4, "BlockToken": "t4"}], "VolumeSize": 1, "BlockSize": 512}"#;
        let (blocks, next, size) = lenient_page(moto).unwrap();
        assert_eq!(blocks, vec![(3, "t3".to_string()), (4, "t4".to_string())]);
        assert_eq!((next, size), (None, Some(512)));
        assert!(lenient_page(br#"{"Blocks": [{"BlockIndex": "x", "BlockToken": "t"}]}"#).is_none());
        assert!(lenient_page(br#"{"Blocks": [{"BlockIndex": -1, "BlockToken": "t"}]}"#).is_none());
        assert!(lenient_page(b"{\"Blocks\": [").is_none());
    }

    #[test]
    fn indices_become_ranges() {
        assert_eq!(to_ranges(vec![5, 1, 2, 3, 9]), vec![1..4, 5..6, 9..10]);
        assert!(to_ranges(vec![]).is_empty());
    }
}
