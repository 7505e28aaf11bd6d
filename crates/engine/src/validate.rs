//! Validation of a written disk: read it back from the target and compare
//! its block digests with the source's, block for block.

use super::retry::RetryPolicy;
use crate::block::{BlockDigest, DigestBuilder, is_all_zero};
use crate::cloud::{Check, Cloud, CloudError, WrittenDisk};
use crate::units::BlockIndex;
use futures::{StreamExt, TryStreamExt, stream};

/// Digests of every non-zero block a target disk holds.
pub async fn read_back_digests(
    target: &dyn Cloud,
    disk: &WrittenDisk,
    in_flight: usize,
    retry: RetryPolicy,
) -> Result<Option<DigestBuilder>, CloudError> {
    let Some(reader) = target.target_role()?.read_back(disk).await? else {
        return Ok(None);
    };
    let reader = &*reader;
    let ranges = retry.run(|| reader.allocated_blocks(), |_, _| {}).await?;
    let digests: Vec<(BlockIndex, Option<BlockDigest>)> =
        stream::iter(ranges.into_iter().flatten().map(BlockIndex))
            .map(|index| async move {
                let data = retry.run(|| reader.read_block(index), |_, _| {}).await?;
                let digest = tokio::task::spawn_blocking(move || {
                    (!is_all_zero(&data.bytes)).then(|| BlockDigest::of(&data.bytes))
                })
                .await
                .map_err(|e| CloudError::Permanent(format!("hash task failed: {e}")))?;
                Ok::<_, CloudError>((index, digest))
            })
            .buffer_unordered(in_flight.max(1))
            .try_collect()
            .await?;
    let mut builder = DigestBuilder::default();
    for (index, digest) in digests {
        if let Some(digest) = digest {
            builder.insert(index, digest);
        }
    }
    Ok(Some(builder))
}

/// Compares source and target block digests and says where they differ.
pub fn compare(disk: &str, source: &DigestBuilder, target: Option<&DigestBuilder>) -> Check {
    let name = format!("digest {disk}");
    let Some(target) = target else {
        return Check::new(name, false, "target cannot be read back: not verified");
    };
    let (s, t) = (source.finish(), target.finish());
    if source.blocks() == target.blocks() {
        return Check::new(
            name,
            true,
            format!(
                "LINEAR {} over {} blocks equal on both sides",
                &s.linear_sha256[..16],
                s.blocks
            ),
        );
    }
    let first_difference = source
        .blocks()
        .iter()
        .find(|(i, d)| target.blocks().get(i) != Some(d))
        .map(|(i, _)| i.0)
        .or_else(|| {
            target
                .blocks()
                .keys()
                .find(|i| !source.blocks().contains_key(i))
                .map(|i| i.0)
        });
    Check::new(
        name,
        false,
        format!(
            "source {} ({} blocks) ≠ target {} ({} blocks); first difference at block {}",
            &s.linear_sha256[..16],
            s.blocks,
            &t.linear_sha256[..16],
            t.blocks,
            first_difference
                .map(|b| b.to_string())
                .unwrap_or_else(|| "?".into())
        ),
    )
}
