//! Reading a written disk back: Compute Engine returns no image bytes, so
//! the archive the image was imported from (`rawDisk.source`, still in the
//! staging bucket until cleanup) is unpacked into a local sparse file —
//! only the data regions take space — and read like any local disk.

use crate::local_disk::LocalDiskReader;
use crate::units::{BlockIndex, Bytes};
use crate::{BlockData, CloudError, DiskReader};
use async_trait::async_trait;
use std::ops::Range;
use std::path::PathBuf;

/// A local copy that is deleted with the reader.
pub(super) struct ReadBack {
    pub(super) inner: LocalDiskReader,
    pub(super) path: PathBuf,
}

impl Drop for ReadBack {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[async_trait]
impl DiskReader for ReadBack {
    fn virtual_size(&self) -> Bytes {
        self.inner.virtual_size()
    }

    async fn allocated_blocks(&self) -> Result<Vec<Range<u64>>, CloudError> {
        self.inner.allocated_blocks().await
    }

    async fn read_block(&self, index: BlockIndex) -> Result<BlockData, CloudError> {
        self.inner.read_block(index).await
    }
}
