//! DigitalOcean as a target: blocks land in a local sparse raw file; at the
//! end it becomes a compact qcow2, is uploaded (multipart) to S3-compatible
//! staging, imported as a custom image from a presigned URL, and a droplet is
//! created from it.

use super::client::DoClient;
use crate::block::BlockDigest;
use crate::cloud::local_disk::{self, SparseFileWriter};
use crate::cloud::{
    CloudError, DeploySpec, DeployedInstance, DiskWriter, TargetDiskSpec, WriteOrder, WrittenDisk,
};
use crate::inventory::DiskFormat;
use crate::secret::Secret;
use crate::units::BlockIndex;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upload part size (S3 needs at least 5 MiB for all parts but the last).
const PART: usize = 16 << 20;

/// S3-compatible staging (DigitalOcean Spaces, or any S3 endpoint).
#[derive(Clone)]
pub struct Staging {
    s3: aws_sdk_s3::Client,
    pub bucket: String,
    dir: PathBuf,
    pub url_ttl: Duration,
    keys: Arc<Mutex<Option<(Secret, Secret)>>>,
    /// Image id → the staged object it was imported from (for read-back).
    imported: Arc<Mutex<std::collections::HashMap<String, String>>>,
}

impl Staging {
    pub fn new(
        endpoint: &str,
        region: &str,
        bucket: &str,
        access_key: Secret,
        secret_key: Secret,
        dir: &Path,
    ) -> Staging {
        let credentials = aws_sdk_s3::config::Credentials::new(
            access_key.expose(),
            secret_key.expose(),
            None,
            None,
            "altishift-profile",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(credentials)
            .build();
        Staging {
            s3: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.to_string(),
            dir: dir.to_path_buf(),
            url_ttl: Duration::from_secs(6 * 3600),
            keys: Arc::new(Mutex::new(Some((access_key, secret_key)))),
            imported: Arc::default(),
        }
    }

    /// Wipes our copies of the keys (the SDK's credential cache goes with
    /// the client when the provider is dropped).
    pub fn forget_keys(&self) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn local(&self, key: &str) -> PathBuf {
        self.dir.join(key.replace('/', "_"))
    }

    /// Removes a staged object and its local files.
    pub async fn remove(&self, key: &str) -> Result<(), CloudError> {
        let local = self.local(key);
        for path in [
            local.clone(),
            local.with_extension("qcow2"),
            local.with_extension("readback.qcow2"),
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CloudError::from_io(path.display(), e)),
            }
        }
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("delete staged object", e))?;
        Ok(())
    }

    /// Downloads the object an image was imported from, to read it back.
    pub async fn fetch_imported(&self, image: &str) -> Result<Option<PathBuf>, CloudError> {
        let key = self
            .imported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(image)
            .cloned();
        let Some(key) = key else {
            return Ok(None);
        };
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_error("read back the staged image", e))?;
        let path = self.local(&key).with_extension("readback.qcow2");
        let mut body = object.body.into_async_read();
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| CloudError::from_io(path.display(), e))?;
        tokio::io::copy(&mut body, &mut file)
            .await
            .map_err(|e| CloudError::from_io(path.display(), e))?;
        Ok(Some(path))
    }

    /// Multipart upload of a local file.
    async fn upload(&self, key: &str, file: &Path) -> Result<(), CloudError> {
        let created = self
            .s3
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/octet-stream")
            .send()
            .await
            .map_err(|e| s3_error("start upload", e))?;
        let Some(upload_id) = created.upload_id() else {
            return Err(CloudError::Permanent("S3 gave no upload id".into()));
        };
        let result = self.upload_parts(key, upload_id, file).await;
        if result.is_err() {
            let _ = self
                .s3
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        file: &Path,
    ) -> Result<(), CloudError> {
        use tokio::io::AsyncReadExt;
        let mut input = tokio::fs::File::open(file)
            .await
            .map_err(|e| CloudError::from_io(file.display(), e))?;
        let mut parts = Vec::new();
        let mut number = 1;
        loop {
            let mut chunk = Vec::with_capacity(PART);
            (&mut input)
                .take(PART as u64)
                .read_to_end(&mut chunk)
                .await
                .map_err(|e| CloudError::from_io(file.display(), e))?;
            if chunk.is_empty() && number > 1 {
                break;
            }
            let last = chunk.len() < PART;
            let done = self
                .s3
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| s3_error("upload part", e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(done.e_tag().map(str::to_string))
                    .build(),
            );
            number += 1;
            if last {
                break;
            }
        }
        let completed = self
            .s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        match completed {
            Ok(_) => Ok(()),
            // HTTP 200 with an answer the SDK cannot read (moto names the
            // XML root differently): the object decides.
            Err(aws_sdk_s3::error::SdkError::ServiceError(e)) if e.raw().status().is_success() => {
                let size = std::fs::metadata(file)
                    .map_err(|e| CloudError::from_io(file.display(), e))?
                    .len();
                let head = self
                    .s3
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| s3_error("check the completed upload", e))?;
                if head.content_length().is_some_and(|l| l as u64 == size) {
                    Ok(())
                } else {
                    Err(CloudError::Transient(format!(
                        "S3 staging: {key} is {:?} bytes after the upload, expected {size}",
                        head.content_length()
                    )))
                }
            }
            Err(e) => Err(s3_error("complete upload", e)),
        }
    }

    /// A time-limited GET URL for the object.
    async fn presign(&self, key: &str) -> Result<String, CloudError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(self.url_ttl)
            .map_err(|e| CloudError::Permanent(format!("presign: {e}")))?;
        let request = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign", e))?;
        Ok(request.uri().to_string())
    }
}

