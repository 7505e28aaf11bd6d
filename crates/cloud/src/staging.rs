//! A target disk staged as a sparse raw file on this machine, then handed to
//! a provider's finish step (link or convert, upload, import). The lab,
//! CloudStack and DigitalOcean writers differ only in that step, so the
//! block writing, durability and resume id live here once.

use super::local_disk::SparseFileWriter;
use super::{CloudError, DiskWriter, WriteOrder, WrittenDisk};
use crate::block::BlockDigest;
use crate::units::{BlockIndex, Bytes};
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// What a provider does with the staging file once every block is in it.
#[async_trait]
pub trait FinishStaged: Send + Sync {
    /// `staging` is synced and complete; it stays on disk (a resumed run may
    /// need it) unless the step removes it.
    async fn finish(self: Box<Self>, staging: PathBuf) -> Result<WrittenDisk, CloudError>;
}

/// A staging file that is itself the result: it stays where it is (the
/// engine's staged copy of a disk, read by a second hop).
pub struct KeepStaged;

#[async_trait]
impl FinishStaged for KeepStaged {
    async fn finish(self: Box<Self>, staging: PathBuf) -> Result<WrittenDisk, CloudError> {
        let size = std::fs::metadata(&staging)
            .map_err(|e| CloudError::from_io(format!("{}", staging.display()), e))?
            .len();
        Ok(WrittenDisk {
            id: staging.display().to_string(),
            format: crate::inventory::DiskFormat::Raw,
            virtual_size: Bytes(size),
        })
    }
}

pub struct StagedWriter {
    staging_id: String,
    file: SparseFileWriter,
    finisher: Box<dyn FinishStaged>,
}

impl StagedWriter {
    /// Creates the staging file at `path`, or reopens the one an interrupted
    /// run left (keeping its blocks). `staging_id` is what the journal keeps.
    pub fn open(
        path: &Path,
        staging_id: String,
        virtual_size: Bytes,
        finisher: Box<dyn FinishStaged>,
    ) -> Result<StagedWriter, CloudError> {
        let file = SparseFileWriter::create_or_open(path, virtual_size)
            .map_err(|e| CloudError::from_io(format!("staging {}", path.display()), e))?;
        Ok(StagedWriter {
            staging_id,
            file,
            finisher,
        })
    }
}

/// Refuses staging ids that could leave the staging folder (a resumed run
/// takes the id from its journal, which is a file an operator can edit).
pub fn check_staging_id(staging_id: &str) -> Result<(), CloudError> {
    if staging_id.is_empty()
        || staging_id.contains('/')
        || staging_id == "."
        || staging_id == ".."
        || staging_id.contains('\0')
    {
        return Err(CloudError::Permanent(format!(
            "invalid staging id '{}'",
            crate::text::safe(staging_id)
        )));
    }
    Ok(())
}

#[async_trait]
impl DiskWriter for StagedWriter {
    fn order(&self) -> WriteOrder {
        WriteOrder::Any
    }

    fn staging_id(&self) -> String {
        self.staging_id.clone()
    }

    async fn write_block(
        &self,
        index: BlockIndex,
        data: bytes::Bytes,
        _digest: BlockDigest,
    ) -> Result<(), CloudError> {
        self.file.write_block(index, data).await
    }

    async fn flush(&self) -> Result<(), CloudError> {
        self.file.sync().await
    }

    async fn preallocate(&self, ranges: &[std::ops::Range<u64>]) -> Result<(), CloudError> {
        self.file.preallocate(ranges).await
    }

    async fn discard(&self, blocks: &[crate::units::BlockIndex]) -> Result<(), CloudError> {
        self.file.discard(blocks).await
    }

    async fn finish(self: Box<Self>, _blocks_written: u64) -> Result<WrittenDisk, CloudError> {
        self.file.sync().await?;
        let staging = self.file.path().to_path_buf();
        self.finisher.finish(staging).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::DiskFormat;
    use crate::units::BLOCK_SIZE;

    /// Records the staging file's content at finish time.
    struct Capture;

    #[async_trait]
    impl FinishStaged for Capture {
        async fn finish(self: Box<Self>, staging: PathBuf) -> Result<WrittenDisk, CloudError> {
            let bytes = std::fs::read(&staging).map_err(|e| CloudError::from_io("read", e))?;
            Ok(WrittenDisk {
                id: crate::block::to_hex(&BlockDigest::of(&bytes).0),
                format: DiskFormat::Raw,
                virtual_size: Bytes(bytes.len() as u64),
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocks_land_at_their_offsets_and_a_reopen_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.raw");
        let size = Bytes(4 * BLOCK_SIZE);
        let block = bytes::Bytes::from(vec![7u8; BLOCK_SIZE as usize]);
        let digest = BlockDigest::of(&block);
        let first = StagedWriter::open(&path, "d.raw".into(), size, Box::new(Capture)).unwrap();
        assert_eq!(first.order(), WriteOrder::Any);
        first
            .write_block(BlockIndex(2), block.clone(), digest)
            .await
            .unwrap();
        first.flush().await.unwrap();
        drop(first);
        // An interrupted run reopens the same file and adds a block.
        let again = StagedWriter::open(&path, "d.raw".into(), size, Box::new(Capture)).unwrap();
        again
            .write_block(BlockIndex(0), block, digest)
            .await
            .unwrap();
        let written = Box::new(again).finish(2).await.unwrap();
        let mut expected = vec![0u8; (4 * BLOCK_SIZE) as usize];
        expected[..BLOCK_SIZE as usize].fill(7);
        expected[(2 * BLOCK_SIZE) as usize..(3 * BLOCK_SIZE) as usize].fill(7);
        assert_eq!(
            written.id,
            crate::block::to_hex(&BlockDigest::of(&expected).0)
        );
        assert_eq!(written.virtual_size, size);
    }

    #[test]
    fn staging_ids_cannot_leave_the_folder() {
        assert!(check_staging_id("dst-web.raw").is_ok());
        // A mapped name is one file name, dots and all.
        assert!(check_staging_id("..%2F..%2Fx-root.raw").is_ok());
        for bad in ["", "../x", "a/b", ".."] {
            assert!(check_staging_id(bad).is_err(), "{bad}");
        }
    }
}
