//! Images: `GET /v2/images` (with the reference's `private=true` and
//! `type=distribution|application` filters), one image, deletion, and the
//! custom-image import of `POST /v2/images`.
//!
//! The import fetches the URL as an outside server would: no credentials,
//! `HEAD` then `GET`. It refuses a URL that does not end in an image file
//! name or that carries a query string: DigitalOcean said it "check[s] the
//! file name before uploading" and that a URL must end in a file name "as
//! opposed to a masked URL such as …/image.raw?example" (quoted from its
//! custom-images announcement in nanovms/ops#468); presigned URLs are such
//! masked URLs.

use super::{FakeState, Req, Routed, next_id, not_found, numeric, page, unprocessable};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// File endings the importer takes (raw/img, qcow2, vhdx, vdi, vmdk, each
/// possibly gzip or bzip2 compressed).
const ENDINGS: &[&str] = &["img", "raw", "qcow2", "vhdx", "vdi", "vmdk", "gz", "bz2"];

pub(super) fn seed(s: &mut FakeState) {
    for (id, name, distribution, slug) in [
        (
            119192817u64,
            "24.04 (LTS) x64",
            "Ubuntu",
            "ubuntu-24-04-x64",
        ),
        (119192818, "12 x64", "Debian", "debian-12-x64"),
    ] {
        s.images.push(json!({
            "id": id, "name": name, "distribution": distribution, "slug": slug,
            "public": true, "regions": ["fra1", "nyc1"], "created_at": "2026-04-25T10:00:00Z",
            "min_disk_size": 7, "type": "base", "size_gigabytes": 2.36,
            "description": format!("{distribution} {name}"), "tags": [], "status": "available",
            "error_message": ""
        }));
    }
}

/// A private snapshot (`type` snapshot) in fra1.
pub(super) fn add_snapshot(s: &mut FakeState, name: &str) -> u64 {
    let id = next_id(s);
    s.images.push(json!({
        "id": id, "name": name, "distribution": "Debian", "slug": null,
        "public": false, "regions": ["fra1"], "created_at": "2026-11-20T09:00:00Z",
        "min_disk_size": 25, "type": "snapshot", "size_gigabytes": 3.1,
        "description": "", "tags": [], "status": "available", "error_message": ""
    }));
    id
}

pub(super) fn route(s: &mut FakeState, req: &Req) -> Option<Routed> {
    match (req.method, req.parts.as_slice()) {
        ("GET", ["v2", "images"]) => {
            let private = req.query.get("private").map(String::as_str) == Some("true");
            let kind = req.query.get("type").cloned();
            let items: Vec<Value> = s
                .images
                .iter()
                .filter(|i| !private || i["public"] == false)
                .filter(|i| match kind.as_deref() {
                    Some("distribution") => i["type"] == "base",
                    Some("application") => i["type"] == "application",
                    _ => true,
                })
                .cloned()
                .collect();
            Some(page(s, &items, "images", req))
        }
        ("GET", ["v2", "images", id]) => {
            Some(match s.images.iter().find(|i| i["id"] == numeric(id)) {
                Some(i) => axum::Json(json!({"image": i})).into_response().into(),
                None => not_found(s).into(),
            })
        }
        ("DELETE", ["v2", "images", id]) => {
            let before = s.images.len();
            s.images.retain(|i| i["id"] != numeric(id));
            Some(if s.images.len() == before {
                not_found(s).into()
            } else {
                StatusCode::NO_CONTENT.into_response().into()
            })
        }
        ("POST", ["v2", "images"]) => Some(create(s, &req.body)),
        _ => None,
    }
}

fn create(s: &mut FakeState, body: &Value) -> Routed {
    for field in ["name", "url", "region"] {
        if !body[field].is_string() {
            return unprocessable(s, &format!("{field} is required")).into();
        }
    }
    let region = body["region"].as_str().unwrap_or_default();
    if !s.regions.iter().any(|r| r["slug"] == region) {
        return unprocessable(s, "region is not valid").into();
    }
    let url = body["url"].as_str().unwrap_or_default().to_string();
    let id = next_id(s);
    let image = json!({
        "id": id, "name": body["name"], "distribution": body["distribution"].as_str().unwrap_or("Unknown"),
        "slug": null, "public": false, "regions": [], "created_at": "2026-11-26T12:00:00Z",
        "min_disk_size": null, "type": "custom", "size_gigabytes": null,
        "description": body["description"], "tags": body["tags"], "status": "NEW", "error_message": ""
    });
    s.images.push(image.clone());
    s.import_urls.insert(id, url.clone());
    let response = (StatusCode::ACCEPTED, axum::Json(json!({"image": image}))).into_response();
    Routed::Import(id, url, response)
}

/// Why the importer would not take `url`, if it would not.
fn url_refusal(url: &str) -> Option<String> {
    if url.contains('?') {
        return Some(
            "the URL must end in a file name, not a masked URL with a query string".into(),
        );
    }
    let name = url.rsplit('/').next().unwrap_or_default();
    let ending = name.rsplit('.').next().unwrap_or_default();
    if !name.contains('.') || !ENDINGS.contains(&ending) {
        return Some(format!(
            "the URL must end in an image file name ({})",
            ENDINGS.join(", ")
        ));
    }
    None
}

/// The image import: HEAD then GET the URL with no credentials, check it is
/// a disk image.
pub(super) async fn run_import(state: Arc<Mutex<FakeState>>, id: u64, url: String) {
    let set = |status: &str, error: Option<String>| {
        let mut s = state.lock().unwrap();
        if let Some(image) = s.images.iter_mut().find(|i| i["id"] == id) {
            image["status"] = json!(status);
            if let Some(e) = error {
                image["error_message"] = json!(e);
            }
        }
    };
    let note = |what: String| {
        let mut s = state.lock().unwrap();
        s.import_requests.entry(id).or_default().push(what);
    };
    set("pending", None);
    if let Some(reason) = url_refusal(&url) {
        set("deleted", Some(reason));
        return;
    }
    let http = reqwest::Client::new();
    let head = http.head(&url).send().await.map(|r| r.status());
    note(format!(
        "HEAD {}",
        head.as_ref().map(|s| s.as_u16()).unwrap_or(0)
    ));
    if !head.as_ref().is_ok_and(|s| s.is_success()) {
        set("deleted", Some(format!("HEAD {url} failed: {head:?}")));
        return;
    }
    let got = http.get(&url).send().await;
    note(format!(
        "GET {}",
        got.as_ref().map(|r| r.status().as_u16()).unwrap_or(0)
    ));
    let bytes = match got {
        Ok(r) if r.status().is_success() => r.bytes().await.map(|b| b.to_vec()).ok(),
        _ => None,
    };
    let Some(bytes) = bytes else {
        set(
            "deleted",
            Some("the image URL could not be downloaded".into()),
        );
        return;
    };
    let qcow2 = bytes.starts_with(b"QFI\xfb");
    let gzip = bytes.starts_with(&[0x1f, 0x8b]);
    if !qcow2 && !gzip && bytes.len() % 512 != 0 {
        set(
            "deleted",
            Some("the file is not a supported image format".into()),
        );
        return;
    }
    {
        let mut s = state.lock().unwrap();
        let size_gb = (bytes.len() as f64 / 1e9).max(0.01);
        if let Some(image) = s.images.iter_mut().find(|i| i["id"] == id) {
            image["size_gigabytes"] = json!(size_gb);
        }
        s.fetched.insert(id, bytes);
    }
    set("available", None);
}