fn s3_error<E: std::error::Error + Send + Sync + 'static>(
    what: &str,
    e: aws_sdk_s3::error::SdkError<E>,
) -> CloudError {
    use aws_sdk_s3::error::SdkError;
    let text = format!(
        "S3 staging: {what}: {}",
        aws_sdk_s3::error::DisplayErrorContext(&e)
    );
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => CloudError::Transient(text),
        SdkError::ServiceError(ref s) if s.raw().status().is_server_error() => {
            CloudError::Transient(text)
        }
        _ => CloudError::Permanent(text),
    }
}

pub struct ImageWriter {
    client: Arc<DoClient>,
    staging: Staging,
    key: String,
    raw: SparseFileWriter,
    spec: TargetDiskSpec,
}

impl ImageWriter {
    pub fn open(
        client: Arc<DoClient>,
        staging: Staging,
        spec: &TargetDiskSpec,
    ) -> Result<ImageWriter, CloudError> {
        let key = match &spec.resume {
            Some(key) => key.clone(),
            None => format!("altishift/{}.raw", spec.name),
        };
        let path = staging.local(&key);
        let raw = SparseFileWriter::create_or_open(&path, spec.virtual_size)
            .map_err(|e| CloudError::from_io(path.display(), e))?;
        Ok(ImageWriter {
            client,
            staging,
            key,
            raw,
            spec: spec.clone(),
        })
    }
}

#[async_trait]
impl DiskWriter for ImageWriter {
    fn order(&self) -> WriteOrder {
        WriteOrder::Any
    }

    fn staging_id(&self) -> String {
        self.key.clone()
    }

    async fn write_block(
        &self,
        index: BlockIndex,
        data: &[u8],
        _digest: BlockDigest,
    ) -> Result<(), CloudError> {
        self.raw.write_block(index, data).await
    }

    async fn flush(&self) -> Result<(), CloudError> {
        self.raw.sync().await
    }

    async fn finish(self: Box<Self>, _blocks_written: u64) -> Result<WrittenDisk, CloudError> {
        let raw = self.raw.path().to_path_buf();
        let qcow2 = raw.with_extension("qcow2");
        let (from, to) = (raw.clone(), qcow2.clone());
        tokio::task::spawn_blocking(move || {
            local_disk::convert(&from, DiskFormat::Raw, &to, DiskFormat::Qcow2)
        })
        .await
        .map_err(|e| CloudError::Permanent(format!("convert task failed: {e}")))??;
        self.staging.upload(&self.key, &qcow2).await?;
        let url = self.staging.presign(&self.key).await?;
        let image = import_image(&self.client, &self.spec, &url).await?;
        self.staging
            .imported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(image.clone(), self.key.clone());
        Ok(WrittenDisk {
            id: image,
            format: DiskFormat::Qcow2,
            virtual_size: self.spec.virtual_size,
        })
    }
}

