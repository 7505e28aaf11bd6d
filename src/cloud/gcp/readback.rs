//! Reading a written disk back: Compute Engine returns no image bytes, so
//! the archive the image was imported from (`rawDisk.source`, still in the
//! staging bucket until cleanup) is unpacked into a local sparse file —
//! only the data regions take space — and read like any local disk.

use super::{GcpCloud, verify};
use crate::cloud::local_disk::LocalDiskReader;
use crate::cloud::{BlockData, CloudError, DiskReader, WrittenDisk};
use crate::inventory::DiskFormat;
use crate::units::{BlockIndex, Bytes};
use async_trait::async_trait;
use std::ops::Range;
use std::path::PathBuf;

/// A local copy that is deleted with the reader.
struct ReadBack {
    inner: LocalDiskReader,
    path: PathBuf,
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

impl GcpCloud {
    pub(super) async fn read_back_archive(
        &self,
        disk: &WrittenDisk,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        let image = self
            .client
            .get(&format!("global/images/{}", disk.id))
            .await?;
        let Some((bucket, object)) = image["rawDisk"]["source"]
            .as_str()
            .and_then(|s| s.strip_prefix("https://storage.googleapis.com/"))
            .and_then(|s| s.split_once('/'))
            .map(|(b, o)| (b.to_string(), o.to_string()))
        else {
            return Ok(None);
        };
        let path = std::env::temp_dir().join(format!(
            "altishift-gcp-readback-{}-{}.raw",
            crate::fsutil::file_name(&disk.id).map_err(CloudError::Permanent)?,
            std::process::id()
        ));
        match verify::unpack_to(&self.client, &bucket, &object, &path).await {
            Ok(_) => {}
            // Cleaned up already: honestly unverifiable.
            Err(CloudError::NotFound(_)) => {
                let _ = std::fs::remove_file(&path);
                return Ok(None);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        }
        let inner = LocalDiskReader::open(&path, DiskFormat::Raw)?;
        Ok(Some(Box::new(ReadBack { inner, path })))
    }
}
