//! A point-in-time copy of a local image (the lab's snapshot), as cheap as
//! the filesystem allows: a reflink clone (`FICLONE`: btrfs, XFS, bcachefs —
//! no data copied at all), else the kernel copying each data extent
//! (`copy_file_range`: no round trip through user space, and server-side on
//! NFS 4.2), else reading and writing the data extents. Holes stay holes in
//! every case, so the cost follows allocated bytes, never the file's size.

use super::data_extents;
use crate::units::Bytes;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How a copy was made (the lab's snapshot reports it in the debug log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMethod {
    /// Shares the source's extents: nothing copied until either side writes.
    Reflink,
    /// The kernel copied each data extent.
    Kernel,
    /// Read and written through a buffer, extent by extent.
    Buffered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Data bytes the copy holds (a clone shares them rather than writing).
    pub bytes: Bytes,
    pub method: CopyMethod,
}

/// Copies `src` to `dst` (through `dst.partial`, renamed when complete), the
/// cheapest way the filesystem offers.
pub fn sparse_copy(src: &Path, dst: &Path) -> std::io::Result<Copied> {
    sparse_copy_with(src, dst, &[CopyMethod::Reflink, CopyMethod::Kernel])
}

/// The same with only the given fast paths tried first (tests force the
/// fallbacks with it); the buffered copy is always the last resort.
fn sparse_copy_with(src: &Path, dst: &Path, fast: &[CopyMethod]) -> std::io::Result<Copied> {
    let input = File::open(src)?;
    let size = input.metadata()?.len();
    let temp = dst.with_extension("partial");
    let output = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)?;
    let extents = data_extents(&input)?;
    let data = Bytes(extents.iter().map(|e| e.end - e.start).sum());
    let method = if fast.contains(&CopyMethod::Reflink) && reflink(&input, &output)? {
        CopyMethod::Reflink
    } else {
        output.set_len(size)?;
        if fast.contains(&CopyMethod::Kernel) && kernel_copy(&input, &output, &extents)? {
            CopyMethod::Kernel
        } else {
            buffered_copy(&input, &output, &extents)?;
            CopyMethod::Buffered
        }
    };
    output.sync_all()?;
    std::fs::rename(&temp, dst)?;
    Ok(Copied {
        bytes: data,
        method,
    })
}

/// Errors that mean "this filesystem (or pair of them) cannot do that":
/// the caller falls back to the next method.
fn unsupported(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::ENOTTY | libc::EXDEV | libc::EINVAL | libc::ENOSYS)
    )
}

/// Clones the whole file; false when the filesystem cannot.
fn reflink(input: &File, output: &File) -> std::io::Result<bool> {
    // SAFETY: FICLONE takes the source descriptor as its argument; both
    // descriptors are open for the whole call.
    let rc = unsafe { libc::ioctl(output.as_raw_fd(), libc::FICLONE, input.as_raw_fd()) };
    if rc == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    if unsupported(&error) {
        Ok(false)
    } else {
        Err(error)
    }
}

/// Pieces copied at once. One extent at a time waits on each read in turn,
/// and on a volume whose latency rather than bandwidth bounds one reader (a
/// cloud disk) that is slow: a cold 2 GiB snapshot in 4 MiB extents took
/// 29 s that way, where `qemu-img convert`, 8 requests in flight, took 6 s.
const COPIERS: usize = 8;

/// The largest piece one copier takes, so one big extent is shared too.
const PIECE: u64 = 8 << 20;

/// Copies each extent in the kernel; false (before anything was written)
/// when the kernel or filesystem cannot.
fn kernel_copy(
    input: &File,
    output: &File,
    extents: &[std::ops::Range<u64>],
) -> std::io::Result<bool> {
    let pieces = pieces(extents);
    let Some(first) = pieces.first() else {
        return Ok(true);
    };
    // One call first, alone: an unsupported copy fails there, with nothing
    // written, and the caller falls back.
    let copied = match copy_range_once(input, output, first.start, first.end - first.start) {
        Ok(n) => n,
        Err(error) if unsupported(&error) => return Ok(false),
        Err(error) => return Err(error),
    };
    let mut rest = pieces;
    rest[0].start += copied;
    in_parallel(&rest, |piece| {
        super::will_need(input, piece.start, (piece.end - piece.start) as usize);
        let mut offset = piece.start;
        while offset < piece.end {
            let n = copy_range_once(input, output, offset, piece.end - offset)?;
            if n == 0 {
                break; // the source shrank under us: what is there is copied
            }
            offset += n;
        }
        Ok(())
    })?;
    Ok(true)
}

