//! Downloads an extract URL into a local sparse staging file with parallel
//! HTTP Range requests. Finished chunks are recorded in a side file, so a
//! killed run resumes where it stopped; all-zero blocks are never written,
//! so holes stay holes. 5xx answers, resets and short bodies are retried
//! with backoff before the download gives up (as a transient error).

use crate::CloudError;
use crate::block::is_all_zero;
use crate::units::BLOCK_SIZE;
use futures::StreamExt as _;
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct DownloadPolicy {
    /// Bytes per Range request (a multiple of the block size).
    pub chunk: u64,
    pub parallel: usize,
    /// Attempts per chunk before the download fails.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for DownloadPolicy {
    fn default() -> Self {
        DownloadPolicy {
            chunk: 16 * BLOCK_SIZE,
            parallel: 6,
            attempts: 10,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// Marker path: present once every chunk is on disk.
pub fn complete_marker(dest: &Path) -> PathBuf {
    with_suffix(dest, ".complete")
}

fn parts_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".parts")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// True when `dest` holds a complete earlier download.
pub fn is_complete(dest: &Path) -> bool {
    complete_marker(dest).exists() && dest.exists()
}

/// Downloads `url` to `dest`; returns the size in bytes. `label` names the
/// object in errors (never the URL: it carries an access token).
pub async fn download(
    http: &reqwest::Client,
    url: &str,
    dest: &Path,
    label: &str,
    policy: DownloadPolicy,
) -> Result<u64, CloudError> {
    if is_complete(dest) {
        return Ok(std::fs::metadata(dest)
            .map_err(|e| CloudError::from_io(dest.display(), e))?
            .len());
    }
    let size = probe_size(http, url, label, &policy).await?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CloudError::from_io(dir.display(), e))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dest)
        .map_err(|e| CloudError::from_io(dest.display(), e))?;
    let known = file
        .metadata()
        .map_err(|e| CloudError::from_io(dest.display(), e))?
        .len();
    let mut done = read_parts(&parts_path(dest));
    if known != size {
        // A different object (or a fresh start): nothing earlier counts.
        done.clear();
        file.set_len(0)
            .and_then(|_| file.set_len(size))
            .map_err(|e| CloudError::from_io(dest.display(), e))?;
        let _ = std::fs::remove_file(parts_path(dest));
    }
    let parts = OpenOptions::new()
        .create(true)
        .append(true)
        .open(parts_path(dest))
        .map_err(|e| CloudError::from_io(dest.display(), e))?;
    let chunk = policy.chunk.max(BLOCK_SIZE);
    let chunks = size.div_ceil(chunk);
    let todo: Vec<u64> = (0..chunks).filter(|c| !done.contains(c)).collect();
    let file = Arc::new(file);
    let parts = Arc::new(Mutex::new(parts));
    let mut stream = futures::stream::iter(todo.into_iter().map(|index| {
        let file = file.clone();
        let parts = parts.clone();
        async move {
            let start = index * chunk;
            let end = (start + chunk).min(size);
            let bytes = fetch_range(http, url, start, end, label, &policy).await?;
            write_non_zero(&file, start, &bytes).map_err(|e| CloudError::from_io(label, e))?;
            let mut parts = parts
                .lock()
                .map_err(|_| CloudError::Permanent("download progress lock poisoned".into()))?;
            writeln!(parts, "{index}").map_err(|e| CloudError::from_io(label, e))?;
            Ok::<(), CloudError>(())
        }
    }))
    .buffer_unordered(policy.parallel.max(1));
    // Stop at the first chunk that fails for good; finished ones are kept.
    let mut first_error = None;
    while let Some(result) = stream.next().await {
        if let Err(err) = result {
            first_error = Some(err);
            break;
        }
    }
    drop(stream);
    // Data before progress: the parts file only counts once both are synced.
    file.sync_data()
        .map_err(|e| CloudError::from_io(dest.display(), e))?;
    if let Ok(parts) = parts.lock() {
        let _ = parts.sync_data();
    }
    if let Some(err) = first_error {
        return Err(err);
    }
    std::fs::write(complete_marker(dest), b"")
        .map_err(|e| CloudError::from_io(dest.display(), e))?;
    let _ = std::fs::remove_file(parts_path(dest));
    Ok(size)
}

