//! The remote agent (`altishift agent …`) and its wire protocol.
//!
//! The tool copies its own binary to the source host and runs it there. The
//! agent reads the device itself, so zero blocks never cross the network and
//! every block arrives with its SHA-256, computed where the bytes were read.
//!
//! Commands (stdout is the protocol, stderr carries errors for a person):
//! - `agent probe` prints `altishift-agent 1 <os> <arch>`.
//! - `agent map DEVICE` prints one JSON line: `{"size":N,"ranges":[[a,b],…]}`,
//!   the block ranges that may hold data (`SEEK_DATA`/`SEEK_HOLE` on files,
//!   the whole device otherwise).
//! - `agent stream DEVICE [--digests]` reads block ranges from stdin (`a b`
//!   per line, end exclusive) and writes [`MAGIC`] and then one frame per
//!   block: data (or, with `--digests`, only its digest) for a non-zero block,
//!   a zero marker otherwise, and an end frame.
//!
//! Frames: a tag byte, the block index (u64, big-endian) and the block length
//! (u32); data frames add the 32-byte SHA-256 and the bytes, digest frames the
//! SHA-256 only. An error frame is the tag, a u32 length and a message.

use crate::block::{BlockDigest, is_all_zero};
use crate::units::BLOCK_SIZE;
use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt};

pub const MAGIC: &[u8] = b"ALTISHIFT-AGENT/1\n";
pub const PROTOCOL: u32 = 1;

const TAG_DATA: u8 = b'D';
const TAG_ZERO: u8 = b'Z';
const TAG_DIGEST: u8 = b'H';
const TAG_END: u8 = b'E';
const TAG_ERROR: u8 = b'X';

/// One frame of the agent's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        index: u64,
        digest: BlockDigest,
        bytes: Vec<u8>,
    },
    Zero {
        index: u64,
        len: u32,
    },
    Digest {
        index: u64,
        len: u32,
        digest: BlockDigest,
    },
    End,
    Error(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("usage: altishift agent probe | map DEVICE | stream DEVICE [--digests]")]
    Usage,
    #[error("cannot open {device}: {source}")]
    Open {
        device: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{device}: {source}")]
    Io {
        device: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad range line '{0}' on stdin (expected 'START END')")]
    BadRange(String),
}

/// The `altishift agent` entry point: `args` are the words after `agent`.
/// It blocks (the agent is a plain sequential reader) and writes to stdout.
pub fn run(args: &[String]) -> Result<(), AgentError> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let io = |device: &str| {
        let device = device.to_string();
        move |source| AgentError::Io { device, source }
    };
    match words.as_slice() {
        ["probe"] => {
            writeln!(
                out,
                "altishift-agent {PROTOCOL} {} {}",
                std::env::consts::OS,
                std::env::consts::ARCH
            )
            .map_err(io("stdout"))?;
            out.flush().map_err(io("stdout"))
        }
        ["map", device] => {
            let (file, size) = open(device)?;
            let ranges = allocated(&file, size).map_err(io(device))?;
            let json = serde_json::json!({
                "size": size,
                "ranges": ranges.iter().map(|r| [r.start, r.end]).collect::<Vec<_>>(),
            });
            writeln!(out, "{json}").map_err(io("stdout"))?;
            out.flush().map_err(io("stdout"))
        }
        ["stream", device, rest @ ..] => {
            let digests_only = match rest {
                [] => false,
                ["--digests"] => true,
                _ => return Err(AgentError::Usage),
            };
            let (file, size) = open(device)?;
            let ranges = read_ranges(std::io::stdin().lock())?;
            out.write_all(MAGIC).map_err(io("stdout"))?;
            let result = stream(&file, size, &ranges, digests_only, &mut out);
            if let Err(e) = &result {
                // Best effort: the reader also sees our exit status and stderr.
                let _ = write_frame(&mut out, &Frame::Error(e.to_string()));
                let _ = out.flush();
            }
            result.map_err(io(device))
        }
        _ => Err(AgentError::Usage),
    }
}

