//! CloudStack as a source: a snapshot of the volume, a volume made from it
//! (the downloadable copy), an extract URL for that volume, and a parallel
//! ranged download into a local staging file the local reader then serves.

use super::CloudStackCloud;
use super::download;
use super::inventory::{hypervisor_format, text};
use crate::Source;
use crate::inventory::DiskFormat;
use crate::local_disk::{self, LocalDiskReader};
use crate::units::Bytes;
use crate::{Capability, CloudError, DiskReader, DiskRef, ResourceKind, SnapshotRef};
use async_trait::async_trait;
use serde_json::Value;
use std::path::PathBuf;

/// One object a composite resource id names: `snapshot:ID`, `volume:ID`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    Snapshot(String),
    Volume(String),
    Template(String),
    Vm(String),
}

/// Parses `snapshot:S,volume:V`; a bare id takes its meaning from `kind`.
pub(super) fn parse_parts(kind: Option<ResourceKind>, id: &str) -> Vec<Part> {
    id.split(',')
        .filter(|p| !p.is_empty())
        .map(|piece| match piece.split_once(':') {
            Some(("snapshot", v)) => Part::Snapshot(v.into()),
            Some(("volume", v)) => Part::Volume(v.into()),
            Some(("template", v)) => Part::Template(v.into()),
            Some(("vm", v)) => Part::Vm(v.into()),
            _ => match kind {
                Some(ResourceKind::Instance) => Part::Vm(piece.into()),
                Some(ResourceKind::Snapshot) => Part::Snapshot(piece.into()),
                Some(ResourceKind::Image) => Part::Template(piece.into()),
                _ => Part::Volume(piece.into()),
            },
        })
        .collect()
}

impl CloudStackCloud {
    /// listVolumes id=… (one volume or NotFound).
    pub(super) async fn volume(&self, id: &str) -> Result<Value, CloudError> {
        let list = self
            .client
            .list_all(
                "listVolumes",
                "volume",
                &[("id", id.to_string()), ("listall", "true".into())],
            )
            .await?;
        list.into_iter()
            .next()
            .ok_or_else(|| CloudError::NotFound(format!("volume {id} in {}", self.name)))
    }

    pub(super) async fn template(&self, id: &str) -> Result<Value, CloudError> {
        let list = self
            .client
            .list_all(
                "listTemplates",
                "template",
                &[("id", id.to_string()), ("templatefilter", "self".into())],
            )
            .await?;
        list.into_iter()
            .next()
            .ok_or_else(|| CloudError::NotFound(format!("template {id} in {}", self.name)))
    }

    pub(super) async fn fetch_volume(
        &self,
        id: &str,
        format: DiskFormat,
    ) -> Result<LocalDiskReader, CloudError> {
        let dest = self.staging_path(&format!("src-volume-{}.{}", safe(id), format.extension()));
        if !download::is_complete(&dest) {
            let volume = self.volume(id).await?;
            let outcome = self
                .client
                .call_async(
                    "extractVolume",
                    &[
                        ("id", id.to_string()),
                        ("mode", "HTTP_DOWNLOAD".into()),
                        ("zoneid", text(&volume, "zoneid")),
                    ],
                )
                .await?;
            let url = extract_url(&outcome.result, "volume")?;
            self.client
                .check_handed("cloudstack extractVolume: the download URL", &url)?;
            download::download(
                self.client.http(),
                &url,
                &dest,
                &format!("volume {id}"),
                self.transfer,
            )
            .await?;
        }
        open_local(dest, format).await
    }

    pub(super) async fn fetch_template(
        &self,
        id: &str,
        format: DiskFormat,
    ) -> Result<LocalDiskReader, CloudError> {
        let dest = self.staging_path(&format!(
            "readback-template-{}.{}",
            safe(id),
            format.extension()
        ));
        super::keep(&self.kept, &dest);
        super::keep(&self.kept, &download::complete_marker(&dest));
        if !download::is_complete(&dest) {
            let template = self.template(id).await?;
            let outcome = self
                .client
                .call_async(
                    "extractTemplate",
                    &[
                        ("id", id.to_string()),
                        ("mode", "HTTP_DOWNLOAD".into()),
                        ("zoneid", text(&template, "zoneid")),
                    ],
                )
                .await?;
            let url = extract_url(&outcome.result, "template")?;
            self.client
                .check_handed("cloudstack extractTemplate: the download URL", &url)?;
            download::download(
                self.client.http(),
                &url,
                &dest,
                &format!("template {id}"),
                self.transfer,
            )
            .await?;
        }
        open_local(dest, format).await
    }
}