/// One `copy_file_range` call at `offset` (same offset in both files).
fn copy_range_once(input: &File, output: &File, offset: u64, len: u64) -> std::io::Result<u64> {
    let (mut from, mut to) = (offset as libc::loff_t, offset as libc::loff_t);
    // SAFETY: both descriptors are open; the offsets are ours and the kernel
    // updates them in place.
    let n = unsafe {
        libc::copy_file_range(
            input.as_raw_fd(),
            &mut from,
            output.as_raw_fd(),
            &mut to,
            len.min(1 << 30) as usize,
            0,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as u64)
}

fn buffered_copy(
    input: &File,
    output: &File,
    extents: &[std::ops::Range<u64>],
) -> std::io::Result<()> {
    in_parallel(&pieces(extents), |piece| {
        super::will_need(input, piece.start, (piece.end - piece.start) as usize);
        let mut buffer = vec![0u8; (piece.end - piece.start) as usize];
        let mut offset = piece.start;
        while offset < piece.end {
            let at = (offset - piece.start) as usize;
            let n = input.read_at(&mut buffer[at..], offset)?;
            if n == 0 {
                break;
            }
            output.write_all_at(&buffer[at..at + n], offset)?;
            offset += n as u64;
        }
        Ok(())
    })
}

/// The extents cut into pieces of at most `PIECE` bytes.
fn pieces(extents: &[std::ops::Range<u64>]) -> Vec<std::ops::Range<u64>> {
    extents
        .iter()
        .flat_map(|e| {
            (e.start..e.end)
                .step_by(PIECE as usize)
                .map(move |start| start..(start + PIECE).min(e.end))
        })
        .filter(|piece| !piece.is_empty())
        .collect()
}

/// Runs `copy` over the pieces on up to `COPIERS` threads, each taking the
/// next piece as it finishes one; the first error stops them all.
fn in_parallel(
    pieces: &[std::ops::Range<u64>],
    copy: impl Fn(&std::ops::Range<u64>) -> std::io::Result<()> + Sync,
) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let copiers = COPIERS.min(pieces.len());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..copiers)
            .map(|_| {
                scope.spawn(|| -> std::io::Result<()> {
                    while !failed.load(Ordering::Relaxed) {
                        let Some(piece) = pieces.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        if let Err(error) = copy(piece) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(error);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a copy thread panicked")))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_disk::allocated_bytes;

    /// A 64 MiB file with 8 KiB of data at 1 MiB and 4 KiB at 40 MiB.
    fn sparse_source(dir: &Path) -> std::path::PathBuf {
        let src = dir.join("s.raw");
        let file = File::create(&src).unwrap();
        file.set_len(64 << 20).unwrap();
        file.write_all_at(&[1u8; 8192], 1 << 20).unwrap();
        file.write_all_at(&[7u8; 4096], 40 << 20).unwrap();
        src
    }

    #[test]
    fn every_method_copies_the_data_and_keeps_the_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = sparse_source(dir.path());
        let original = std::fs::read(&src).unwrap();
        for (fast, name) in [
            (&[CopyMethod::Reflink, CopyMethod::Kernel][..], "best.raw"),
            (&[CopyMethod::Kernel][..], "kernel.raw"),
            (&[][..], "buffered.raw"),
        ] {
            let dst = dir.path().join(name);
            let copied = sparse_copy_with(&src, &dst, fast).unwrap();
            assert!(fast.is_empty() || fast.contains(&copied.method));
            if fast.is_empty() {
                assert_eq!(copied.method, CopyMethod::Buffered);
            }
            assert!(
                copied.bytes.0 >= 12288 && copied.bytes.0 < 1 << 20,
                "{copied:?}"
            );
            assert_eq!(std::fs::metadata(&dst).unwrap().len(), 64 << 20, "{name}");
            assert!(
                allocated_bytes(&dst).unwrap().0 < 4 << 20,
                "{name} is not sparse: {:?}",
                allocated_bytes(&dst)
            );
            assert!(std::fs::read(&dst).unwrap() == original, "{name} differs");
            assert!(!dst.with_extension("partial").exists());
        }
    }

    #[test]
    fn extents_larger_than_a_piece_are_shared_out_and_copied_whole() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("big.raw");
        let file = File::create(&src).unwrap();
        file.set_len(96 << 20).unwrap();
        // 20 MiB of data (three pieces) and four small extents around it.
        let pattern: Vec<u8> = (0..20 << 20).map(|i: u32| (i * 7 % 253) as u8).collect();
        file.write_all_at(&pattern, 10 << 20).unwrap();
        for n in 0..4u64 {
            file.write_all_at(&[n as u8 + 1; 4096], (40 + n * 12) << 20)
                .unwrap();
        }
        let original = std::fs::read(&src).unwrap();
        let one_extent: Vec<std::ops::Range<u64>> = std::iter::once(0..(16 << 20) + 1).collect();
        assert_eq!(pieces(&one_extent).len(), 3);
        for (fast, name) in [(&[CopyMethod::Kernel][..], "k.raw"), (&[][..], "b.raw")] {
            let dst = dir.path().join(name);
            let copied = sparse_copy_with(&src, &dst, fast).unwrap();
            assert!(std::fs::read(&dst).unwrap() == original, "{name} differs");
            assert!(
                allocated_bytes(&dst).unwrap().0 < 32 << 20,
                "{name} not sparse"
            );
            assert!(copied.bytes.0 >= (20 << 20) + 4 * 4096, "{copied:?}");
        }
    }
}
