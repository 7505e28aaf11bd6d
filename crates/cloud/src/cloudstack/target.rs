//! CloudStack as a target: blocks into a local sparse raw file, then
//! qemu-img to the zone hypervisor's format, getUploadParamsFor{Template,
//! Volume} with a SHA-256 checksum, a signed multipart POST, a wait until
//! the object is ready. A failed upload deletes the half-made template or
//! volume; the local staging file stays so a resumed run can finish it.

use super::client::id_string;
use super::deploy::host_name;
use super::inventory::{cloudstack_format_name, text};
use super::source::safe;
use super::source::{Part, open_local, parse_parts};
use super::{CloudStackCloud, download};
use crate::inventory::DiskFormat;
use crate::local_disk;
use crate::staging::{FinishStaged, StagedWriter, check_staging_id};
use crate::{Capability, CloudError, DiskWriter, TargetDiskSpec, WrittenDisk};
use crate::{Check, DeploySpec, DeployedInstance, DiskReader, Target};
use async_trait::async_trait;
use futures::StreamExt as _;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Converts the staged raw file to the hypervisor's format and uploads it.
struct CloudStackFinish {
    cloud: Arc<WriterContext>,
    staging_id: String,
    spec: TargetDiskSpec,
}

/// What a writer needs from the provider after `open_disk_writer` returns.
struct WriterContext {
    client: Arc<super::client::Client>,
    name: String,
    zone_id: String,
    hypervisor: String,
    format: DiskFormat,
    transfer: download::DownloadPolicy,
    staging_dir: PathBuf,
    kept: super::KeptImages,
}

#[async_trait]
impl FinishStaged for CloudStackFinish {
    async fn finish(self: Box<Self>, staging: PathBuf) -> Result<WrittenDisk, CloudError> {
        let ctx = self.cloud.clone();
        let converted =
            ctx.staging_dir
                .join(format!("{}.{}", self.staging_id, ctx.format.extension()));
        let (src, dst, format) = (staging, converted.clone(), ctx.format);
        tokio::task::spawn_blocking(move || {
            local_disk::convert(&src, DiskFormat::Raw, &dst, format)
        })
        .await
        .map_err(|e| CloudError::Permanent(format!("qemu-img task failed: {e}")))??;
        // The boot disk becomes a template; the others become data volumes.
        let boot = self.spec.boot;
        let file = converted.clone();
        let sha256 = tokio::task::spawn_blocking(move || sha256_file(&file))
            .await
            .map_err(|e| CloudError::Permanent(format!("checksum task failed: {e}")))?
            .map_err(|e| CloudError::from_io(converted.display(), e))?;
        match ctx.upload(&self.spec, &converted, boot, &sha256).await {
            Ok(written) => {
                // Kept (its checksum was verified by the cloud) so a data
                // volume can be read back while attached; removed at revoke.
                let kept = ctx
                    .staging_dir
                    .join(uploaded_file_name(&written.id, ctx.format));
                match std::fs::rename(&converted, &kept) {
                    Ok(()) => super::keep(&ctx.kept, &kept),
                    Err(e) => {
                        tracing::warn!(error = %e, "cloudstack: could not keep the uploaded image")
                    }
                }
                Ok(written)
            }
            Err(err) => {
                let _ = std::fs::remove_file(&converted);
                Err(err)
            }
        }
    }
}

/// Local copy of an uploaded image, by written-disk id.
pub(super) fn uploaded_file_name(written_id: &str, format: DiskFormat) -> String {
    format!("uploaded-{}.{}", safe(written_id), format.extension())
}

/// SHA-256 of a file, hex (the `{SHA-256}` checksum the upload declares).
fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(crate::block::to_hex(&hasher.finalize()))
}

