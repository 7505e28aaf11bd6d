//! Reads the composed `disk.tar.gz` back from Cloud Storage, streaming:
//! gunzip (every member), parse the sparse tar header, hash each data block
//! and compare it with the digest of the block we sent. Compute Engine
//! returns no bytes of an image, so this is the last point where the
//! content can be checked; a mismatch stops the import.

use super::client::Client;
use super::tar::TAR_BLOCK;
use super::upload;
use crate::CloudError;
use crate::block::BlockDigest;
use crate::units::BLOCK_SIZE;
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Write;

/// Reads a numeric tar field: octal text, or GNU base-256 (high bit set).
pub fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(value);
    }
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .map(|&b| b as char)
        .collect();
    let text = text.trim_start();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// What the archive holds, once parsed.
#[derive(Debug, Default)]
pub struct Parsed {
    pub name: String,
    pub real_size: u64,
    pub runs: Vec<(u64, u64)>,
    pub digests: BTreeMap<u64, BlockDigest>,
    pub trailing: u64,
}

/// A `Write` sink that parses a sparse tar as its bytes arrive.
#[derive(Default)]
struct TarReader {
    buf: Vec<u8>,
    parsed: Parsed,
    /// None while reading headers; then the index into `runs` being read.
    run: Option<usize>,
    run_done: u64,
    hasher: Option<(u64, Sha256, u64)>,
    headers_done: bool,
    main_seen: bool,
    stored: u64,
    error: Option<String>,
    /// When set, data regions are written here at their offsets (read-back).
    out: Option<std::fs::File>,
}

impl TarReader {
    fn header_block(&mut self, block: &[u8], extension: bool) -> Result<bool, String> {
        let (entries, count, more_at) = if extension {
            (0usize, 21usize, 504usize)
        } else {
            let name_end = block[..100].iter().position(|&b| b == 0).unwrap_or(100);
            self.parsed.name = String::from_utf8_lossy(&block[..name_end]).into_owned();
            if block[156] != b'S' {
                return Err(format!(
                    "type flag is '{}', not 'S' (sparse)",
                    block[156] as char
                ));
            }
            if &block[257..265] != b"ustar  \0" {
                return Err("not an oldgnu header".into());
            }
            self.stored = number(&block[124..136]).ok_or("bad size field")?;
            self.parsed.real_size = number(&block[483..495]).ok_or("bad realsize field")?;
            (386, 4, 482)
        };
        for i in 0..count {
            let at = entries + i * 24;
            let offset = number(&block[at..at + 12]).ok_or("bad sparse offset")?;
            let len = number(&block[at + 12..at + 24]).ok_or("bad sparse length")?;
            if offset == 0 && len == 0 && block[at] == 0 {
                break;
            }
            self.parsed.runs.push((offset, len));
        }
        Ok(block[more_at] != 0)
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            if !self.headers_done {
                let need = TAR_BLOCK - self.buf.len();
                let take = need.min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.buf.len() == TAR_BLOCK {
                    let block = std::mem::take(&mut self.buf);
                    let more = self.header_block(&block, self.main_seen)?;
                    self.main_seen = true;
                    self.run = Some(0);
                    if !more {
                        self.headers_done = true;
                    }
                }
                continue;
            }
            let Some(run) = self.run else { break };
            let Some(&(offset, len)) = self.parsed.runs.get(run) else {
                // Past the data: padding and end-of-archive blocks, all zero.
                if data.iter().any(|&b| b != 0) {
                    return Err("non-zero bytes after the data".into());
                }
                self.parsed.trailing += data.len() as u64;
                return Ok(());
            };
            let pos = offset + self.run_done;
            if self.run_done == len {
                self.close_block();
                self.run = Some(run + 1);
                self.run_done = 0;
                continue;
            }
            let block = pos / BLOCK_SIZE;
            let block_end = ((block + 1) * BLOCK_SIZE).min(offset + len);
            let take = ((block_end - pos) as usize).min(data.len());
            if self.hasher.as_ref().is_none_or(|h| h.0 != block) {
                self.close_block();
                self.hasher = Some((block, Sha256::new(), 0));
            }
            if let Some((_, hasher, n)) = self.hasher.as_mut() {
                hasher.update(&data[..take]);
                *n += take as u64;
            }
            if let Some(out) = &self.out {
                use std::os::unix::fs::FileExt as _;
                out.write_all_at(&data[..take], pos)
                    .map_err(|e| format!("writing the read-back copy: {e}"))?;
            }
            self.run_done += take as u64;
            data = &data[take..];
        }
        Ok(())
    }

    fn close_block(&mut self) {
        if let Some((index, hasher, _)) = self.hasher.take() {
            let digest: [u8; 32] = hasher.finalize().into();
            self.parsed.digests.insert(index, BlockDigest(digest));
        }
    }
}

