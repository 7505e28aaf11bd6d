//! S3-compatible staging for DigitalOcean custom images (Spaces, or any S3
//! endpoint): multipart upload of the qcow2, then an *import window* during
//! which DigitalOcean's importer can fetch it.
//!
//! Why a window and not a presigned URL: DigitalOcean's importer takes a URL
//! that "ends in a file name … as opposed to a masked URL such as
//! image.raw?example, as we check the file name before uploading" (its
//! custom-images announcement, quoted in nanovms/ops#468, where Spaces
//! presigned URLs failed to import), and a SigV4 presigned URL is signed for
//! one HTTP method, so a GET URL answers HEAD with 403 on S3 (AWS
//! "Authenticating Requests: Using Query Parameters"; minio/minio#6146,
//! adobe/S3Mock#125). DigitalOcean's own Packer importer uploads with
//! `public-read` and imports from the plain URL
//! (digitalocean/packer-plugin-digitalocean, post-processor/digitalocean-import).
//! We do the same, but for the import only: the object is uploaded private
//! under a key with 128 random bits, made `public-read` just before
//! `POST /v2/images`, checked by us with anonymous HEAD and GET (whether
//! the importer sends a HEAD first is not documented; both answer), made
//! private again as soon as the import ends, at revocation if a cancelled
//! import could not, and deleted at cleanup.

use crate::CloudError;
use crate::secret::Secret;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectCannedAcl};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upload part size (S3 needs at least 5 MiB for all parts but the last).
const PART: usize = 16 << 20;

