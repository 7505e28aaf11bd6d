//! A delta found by hashing: every block a fresh snapshot may hold is read
//! and its digest compared with what the target holds; the reader then
//! serves only the blocks that differ, and the blocks the target holds that
//! are zero now (served as zeros, so the target overwrites them). For
//! sources whose API lists no changed blocks (Compute Engine without the
//! worker's agent, CloudStack's extracted volumes).

use super::{BlockData, CloudError, DiskReader};
use crate::block::BlockDigest;
use crate::units::{BLOCK_SIZE, BlockIndex, Bytes};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// What hashing found, for the log and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashedSummary {
    /// Blocks read and hashed.
    pub hashed: u64,
    /// Blocks the delta serves (changed, new, or zero now).
    pub changed: u64,
}

/// `inner` limited to the blocks that differ from `held`.
pub struct HashedDelta<R> {
    inner: R,
    wanted: Vec<Range<u64>>,
    pub summary: HashedSummary,
}

impl<R: DiskReader> HashedDelta<R> {
    /// Reads and hashes every allocated block of `inner` (block → digest of
    /// what the target holds in `held`; a block absent from `held` is zero
    /// there).
    pub async fn new(
        inner: R,
        held: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<HashedDelta<R>, CloudError> {
        let limit = inner.virtual_size().0.div_ceil(BLOCK_SIZE);
        let mut wanted = BTreeSet::new();
        let mut listed = BTreeSet::new();
        let mut summary = HashedSummary::default();
        for range in inner.allocated_blocks().await? {
            for index in range.start..range.end.min(limit) {
                listed.insert(index);
                let block = inner.read_block(BlockIndex(index)).await?;
                summary.hashed += 1;
                let now =
                    (!block.bytes.iter().all(|&b| b == 0)).then(|| BlockDigest::of(&block.bytes));
                if now.as_ref() != held.get(&BlockIndex(index)) {
                    wanted.insert(index);
                }
            }
        }
        // Held blocks in what is a hole now became zero.
        wanted.extend(
            held.keys()
                .map(|i| i.0)
                .filter(|i| *i < limit && !listed.contains(i)),
        );
        summary.changed = wanted.len() as u64;
        Ok(HashedDelta {
            inner,
            wanted: to_ranges(wanted),
            summary,
        })
    }
}

/// Ascending indices as ranges of consecutive blocks.
fn to_ranges(indices: BTreeSet<u64>) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for i in indices {
        match out.last_mut() {
            Some(last) if last.end == i => last.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

#[async_trait]
impl<R: DiskReader> DiskReader for HashedDelta<R> {
    fn virtual_size(&self) -> Bytes {
        self.inner.virtual_size()
    }

    async fn allocated_blocks(&self) -> Result<Vec<Range<u64>>, CloudError> {
        Ok(self.wanted.clone())
    }

    async fn read_block(&self, index: BlockIndex) -> Result<BlockData, CloudError> {
        self.inner.read_block(index).await
    }
}

#[async_trait]
impl DiskReader for Box<dyn DiskReader> {
    fn virtual_size(&self) -> Bytes {
        (**self).virtual_size()
    }

    async fn allocated_blocks(&self) -> Result<Vec<Range<u64>>, CloudError> {
        (**self).allocated_blocks().await
    }

    async fn read_block(&self, index: BlockIndex) -> Result<BlockData, CloudError> {
        (**self).read_block(index).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks in memory; `allocated` lists what may hold data.
    struct Blocks {
        blocks: BTreeMap<u64, Vec<u8>>,
        size: u64,
    }

    #[async_trait]
    impl DiskReader for Blocks {
        fn virtual_size(&self) -> Bytes {
            Bytes(self.size)
        }
        async fn allocated_blocks(&self) -> Result<Vec<Range<u64>>, CloudError> {
            Ok(self.blocks.keys().map(|&i| i..i + 1).collect())
        }
        async fn read_block(&self, index: BlockIndex) -> Result<BlockData, CloudError> {
            Ok(BlockData {
                bytes: self
                    .blocks
                    .get(&index.0)
                    .cloned()
                    .unwrap_or_else(|| vec![0; BLOCK_SIZE as usize])
                    .into(),
                provider_digest: None,
            })
        }
    }

    fn block(byte: u8) -> Vec<u8> {
        vec![byte; BLOCK_SIZE as usize]
    }

    #[tokio::test]
    async fn changed_new_and_zeroed_blocks_are_served_the_rest_skipped() {
        let held: BTreeMap<BlockIndex, BlockDigest> = [(0, 1u8), (1, 2), (2, 3), (5, 4)]
            .into_iter()
            .map(|(i, b)| (BlockIndex(i), BlockDigest::of(&block(b))))
            .collect();
        // 0 unchanged, 1 rewritten, 2 zeroed in place, 5 now a hole, 3 new.
        let now = Blocks {
            blocks: [(0, block(1)), (1, block(9)), (2, block(0)), (3, block(7))]
                .into_iter()
                .collect(),
            size: 8 * BLOCK_SIZE,
        };
        let delta = HashedDelta::new(now, &held).await.unwrap();
        assert_eq!(delta.allocated_blocks().await.unwrap(), vec![1..4, 5..6]);
        assert_eq!(
            delta.summary,
            HashedSummary {
                hashed: 4,
                changed: 4
            }
        );
        assert_eq!(
            delta.read_block(BlockIndex(5)).await.unwrap().bytes,
            block(0)
        );
    }
}
