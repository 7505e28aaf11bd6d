//! Cloud Storage: resumable uploads in chunks (a broken chunk is resumed
//! from the offset the server reports with 308 + `Range`), compose, list,
//! download and delete. JSON API paths, so the same code talks to Google
//! and to a local emulator.

use super::client::{Client, error_from};
use crate::CloudError;
use crate::http::error_text;
use crate::secret::Secret;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

/// Non-final chunks must be multiples of this (GCS rule).
pub const CHUNK_QUANTUM: usize = 256 * 1024;

/// RFC 3986 unreserved characters stay as they are; everything else
/// (including `/` inside object names) is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// The `https://storage.googleapis.com/BUCKET/OBJECT` form images.insert takes.
pub fn public_url(bucket: &str, object: &str) -> String {
    format!("https://storage.googleapis.com/{bucket}/{object}")
}

/// One resumable upload session. The session URI authorises the upload by
/// itself, so it is held as a secret and never printed.
pub struct ResumableUpload {
    session: Secret,
    pub object: String,
    /// Bytes the server has committed.
    pub committed: u64,
    /// Sent but not yet committed, plus not yet sent: always starts at `committed`.
    pending: Vec<u8>,
    pub chunk: usize,
    /// Chunks that had to be resent after a break (for progress reports and tests).
    pub resumed: u32,
}

