//! Cloud Storage side of the tests: images.insert reading its archive from
//! the emulator (checked with real GNU tar, as Compute Engine would refuse
//! anything but one `disk.raw` of whole GiB), and a recording proxy in
//! front of the emulator that can break upload chunks mid-way.

use super::{State, api};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// What an import produced: the extracted disk and the archive's size.
pub struct Imported {
    pub disk: PathBuf,
    pub size: u64,
    pub archive_bytes: u64,
}

/// Reads `rawDisk.source` and unpacks it the way Compute Engine requires.
pub async fn import(base: Option<String>, dir: PathBuf, body: &Value) -> Result<Imported, String> {
    let source = body["rawDisk"]["source"].as_str().unwrap_or_default();
    let Some(rest) = source.strip_prefix("https://storage.googleapis.com/") else {
        return Err(format!(
            "Invalid value for field 'resource.rawDisk.source': '{source}'."
        ));
    };
    if body["rawDisk"]["containerType"] != "TAR" {
        return Err("Invalid value for field 'resource.rawDisk.containerType'".into());
    }
    let (bucket, object) = rest.split_once('/').ok_or("no object in rawDisk.source")?;
    let base = base.ok_or("fake has no storage configured")?;
    let url = format!(
        "{base}/storage/v1/b/{bucket}/o/{}?alt=media",
        percent_encoding::utf8_percent_encode(object, percent_encoding::NON_ALPHANUMERIC)
    );
    let response = reqwest::get(&url).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!(
            "The resource '{source}' was not found ({})",
            response.status()
        ));
    }
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    let name = body["name"].as_str().unwrap_or("image");
    let work = dir.join(name);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let archive = work.join("archive.tar.gz");
    std::fs::write(&archive, &bytes).map_err(|e| e.to_string())?;
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&archive)
        .output()
        .map_err(|e| e.to_string())?;
    if !listing.status.success() {
        return Err(format!(
            "Image file is not a valid tar.gz: {}",
            String::from_utf8_lossy(&listing.stderr)
        ));
    }
    let names: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    if names != ["disk.raw"] {
        return Err(format!(
            "The tar archive must contain exactly one file named disk.raw, found {names:?}"
        ));
    }
    let out = work.join("out");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let status = Command::new("tar")
        .arg("-xzSf")
        .arg(&archive)
        .arg("-C")
        .arg(&out)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("extracting the image failed".into());
    }
    let _ = std::fs::remove_file(&archive);
    let disk = out.join("disk.raw");
    let size = std::fs::metadata(&disk).map_err(|e| e.to_string())?.len();
    if size == 0 || size % api::GIB_BYTES != 0 {
        return Err(format!(
            "The disk size of the image ({size} bytes) is not a multiple of 1 GB"
        ));
    }
    Ok(Imported {
        disk,
        size,
        archive_bytes: bytes.len() as u64,
    })
}

pub fn register_image(s: &mut State, body: Value, imported: Result<Imported, String>) -> Response {
    let Some(name) = body["name"].as_str().map(str::to_string) else {
        return api::error(
            400,
            "required",
            "Required field 'resource.name' not specified",
        );
    };
    if s.images.iter().any(|i| i["name"] == name.as_str()) {
        return api::error(
            409,
            "alreadyExists",
            &format!(
                "The resource 'projects/{}/global/images/{name}' already exists",
                super::PROJECT
            ),
        );
    }
    let forced = s.fail_next_import.take();
    let failure = match (&imported, forced) {
        (_, Some(message)) => Some(message),
        (Err(e), None) => Some(e.clone()),
        (Ok(_), None) => None,
    };
    if let Some(message) = failure {
        let err = json!({"code": "INVALID_IMAGE_FILE", "message": message});
        return axum::Json(api::op_for_image(s, &name, Some(err))).into_response();
    }
    let Ok(imported) = imported else {
        unreachable!()
    };
    let id = s.new_id();
    let image = json!({
        "kind": "compute#image",
        "id": id,
        "creationTimestamp": "2026-11-26T12:00:00.000-08:00",
        "name": name,
        "description": body["description"],
        "sourceType": "RAW",
        "rawDisk": {"source": body["rawDisk"]["source"], "containerType": "TAR"},
        "status": "PENDING",
        "archiveSizeBytes": imported.archive_bytes.to_string(),
        "diskSizeGb": (imported.size / api::GIB_BYTES).to_string(),
        "labels": body["labels"],
        "selfLink": s.link(&format!("global/images/{name}")),
    });
    s.images.push(image);
    s.image_files.insert(name.clone(), imported.disk);
    axum::Json(api::op_for_image(s, &name, None)).into_response()
}

/// One request the storage proxy passed on.
#[derive(Debug, Clone)]
pub struct StorageRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_range: Option<String>,
    pub status: u16,
}

impl StorageRequest {
    pub fn is_mutating(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }
}

#[derive(Default)]
pub struct ProxyState {
    pub upstream: String,
    pub received: Vec<StorageRequest>,
    /// Upload chunks (PUTs with a body) still to break: forward only the
    /// first half (in 256 KiB quanta), then answer 503.
    pub break_chunks: u32,
    /// Chunks to let through before breaking.
    pub break_after: u32,
    pub chunks_seen: u32,
    /// Resumable sessions cancelled with DELETE (the emulator has no such
    /// route; Cloud Storage answers 499 and refuses the session after).
    pub cancelled: Vec<String>,
    /// Upload chunks after this many are refused whole (503, nothing kept):
    /// storage that went away mid-run.
    pub refuse_after: Option<u32>,
}