impl WriterContext {
    /// getUploadParamsFor…, POST, wait ready. On failure the half-made
    /// template or volume is deleted before the error is returned.
    async fn upload(
        &self,
        spec: &TargetDiskSpec,
        file: &std::path::Path,
        boot: bool,
        sha256: &str,
    ) -> Result<WrittenDisk, CloudError> {
        let name = host_name(&spec.name);
        let format = cloudstack_format_name(self.format).to_string();
        let (command, prefix) = if boot {
            ("getUploadParamsForTemplate", "template")
        } else {
            ("getUploadParamsForVolume", "volume")
        };
        let mut params = vec![
            ("name", name.clone()),
            ("format", format),
            ("zoneid", self.zone_id.clone()),
            ("checksum", format!("{{SHA-256}}{sha256}")),
        ];
        if boot {
            params.push(("displaytext", spec.name.clone()));
            params.push(("hypervisor", self.hypervisor.clone()));
            params.push(("ostypeid", self.os_type().await?));
            params.push(("isextractable", "true".into()));
        }
        let answer = self.client.call(command, &params).await?;
        let upload = answer.get("getuploadparams").unwrap_or(&answer);
        let field = |key: &str| {
            upload
                .get(key)
                .and_then(|v| v.as_str().map(str::to_string).or_else(|| id_string(v)))
        };
        let id = field("id").ok_or_else(|| {
            CloudError::Permanent(format!("cloudstack {command}: no id in the answer"))
        })?;
        let result = async {
            let missing = |k: &str| {
                CloudError::Permanent(format!("cloudstack {command}: no '{k}' in the answer"))
            };
            let url = field("postURL").ok_or_else(|| missing("postURL"))?;
            self.client
                .check_handed(&format!("cloudstack {command}: postURL"), &url)?;
            let headers = UploadHeaders {
                signature: field("signature").ok_or_else(|| missing("signature"))?,
                metadata: field("metadata").ok_or_else(|| missing("metadata"))?,
                expires: field("expires").ok_or_else(|| missing("expires"))?,
            };
            let label = format!("{prefix} {id}");
            let policy = download::DownloadPolicy {
                attempts: self.transfer.attempts.min(4),
                ..self.transfer
            };
            download::with_retries(&label, &policy, || {
                post_file(self.client.http(), &url, &headers, file, &label)
            })
            .await?;
            self.wait_ready(prefix, &id).await
        }
        .await;
        match result {
            Ok(()) => Ok(WrittenDisk {
                id: format!("{prefix}:{id}"),
                format: self.format,
                virtual_size: spec.virtual_size,
            }),
            Err(err) => {
                let command = if boot {
                    "deleteTemplate"
                } else {
                    "deleteVolume"
                };
                let cleanup = if boot {
                    self.client
                        .call_async(command, &[("id", id.clone())])
                        .await
                        .map(|_| ())
                } else {
                    self.client
                        .call(command, &[("id", id.clone())])
                        .await
                        .map(|_| ())
                };
                if let Err(e) = cleanup {
                    tracing::warn!(%id, error = %e, "cloudstack: could not remove a failed upload");
                }
                Err(err)
            }
        }
    }

    /// An `ostypeid` for the template: "Other Linux (64-bit)" when offered.
    async fn os_type(&self) -> Result<String, CloudError> {
        let types = self.client.list_all("listOsTypes", "ostype", &[]).await?;
        let preferred = ["Other Linux (64-bit)", "Other (64-bit)"];
        preferred
            .iter()
            .find_map(|want| types.iter().find(|t| text(t, "description") == *want))
            .or_else(|| types.first())
            .map(|t| text(t, "id"))
            .ok_or_else(|| {
                CloudError::Permanent(format!("{}: listOsTypes returned no OS types", self.name))
            })
    }

