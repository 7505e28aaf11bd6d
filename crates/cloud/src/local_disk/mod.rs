//! Local disk images: reading the allocated blocks of sparse raw and qcow2
//! files, writing sparse raw files, converting through `qemu-img`.
//!
//! The lab keeps its disks here; remote providers stage downloads and uploads
//! through the same code.

use super::{BlockData, CloudError, DiskReader};
use crate::inventory::DiskFormat;
use crate::units::{BLOCK_SIZE, BlockIndex, Bytes};
use async_trait::async_trait;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

// Finding a file's data (`SEEK_DATA`/`SEEK_HOLE`) and turning it into block
// ranges is written once, in the agent, which reads source hosts' files the
// same way.
pub use altishift_agent::serve::{data_extents, extents_to_blocks};

/// Allocated bytes of a file as the filesystem counts them.
pub fn allocated_bytes(path: &Path) -> std::io::Result<Bytes> {
    use std::os::unix::fs::MetadataExt;
    Ok(Bytes(std::fs::metadata(path)?.blocks() * 512))
}

mod copy;
mod direct;
mod qemu;
pub use copy::{Copied, CopyMethod, sparse_copy};
use direct::DirectFile;
pub use direct::{DIRECT_ALIGN, aligned_zeroed};
use direct::{punch, reserve};
pub use qemu::*;

/// Where a guest range lives in the image file.
#[derive(Debug, Clone)]
struct Piece {
    guest: Range<u64>,
    /// Host offset of `guest.start`; None reads as zeros.
    host: Option<u64>,
}

/// Reads a local image: raw through the file directly, qcow2 through the
/// host offsets `qemu-img map` reports (no conversion, no temporary copy).
pub struct LocalDiskReader {
    path: PathBuf,
    file: Arc<File>,
    virtual_size: Bytes,
    /// qcow2 only: guest → host mapping, ascending.
    pieces: Option<Arc<Vec<Piece>>>,
}

impl LocalDiskReader {
    pub fn open(path: &Path, format: DiskFormat) -> Result<LocalDiskReader, CloudError> {
        let file = File::open(path)
            .map_err(|e| CloudError::from_io(format!("disk {}", path.display()), e))?;
        match format {
            DiskFormat::Raw => {
                let size = file
                    .metadata()
                    .map_err(|e| CloudError::from_io(path.display(), e))?
                    .len();
                Ok(LocalDiskReader {
                    path: path.into(),
                    file: Arc::new(file),
                    virtual_size: Bytes(size),
                    pieces: None,
                })
            }
            DiskFormat::Qcow2 => {
                let info = inspect(path, format)?;
                let map = qemu_img_map(path, format)?;
                let mut pieces = Vec::new();
                for entry in map.iter().filter(|e| e.data && !e.zero) {
                    if entry.depth > 0 || entry.offset.is_none() {
                        return Err(CloudError::Unsupported(format!(
                            "{}: compressed clusters or a backing file; convert it to raw first",
                            path.display()
                        )));
                    }
                    pieces.push(Piece {
                        guest: entry.start..entry.start + entry.length,
                        host: entry.offset,
                    });
                }
                Ok(LocalDiskReader {
                    path: path.into(),
                    file: Arc::new(file),
                    virtual_size: Bytes(info.virtual_size),
                    pieces: Some(Arc::new(pieces)),
                })
            }
            other => Err(CloudError::Unsupported(format!(
                "reading {other} images is not supported; convert to raw or qcow2"
            ))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Allocated bytes: data extents (raw) or data clusters (qcow2).
    pub fn allocated(&self) -> Result<Bytes, CloudError> {
        match &self.pieces {
            Some(pieces) => Ok(Bytes(
                pieces.iter().map(|p| p.guest.end - p.guest.start).sum(),
            )),
            None => {
                let extents = data_extents(&self.file)
                    .map_err(|e| CloudError::from_io(self.path.display(), e))?;
                Ok(Bytes(extents.iter().map(|e| e.end - e.start).sum()))
            }
        }
    }

    /// One block, in a page-aligned buffer so that a local target can write
    /// it with `O_DIRECT` as it is.
    fn read_sync(&self, index: BlockIndex) -> std::io::Result<bytes::Bytes> {
        let start = index.offset();
        let end = (start + BLOCK_SIZE).min(self.virtual_size.0);
        let mut buffer = aligned_zeroed(end.saturating_sub(start) as usize);
        match &self.pieces {
            None => read_fully_at(&self.file, &mut buffer, start)?,
            Some(pieces) => {
                let first = pieces.partition_point(|p| p.guest.end <= start);
                for piece in pieces[first..].iter().take_while(|p| p.guest.start < end) {
                    let from = piece.guest.start.max(start);
                    let to = piece.guest.end.min(end);
                    if let Some(host) = piece.host {
                        let slice = &mut buffer[(from - start) as usize..(to - start) as usize];
                        read_fully_at(&self.file, slice, host + (from - piece.guest.start))?;
                    }
                }
            }
        }
        Ok(buffer.freeze())
    }
}

/// Asks the kernel to read `len` bytes at `offset` into the page cache now,
/// in large requests, before the read that waits for them. Many readers of
/// one cold file at once defeat its readahead (a cold 2 GiB read by 16
/// tasks took 1.8–4.1 s here, 1.0 s with this advice). Only advice: a
/// failure changes nothing but speed.
fn will_need(file: &File, offset: u64, len: usize) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the call; the kernel reads no
    // memory of ours.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            offset as i64,
            len as i64,
            libc::POSIX_FADV_WILLNEED,
        );
    }
}