/// A recording proxy in front of the Cloud Storage emulator (which keeps no
/// request log of its own).
pub struct StorageProxy {
    pub base_url: String,
    pub state: Arc<Mutex<ProxyState>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StorageProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl StorageProxy {
    pub async fn start(upstream: &str) -> StorageProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ProxyState {
            upstream: upstream.to_string(),
            ..ProxyState::default()
        }));
        let app = Router::new()
            .fallback(forward)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StorageProxy {
            base_url,
            state,
            server,
        }
    }

    pub fn received(&self) -> Vec<StorageRequest> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn mutating_received(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(StorageRequest::is_mutating)
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Breaks `n` upload chunks after letting `after` through.
    pub fn break_chunks(&self, after: u32, n: u32) {
        let mut s = self.state.lock().unwrap();
        s.break_after = s.chunks_seen + after;
        s.break_chunks = n;
    }
}

async fn forward(AxState(state): AxState<Arc<Mutex<ProxyState>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let content_range = parts
        .headers
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let upload_id = query
        .split('&')
        .find_map(|p| p.strip_prefix("upload_id="))
        .map(str::to_string);
    if let Some(id) = &upload_id
        && path.starts_with("/upload/")
    {
        let mut s = state.lock().unwrap();
        let cancelled = s.cancelled.contains(id);
        let answer = if parts.method == "DELETE" {
            s.cancelled.push(id.clone());
            Some(499)
        } else {
            cancelled.then_some(404)
        };
        if let Some(status) = answer {
            s.received.push(StorageRequest {
                method: parts.method.to_string(),
                path,
                query,
                content_range,
                status,
            });
            return StatusCode::from_u16(status).unwrap().into_response();
        }
    }
    let (upstream, breaking) = {
        let mut s = state.lock().unwrap();
        let is_chunk = parts.method == "PUT" && !body.is_empty();
        let mut breaking = false;
        if is_chunk {
            s.chunks_seen += 1;
            if s.break_chunks > 0 && s.chunks_seen > s.break_after {
                s.break_chunks -= 1;
                breaking = true;
            }
        }
        if is_chunk && s.refuse_after.is_some_and(|n| s.chunks_seen > n) {
            s.received.push(StorageRequest {
                method: parts.method.to_string(),
                path: path.clone(),
                query: query.clone(),
                content_range: content_range.clone(),
                status: 503,
            });
            return api::error(503, "backendError", "Backend Error");
        }
        (s.upstream.clone(), breaking)
    };
    let mut forwarded_body = body.to_vec();
    let mut headers = parts.headers.clone();
    headers.remove("host");
    headers.remove("content-length");
    if breaking {
        // The connection "drops" half-way: the server keeps what arrived,
        // in whole 256 KiB quanta, as Cloud Storage does.
        let keep = body.len() / 2 / (256 * 1024) * (256 * 1024);
        forwarded_body.truncate(keep);
        if let Some(range) = &content_range
            && let Some(start) = range
                .strip_prefix("bytes ")
                .and_then(|r| r.split('-').next())
                .and_then(|n| n.parse::<u64>().ok())
            && keep > 0
        {
            headers.insert(
                "content-range",
                format!("bytes {start}-{}/*", start + keep as u64 - 1)
                    .parse()
                    .unwrap(),
            );
        }
    }
    let url = format!(
        "{upstream}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let client = reqwest::Client::new();
    let mut status = 502;
    let mut response = (StatusCode::BAD_GATEWAY, "upstream unreachable").into_response();
    if !(breaking && forwarded_body.is_empty())
        && let Ok(upstream) = client
            .request(parts.method.clone(), &url)
            .headers(headers)
            .body(forwarded_body)
            .send()
            .await
    {
        status = upstream.status().as_u16();
        let mut builder = Response::builder().status(status);
        for (name, value) in upstream.headers() {
            if name == "location" {
                // Keep the client talking through the proxy.
                let text = value.to_str().unwrap_or_default().replace(
                    &upstream_origin(&upstream_url(&state)),
                    &proxy_origin(&parts),
                );
                builder = builder.header(name, text);
            } else if name != "content-length"
                && name != "transfer-encoding"
                && name != "connection"
            {
                builder = builder.header(name, value);
            }
        }
        let bytes = upstream.bytes().await.unwrap_or_default();
        response = builder.body(axum::body::Body::from(bytes)).unwrap();
    }
    if breaking {
        status = 503;
        response = api::error(503, "backendError", "Backend Error");
    }
    state.lock().unwrap().received.push(StorageRequest {
        method: parts.method.to_string(),
        path,
        query,
        content_range,
        status,
    });
    response
}

fn upstream_url(state: &Arc<Mutex<ProxyState>>) -> String {
    state.lock().unwrap().upstream.clone()
}

fn upstream_origin(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

fn proxy_origin(parts: &axum::http::request::Parts) -> String {
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}
