//! The secondary-storage side: signed upload POSTs (multipart `files[]`)
//! and extract downloads with HTTP Range support.

use super::State;
use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Mutex};

type Shared = Arc<Mutex<State>>;

pub async fn upload(
    AxState(state): AxState<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (kind, id, format, checksum, broken) = {
        let mut s = state.lock().expect("fake state");
        s.upload_attempts += 1;
        let now = s.now();
        let Some(slot) = s.uploads.get(&token) else {
            return (StatusCode::NOT_FOUND, "unknown upload URL").into_response();
        };
        if header("x-signature") != slot.signature
            || header("x-metadata") != slot.metadata
            || header("x-expires") != slot.expires
        {
            return (StatusCode::FORBIDDEN, "signature mismatch").into_response();
        }
        if super::api::parse_cs_time(&slot.expires).is_none_or(|e| e < now) {
            return (StatusCode::FORBIDDEN, "request expired").into_response();
        }
        let (kind, id, format, checksum) = (
            slot.kind,
            slot.id.clone(),
            slot.format.clone(),
            slot.checksum.clone(),
        );
        let broken = s.break_uploads > 0;
        if broken {
            s.break_uploads -= 1;
        }
        (kind, id, format, checksum, broken)
    };
    if broken {
        // Take part of the body, then fail: a connection that breaks mid-way.
        let mut stream = body.into_data_stream();
        let mut taken = 0usize;
        while taken < 256 * 1024 {
            match stream.next().await {
                Some(Ok(chunk)) => taken += chunk.len(),
                _ => break,
            }
        }
        return (StatusCode::INTERNAL_SERVER_ERROR, "upload interrupted").into_response();
    }
    let boundary = header("content-type")
        .split("boundary=")
        .nth(1)
        .map(|b| b.trim_matches('"').to_string());
    let Some(boundary) = boundary else {
        return (
            StatusCode::BAD_REQUEST,
            "multipart/form-data with a boundary expected",
        )
            .into_response();
    };
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::BAD_REQUEST, "body read failed").into_response();
    };
    let Some(content) = file_part(&bytes, &boundary) else {
        return (StatusCode::BAD_REQUEST, "no multipart field 'files[]'").into_response();
    };
    let path = state.lock().expect("fake state").path_for("upload");
    std::fs::write(&path, content).expect("store upload");
    let info = qemu_info(&path);
    let mut s = state.lock().expect("fake state");
    s.uploads.remove(&token);
    let expected = match format.as_str() {
        "QCOW2" => "qcow2",
        "VHD" => "vpc",
        "RAW" => "raw",
        _ => "vmdk",
    };
    let sum_ok = match checksum
        .as_deref()
        .and_then(|c| c.strip_prefix("{SHA-256}"))
    {
        Some(want) => {
            use sha2::Digest as _;
            let got: String = sha2::Sha256::digest(content)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            got.eq_ignore_ascii_case(want)
        }
        None => checksum.is_none(),
    };
    let ok = sum_ok && info.as_ref().is_some_and(|(f, _)| f == expected);
    let size = info.map(|(_, size)| size).unwrap_or(0);
    if kind == "template" {
        if let Some(t) = s.templates.iter_mut().find(|t| t.id == id) {
            t.status = if ok {
                "Download Complete".into()
            } else {
                if sum_ok {
                    format!("Upload Error: not a {format} image")
                } else {
                    "Upload Error: checksum mismatch".into()
                }
            };
            t.ready = ok;
            t.size = size;
            t.data = Some(path);
        }
    } else if let Some(v) = s.volumes.iter_mut().find(|v| v.id == id) {
        v.state = if ok { "Uploaded" } else { "UploadError" }.into();
        v.size = size;
        v.data = Some(path);
    }
    if ok {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::BAD_REQUEST, "image format mismatch").into_response()
    }
}

/// The content of multipart field `files[]`.
fn file_part<'a>(body: &'a [u8], boundary: &str) -> Option<&'a [u8]> {
    let opening = format!("--{boundary}\r\n");
    if !body.starts_with(opening.as_bytes()) {
        return None;
    }
    let header_end = find(body, b"\r\n\r\n")? + 4;
    let headers = String::from_utf8_lossy(&body[opening.len()..header_end]);
    if !headers.contains("name=\"files[]\"") {
        return None;
    }
    let closing = format!("\r\n--{boundary}--");
    let tail_start = body
        .len()
        .saturating_sub(closing.len() + 64)
        .max(header_end);
    let close = tail_start + find(&body[tail_start..], closing.as_bytes())?;
    Some(&body[header_end..close])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// (`format`, `virtual-size`) from `qemu-img info`; None when the upload
/// is no image. A missing qemu-img is the machine's fault, not the upload's.
fn qemu_info(path: &std::path::Path) -> Option<(String, u64)> {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .output()
        .expect("qemu-img runs (run scripts/test: it installs qemu-utils)");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((
        v["format"].as_str()?.to_string(),
        v["virtual-size"].as_u64()?,
    ))
}

pub async fn extract(
    AxState(state): AxState<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = {
        let mut s = state.lock().expect("fake state");
        s.downloads_served += 1;
        match s.fail_downloads_after {
            Some(0) => {
                return (StatusCode::SERVICE_UNAVAILABLE, "secondary storage down").into_response();
            }
            Some(n) => s.fail_downloads_after = Some(n - 1),
            None => {}
        }
        if s.fail_downloads > 0 {
            s.fail_downloads -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "secondary storage busy").into_response();
        }
        match s.extracts.get(&token) {
            Some(path) => path.clone(),
            None => {
                return (StatusCode::NOT_FOUND, "unknown or expired extract URL").into_response();
            }
        }
    };
    let Ok(file) = std::fs::File::open(&path) else {
        return (StatusCode::NOT_FOUND, "gone").into_response();
    };
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let range = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| parse_range(r, total));
    let (start, end, status) = match (headers.get("range"), range) {
        (None, _) => (0, total, StatusCode::OK),
        (Some(_), Some((a, b))) => (a, b, StatusCode::PARTIAL_CONTENT),
        (Some(_), None) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [("content-range", format!("bytes */{total}"))],
            )
                .into_response();
        }
    };
    let mut buffer = vec![0u8; (end - start) as usize];
    if file.read_exact_at(&mut buffer, start).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "read failed").into_response();
    }
    let mut response = (
        status,
        [
            ("accept-ranges", "bytes".to_string()),
            ("content-type", "application/octet-stream".to_string()),
        ],
        buffer,
    )
        .into_response();
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{total}", end - 1);
        response
            .headers_mut()
            .insert("content-range", value.parse().expect("header value"));
    }
    response
}

/// `bytes=a-b` / `bytes=a-` → [a, b+1), within the file.
fn parse_range(header: &str, total: u64) -> Option<(u64, u64)> {
    let spec = header.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end: u64 = if b.trim().is_empty() {
        total
    } else {
        b.trim().parse::<u64>().ok()? + 1
    };
    let end = end.min(total);
    (start < end).then_some((start, end))
}
