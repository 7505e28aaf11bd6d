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

/// Copies each extent in the kernel; false (before anything was written)
/// when the kernel or filesystem cannot.
fn kernel_copy(
    input: &File,
    output: &File,
    extents: &[std::ops::Range<u64>],
) -> std::io::Result<bool> {
    for (index, extent) in extents.iter().enumerate() {
        let mut offset = extent.start;
        while offset < extent.end {
            let (mut from, mut to) = (offset as libc::loff_t, offset as libc::loff_t);
            let want = (extent.end - offset).min(1 << 30) as usize;
            // SAFETY: both descriptors are open; the offsets are ours and
            // the kernel updates them in place.
            let n = unsafe {
                libc::copy_file_range(
                    input.as_raw_fd(),
                    &mut from,
                    output.as_raw_fd(),
                    &mut to,
                    want,
                    0,
                )
            };
            if n < 0 {
                let error = std::io::Error::last_os_error();
                if index == 0 && offset == extent.start && unsupported(&error) {
                    return Ok(false);
                }
                return Err(error);
            }
            if n == 0 {
                break; // the source shrank under us: what is there is copied
            }
            offset += n as u64;
        }
    }
    Ok(true)
}

fn buffered_copy(
    input: &File,
    output: &File,
    extents: &[std::ops::Range<u64>],
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 4 << 20];
    for extent in extents {
        let mut offset = extent.start;
        while offset < extent.end {
            let len = ((extent.end - offset) as usize).min(buffer.len());
            let n = input.read_at(&mut buffer[..len], offset)?;
            if n == 0 {
                break;
            }
            output.write_all_at(&buffer[..n], offset)?;
            offset += n as u64;
        }
    }
    Ok(())
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
}