fn read_parts(path: &Path) -> BTreeSet<u64> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Writes only the blocks that hold data; zero blocks stay holes.
fn write_non_zero(file: &File, start: u64, bytes: &[u8]) -> std::io::Result<()> {
    for (n, block) in bytes.chunks(BLOCK_SIZE as usize).enumerate() {
        if !is_all_zero(block) {
            file.write_all_at(block, start + n as u64 * BLOCK_SIZE)?;
        }
    }
    Ok(())
}

/// Total size from `Content-Range` of a one-byte request.
async fn probe_size(
    http: &reqwest::Client,
    url: &str,
    label: &str,
    policy: &DownloadPolicy,
) -> Result<u64, CloudError> {
    with_retries(label, policy, || async {
        let response = http
            .get(url)
            .header(reqwest::header::RANGE, "bytes=0-0")
            .send()
            .await
            .map_err(|e| transfer_error(label, e))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(CloudError::Transient(format!("download of {label}: HTTP {status}")));
        }
        if status.as_u16() == 404 || status.as_u16() == 410 {
            return Err(CloudError::NotFound(format!("download URL of {label} (HTTP {status}, expired?)")));
        }
        if status.as_u16() != 206 {
            return Err(CloudError::Permanent(format!(
                "download of {label}: HTTP {status} to a Range request (the server must support ranges)"
            )));
        }
        response
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit('/').next())
            .and_then(|total| total.trim().parse::<u64>().ok())
            .ok_or_else(|| CloudError::Permanent(format!("download of {label}: no total size in Content-Range")))
    })
    .await
}

async fn fetch_range(
    http: &reqwest::Client,
    url: &str,
    start: u64,
    end: u64,
    label: &str,
    policy: &DownloadPolicy,
) -> Result<Vec<u8>, CloudError> {
    with_retries(label, policy, || async {
        let response = http
            .get(url)
            .header(reqwest::header::RANGE, format!("bytes={start}-{}", end - 1))
            .send()
            .await
            .map_err(|e| transfer_error(label, e))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(CloudError::Transient(format!(
                "download of {label} at {start}: HTTP {status}"
            )));
        }
        if status.as_u16() != 206 {
            return Err(CloudError::Permanent(format!(
                "download of {label} at {start}: HTTP {status}"
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transfer_error(label, e))?;
        if bytes.len() as u64 != end - start {
            return Err(CloudError::Transient(format!(
                "download of {label} at {start}: got {} of {} bytes",
                bytes.len(),
                end - start
            )));
        }
        Ok(bytes.to_vec())
    })
    .await
}

pub fn transfer_error(label: &str, err: reqwest::Error) -> CloudError {
    transfer_error_as("download", label, err)
}

/// A reqwest error as "<what> of <label>: …", without the URL (it carries
/// an access token); resets, timeouts and broken bodies are transient.
pub fn transfer_error_as(what: &str, label: &str, err: reqwest::Error) -> CloudError {
    let transient = err.is_timeout()
        || err.is_connect()
        || err.is_request()
        || err.is_body()
        || err.is_decode();
    let text = format!("{what} of {label}: {}", crate::http::error_text(err));
    if transient {
        CloudError::Transient(text)
    } else {
        CloudError::Permanent(text)
    }
}

/// Runs `op` until it succeeds, fails permanently, or runs out of attempts.
pub async fn with_retries<T, F, Fut>(
    label: &str,
    policy: &DownloadPolicy,
    mut op: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let mut delay = policy.first_backoff;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(err) if err.is_transient() && attempt < policy.attempts => {
                tracing::debug!(label, attempt, error = %err, "retrying transfer");
                // Jitter: up to a quarter of the delay, from the clock's nanoseconds.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                let jitter = delay / 4 * (nanos % 1000) / 1000;
                tokio::time::sleep(delay + jitter).await;
                delay = (delay * 2).min(policy.max_backoff);
                attempt += 1;
            }
            other => return other,
        }
    }
}
