//! `disk.raw` as a GNU (oldgnu) sparse tar, gzip-compressed: what Compute
//! Engine imports. The header holds the sparse map, so it is built last and
//! put in front by a Cloud Storage compose; the data in between is a run of
//! independent gzip members (a multi-member gzip stream is one valid gzip
//! file), which lets members be compressed in parallel and closed at every
//! flush. Layout per GNU tar's `tar.h` (`struct oldgnu_header`,
//! `struct sparse`, `struct sparse_header`); checked against GNU tar in tests.

use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write as _;

pub const TAR_BLOCK: usize = 512;
pub const GIB: u64 = 1 << 30;
/// Sparse entries in the main header and in each extension header.
const MAIN_ENTRIES: usize = 4;
const EXT_ENTRIES: usize = 21;

/// Compute Engine wants the raw disk size to be a whole number of GiB.
pub fn round_up_gib(size: u64) -> u64 {
    size.div_ceil(GIB).max(1) * GIB
}

/// Data regions of the file, in order: `(offset, length)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseMap {
    runs: Vec<(u64, u64)>,
}

impl SparseMap {
    /// Adds a data region after every region so far (merging adjacent ones).
    pub fn push(&mut self, offset: u64, len: u64) {
        if let Some(last) = self.runs.last_mut()
            && last.0 + last.1 == offset
        {
            last.1 += len;
            return;
        }
        self.runs.push((offset, len));
    }

    /// Bytes of data the archive stores.
    pub fn stored(&self) -> u64 {
        self.runs.iter().map(|r| r.1).sum()
    }

    /// The end of the last data region (0 for none).
    pub fn end(&self) -> u64 {
        self.runs.last().map(|r| r.0 + r.1).unwrap_or(0)
    }

    pub fn runs(&self) -> &[(u64, u64)] {
        &self.runs
    }
}

/// Writes `value` into a numeric field: octal digits and a NUL when they
/// fit, else GNU's base-256 (first byte 0x80, big-endian binary).
fn put_number(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if digits >= 22 || value < (1u64 << (3 * digits)) {
        let text = format!("{value:0digits$o}");
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        let bytes = value.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&bytes);
    }
}

fn put_entry(block: &mut [u8], at: usize, (offset, len): (u64, u64)) {
    put_number(&mut block[at..at + 12], offset);
    put_number(&mut block[at + 12..at + 24], len);
}

/// The header blocks (main header plus sparse extension headers) of a sparse
/// regular file `name` of `real_size` bytes whose data regions are `map`.
pub fn sparse_header(name: &str, real_size: u64, map: &SparseMap, mtime: u64) -> Vec<u8> {
    // GNU tar ends every map with a zero-length region at the file's end.
    let mut entries: Vec<(u64, u64)> = map.runs().to_vec();
    entries.push((real_size, 0));

    let mut header = vec![0u8; TAR_BLOCK];
    let name = name.as_bytes();
    header[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    put_number(&mut header[100..108], 0o644);
    put_number(&mut header[108..116], 0);
    put_number(&mut header[116..124], 0);
    put_number(&mut header[124..136], map.stored());
    put_number(&mut header[136..148], mtime);
    header[156] = b'S';
    header[257..265].copy_from_slice(b"ustar  \0");
    header[265..269].copy_from_slice(b"root");
    header[297..301].copy_from_slice(b"root");
    for (i, entry) in entries.iter().take(MAIN_ENTRIES).enumerate() {
        put_entry(&mut header, 386 + i * 24, *entry);
    }
    let mut rest = entries.iter().skip(MAIN_ENTRIES).peekable();
    header[482] = u8::from(rest.peek().is_some());
    put_number(&mut header[483..495], real_size);
    // Checksum: the byte sum with the field itself read as spaces.
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());

    let mut out = header;
    while rest.peek().is_some() {
        let mut ext = vec![0u8; TAR_BLOCK];
        for i in 0..EXT_ENTRIES {
            match rest.next() {
                Some(entry) => put_entry(&mut ext, i * 24, *entry),
                None => break,
            }
        }
        ext[504] = u8::from(rest.peek().is_some());
        out.extend_from_slice(&ext);
    }
    out
}

/// What follows the data: padding to a 512-byte boundary, then the two
/// zero blocks that end an archive.
pub fn trailer(stored: u64) -> Vec<u8> {
    let pad = (TAR_BLOCK as u64 - stored % TAR_BLOCK as u64) % TAR_BLOCK as u64;
    vec![0u8; pad as usize + 2 * TAR_BLOCK]
}

/// One complete gzip member of `data`.
pub fn gzip_member(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        Compression::new(level),
    );
    // Writing into a Vec cannot fail: io errors come only from the sink.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_switch_to_base256_past_octal_range() {
        let mut field = [0u8; 12];
        put_number(&mut field, 0o644);
        assert_eq!(&field, b"00000000644\0");
        put_number(&mut field, 10 << 30);
        assert_eq!(field[0], 0x80);
        assert_eq!(&field[4..], &(10u64 << 30).to_be_bytes());
    }

    /// Byte-for-byte what GNU tar 1.34 writes for the same map (recorded from
    /// `tar --format=oldgnu -Scf` on a 10 GiB file), apart from mtime/checksum.
    #[test]
    fn header_matches_gnu_tar_layout() {
        let mut map = SparseMap::default();
        map.push(1 << 20, 4096);
        map.push(10 << 20, 1 << 20);
        let h = sparse_header("disk.raw", 10 << 30, &map, 0);
        assert_eq!(h.len(), 512);
        assert_eq!(&h[124..136], b"00004010000\0");
        assert_eq!(&h[386..398], b"00004000000\0");
        assert_eq!(&h[398..410], b"00000010000\0");
        assert_eq!(&h[410..422], b"00050000000\0");
        assert_eq!(h[434], 0x80);
        assert_eq!(&h[446..458], b"00000000000\0");
        assert_eq!(h[482], 0);
        assert_eq!(h[483], 0x80);
        assert_eq!(&h[257..265], b"ustar  \0");
    }

    #[test]
    fn long_maps_spill_into_extension_headers() {
        let mut map = SparseMap::default();
        for i in 0..30 {
            map.push(i * 2 * 512, 512);
        }
        let h = sparse_header("disk.raw", 1 << 30, &map, 0);
        // 31 entries: 4 in the header, 21 + 6 in two extensions.
        assert_eq!(h.len(), 3 * 512);
        assert_eq!(h[482], 1);
        assert_eq!(h[512 + 504], 1);
        assert_eq!(h[1024 + 504], 0);
        assert_eq!(trailer(1536).len(), 1024);
        assert_eq!(trailer(1000).len(), 24 + 1024);
        assert_eq!(round_up_gib(1), GIB);
        assert_eq!(round_up_gib(GIB), GIB);
        assert_eq!(round_up_gib(GIB + 1), 2 * GIB);
    }
}
