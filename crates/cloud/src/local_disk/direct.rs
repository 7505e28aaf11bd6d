//! Direct I/O (`O_DIRECT`) for the blocks a local transfer writes.
//!
//! Buffered writes copy every block into the page cache, and that kernel
//! copy was most of a local transfer's CPU time (a profile of `bench
//! transfer` put ~65 % of samples in `copy_folio_from_iter_atomic`), with
//! concurrent writers of one file queuing on its inode lock besides. A
//! direct write hands the page-aligned block to the device as it is.
//! Blocks that do not qualify (a short last block, a buffer from elsewhere)
//! and filesystems that refuse `O_DIRECT` (tmpfs) keep the buffered path.

use bytes::{Buf, BytesMut};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Memory, offset and length alignment a direct write needs: the page size,
/// which covers every logical block size a local disk reports (512 or 4096).
pub const DIRECT_ALIGN: usize = 4096;

/// A zeroed buffer of `len` bytes whose start is `DIRECT_ALIGN`-aligned, so
/// that a block read into it can be written with `O_DIRECT` as it is. It
/// costs one page more than `len`; `freeze` keeps the alignment (no copy).
pub fn aligned_zeroed(len: usize) -> BytesMut {
    let mut buffer = BytesMut::zeroed(len + DIRECT_ALIGN);
    let skip = buffer.as_ptr().align_offset(DIRECT_ALIGN);
    buffer.advance(skip);
    buffer.truncate(len);
    buffer
}

/// The second descriptor of a file, opened with `O_DIRECT`, and whether it
/// still works.
pub struct DirectFile {
    file: File,
    usable: AtomicBool,
}

impl DirectFile {
    /// None where the filesystem refuses `O_DIRECT`: writes stay buffered.
    pub fn open(path: &Path) -> Option<DirectFile> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()?;
        Some(DirectFile {
            file,
            usable: AtomicBool::new(true),
        })
    }

    /// Writes `data` at `offset` directly when it qualifies; Ok(false) when
    /// it does not (the caller writes it buffered). A filesystem that opens
    /// with `O_DIRECT` but refuses the write (EINVAL) turns direct writes
    /// off for the rest of the file rather than failing the transfer.
    pub fn try_write(&self, data: &[u8], offset: u64) -> io::Result<bool> {
        if !qualifies(data, offset) || !self.usable.load(Ordering::Relaxed) {
            return Ok(false);
        }
        match self.file.write_all_at(data, offset) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.usable.store(false, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether memory, length and offset are aligned as `O_DIRECT` needs.
fn qualifies(data: &[u8], offset: u64) -> bool {
    data.as_ptr().align_offset(DIRECT_ALIGN) == 0
        && data.len().is_multiple_of(DIRECT_ALIGN)
        && offset.is_multiple_of(DIRECT_ALIGN as u64)
}

/// Reserves `len` bytes at `offset` (mode 0: within the file's size, no
/// length change). ext4 runs a direct write that allocates blocks under the
/// inode's exclusive lock, device I/O included, so concurrent writes of one
/// file went one at a time; into reserved (unwritten) blocks they share the
/// lock. Reserved a range at a time, before the writes, the blocks are also
/// laid out in order: allocated one block at a time by writes completing in
/// any order, a 2 GiB disk came out in 3,086 scattered pieces. False where
/// the filesystem cannot.
pub fn reserve(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    fallocate(file, 0, offset, len)
}

/// Gives back the space of `len` bytes at `offset` (a hole that reads as
/// zeros). False where the filesystem cannot.
pub fn punch(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    fallocate(
        file,
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        offset,
        len,
    )
}

fn fallocate(file: &File, mode: libc::c_int, offset: u64, len: u64) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the whole call; fallocate reads no
    // memory of ours.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), mode, offset as i64, len as i64) };
    if rc == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(false),
        _ => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_start_on_a_page_and_stay_there_when_frozen() {
        for len in [0, 1, 4096, 512 * 1024, 512 * 1024 + 17] {
            let buffer = aligned_zeroed(len);
            assert_eq!(buffer.len(), len);
            assert!(buffer.iter().all(|&b| b == 0));
            let frozen = buffer.freeze();
            assert_eq!(frozen.as_ptr().align_offset(DIRECT_ALIGN), 0, "len {len}");
        }
    }

    #[test]
    fn unaligned_blocks_are_left_to_the_buffered_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.raw");
        std::fs::write(&path, vec![0u8; 3 * DIRECT_ALIGN]).unwrap();
        let Some(direct) = DirectFile::open(&path) else {
            // None only where the kernel refuses O_DIRECT on this filesystem
            // (tmpfs, some overlays): the writer then stays buffered.
            let refused = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
                .unwrap_err();
            assert_eq!(refused.raw_os_error(), Some(libc::EINVAL), "{refused}");
            return;
        };
        let mut block = aligned_zeroed(DIRECT_ALIGN + 1);
        block.fill(7);
        // Short of a page, or at an offset off a page: not written.
        assert!(!direct.try_write(&block[..DIRECT_ALIGN + 1], 0).unwrap());
        assert!(!direct.try_write(&block[..DIRECT_ALIGN], 1).unwrap());
        assert!(!direct.try_write(&block[1..DIRECT_ALIGN + 1], 0).unwrap());
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk.iter().all(|&b| b == 0));
        // Aligned in memory, offset and length: written, and read back.
        assert!(
            direct
                .try_write(&block[..DIRECT_ALIGN], DIRECT_ALIGN as u64)
                .unwrap()
        );
        let on_disk = std::fs::read(&path).unwrap();
        assert!(
            on_disk[DIRECT_ALIGN..2 * DIRECT_ALIGN]
                .iter()
                .all(|&b| b == 7)
        );
        assert!(on_disk[..DIRECT_ALIGN].iter().all(|&b| b == 0));
    }
}
