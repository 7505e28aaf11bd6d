//! The console's side of the agent protocol (the frames themselves are in
//! the `altishift-agent` crate, written once for both ends).
//!
//! Nothing the agent says is trusted: its map is clipped to the device, each
//! frame must be the next block asked for, and a frame's length must be the
//! block's. A hostile or broken agent gets a clear error, never a read or a
//! write past the disk, and never a panic.

use crate::block::BlockDigest;
use crate::units::BLOCK_SIZE;
pub use altishift_agent::protocol::{self, Frame, FrameError, MAGIC, PROTOCOL};
use std::ops::Range;
use tokio::io::{AsyncRead, AsyncReadExt};

// The agent and the console must cut the disk into the same blocks.
const _: () = assert!(altishift_agent::BLOCK_SIZE == BLOCK_SIZE);

/// Bytes of the block at `index` on a device of `size` bytes (0 past the end).
pub fn block_len(size: u64, index: u64) -> usize {
    size.saturating_sub(index.saturating_mul(BLOCK_SIZE))
        .min(BLOCK_SIZE) as usize
}

/// The agent's map made safe: ranges clipped to the device's blocks, empty
/// and inverted ones dropped, the rest sorted and merged (no block twice).
pub fn clip_ranges(ranges: &[[u64; 2]], size: u64) -> Vec<Range<u64>> {
    let blocks = size.div_ceil(BLOCK_SIZE);
    let mut clipped: Vec<Range<u64>> = ranges
        .iter()
        .map(|[a, b]| (*a).min(blocks)..(*b).min(blocks))
        .filter(|r| r.start < r.end)
        .collect();
    clipped.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::new();
    for range in clipped {
        match merged.last_mut() {
            Some(last) if last.end >= range.start => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// A block the agent sent, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Data { bytes: Vec<u8>, digest: BlockDigest },
    Zero { len: usize },
    Digest(BlockDigest),
}

/// What one checked frame means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    Block(u64, Block),
    End,
}

/// Follows a stream the agent sends for `ranges` of a device of `size`
/// bytes: each frame must be the next block in the ranges, of that block's
/// length, and of the kind the stream carries (data or digests).
pub struct Expect {
    size: u64,
    ranges: Vec<Range<u64>>,
    /// Position in `ranges`: (range, next index).
    at: usize,
    next: Option<u64>,
    digests: bool,
}

impl Expect {
    pub fn new(ranges: &[Range<u64>], size: u64, digests: bool) -> Expect {
        let blocks = size.div_ceil(BLOCK_SIZE);
        let ranges: Vec<Range<u64>> = ranges
            .iter()
            .map(|r| r.start.min(blocks)..r.end.min(blocks))
            .filter(|r| r.start < r.end)
            .collect();
        let next = ranges.first().map(|r| r.start);
        Expect {
            size,
            ranges,
            at: 0,
            next,
            digests,
        }
    }

    fn advance(&mut self) {
        let Some(index) = self.next else { return };
        if index + 1 < self.ranges[self.at].end {
            self.next = Some(index + 1);
        } else {
            self.at += 1;
            self.next = self.ranges.get(self.at).map(|r| r.start);
        }
    }

    /// Checks one frame; an error says what was wrong with it.
    pub fn check(&mut self, frame: Frame) -> Result<Checked, String> {
        let (index, len, block) = match frame {
            Frame::End => {
                return match self.next {
                    None => Ok(Checked::End),
                    Some(missing) => {
                        Err(format!("the agent ended the stream before block {missing}"))
                    }
                };
            }
            Frame::Error(message) => return Err(format!("the agent failed: {message}")),
            Frame::Data {
                index,
                digest,
                bytes,
            } if !self.digests => {
                let len = bytes.len();
                let block = Block::Data {
                    bytes,
                    digest: BlockDigest(digest),
                };
                (index, len, block)
            }
            Frame::Digest { index, len, digest } if self.digests => {
                (index, len as usize, Block::Digest(BlockDigest(digest)))
            }
            Frame::Zero { index, len } => (index, len as usize, Block::Zero { len: len as usize }),
            Frame::Data { index, .. } => {
                return Err(format!("block {index}: data frame in a digest stream"));
            }
            Frame::Digest { index, .. } => {
                return Err(format!("block {index}: digest frame in a data stream"));
            }
        };
        let Some(expected) = self.next else {
            return Err(format!(
                "block {index}: the agent sent more blocks than were asked for"
            ));
        };
        if index != expected {
            let past_end = index.checked_mul(BLOCK_SIZE).is_none_or(|o| o >= self.size);
            return Err(if past_end {
                format!(
                    "block {index} is past the end of the device ({} bytes)",
                    self.size
                )
            } else {
                format!("block {index} arrived where block {expected} was expected")
            });
        }
        let wanted = block_len(self.size, index);
        if len != wanted {
            return Err(format!("block {index}: {len} bytes, expected {wanted}"));
        }
        self.advance();
        Ok(Checked::Block(index, block))
    }
}

/// Reads one frame from an async stream (header, then the payload it
/// announces, refused before allocating when over a block).
pub async fn next_frame(input: &mut (impl AsyncRead + Unpin)) -> Result<Frame, FrameError> {
    async fn fill(
        input: &mut (impl AsyncRead + Unpin),
        buf: &mut [u8],
        what: &'static str,
    ) -> Result<(), FrameError> {
        match input.read_exact(buf).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(FrameError::Truncated(what))
            }
            Err(e) => Err(FrameError::Io(e)),
        }
    }
    let mut tag = [0u8; 1];
    fill(input, &mut tag, "a frame tag").await?;
    let mut header = vec![0u8; protocol::header_len(tag[0])?];
    fill(input, &mut header, "a frame header").await?;
    let mut payload = vec![0u8; protocol::payload_len(tag[0], &header)?];
    fill(input, &mut payload, "a frame's payload").await?;
    protocol::decode(tag[0], &header, payload)
}

/// Reads [`MAGIC`] from an async stream.
pub async fn read_magic(input: &mut (impl AsyncRead + Unpin)) -> Result<(), FrameError> {
    let mut magic = [0u8; MAGIC.len()];
    input.read_exact(&mut magic).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated("the protocol greeting")
        } else {
            FrameError::Io(e)
        }
    })?;
    protocol::read_magic(&mut magic.as_slice())
}

/// Why a whole stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFault {
    /// The bytes stopped early (a lost connection): worth a retry.
    Cut(String),
    /// The agent said or sent something wrong.
    Bad(String),
}

/// Parses a whole digest stream held in memory (a delta pass's answer):
/// block → digest, `None` for a zero block.
pub fn parse_digests(
    mut wire: &[u8],
    ranges: &[Range<u64>],
    size: u64,
) -> Result<Vec<(u64, Option<BlockDigest>)>, StreamFault> {
    let fault = |e: FrameError| {
        if e.is_truncation() {
            StreamFault::Cut(e.to_string())
        } else {
            StreamFault::Bad(e.to_string())
        }
    };
    protocol::read_magic(&mut wire).map_err(fault)?;
    let mut expect = Expect::new(ranges, size, true);
    let mut digests = Vec::new();
    loop {
        let frame = protocol::read_frame(&mut wire).map_err(fault)?;
        match expect.check(frame).map_err(StreamFault::Bad)? {
            Checked::End => return Ok(digests),
            Checked::Block(index, Block::Digest(digest)) => digests.push((index, Some(digest))),
            Checked::Block(index, _) => digests.push((index, None)),
        }
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
