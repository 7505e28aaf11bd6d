//! The agent's commands, run on the source host: `probe`, `map`, `stream`.
//! A plain sequential reader: it blocks and writes to stdout.

use crate::protocol::{self, BLOCK_SIZE, Frame, MAGIC, PROTOCOL};
use std::fs::File;
use std::io::{BufRead, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::os::unix::io::AsRawFd;

#[derive(Debug)]
pub enum AgentError {
    Usage,
    Open {
        device: String,
        source: std::io::Error,
    },
    Io {
        device: String,
        source: std::io::Error,
    },
    BadRange(String),
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::Usage => {
                f.write_str("usage: altishift-agent probe | map DEVICE | stream DEVICE [--digests]")
            }
            // "cannot open …: No such file or directory" is what the console
            // recognises as a missing device.
            AgentError::Open { device, source } => write!(f, "cannot open {device}: {source}"),
            AgentError::Io { device, source } => write!(f, "{device}: {source}"),
            AgentError::BadRange(line) => {
                write!(f, "bad range line '{line}' on stdin (expected 'START END')")
            }
        }
    }
}

impl std::error::Error for AgentError {}

fn io(device: &str) -> impl FnOnce(std::io::Error) -> AgentError {
    let device = device.to_string();
    move |source| AgentError::Io { device, source }
}

/// The agent's entry point: `args` are the words after the program name.
pub fn run(args: &[String]) -> Result<(), AgentError> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
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
            writeln!(out, "{}", map_json(size, &ranges)).map_err(io("stdout"))?;
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
                let _ = protocol::write_frame(&mut out, &Frame::Error(e.to_string()));
                let _ = out.flush();
            }
            result.map_err(io(device))
        }
        _ => Err(AgentError::Usage),
    }
}

/// `{"size":N,"ranges":[[a,b],…]}` (numbers only: no JSON library needed).
pub fn map_json(size: u64, ranges: &[Range<u64>]) -> String {
    let list: Vec<String> = ranges
        .iter()
        .map(|r| format!("[{},{}]", r.start, r.end))
        .collect();
    format!("{{\"size\":{size},\"ranges\":[{}]}}", list.join(","))
}

/// Opens a file or device read-only and finds its size (devices report a
/// zero length in their metadata, so seek to the end).
fn open(device: &str) -> Result<(File, u64), AgentError> {
    let file = File::open(device).map_err(|source| AgentError::Open {
        device: device.to_string(),
        source,
    })?;
    let size = (&file).seek(SeekFrom::End(0)).map_err(io(device))?;
    Ok((file, size))
}

/// Block ranges that may hold data.
pub fn allocated(file: &File, size: u64) -> std::io::Result<Vec<Range<u64>>> {
    let blocks = size.div_ceil(BLOCK_SIZE);
    if file.metadata()?.file_type().is_block_device() {
        return Ok((blocks > 0).then_some(0..blocks).into_iter().collect());
    }
    Ok(extents_to_blocks(&data_extents(file)?))
}

/// Byte ranges of a file that hold data, found with `SEEK_DATA`/`SEEK_HOLE`.
/// The console's local disks use it too.
pub fn data_extents(file: &File) -> std::io::Result<Vec<Range<u64>>> {
    let size = file.metadata()?.len();
    let fd = file.as_raw_fd();
    let mut extents = Vec::new();
    let mut offset: u64 = 0;
    while offset < size {
        // SAFETY: lseek on a valid, open descriptor; no memory is touched.
        let data = unsafe { libc::lseek(fd, offset as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENXIO) {
                break; // no data after `offset`
            }
            return Err(err);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(std::io::Error::last_os_error());
        }
        extents.push(data as u64..hole as u64);
        offset = hole as u64;
    }
    Ok(extents)
}

/// Byte extents to merged, ascending block-index ranges.
pub fn extents_to_blocks(extents: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut blocks: Vec<Range<u64>> = Vec::new();
    for extent in extents.iter().filter(|e| e.end > e.start) {
        let first = extent.start / BLOCK_SIZE;
        let end = extent.end.div_ceil(BLOCK_SIZE);
        match blocks.last_mut() {
            Some(last) if last.end >= first => last.end = last.end.max(end),
            _ => blocks.push(first..end),
        }
    }
    blocks
}

pub fn read_ranges(input: impl BufRead) -> Result<Vec<Range<u64>>, AgentError> {
    let mut ranges = Vec::new();
    for line in input.lines() {
        let line = line.map_err(io("stdin"))?;
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

/// True when every byte is zero (slice equality is a vectorised `memcmp`).
fn is_all_zero(data: &[u8]) -> bool {
    static ZEROES: [u8; 64 * 1024] = [0; 64 * 1024];
    data.chunks(ZEROES.len())
        .all(|chunk| chunk == &ZEROES[..chunk.len()])
}

pub fn stream(
    file: &File,
    size: u64,
    ranges: &[Range<u64>],
    digests_only: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; BLOCK_SIZE as usize];
    for index in ranges.iter().flat_map(|r| r.clone()) {
        let Some(offset) = index.checked_mul(BLOCK_SIZE).filter(|o| *o < size) else {
            break;
        };
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
                digest: protocol::digest_of(bytes),
            }
        } else {
            // Written without copying the bytes into a frame.
            let digest = protocol::digest_of(bytes);
            protocol::write_data_header(out, index, len as u32, &digest)?;
            out.write_all(bytes)?;
            continue;
        };
        protocol::write_frame(out, &frame)?;
    }
    protocol::write_frame(out, &Frame::End)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{digest_of, read_frame};

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("altishift-agent-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn streams_skip_zero_blocks_and_hash_the_rest() {
        let path = scratch("stream");
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
                    assert_eq!(digest, digest_of(&bytes));
                    data.push((index, bytes.len()));
                }
                Frame::Zero { index, .. } => zero.push(index),
                Frame::End => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(data, vec![(2, BLOCK_SIZE as usize), (3, 100)]);
        assert_eq!(zero, vec![0, 1]);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn the_map_names_the_blocks_that_hold_data() {
        let path = scratch("map");
        let file = File::create(&path).unwrap();
        file.set_len(10 * BLOCK_SIZE).unwrap();
        file.write_all_at(b"x", 4 * BLOCK_SIZE + 1).unwrap();
        let file = File::open(&path).unwrap();
        let ranges = allocated(&file, 10 * BLOCK_SIZE).unwrap();
        assert!(ranges.iter().any(|r| r.contains(&4)), "{ranges:?}");
        assert!(ranges.iter().all(|r| r.end <= 10), "{ranges:?}");
        assert_eq!(
            map_json(10, &[0..1, 4..5]),
            r#"{"size":10,"ranges":[[0,1],[4,5]]}"#
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn range_lines_parse_and_garbage_is_named() {
        let ranges = read_ranges("0 4\n\n10 12\n".as_bytes()).unwrap();
        assert_eq!(ranges, vec![0..4, 10..12]);
        let err = read_ranges("0-4\n".as_bytes()).unwrap_err().to_string();
        assert!(err.contains("0-4"), "{err}");
    }
}