/// `read_exact_at`, except that reading past the end of a raw file (a file
/// shorter than its last block) leaves zeros instead of failing.
fn read_fully_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
    will_need(file, offset, buffer.len());
    let mut done = 0;
    while done < buffer.len() {
        match file.read_at(&mut buffer[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[async_trait]
impl DiskReader for LocalDiskReader {
    fn virtual_size(&self) -> Bytes {
        self.virtual_size
    }

    async fn allocated_blocks(&self) -> Result<Vec<Range<u64>>, CloudError> {
        match &self.pieces {
            Some(pieces) => {
                let extents: Vec<Range<u64>> = pieces.iter().map(|p| p.guest.clone()).collect();
                Ok(extents_to_blocks(&extents))
            }
            None => {
                let extents = data_extents(&self.file)
                    .map_err(|e| CloudError::from_io(self.path.display(), e))?;
                Ok(extents_to_blocks(&extents))
            }
        }
    }

    async fn read_block(&self, index: BlockIndex) -> Result<BlockData, CloudError> {
        let reader = LocalDiskReader {
            path: self.path.clone(),
            file: self.file.clone(),
            virtual_size: self.virtual_size,
            pieces: self.pieces.clone(),
        };
        let bytes = tokio::task::spawn_blocking(move || reader.read_sync(index))
            .await
            .map_err(|e| CloudError::Permanent(format!("read task failed: {e}")))?
            .map_err(|e| {
                CloudError::from_io(
                    format!("reading block {} of {}", index.0, self.path.display()),
                    e,
                )
            })?;
        Ok(BlockData {
            bytes,
            provider_digest: None,
        })
    }
}

/// Writes blocks at their offsets into a sparse raw file; holes stay holes.
/// Page-aligned blocks go through a second, `O_DIRECT` descriptor where the
/// filesystem takes one (see `direct`); the rest through the page cache.
pub struct SparseFileWriter {
    path: PathBuf,
    file: Arc<File>,
    direct: Option<Arc<DirectFile>>,
}

impl SparseFileWriter {
    /// Creates the file at `size`, or reopens it (keeping what an interrupted
    /// run wrote) when it exists.
    pub fn create_or_open(path: &Path, size: Bytes) -> std::io::Result<SparseFileWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() != size.0 {
            file.set_len(size.0)?;
        }
        Ok(SparseFileWriter {
            path: path.into(),
            file: Arc::new(file),
            direct: DirectFile::open(path).map(Arc::new),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one block on the blocking pool. The block is shared (`Bytes`),
    /// so it moves there without a copy, and several writes of one disk run
    /// at once on as many threads: done in place on the task that drives
    /// the pipeline, the write held back everything else (a profile of
    /// `bench transfer` showed 40 % of all samples there, on one thread).
    pub async fn write_block(
        &self,
        index: BlockIndex,
        data: bytes::Bytes,
    ) -> Result<(), CloudError> {
        let file = self.file.clone();
        let direct = self.direct.clone();
        tokio::task::spawn_blocking(move || {
            let offset = index.offset();
            if let Some(direct) = direct
                && direct.try_write(&data, offset)?
            {
                return Ok(());
            }
            file.write_all_at(&data, offset)
        })
        .await
        .map_err(|e| CloudError::Permanent(format!("write task failed: {e}")))?
        .map_err(|e| {
            CloudError::from_io(
                format!("writing block {} of {}", index.0, self.path.display()),
                e,
            )
        })
    }

    /// Reserves the block ranges about to be written (see `direct::reserve`).
    /// Only a hint: where space runs out or the filesystem cannot, the
    /// writes allocate as they go (and report a full disk themselves).
    pub async fn preallocate(&self, ranges: &[Range<u64>]) -> Result<(), CloudError> {
        let (file, ranges) = (self.file.clone(), ranges.to_vec());
        let size = file
            .metadata()
            .map_err(|e| CloudError::from_io(self.path.display(), e))?
            .len();
        let reserved = tokio::task::spawn_blocking(move || {
            for blocks in ranges {
                let start = blocks.start * BLOCK_SIZE;
                let end = (blocks.end * BLOCK_SIZE).min(size);
                if start < end && !reserve(&file, start, end - start)? {
                    break;
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|e| CloudError::Permanent(format!("preallocation task failed: {e}")))?;
        if let Err(e) = reserved {
            tracing::debug!(path = %self.path.display(), "no preallocation: {e}");
        }
        Ok(())
    }

    /// Punches the blocks that were reserved but read as zeros back into
    /// holes, one call per run of consecutive blocks.
    pub async fn discard(&self, blocks: &[BlockIndex]) -> Result<(), CloudError> {
        let mut indices: Vec<u64> = blocks.iter().map(|b| b.0).collect();
        indices.sort_unstable();
        let runs = extents_to_blocks(
            &indices
                .iter()
                .map(|i| i * BLOCK_SIZE..(i + 1) * BLOCK_SIZE)
                .collect::<Vec<_>>(),
        );
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            for run in runs {
                if !punch(
                    &file,
                    run.start * BLOCK_SIZE,
                    (run.end - run.start) * BLOCK_SIZE,
                )? {
                    break;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| CloudError::Permanent(format!("discard task failed: {e}")))?
        .map_err(|e: std::io::Error| CloudError::from_io(self.path.display(), e))
    }

    /// fdatasync: blocks written so far survive a crash.
    pub async fn sync(&self) -> Result<(), CloudError> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|e| CloudError::Permanent(format!("sync task failed: {e}")))?
            .map_err(|e| CloudError::from_io(self.path.display(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_merge_into_block_ranges() {
        let b = BLOCK_SIZE;
        let blocks = extents_to_blocks(&[0..4096, 4096..8192, 3 * b + 1..3 * b + 2, 4 * b..6 * b]);
        assert_eq!(blocks, vec![0..1, 3..6]);
    }

    #[tokio::test]
    async fn sparse_raw_reader_lists_only_written_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.raw");
        let writer = SparseFileWriter::create_or_open(&path, Bytes::gib(1)).unwrap();
        writer
            .write_block(BlockIndex(7), vec![0xab; BLOCK_SIZE as usize].into())
            .await
            .unwrap();
        writer
            .write_block(BlockIndex(100), vec![0xcd; BLOCK_SIZE as usize].into())
            .await
            .unwrap();
        writer.sync().await.unwrap();
        let reader = LocalDiskReader::open(&path, DiskFormat::Raw).unwrap();
        assert_eq!(reader.virtual_size(), Bytes::gib(1));
        let ranges = reader.allocated_blocks().await.unwrap();
        let blocks: Vec<u64> = ranges.into_iter().flatten().collect();
        assert_eq!(blocks, vec![7, 100]);
        assert_eq!(
            reader.read_block(BlockIndex(100)).await.unwrap().bytes[0],
            0xcd
        );
        assert!(
            reader
                .read_block(BlockIndex(8))
                .await
                .unwrap()
                .bytes
                .iter()
                .all(|&b| b == 0)
        );
    }

    #[tokio::test]
    async fn reserved_blocks_read_as_zeros_and_discarded_ones_take_no_space() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.raw");
        let writer = SparseFileWriter::create_or_open(&path, Bytes::mib(64)).unwrap();
        writer.preallocate(&[0..4, 10..12]).await.unwrap();
        let block = aligned_zeroed(BLOCK_SIZE as usize);
        let mut data = block;
        data.fill(0x5a);
        let data = data.freeze();
        for i in [0, 2, 10] {
            writer
                .write_block(BlockIndex(i), data.clone())
                .await
                .unwrap();
        }
        writer
            .discard(&[BlockIndex(3), BlockIndex(1), BlockIndex(11)])
            .await
            .unwrap();
        writer.sync().await.unwrap();
        // Three blocks of data (and perhaps a page of the filesystem's own
        // extent tree): the three discarded ones take nothing.
        let allocated = allocated_bytes(&path).unwrap().0;
        assert!(
            (3 * BLOCK_SIZE..4 * BLOCK_SIZE).contains(&allocated),
            "{allocated} bytes allocated"
        );
        let reader = LocalDiskReader::open(&path, DiskFormat::Raw).unwrap();
        for i in 0..12 {
            let bytes = reader.read_block(BlockIndex(i)).await.unwrap().bytes;
            let expected = if [0, 2, 10].contains(&i) { 0x5a } else { 0 };
            assert!(bytes.iter().all(|&b| b == expected), "block {i}");
        }
    }

    #[tokio::test]
    async fn qcow2_reader_returns_the_same_bytes_as_raw() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("d.raw");
        let qcow = dir.path().join("d.qcow2");
        let writer = SparseFileWriter::create_or_open(&raw, Bytes::mib(64)).unwrap();
        let pattern: Vec<u8> = (0..BLOCK_SIZE as usize)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        writer
            .write_block(BlockIndex(3), pattern.clone().into())
            .await
            .unwrap();
        writer
            .write_block(BlockIndex(90), pattern.clone().into())
            .await
            .unwrap();
        convert(&raw, DiskFormat::Raw, &qcow, DiskFormat::Qcow2).unwrap();
        let reader = LocalDiskReader::open(&qcow, DiskFormat::Qcow2).unwrap();
        assert_eq!(reader.virtual_size(), Bytes::mib(64));
        let blocks: Vec<u64> = reader
            .allocated_blocks()
            .await
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(blocks, vec![3, 90]);
        assert_eq!(
            reader.read_block(BlockIndex(90)).await.unwrap().bytes,
            pattern
        );
        qemu_img_check(&qcow, DiskFormat::Qcow2).unwrap();
    }
}