impl ResumableUpload {
    /// Starts a session for `object` in `bucket`.
    pub async fn start(
        client: &Client,
        bucket: &str,
        object: &str,
        chunk: usize,
    ) -> Result<ResumableUpload, CloudError> {
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=resumable&name={}",
            client.storage,
            enc(bucket),
            enc(object)
        );
        let body = json!({"name": object, "contentType": "application/gzip"});
        let response = client
            .send(
                &format!("start upload of gs://{bucket}/{object}"),
                false,
                || {
                    client
                        .http
                        .post(&url)
                        .header("x-upload-content-type", "application/gzip")
                        .json(&body)
                },
            )
            .await?;
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                CloudError::Permanent(format!(
                    "start upload of gs://{bucket}/{object}: no session URI in the answer"
                ))
            })?;
        // Our data (and later our token-less PUTs) only go to the storage endpoint.
        let session = client
            .storage_url(&format!("start upload of gs://{bucket}/{object}"), location)
            .map_err(|_| {
                CloudError::Permanent(format!(
                    "start upload of gs://{bucket}/{object}: the session URI is not on the \
                     configured storage endpoint ({})",
                    client.storage
                ))
            })?;
        let chunk = chunk.max(CHUNK_QUANTUM) / CHUNK_QUANTUM * CHUNK_QUANTUM;
        Ok(ResumableUpload {
            session: Secret::new(session),
            object: object.to_string(),
            committed: 0,
            pending: Vec::new(),
            chunk,
            resumed: 0,
        })
    }

    /// The session URI (a secret: it authorises the upload by itself).
    pub fn session(&self) -> &Secret {
        &self.session
    }

    /// Bytes accepted from the caller so far.
    pub fn total(&self) -> u64 {
        self.committed + self.pending.len() as u64
    }

    /// Adds bytes; sends every full chunk.
    pub async fn write(&mut self, client: &Client, data: &[u8]) -> Result<(), CloudError> {
        self.pending.extend_from_slice(data);
        while self.pending.len() >= self.chunk {
            self.send_chunk(client, self.chunk, None).await?;
        }
        Ok(())
    }

    /// Sends everything that fills whole 256 KiB quanta (what can be
    /// committed without ending the object).
    pub async fn send_aligned(&mut self, client: &Client) -> Result<(), CloudError> {
        let aligned = self.pending.len() / CHUNK_QUANTUM * CHUNK_QUANTUM;
        if aligned > 0 {
            self.send_chunk(client, aligned, None).await?;
        }
        Ok(())
    }

    /// Sends the rest and ends the object; returns its resource.
    pub async fn finish(mut self, client: &Client) -> Result<Value, CloudError> {
        let total = self.total();
        loop {
            let len = self.pending.len();
            if let Some(object) = self.send_chunk(client, len, Some(total)).await? {
                return Ok(object);
            }
        }
    }

    /// Sends the first `len` pending bytes; on a break asks the server how
    /// much it has and continues from there. Returns the object when the
    /// upload is complete.
    async fn send_chunk(
        &mut self,
        client: &Client,
        len: usize,
        total: Option<u64>,
    ) -> Result<Option<Value>, CloudError> {
        let mut attempt = 0;
        loop {
            let start = self.committed;
            let sent = len.min(self.pending.len());
            let range = match (sent, total) {
                (0, Some(total)) => format!("bytes */{total}"),
                (0, None) => return Ok(None),
                (n, Some(total)) => format!("bytes {start}-{}/{total}", start + n as u64 - 1),
                (n, None) => format!("bytes {start}-{}/*", start + n as u64 - 1),
            };
            let body = self.pending[..sent].to_vec();
            let result = client
                .http
                .put(self.session.expose())
                .header("content-range", &range)
                .body(body)
                .send()
                .await;
            let outcome = match result {
                Ok(response) => self.absorb(response, &range).await,
                Err(e) => Err(CloudError::Transient(format!(
                    "upload of {} at byte {start}: {}",
                    self.object,
                    error_text(e)
                ))),
            };
            match outcome {
                Ok(Some(object)) => return Ok(Some(object)),
                Ok(None) if self.committed >= start + sent as u64 => {
                    return Ok(None);
                }
                // Partly committed: the loop resends what the server lacks.
                Ok(None) => {}
                Err(err) if err.is_transient() && attempt + 1 < client.poll.attempts => {
                    tokio::time::sleep(client.poll.delay(attempt)).await;
                    attempt += 1;
                    self.resumed += 1;
                    if let Some(object) = self.query(client).await? {
                        return Ok(Some(object));
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Handles a chunk's answer: 308 moves `committed` to the server's
    /// `Range`, 200/201 is the finished object.
    async fn absorb(
        &mut self,
        response: reqwest::Response,
        what: &str,
    ) -> Result<Option<Value>, CloudError> {
        let status = response.status().as_u16();
        if status == 308 {
            let end = response
                .headers()
                .get("range")
                .and_then(|v| v.to_str().ok())
                .and_then(|r| r.strip_prefix("bytes=0-"))
                .and_then(|n| n.parse::<u64>().ok())
                .map(|last| last + 1)
                .unwrap_or(0);
            self.commit_to(end)?;
            return Ok(None);
        }
        let text = response.text().await.unwrap_or_default();
        if status == 200 || status == 201 {
            let total = self.total();
            self.commit_to(total)?;
            return serde_json::from_str(&text).map(Some).map_err(|e| {
                CloudError::Permanent(format!("upload of {}: bad answer ({e})", self.object))
            });
        }
        Err(error_from(
            status,
            &text,
            &format!("upload of {} ({what})", self.object),
        ))
    }

    fn commit_to(&mut self, end: u64) -> Result<(), CloudError> {
        if end < self.committed || end > self.total() {
            return Err(CloudError::Permanent(format!(
                "upload of {}: server reports {end} bytes, we sent {}..{}",
                self.object,
                self.committed,
                self.total()
            )));
        }
        self.pending.drain(..(end - self.committed) as usize);
        self.committed = end;
        Ok(())
    }

    /// Asks the session how many bytes it holds (`Content-Range: bytes */*`).
    async fn query(&mut self, client: &Client) -> Result<Option<Value>, CloudError> {
        let response = client
            .http
            .put(self.session.expose())
            .header("content-range", "bytes */*")
            .body(Vec::new())
            .send()
            .await
            .map_err(|e| {
                CloudError::Transient(format!("upload of {}: {}", self.object, error_text(e)))
            })?;
        self.absorb(response, "status").await
    }
}

/// Cancels a resumable session (`DELETE` on its URI; Cloud Storage answers
/// 499). One already gone (404/410) is cancelled too.
pub async fn cancel(client: &Client, session: &Secret, object: &str) -> Result<(), CloudError> {
    let response = client
        .http
        .delete(session.expose())
        .send()
        .await
        .map_err(|e| {
            CloudError::Transient(format!("cancel upload of {object}: {}", error_text(e)))
        })?;
    let status = response.status().as_u16();
    if matches!(status, 200..=299 | 404 | 410 | 499) {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(error_from(
        status,
        &text,
        &format!("cancel upload of {object}"),
    ))
}

/// Small object in one request (`uploadType=media`).
pub async fn put_object(
    client: &Client,
    bucket: &str,
    object: &str,
    data: Vec<u8>,
) -> Result<Value, CloudError> {
    let url = format!(
        "{}/upload/storage/v1/b/{}/o?uploadType=media&name={}",
        client.storage,
        enc(bucket),
        enc(object)
    );
    let response = client
        .send(&format!("upload gs://{bucket}/{object}"), true, || {
            client
                .http
                .post(&url)
                .header("content-type", "application/gzip")
                .body(data.clone())
        })
        .await?;
    response.json().await.map_err(|e| {
        CloudError::Transient(format!("upload gs://{bucket}/{object}: {}", error_text(e)))
    })
}

/// Concatenates `sources` (at most 32) into `dest`.
pub async fn compose(
    client: &Client,
    bucket: &str,
    dest: &str,
    sources: &[String],
) -> Result<Value, CloudError> {
    let url = format!(
        "{}/storage/v1/b/{}/o/{}/compose",
        client.storage,
        enc(bucket),
        enc(dest)
    );
    let body = json!({
        "sourceObjects": sources.iter().map(|s| json!({"name": s})).collect::<Vec<_>>(),
        "destination": {"contentType": "application/gzip"},
    });
    let response = client
        .send(&format!("compose gs://{bucket}/{dest}"), true, || {
            client.http.post(&url).json(&body)
        })
        .await?;
    response.json().await.map_err(|e| {
        CloudError::Transient(format!("compose gs://{bucket}/{dest}: {}", error_text(e)))
    })
}

/// Names of the objects under `prefix`, every page.
pub async fn list(client: &Client, bucket: &str, prefix: &str) -> Result<Vec<String>, CloudError> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!(
            "{}/storage/v1/b/{}/o?prefix={}",
            client.storage,
            enc(bucket),
            enc(prefix)
        );
        if let Some(t) = &token {
            url.push_str(&format!("&pageToken={}", enc(t)));
        }
        let response = client
            .send(&format!("list gs://{bucket}/{prefix}"), true, || {
                client.http.get(&url)
            })
            .await?;
        let page: Value = response.json().await.map_err(|e| {
            CloudError::Transient(format!("list gs://{bucket}/{prefix}: {}", error_text(e)))
        })?;
        for item in page["items"].as_array().into_iter().flatten() {
            if let Some(name) = item["name"].as_str() {
                names.push(name.to_string());
            }
        }
        match page["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(names),
        }
    }
}

/// Deletes an object; a missing one is already gone.
pub async fn delete(client: &Client, bucket: &str, object: &str) -> Result<(), CloudError> {
    let url = format!(
        "{}/storage/v1/b/{}/o/{}",
        client.storage,
        enc(bucket),
        enc(object)
    );
    match client
        .send(&format!("delete gs://{bucket}/{object}"), true, || {
            client.http.delete(&url)
        })
        .await
    {
        Ok(_) | Err(CloudError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The object's bytes as a response to stream from.
pub async fn download(
    client: &Client,
    bucket: &str,
    object: &str,
) -> Result<reqwest::Response, CloudError> {
    let url = format!(
        "{}/storage/v1/b/{}/o/{}?alt=media",
        client.storage,
        enc(bucket),
        enc(object)
    );
    client
        .send(&format!("download gs://{bucket}/{object}"), true, || {
            client.http.get(&url)
        })
        .await
}