/// `POST /v2/images` from the URL, then waits for `available`.
async fn import_image(
    client: &DoClient,
    spec: &TargetDiskSpec,
    url: &str,
) -> Result<String, CloudError> {
    let body = json!({
        "name": spec.name,
        "url": url,
        "region": spec.region,
        "distribution": "Unknown",
        "description": "imported by altishift",
        "tags": ["altishift"],
    });
    let created = client.post("/v2/images", &body).await?;
    let id = id_of(&created["image"]["id"])
        .ok_or_else(|| CloudError::Permanent("POST /v2/images gave no image id".into()))?;
    let started = Instant::now();
    loop {
        let image = client.get(&format!("/v2/images/{id}")).await?;
        let image = &image["image"];
        match image["status"].as_str().unwrap_or_default() {
            "available" => return Ok(id),
            "deleted" | "error" => {
                return Err(CloudError::Permanent(format!(
                    "image {id} import failed: {}",
                    image["error_message"].as_str().unwrap_or("no reason given")
                )));
            }
            _ => {}
        }
        if started.elapsed() > client.pacing.poll_deadline {
            return Err(CloudError::Transient(format!(
                "image {id} still not available after {:?}",
                client.pacing.poll_deadline
            )));
        }
        tokio::time::sleep(client.pacing.poll_every).await;
    }
}

fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Creates the droplet from the boot image and waits until it is active.
pub async fn deploy(client: &DoClient, spec: &DeploySpec) -> Result<DeployedInstance, CloudError> {
    let [boot] = spec.disks.as_slice() else {
        return Err(CloudError::Unsupported(format!(
            "{}: DigitalOcean droplets boot from one image; {} disks need volumes, which this \
             version does not create",
            spec.name,
            spec.disks.len()
        )));
    };
    // Custom images need SSH keys: use the account's.
    let keys = client.list("/v2/account/keys", "ssh_keys").await?;
    let key_ids: Vec<Value> = keys.iter().map(|k| k["id"].clone()).collect();
    if key_ids.is_empty() {
        return Err(CloudError::Permanent(
            "droplets from custom images need an SSH key: add one to the account".into(),
        ));
    }
    let image: Value = boot
        .id
        .parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(boot.id.clone()));
    let tags: Vec<String> = spec.tags.iter().map(|(k, v)| tag(k, v)).collect();
    let body = json!({
        "name": spec.name,
        "region": spec.region,
        "size": spec.size,
        "image": image,
        "ssh_keys": key_ids,
        "tags": tags,
    });
    let created = client.post("/v2/droplets", &body).await?;
    let id = id_of(&created["droplet"]["id"])
        .ok_or_else(|| CloudError::Permanent("POST /v2/droplets gave no droplet id".into()))?;
    let action = created["links"]["actions"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["rel"] == "create"))
        .and_then(|a| id_of(&a["id"]));
    let started = Instant::now();
    let waited = |what: &str| {
        if started.elapsed() > client.pacing.poll_deadline {
            Err(CloudError::Transient(format!(
                "droplet {id}: {what} not done after {:?}",
                client.pacing.poll_deadline
            )))
        } else {
            Ok(())
        }
    };
    if let Some(action) = action {
        loop {
            let a = client.get(&format!("/v2/actions/{action}")).await?;
            match a["action"]["status"].as_str().unwrap_or_default() {
                "completed" => break,
                "errored" => {
                    return Err(CloudError::Permanent(format!(
                        "droplet {id}: create action {action} errored"
                    )));
                }
                _ => {}
            }
            waited("create action")?;
            tokio::time::sleep(client.pacing.poll_every).await;
        }
    }
    loop {
        let d = client.get(&format!("/v2/droplets/{id}")).await?;
        if d["droplet"]["status"] == "active" {
            break;
        }
        waited("activation")?;
        tokio::time::sleep(client.pacing.poll_every).await;
    }
    Ok(DeployedInstance {
        id,
        name: spec.name.clone(),
    })
}

/// A DigitalOcean tag (letters, digits, `:`, `-`, `_`) from a key and value.
fn tag(key: &str, value: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    if value.is_empty() {
        clean(key)
    } else {
        format!("{}:{}", clean(key), clean(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_keep_to_the_allowed_characters() {
        assert_eq!(tag("altishift-plan", "ab12cd34"), "altishift-plan:ab12cd34");
        assert_eq!(tag("owner", "a.b@c"), "owner:a_b_c");
        assert_eq!(tag("db", ""), "db");
    }
}
