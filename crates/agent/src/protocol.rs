//! The agent's wire protocol: [`MAGIC`], then frames.
//!
//! A frame is a tag byte and a header; data frames add a payload:
//! - `D` index (u64 BE), length (u32 BE), SHA-256 (32 bytes), then the bytes;
//! - `Z` index, length: a block of zeros (nothing else crosses the wire);
//! - `H` index, length, SHA-256: a digest only (delta passes);
//! - `E`: the end of the stream;
//! - `X` length (u32 BE), then a message for a person (at most 64 KiB).
//!
//! Decoding never trusts a length: a block longer than [`BLOCK_SIZE`], a
//! message over 64 KiB, an unknown tag or a stream cut short is an error that
//! says so, and nothing allocates more than one block.

use std::io::{Read, Write};

pub const MAGIC: &[u8] = b"ALTISHIFT-AGENT/1\n";
pub const PROTOCOL: u32 = 1;
/// Blocks are 512 KiB, as in the console (its `units::BLOCK_SIZE`).
pub const BLOCK_SIZE: u64 = 512 * 1024;
/// The longest error message a frame may carry.
pub const MAX_MESSAGE: usize = 64 * 1024;

pub const TAG_DATA: u8 = b'D';
pub const TAG_ZERO: u8 = b'Z';
pub const TAG_DIGEST: u8 = b'H';
pub const TAG_END: u8 = b'E';
pub const TAG_ERROR: u8 = b'X';

/// A block's SHA-256.
pub type Digest = [u8; 32];

/// One frame of the agent's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        index: u64,
        digest: Digest,
        bytes: Vec<u8>,
    },
    Zero {
        index: u64,
        len: u32,
    },
    Digest {
        index: u64,
        len: u32,
        digest: Digest,
    },
    End,
    Error(String),
}

/// Why bytes from the agent are not a frame.
#[derive(Debug)]
pub enum FrameError {
    UnknownTag(u8),
    /// A block frame announces more than a block.
    TooLong {
        index: u64,
        len: u32,
    },
    /// An error frame announces more than [`MAX_MESSAGE`].
    MessageTooLong(u32),
    /// The stream ended inside a frame (or before the first one).
    Truncated(&'static str),
    /// The greeting is not ours (another program, another version).
    NotOurProtocol,
    Io(std::io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::UnknownTag(tag) => write!(f, "unknown frame tag {tag:#04x}"),
            FrameError::TooLong { index, len } => write!(
                f,
                "block {index}: frame claims {len} bytes, more than a block ({BLOCK_SIZE})"
            ),
            FrameError::MessageTooLong(len) => write!(
                f,
                "error frame claims a {len}-byte message (at most {MAX_MESSAGE})"
            ),
            FrameError::Truncated(what) => write!(f, "stream cut short inside {what}"),
            FrameError::NotOurProtocol => {
                f.write_str("the remote agent does not speak our protocol")
            }
            FrameError::Io(e) => write!(f, "reading the stream: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl FrameError {
    /// The stream broke off (a lost connection) rather than carrying garbage.
    pub fn is_truncation(&self) -> bool {
        matches!(self, FrameError::Truncated(_) | FrameError::Io(_))
    }
}

/// Header bytes that follow `tag`, before any payload.
pub fn header_len(tag: u8) -> Result<usize, FrameError> {
    match tag {
        TAG_END => Ok(0),
        TAG_ERROR => Ok(4),
        TAG_ZERO => Ok(12),
        TAG_DIGEST | TAG_DATA => Ok(44),
        other => Err(FrameError::UnknownTag(other)),
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(word)
}

/// Payload bytes a header announces, refused when over a block (or 64 KiB
/// for a message). `header` is exactly [`header_len`] bytes.
pub fn payload_len(tag: u8, header: &[u8]) -> Result<usize, FrameError> {
    check_header(tag, header)?;
    match tag {
        TAG_ERROR => Ok(be_u32(header) as usize),
        TAG_DATA => Ok(be_u32(&header[8..]) as usize),
        _ => Ok(0),
    }
}

fn check_header(tag: u8, header: &[u8]) -> Result<(), FrameError> {
    if header.len() != header_len(tag)? {
        return Err(FrameError::Truncated("a frame header"));
    }
    match tag {
        TAG_ERROR => {
            let len = be_u32(header);
            if len as usize > MAX_MESSAGE {
                return Err(FrameError::MessageTooLong(len));
            }
        }
        TAG_DATA | TAG_ZERO | TAG_DIGEST => {
            let (index, len) = (be_u64(header), be_u32(&header[8..]));
            if u64::from(len) > BLOCK_SIZE {
                return Err(FrameError::TooLong { index, len });
            }
        }
        _ => {}
    }
    Ok(())
}

/// Builds a frame from its tag, header and payload (as announced by
/// [`payload_len`]).
pub fn decode(tag: u8, header: &[u8], payload: Vec<u8>) -> Result<Frame, FrameError> {
    check_header(tag, header)?;
    if payload.len() != payload_len(tag, header)? {
        return Err(FrameError::Truncated("a frame's payload"));
    }
    let digest = || {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&header[12..44]);
        digest
    };
    Ok(match tag {
        TAG_END => Frame::End,
        TAG_ERROR => Frame::Error(String::from_utf8_lossy(&payload).into_owned()),
        TAG_ZERO => Frame::Zero {
            index: be_u64(header),
            len: be_u32(&header[8..]),
        },
        TAG_DIGEST => Frame::Digest {
            index: be_u64(header),
            len: be_u32(&header[8..]),
            digest: digest(),
        },
        TAG_DATA => Frame::Data {
            index: be_u64(header),
            digest: digest(),
            bytes: payload,
        },
        other => return Err(FrameError::UnknownTag(other)),
    })
}

fn fill(input: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), FrameError> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated(what)
        } else {
            FrameError::Io(e)
        }
    })
}

