//! Delta passes: the agent hashes the device's blocks on the host and sends
//! only the digests; blocks whose digest differs from what the target holds
//! (the journal's digests of earlier passes) are read again.

use super::SshCloud;
use super::reader::{self, SshDiskReader, StreamMode};
use crate::CloudError;
use crate::block::BlockDigest;
use crate::units::{BLOCK_SIZE, BlockIndex};
use std::collections::BTreeMap;
use std::ops::Range;

impl SshCloud {
    /// A delta pass: the blocks whose digest differs from `previous` (block
    /// index → digest of what the target holds, from the last pass's journal).
    pub async fn open_delta_stream(
        &self,
        previous: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<(SshDiskReader, DeltaSummary), CloudError> {
        let size = self.facts().await?.size;
        let mode = self.stream_mode().await?;
        let StreamMode::Agent { path } = &mode else {
            return Err(CloudError::Unsupported(
                "a delta pass needs the agent (digests are computed on the host)".into(),
            ));
        };
        let ranges = self.ranges(&mode, size).await?;
        let now = reader::remote_digests(&self.session, path, &self.settings.device, size, &ranges)
            .await?;
        let summary = delta(previous, &now);
        // Blocks that became zero are read too (as zeros): the target holds
        // data there that must be overwritten.
        let mut wanted: Vec<u64> = summary
            .changed
            .iter()
            .chain(&summary.zeroed)
            .copied()
            .filter(|&i| i < size.div_ceil(BLOCK_SIZE))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        Ok((
            SshDiskReader::new(
                self.session.clone(),
                self.settings.device.clone(),
                size,
                mode.clone(),
                to_ranges(&wanted),
            ),
            summary,
        ))
    }
}

/// What a delta pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeltaSummary {
    /// Non-zero blocks whose content differs from the previous pass (or new).
    pub changed: Vec<u64>,
    /// Blocks the previous pass sent that are zero now: the delta reader
    /// serves them (as zeros) so the engine overwrites them on the target.
    pub zeroed: Vec<u64>,
    pub unchanged: u64,
}

fn delta(
    previous: &BTreeMap<BlockIndex, BlockDigest>,
    now: &BTreeMap<u64, Option<BlockDigest>>,
) -> DeltaSummary {
    let mut summary = DeltaSummary::default();
    for (index, digest) in now {
        let before = previous.get(&BlockIndex(*index));
        match (digest, before) {
            (Some(d), Some(b)) if d == b => summary.unchanged += 1,
            (Some(_), _) => summary.changed.push(*index),
            (None, Some(_)) => summary.zeroed.push(*index),
            (None, None) => {}
        }
    }
    // Blocks that had data and are now in a hole (not in the map at all).
    for index in previous.keys() {
        if !now.contains_key(&index.0) {
            summary.zeroed.push(index.0);
        }
    }
    summary.zeroed.sort_unstable();
    summary
}

/// Ascending indices to merged ranges.
pub fn to_ranges(indices: &[u64]) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for &i in indices {
        match ranges.last_mut() {
            Some(last) if last.end == i => last.end = i + 1,
            _ => ranges.push(i..i + 1),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_names_changed_new_and_zeroed_blocks() {
        let d = |b: &[u8]| BlockDigest::of(b);
        let previous: BTreeMap<BlockIndex, BlockDigest> = [
            (BlockIndex(0), d(b"a")),
            (BlockIndex(1), d(b"b")),
            (BlockIndex(2), d(b"c")),
            (BlockIndex(9), d(b"gone")),
        ]
        .into();
        let now: BTreeMap<u64, Option<BlockDigest>> = [
            (0, Some(d(b"a"))),
            (1, Some(d(b"B"))),
            (2, None),
            (3, Some(d(b"new"))),
            (4, None),
        ]
        .into();
        let summary = delta(&previous, &now);
        assert_eq!(summary.changed, vec![1, 3]);
        assert_eq!(summary.zeroed, vec![2, 9]);
        assert_eq!(summary.unchanged, 1);
        assert_eq!(to_ranges(&[1, 2, 3, 7, 9, 10]), vec![1..4, 7..8, 9..11]);
    }
}