/// S3-compatible staging (DigitalOcean Spaces, or any S3 endpoint).
#[derive(Clone)]
pub struct Staging {
    s3: aws_sdk_s3::Client,
    pub bucket: String,
    /// The endpoint as the profile gives it (the import URL is built on it).
    endpoint: String,
    dir: PathBuf,
    keys: Arc<Mutex<Option<(Secret, Secret)>>>,
    /// Objects whose import window may be open (closed at revocation if a
    /// cancelled import never closed them).
    windows: Arc<Mutex<std::collections::BTreeSet<String>>>,
    /// Image id → the staged object it was imported from (for read-back).
    pub(super) imported: Arc<Mutex<std::collections::HashMap<String, String>>>,
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
            endpoint: endpoint.trim_end_matches('/').to_string(),
            dir: dir.to_path_buf(),
            keys: Arc::new(Mutex::new(Some((access_key, secret_key)))),
            imported: Arc::default(),
            windows: Arc::default(),
        }
    }

    /// Wipes our copies of the keys (the SDK's credential cache goes with
    /// the client when the provider is dropped).
    pub fn forget_keys(&self) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The local raw file blocks are written to for `key`.
    pub(super) fn local(&self, key: &str) -> PathBuf {
        self.dir.join(key.replace('/', "_")).with_extension("raw")
    }

    /// A fresh object key ending in `.qcow2`: the importer checks the file
    /// name, and the 128 random bits keep the object unguessable while it
    /// is readable without credentials.
    pub fn new_key(name: &str) -> Result<String, CloudError> {
        let mut random = [0u8; 16];
        aws_lc_rs::rand::fill(&mut random)
            .map_err(|_| CloudError::Permanent("no random bytes for the staging key".into()))?;
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(format!("altishift/{clean}-{hex}.qcow2"))
    }

    /// The plain (unsigned, path-style) URL of `key`: what the importer gets.
    pub fn object_url(&self, key: &str) -> String {
        let path: String = key
            .split('/')
            .map(|segment| {
                percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
                    .replace("%2E", ".")
                    .replace("%2D", "-")
                    .replace("%5F", "_")
            })
            .collect::<Vec<_>>()
            .join("/");
        format!("{}/{}/{path}", self.endpoint, self.bucket)
    }

    /// Opens the import window: `public-read` on the object, then our own
    /// anonymous HEAD and GET of the URL (the importer's requests). Returns
    /// the URL; on any failure the window is closed again.
    pub async fn open_window(&self, key: &str, size: u64) -> Result<String, CloudError> {
        lock(&self.windows).insert(key.to_string());
        let opened = self.set_acl(key, ObjectCannedAcl::PublicRead).await;
        if let Err(e) = opened {
            lock(&self.windows).remove(key);
            return Err(match e {
                CloudError::Transient(text) => CloudError::Transient(text),
                other => CloudError::Permanent(format!(
                    "{other}. DigitalOcean fetches the image without credentials, so the \
                     staged object must be readable for the import: the bucket must allow \
                     object ACLs (Spaces does; on AWS S3, Block Public Access and 'ACLs \
                     disabled' refuse it)"
                )),
            });
        }
        let url = self.object_url(key);
        if let Err(e) = check_anonymous(&url, size).await {
            self.close_window(key).await;
            return Err(e);
        }
        Ok(url)
    }

    /// Makes the object private again. A failure is logged, not returned:
    /// the window is closed again at revocation, and the object is deleted
    /// at cleanup.
    pub async fn close_window(&self, key: &str) -> bool {
        match self.set_acl(key, ObjectCannedAcl::Private).await {
            Ok(()) => {
                lock(&self.windows).remove(key);
                true
            }
            Err(e) => {
                tracing::warn!("{key} stays readable until revocation or cleanup: {e}");
                false
            }
        }
    }

    /// Closes every window still open (an import cancelled mid-way drops
    /// its future before it could close its own); returns the keys closed.
    pub async fn close_open_windows(&self) -> Result<Vec<String>, CloudError> {
        let open: Vec<String> = lock(&self.windows).iter().cloned().collect();
        let mut closed = Vec::new();
        for key in open {
            match self.set_acl(&key, ObjectCannedAcl::Private).await {
                Ok(()) => {
                    lock(&self.windows).remove(&key);
                    closed.push(key);
                }
                // A deleted object cannot be read either.
                Err(e) if e.to_string().contains("NoSuchKey") => {
                    lock(&self.windows).remove(&key);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(closed)
    }

    async fn set_acl(&self, key: &str, acl: ObjectCannedAcl) -> Result<(), CloudError> {
        self.s3
            .put_object_acl()
            .bucket(&self.bucket)
            .key(key)
            .acl(acl.clone())
            .send()
            .await
            .map_err(|e| s3_error(&format!("set {} on {key}", acl.as_str()), e))?;
        Ok(())
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
    pub(super) async fn upload(&self, key: &str, file: &Path) -> Result<(), CloudError> {
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What DigitalOcean's importer will do, done first by us: HEAD and a GET
/// of the first bytes, with no credentials. The object must answer both,
/// with its full size and a qcow2 header.
async fn check_anonymous(url: &str, size: u64) -> Result<(), CloudError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| CloudError::Permanent(format!("http client: {e}")))?;
    let refused = |what: &str, detail: String| {
        CloudError::Permanent(format!(
            "the staged image does not answer an anonymous {what} ({detail}); DigitalOcean \
             could not import it"
        ))
    };
    let head = http.head(url).send().await.map_err(|e| {
        CloudError::Transient(format!(
            "HEAD of the staged image: {}",
            crate::http::error_text(e)
        ))
    })?;
    if !head.status().is_success() {
        return Err(refused("HEAD", format!("HTTP {}", head.status().as_u16())));
    }
    let length = head
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length != Some(size) {
        return Err(refused(
            "HEAD",
            format!("content-length {length:?}, uploaded {size} bytes"),
        ));
    }
    let get = http
        .get(url)
        .header(reqwest::header::RANGE, "bytes=0-3")
        .send()
        .await
        .map_err(|e| {
            CloudError::Transient(format!(
                "GET of the staged image: {}",
                crate::http::error_text(e)
            ))
        })?;
    if !get.status().is_success() {
        return Err(refused("GET", format!("HTTP {}", get.status().as_u16())));
    }
    let first = get.bytes().await.map_err(|e| {
        CloudError::Transient(format!(
            "GET of the staged image: {}",
            crate::http::error_text(e)
        ))
    })?;
    if !first.starts_with(b"QFI\xfb") {
        return Err(refused("GET", "no qcow2 header in the first bytes".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staging() -> Staging {
        Staging::new(
            "https://fra1.digitaloceanspaces.com/",
            "fra1",
            "moves",
            Secret::new("k".into()),
            Secret::new("s".into()),
            Path::new("/tmp/staging"),
        )
    }

    #[test]
    fn keys_end_in_a_file_name_and_are_unguessable() {
        let a = Staging::new_key("db 1/boot").unwrap();
        let b = Staging::new_key("db 1/boot").unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with("altishift/db_1_boot-") && a.ends_with(".qcow2"),
            "{a}"
        );
        assert_eq!(a.len(), "altishift/db_1_boot-".len() + 32 + ".qcow2".len());
    }

    #[test]
    fn the_import_url_is_plain_and_ends_in_the_file_name() {
        let s = staging();
        let url = s.object_url("altishift/db-0123abcd.qcow2");
        assert_eq!(
            url,
            "https://fra1.digitaloceanspaces.com/moves/altishift/db-0123abcd.qcow2"
        );
        assert!(!url.contains('?'));
        assert_eq!(
            s.local("altishift/db-0123abcd.qcow2"),
            Path::new("/tmp/staging/altishift_db-0123abcd.raw")
        );
    }
}