/// `jobresult.<kind>.url` of an extract job (CloudStack names the object
/// `volume`/`template`; some versions answer `extract`).
fn extract_url(result: &Value, kind: &str) -> Result<String, CloudError> {
    [kind, "extract"]
        .iter()
        .find_map(|key| {
            result
                .get(*key)
                .and_then(|o| o.get("url"))
                .and_then(Value::as_str)
        })
        .map(str::to_string)
        .ok_or_else(|| {
            CloudError::Permanent(format!(
                "cloudstack extract{kind}: the job result has no download url"
            ))
        })
}

/// Ids become file names: keep them to safe characters.
pub(super) fn safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Opens a downloaded image: raw and qcow2 directly, vhd/vmdk after a
/// conversion to raw (the local reader reads raw and qcow2).
pub(super) async fn open_local(
    path: PathBuf,
    format: DiskFormat,
) -> Result<LocalDiskReader, CloudError> {
    tokio::task::spawn_blocking(move || match format {
        DiskFormat::Raw | DiskFormat::Qcow2 => LocalDiskReader::open(&path, format),
        other => {
            let raw = path.with_extension("raw");
            if !raw.exists() {
                local_disk::convert(&path, other, &raw, DiskFormat::Raw)?;
            }
            LocalDiskReader::open(&raw, DiskFormat::Raw)
        }
    })
    .await
    .map_err(|e| CloudError::Permanent(format!("opening a downloaded image: {e}")))?
}

#[async_trait]
impl Source for CloudStackCloud {
    /// createSnapshot of the volume, then createVolume from it: the copy that
    /// extractVolume can serve. A failure removes what was made.
    async fn snapshot_disk(
        &self,
        _cap: &Capability,
        disk: &DiskRef,
        name: &str,
    ) -> Result<SnapshotRef, CloudError> {
        let volume = self.volume(&disk.disk_id).await?;
        let size = Bytes(
            volume
                .get("size")
                .and_then(super::client::as_u64)
                .unwrap_or(0),
        );
        let format = hypervisor_format(&text(&volume, "hypervisor"));
        let snap = self
            .client
            .call_async(
                "createSnapshot",
                &[
                    ("volumeid", disk.disk_id.clone()),
                    ("name", format!("{name}-snap")),
                ],
            )
            .await?;
        let snapshot_id = snap.id("snapshot").ok_or_else(|| {
            CloudError::Permanent("cloudstack createSnapshot: no snapshot id in the answer".into())
        })?;
        let copy = self
            .client
            .call_async(
                "createVolume",
                &[
                    ("snapshotid", snapshot_id.clone()),
                    ("name", format!("{name}-copy")),
                    ("zoneid", text(&volume, "zoneid")),
                ],
            )
            .await;
        let volume_id = match copy.and_then(|c| {
            c.id("volume").ok_or_else(|| {
                CloudError::Permanent("cloudstack createVolume: no volume id in the answer".into())
            })
        }) {
            Ok(id) => id,
            Err(err) => {
                if let Err(cleanup) = self.delete_part(&Part::Snapshot(snapshot_id.clone())).await {
                    tracing::warn!(snapshot = %snapshot_id, error = %cleanup, "cloudstack: could not remove snapshot after a failure");
                }
                return Err(err);
            }
        };
        Ok(SnapshotRef {
            id: format!("snapshot:{snapshot_id},volume:{volume_id}"),
            virtual_size: size,
            format,
            created_by_run: true,
        })
    }

    /// Downloads the snapshot's volume copy (once; resumable) and opens it.
    async fn open_disk_reader(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn DiskReader>, CloudError> {
        let parts = parse_parts(Some(ResourceKind::StagingDisk), &snapshot.id);
        let volume_id = parts
            .iter()
            .find_map(|p| match p {
                Part::Volume(v) => Some(v.clone()),
                _ => None,
            })
            .ok_or_else(|| {
                CloudError::Unsupported(format!(
                    "cloudstack snapshot '{}' has no volume copy to download: name a volume, or let the run take the snapshot",
                    snapshot.id
                ))
            })?;
        let reader = self.fetch_volume(&volume_id, snapshot.format).await?;
        Ok(Box::new(reader))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_ids_parse() {
        assert_eq!(
            parse_parts(Some(ResourceKind::Snapshot), "snapshot:s1,volume:v1"),
            vec![Part::Snapshot("s1".into()), Part::Volume("v1".into())]
        );
        assert_eq!(
            parse_parts(Some(ResourceKind::Instance), "abc"),
            vec![Part::Vm("abc".into())]
        );
        assert_eq!(
            parse_parts(None, "template:t"),
            vec![Part::Template("t".into())]
        );
    }
}