    /// Polls the template (`isready`) or volume (`state` Uploaded/Ready).
    async fn wait_ready(&self, kind: &str, id: &str) -> Result<(), CloudError> {
        let started = Instant::now();
        let mut delay = self.client.poll.first;
        loop {
            let (state, ready) = if kind == "template" {
                let list = self
                    .client
                    .list_all(
                        "listTemplates",
                        "template",
                        &[("id", id.to_string()), ("templatefilter", "self".into())],
                    )
                    .await?;
                let t = list.first().cloned().unwrap_or(Value::Null);
                (
                    text(&t, "status"),
                    t.get("isready").and_then(Value::as_bool).unwrap_or(false),
                )
            } else {
                let list = self
                    .client
                    .list_all("listVolumes", "volume", &[("id", id.to_string())])
                    .await?;
                let v = list.first().cloned().unwrap_or(Value::Null);
                let state = text(&v, "state");
                let ready = state == "Uploaded" || state == "Ready";
                (state, ready)
            };
            if ready {
                return Ok(());
            }
            let lower = state.to_ascii_lowercase();
            if lower.contains("error") || lower.contains("abandon") || lower.contains("fail") {
                return Err(CloudError::Permanent(format!(
                    "cloudstack {kind} {id}: upload ended in state '{state}'"
                )));
            }
            if started.elapsed() + delay > self.client.poll.deadline {
                return Err(CloudError::Permanent(format!(
                    "cloudstack {kind} {id}: not ready after {}s (state '{state}')",
                    self.client.poll.deadline.as_secs()
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(self.client.poll.max);
        }
    }
}

/// The three headers an upload POST carries (from getUploadParamsFor…).
pub struct UploadHeaders {
    pub signature: String,
    pub metadata: String,
    pub expires: String,
}

const BOUNDARY: &str = "altishift-upload-7d41c0b2e9f84a6b";

/// POSTs a file as multipart field `files[]`, streamed from disk with a
/// known Content-Length.
pub async fn post_file(
    http: &reqwest::Client,
    url: &str,
    headers: &UploadHeaders,
    file: &std::path::Path,
    label: &str,
) -> Result<(), CloudError> {
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "disk".into());
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[]\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let size = tokio::fs::metadata(file)
        .await
        .map_err(|e| CloudError::from_io(file.display(), e))?
        .len();
    let length = head.len() as u64 + size + tail.len() as u64;
    let handle = tokio::fs::File::open(file)
        .await
        .map_err(|e| CloudError::from_io(file.display(), e))?;
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(head.into_bytes()) })
        .chain(file_stream(handle))
        .chain(futures::stream::once(async move { Ok(tail.into_bytes()) }));
    let response = http
        .post(url)
        .header("X-signature", &headers.signature)
        .header("X-metadata", &headers.metadata)
        .header("X-expires", &headers.expires)
        .header(
            reqwest::header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header(reqwest::header::CONTENT_LENGTH, length)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .map_err(|e| download::transfer_error_as("upload", label, e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let message = format!("upload of {label}: HTTP {status}: {text}");
    Err(if status.is_server_error() || status.as_u16() == 429 {
        CloudError::Transient(message)
    } else {
        CloudError::Permanent(message)
    })
}

/// Reads a file in 1 MiB pieces as a stream of byte chunks.
fn file_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures::stream::unfold(Some(file), |state| async move {
        use tokio::io::AsyncReadExt as _;
        let mut file = state?;
        let mut buffer = vec![0u8; 1 << 20];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(buffer), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[async_trait]
impl Target for CloudStackCloud {
    async fn open_disk_writer(
        &self,
        _cap: &Capability,
        spec: &TargetDiskSpec,
    ) -> Result<Box<dyn DiskWriter>, CloudError> {
        let zone_id = self.zone().await?.id.clone();
        let hypervisor = self.hypervisor().await?.to_string();
        let format = super::inventory::hypervisor_format(&hypervisor);
        // One staging file per disk name: the mapping keeps `a.b` and `a_b` apart.
        let staging_id = match spec.resume.clone() {
            Some(id) => id,
            None => {
                let file = crate::fsutil::file_name(&spec.name).map_err(|why| {
                    CloudError::Permanent(format!(
                        "disk name '{}': {why}",
                        crate::text::safe(&spec.name)
                    ))
                })?;
                format!("dst-{file}.raw")
            }
        };
        check_staging_id(&staging_id)?;
        let path = self.staging_path(&staging_id);
        let finish = CloudStackFinish {
            cloud: Arc::new(WriterContext {
                client: self.client.clone(),
                name: self.name.clone(),
                zone_id,
                hypervisor,
                format,
                transfer: self.transfer,
                staging_dir: self.staging.clone(),
                kept: self.kept.clone(),
            }),
            staging_id: staging_id.clone(),
            spec: spec.clone(),
        };
        let writer = StagedWriter::open(&path, staging_id, spec.virtual_size, Box::new(finish))?;
        Ok(Box::new(writer))
    }

    async fn deploy(
        &self,
        _cap: &Capability,
        spec: &DeploySpec,
    ) -> Result<DeployedInstance, CloudError> {
        let zone = self.zone().await?.clone();
        let (boot, data) = spec
            .disks
            .split_first()
            .ok_or_else(|| CloudError::Permanent(format!("deploy {}: no disks", spec.name)))?;
        let template_id = match parse_parts(None, &boot.id).first() {
            Some(Part::Template(id)) => id.clone(),
            _ => {
                return Err(CloudError::Permanent(format!(
                    "deploy {}: the boot disk '{}' is not a template (CloudStack boots from templates)",
                    spec.name, boot.id
                )));
            }
        };
        let mut volumes = Vec::new();
        for disk in data {
            match parse_parts(None, &disk.id).first() {
                Some(Part::Volume(id)) => volumes.push(id.clone()),
                _ => {
                    return Err(CloudError::Permanent(format!(
                        "deploy {}: data disk '{}' is not a volume",
                        spec.name, disk.id
                    )));
                }
            }
        }
        let offering = self.offering_id(&spec.size).await?;
        let mut params = vec![
            ("serviceofferingid", offering),
            ("templateid", template_id),
            ("zoneid", zone.id.clone()),
            ("name", host_name(&spec.name)),
            ("displayname", spec.name.clone()),
        ];
        if spec.config.network.is_none()
            && let Some(network) = self.network_id(&zone.id).await?
        {
            params.push(("networkids", network));
        }
        params.extend(super::config::deploy_params(&spec.config));
        // deployVirtualMachine returns the VM id at once; a failed job can
        // leave a VM in Error state, which must go too.
        let started = self.client.call("deployVirtualMachine", &params).await?;
        let vm_id = started.get("id").and_then(id_string);
        let job = started.get("jobid").and_then(id_string).ok_or_else(|| {
            CloudError::Permanent("cloudstack deployVirtualMachine: answer has no jobid".into())
        })?;
        let result = self.client.wait_job("deployVirtualMachine", &job).await;
        let vm = match result {
            Ok(result) => result.get("virtualmachine").cloned().unwrap_or(Value::Null),
            Err(err) => {
                if let Some(id) = &vm_id {
                    self.destroy_quietly(id).await;
                }
                return Err(err);
            }
        };
        let vm_id = vm_id
            .or_else(|| vm.get("id").and_then(id_string))
            .ok_or_else(|| {
                CloudError::Permanent(
                    "cloudstack deployVirtualMachine: no VM id in the answer".into(),
                )
            })?;
        for volume in &volumes {
            let attached = self
                .client
                .call_async(
                    "attachVolume",
                    &[("id", volume.clone()), ("virtualmachineid", vm_id.clone())],
                )
                .await;
            if let Err(err) = attached {
                self.destroy_quietly(&vm_id).await;
                return Err(err);
            }
        }
        if let Err(err) = super::config::tag_vm(&self.client, &vm_id, &spec.tags).await {
            self.destroy_quietly(&vm_id).await;
            return Err(err);
        }
        if text(&vm, "state") != "Running"
            && let Err(err) = self
                .client
                .call_async("startVirtualMachine", &[("id", vm_id.clone())])
                .await
        {
            self.destroy_quietly(&vm_id).await;
            return Err(err);
        }
        Ok(DeployedInstance {
            id: vm_id,
            name: spec.name.clone(),
            address: address_of(&vm),
        })
    }

    /// Reads a written disk back from the cloud: templates through
    /// extractTemplate, volumes through extractVolume once they are Ready.
    async fn read_back(
        &self,
        disk: &WrittenDisk,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        match parse_parts(None, &disk.id).first() {
            Some(Part::Template(id)) => {
                Ok(Some(Box::new(self.fetch_template(id, disk.format).await?)))
            }
            Some(Part::Volume(id)) => {
                let volume = self.volume(id).await?;
                let busy = text(&volume, "vmstate") == "Running";
                if text(&volume, "state") == "Ready" && !busy {
                    return Ok(Some(Box::new(self.fetch_volume(id, disk.format).await?)));
                }
                // Attached to a running VM (CloudStack will not extract it):
                // read the image we uploaded, whose SHA-256 the cloud checked.
                let kept =
                    self.staging_path(&super::target::uploaded_file_name(&disk.id, disk.format));
                if kept.exists() {
                    super::keep(&self.kept, &kept);
                    return Ok(Some(Box::new(open_local(kept, disk.format).await?)));
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    async fn probe(
        &self,
        instance: &DeployedInstance,
        spec: &DeploySpec,
    ) -> Result<Vec<Check>, CloudError> {
        let list = self
            .client
            .list_all(
                "listVirtualMachines",
                "virtualmachine",
                &[("id", instance.id.clone()), ("listall", "true".into())],
            )
            .await?;
        let Some(vm) = list.first() else {
            return Ok(vec![Check::new(
                "exists",
                false,
                format!("VM {} not found", instance.id),
            )]);
        };
        let state = text(vm, "state");
        let offering = text(vm, "serviceofferingname");
        let config = super::config::checks(&self.client, vm, &spec.config).await?;
        let mut checks = vec![
            Check::new("running", state == "Running", format!("state {state}")),
            Check::new(
                "size",
                offering == spec.size,
                format!("offering {offering}, planned {}", spec.size),
            ),
        ];
        checks.extend(config);
        Ok(checks)
    }

    async fn create_config_object(
        &self,
        cap: &Capability,
        object: &crate::configure::ConfigObject,
    ) -> Result<String, CloudError> {
        super::config::create(&self.client, cap, object).await
    }
}

/// The address the jump host reaches a VM at: its static-NAT public IP
/// when it has one, else the default NIC's `ipaddress`.
fn address_of(vm: &Value) -> Option<String> {
    let nics = vm["nic"].as_array().map(Vec::as_slice).unwrap_or_default();
    let nic = nics
        .iter()
        .find(|n| n["isdefault"] == true)
        .or(nics.first());
    vm["publicip"]
        .as_str()
        .or(nic.and_then(|n| n["ipaddress"].as_str()))
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_valid() {
        assert_eq!(host_name("Web Server_01"), "web-server-01");
        assert_eq!(host_name("1st"), "vm-1st");
        assert_eq!(host_name("a".repeat(80).as_str()).len(), 63);
    }
}