/// Opens a file or device read-only and finds its size (devices report a
/// zero length in their metadata, so seek to the end).
fn open(device: &str) -> Result<(File, u64), AgentError> {
    let file = File::open(device).map_err(|source| AgentError::Open {
        device: device.to_string(),
        source,
    })?;
    let mut handle = &file;
    let size = handle
        .seek(SeekFrom::End(0))
        .map_err(|source| AgentError::Io {
            device: device.to_string(),
            source,
        })?;
    Ok((file, size))
}

/// Block ranges that may hold data.
pub fn allocated(file: &File, size: u64) -> std::io::Result<Vec<Range<u64>>> {
    let blocks = size.div_ceil(BLOCK_SIZE);
    if file.metadata()?.file_type().is_block_device() {
        return Ok((blocks > 0).then_some(0..blocks).into_iter().collect());
    }
    let extents = crate::cloud::local_disk::data_extents(file)?;
    Ok(crate::cloud::local_disk::extents_to_blocks(&extents))
}

fn read_ranges(input: impl BufRead) -> Result<Vec<Range<u64>>, AgentError> {
    let mut ranges = Vec::new();
    for line in input.lines() {
        let line = line.map_err(|source| AgentError::Io {
            device: "stdin".into(),
            source,
        })?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = line
            .split_once(' ')
            .and_then(|(a, b)| Some(a.parse().ok()?..b.trim().parse().ok()?));
        match parsed {
            Some(range) => ranges.push(range),
            None => return Err(AgentError::BadRange(line.chars().take(80).collect())),
        }
    }
    Ok(ranges)
}

fn stream(
    file: &File,
    size: u64,
    ranges: &[Range<u64>],
    digests_only: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; BLOCK_SIZE as usize];
    for index in ranges.iter().flat_map(|r| r.clone()) {
        let offset = index * BLOCK_SIZE;
        if offset >= size {
            break;
        }
        let len = (size - offset).min(BLOCK_SIZE) as usize;
        let bytes = &mut buffer[..len];
        file.read_exact_at(bytes, offset)?;
        let frame = if is_all_zero(bytes) {
            Frame::Zero {
                index,
                len: len as u32,
            }
        } else if digests_only {
            Frame::Digest {
                index,
                len: len as u32,
                digest: BlockDigest::of(bytes),
            }
        } else {
            // Written below without copying the bytes into the frame.
            let digest = BlockDigest::of(bytes);
            write_data_header(out, index, len as u32, digest)?;
            out.write_all(bytes)?;
            continue;
        };
        write_frame(out, &frame)?;
    }
    write_frame(out, &Frame::End)?;
    out.flush()
}

fn write_data_header(
    out: &mut impl Write,
    index: u64,
    len: u32,
    digest: BlockDigest,
) -> std::io::Result<()> {
    let mut header = [0u8; 45];
    header[0] = TAG_DATA;
    header[1..9].copy_from_slice(&index.to_be_bytes());
    header[9..13].copy_from_slice(&len.to_be_bytes());
    header[13..45].copy_from_slice(&digest.0);
    out.write_all(&header)
}

pub fn write_frame(out: &mut impl Write, frame: &Frame) -> std::io::Result<()> {
    match frame {
        Frame::Data {
            index,
            digest,
            bytes,
        } => {
            write_data_header(out, *index, bytes.len() as u32, *digest)?;
            out.write_all(bytes)
        }
        Frame::Zero { index, len } => {
            out.write_all(&[TAG_ZERO])?;
            out.write_all(&index.to_be_bytes())?;
            out.write_all(&len.to_be_bytes())
        }
        Frame::Digest { index, len, digest } => {
            out.write_all(&[TAG_DIGEST])?;
            out.write_all(&index.to_be_bytes())?;
            out.write_all(&len.to_be_bytes())?;
            out.write_all(&digest.0)
        }
        Frame::End => out.write_all(&[TAG_END]),
        Frame::Error(message) => {
            out.write_all(&[TAG_ERROR])?;
            out.write_all(&(message.len() as u32).to_be_bytes())?;
            out.write_all(message.as_bytes())
        }
    }
}

/// Reads one frame (blocking reader; the async side wraps its own).
pub fn read_frame(input: &mut impl Read) -> std::io::Result<Frame> {
    let mut tag = [0u8; 1];
    input.read_exact(&mut tag)?;
    decode(tag[0], input)
}