/// Reads one frame from a blocking reader.
pub fn read_frame(input: &mut impl Read) -> Result<Frame, FrameError> {
    let mut tag = [0u8; 1];
    fill(input, &mut tag, "a frame tag")?;
    let mut header = vec![0u8; header_len(tag[0])?];
    fill(input, &mut header, "a frame header")?;
    let mut payload = vec![0u8; payload_len(tag[0], &header)?];
    fill(input, &mut payload, "a frame's payload")?;
    decode(tag[0], &header, payload)
}

/// Reads and checks [`MAGIC`] at the start of a stream.
pub fn read_magic(input: &mut impl Read) -> Result<(), FrameError> {
    let mut magic = [0u8; MAGIC.len()];
    fill(input, &mut magic, "the protocol greeting")?;
    if magic != MAGIC {
        return Err(FrameError::NotOurProtocol);
    }
    Ok(())
}

/// The header of a data frame; the caller writes the bytes after it (no copy).
pub fn write_data_header(
    out: &mut impl Write,
    index: u64,
    len: u32,
    digest: &Digest,
) -> std::io::Result<()> {
    let mut header = [0u8; 45];
    header[0] = TAG_DATA;
    header[1..9].copy_from_slice(&index.to_be_bytes());
    header[9..13].copy_from_slice(&len.to_be_bytes());
    header[13..45].copy_from_slice(digest);
    out.write_all(&header)
}

pub fn write_frame(out: &mut impl Write, frame: &Frame) -> std::io::Result<()> {
    match frame {
        Frame::Data {
            index,
            digest,
            bytes,
        } => {
            write_data_header(out, *index, bytes.len() as u32, digest)?;
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
            out.write_all(digest)
        }
        Frame::End => out.write_all(&[TAG_END]),
        Frame::Error(message) => {
            // Cut on a character boundary so the frame stays within limits.
            let mut end = message.len().min(MAX_MESSAGE);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            out.write_all(&[TAG_ERROR])?;
            out.write_all(&(end as u32).to_be_bytes())?;
            out.write_all(&message.as_bytes()[..end])
        }
    }
}

/// SHA-256 of a block.
pub fn digest_of(bytes: &[u8]) -> Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            Frame::Data {
                index: 7,
                digest: digest_of(b"abc"),
                bytes: b"abc".to_vec(),
            },
            Frame::Zero {
                index: 8,
                len: 524_288,
            },
            Frame::Digest {
                index: 9,
                len: 10,
                digest: digest_of(b"x"),
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
        let after = read_frame(&mut input).unwrap_err();
        assert!(after.is_truncation(), "{after}");
    }

    #[test]
    fn lengths_over_the_limits_are_refused_before_any_allocation() {
        let mut wire = vec![TAG_DATA];
        wire.extend_from_slice(&1u64.to_be_bytes());
        wire.extend_from_slice(&u32::MAX.to_be_bytes());
        wire.extend_from_slice(&[0u8; 32]);
        let err = read_frame(&mut wire.as_slice()).unwrap_err().to_string();
        assert!(
            err.contains("block 1") && err.contains("more than a block"),
            "{err}"
        );
        let mut wire = vec![TAG_ERROR];
        wire.extend_from_slice(&u32::MAX.to_be_bytes());
        let err = read_frame(&mut wire.as_slice()).unwrap_err().to_string();
        assert!(err.contains("at most 65536"), "{err}");
    }

    #[test]
    fn a_long_message_is_cut_to_fit_a_frame() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &Frame::Error("é".repeat(MAX_MESSAGE))).unwrap();
        let Frame::Error(text) = read_frame(&mut wire.as_slice()).unwrap() else {
            panic!("an error frame");
        };
        assert!(text.len() <= MAX_MESSAGE && text.starts_with('é'));
    }
}