impl Write for TarReader {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.error.is_none()
            && let Err(e) = self.feed(data)
        {
            self.error = Some(e);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Parses a whole `.tar.gz` held in memory (tests, small archives).
pub fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let mut decoder = flate2::write::MultiGzDecoder::new(TarReader::default());
    decoder
        .write_all(bytes)
        .and_then(|_| decoder.try_finish())
        .map_err(|e| format!("gzip: {e}"))?;
    finish(decoder.finish().map_err(|e| format!("gzip: {e}"))?)
}

fn finish(mut reader: TarReader) -> Result<Parsed, String> {
    reader.close_block();
    if let Some(e) = reader.error {
        return Err(e);
    }
    let stored: u64 = reader.parsed.runs.iter().map(|r| r.1).sum();
    if stored != reader.stored {
        return Err(format!(
            "header says {} data bytes, the map {stored}",
            reader.stored
        ));
    }
    if reader.parsed.trailing < 2 * TAR_BLOCK as u64 {
        return Err("archive is truncated (no end-of-archive blocks)".into());
    }
    Ok(reader.parsed)
}

/// Streams `object` through gunzip and the tar parser (writing the data
/// into `out` when given).
async fn read_archive(
    client: &Client,
    bucket: &str,
    object: &str,
    out: Option<std::fs::File>,
) -> Result<Parsed, CloudError> {
    let what = format!("gs://{bucket}/{object}");
    let response = upload::download(client, bucket, object).await?;
    let reader = TarReader {
        out,
        ..TarReader::default()
    };
    let mut decoder = flate2::write::MultiGzDecoder::new(reader);
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            CloudError::Transient(format!("reading {what}: {}", crate::http::error_text(e)))
        })?;
        decoder
            .write_all(&chunk)
            .map_err(|e| CloudError::Permanent(format!("{what}: gzip: {e}")))?;
    }
    let reader = decoder
        .finish()
        .map_err(|e| CloudError::Permanent(format!("{what}: gzip: {e}")))?;
    finish(reader).map_err(|e| CloudError::Permanent(format!("{what}: {e}")))
}

/// Downloads `object` and checks it: one sparse `disk.raw` of `real_size`
/// whose blocks are exactly `expected` (block index → digest).
pub async fn check_archive(
    client: &Client,
    bucket: &str,
    object: &str,
    real_size: u64,
    expected: &BTreeMap<u64, BlockDigest>,
) -> Result<(), CloudError> {
    let what = format!("gs://{bucket}/{object}");
    let parsed = read_archive(client, bucket, object, None).await?;
    if parsed.name != "disk.raw" || parsed.real_size != real_size {
        return Err(CloudError::Permanent(format!(
            "{what} holds '{}' of {} bytes, expected disk.raw of {real_size}",
            parsed.name, parsed.real_size
        )));
    }
    let differing: Vec<u64> = expected
        .iter()
        .filter(|(index, digest)| parsed.digests.get(index) != Some(digest))
        .map(|(index, _)| *index)
        .chain(
            parsed
                .digests
                .keys()
                .filter(|i| !expected.contains_key(i))
                .copied(),
        )
        .collect();
    if !differing.is_empty() {
        return Err(CloudError::Permanent(format!(
            "{what} differs from the blocks sent at {} block(s), first {:?}",
            differing.len(),
            differing.first()
        )));
    }
    Ok(())
}

/// Unpacks the archive's `disk.raw` into a sparse file at `path` (only the
/// data regions take space) and returns its size.
pub async fn unpack_to(
    client: &Client,
    bucket: &str,
    object: &str,
    path: &std::path::Path,
) -> Result<u64, CloudError> {
    let file = std::fs::File::create(path)
        .map_err(|e| CloudError::from_io(format!("read-back copy {}", path.display()), e))?;
    let copy = file
        .try_clone()
        .map_err(|e| CloudError::from_io("read-back copy", e))?;
    let parsed = read_archive(client, bucket, object, Some(copy)).await?;
    file.set_len(parsed.real_size)
        .map_err(|e| CloudError::from_io("read-back copy", e))?;
    Ok(parsed.real_size)
}

#[cfg(test)]
mod tests {
    use super::super::tar::{SparseMap, gzip_member, sparse_header, trailer};
    use super::*;

    #[test]
    fn a_written_archive_parses_back_block_by_block() {
        let mut map = SparseMap::default();
        let mut data = Vec::new();
        let mut expected = BTreeMap::new();
        for index in [0u64, 1, 7, 30] {
            let block = vec![index as u8 + 1; BLOCK_SIZE as usize];
            map.push(index * BLOCK_SIZE, BLOCK_SIZE);
            expected.insert(index, BlockDigest::of(&block));
            data.extend_from_slice(&block);
        }
        let mut archive = gzip_member(&sparse_header("disk.raw", 1 << 30, &map, 0), 1);
        archive.extend(gzip_member(&data[..700_000], 1));
        archive.extend(gzip_member(&data[700_000..], 6));
        archive.extend(gzip_member(&trailer(map.stored()), 1));
        let parsed = parse(&archive).unwrap();
        assert_eq!(parsed.name, "disk.raw");
        assert_eq!(parsed.real_size, 1 << 30);
        assert_eq!(parsed.digests, expected);
        assert_eq!(number(b"00000000644\0"), Some(0o644));
    }
}