/// Decodes the rest of a frame whose tag was read.
pub fn decode(tag: u8, input: &mut impl Read) -> std::io::Result<Frame> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut head = [0u8; 12];
    match tag {
        TAG_END => return Ok(Frame::End),
        TAG_ERROR => {
            let mut len = [0u8; 4];
            input.read_exact(&mut len)?;
            let len = u32::from_be_bytes(len).min(64 * 1024) as usize;
            let mut message = vec![0u8; len];
            input.read_exact(&mut message)?;
            return Ok(Frame::Error(String::from_utf8_lossy(&message).into_owned()));
        }
        TAG_DATA | TAG_ZERO | TAG_DIGEST => input.read_exact(&mut head)?,
        other => return Err(bad(format!("unknown frame tag {other:#04x}"))),
    }
    let mut index = [0u8; 8];
    index.copy_from_slice(&head[..8]);
    let index = u64::from_be_bytes(index);
    let mut len = [0u8; 4];
    len.copy_from_slice(&head[8..]);
    let len = u32::from_be_bytes(len);
    if u64::from(len) > BLOCK_SIZE {
        return Err(bad(format!("block {index}: length {len} exceeds a block")));
    }
    if tag == TAG_ZERO {
        return Ok(Frame::Zero { index, len });
    }
    let mut digest = [0u8; 32];
    input.read_exact(&mut digest)?;
    let digest = BlockDigest(digest);
    if tag == TAG_DIGEST {
        return Ok(Frame::Digest { index, len, digest });
    }
    let mut bytes = vec![0u8; len as usize];
    input.read_exact(&mut bytes)?;
    Ok(Frame::Data {
        index,
        digest,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            Frame::Data {
                index: 7,
                digest: BlockDigest::of(b"abc"),
                bytes: b"abc".to_vec(),
            },
            Frame::Zero {
                index: 8,
                len: 524_288,
            },
            Frame::Digest {
                index: 9,
                len: 10,
                digest: BlockDigest::of(b"x"),
            },
            Frame::Error("disk gone".into()),
            Frame::End,
        ];
        let mut wire = Vec::new();
        for frame in &frames {
            write_frame(&mut wire, frame).unwrap();
        }
        let mut input = wire.as_slice();
        for frame in &frames {
            assert_eq!(&read_frame(&mut input).unwrap(), frame);
        }
        assert!(read_frame(&mut input).is_err(), "nothing after the end");
    }

    #[test]
    fn hostile_frames_are_refused() {
        let mut wire = vec![TAG_DATA];
        wire.extend_from_slice(&1u64.to_be_bytes());
        wire.extend_from_slice(&(u32::MAX).to_be_bytes());
        assert!(read_frame(&mut wire.as_slice()).is_err());
        assert!(read_frame(&mut [b'?'].as_slice()).is_err());
    }

    #[test]
    fn streams_skip_zero_blocks_and_hash_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        let file = File::create(&path).unwrap();
        let size = 3 * BLOCK_SIZE + 100;
        file.set_len(size).unwrap();
        file.write_all_at(b"hello", 2 * BLOCK_SIZE + 5).unwrap();
        file.write_all_at(b"tail", 3 * BLOCK_SIZE + 10).unwrap();
        let file = File::open(&path).unwrap();
        let mut out = Vec::new();
        stream(&file, size, &[0..2, 2..4], false, &mut out).unwrap();
        let mut input = out.as_slice();
        let mut data = Vec::new();
        let mut zero = Vec::new();
        loop {
            match read_frame(&mut input).unwrap() {
                Frame::Data {
                    index,
                    digest,
                    bytes,
                } => {
                    assert_eq!(digest, BlockDigest::of(&bytes));
                    data.push((index, bytes.len()));
                }
                Frame::Zero { index, .. } => zero.push(index),
                Frame::End => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(data, vec![(2, BLOCK_SIZE as usize), (3, 100)]);
        assert_eq!(zero, vec![0, 1]);
    }

    #[test]
    fn range_lines_parse_and_garbage_is_named() {
        let ranges = read_ranges("0 4\n\n10 12\n".as_bytes()).unwrap();
        assert_eq!(ranges, vec![0..4, 10..12]);
        let err = read_ranges("0-4\n".as_bytes()).unwrap_err().to_string();
        assert!(err.contains("0-4"), "{err}");
    }
}
