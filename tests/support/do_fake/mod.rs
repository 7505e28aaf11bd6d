//! A faithful fake of the DigitalOcean API v2 (the parts we use), following
//! the public reference and the recorded answers in
//! tests/fixtures/digitalocean: bearer-token check, `page`/`per_page` (max
//! 200) with absolute `links.pages` URLs, `ratelimit-*` headers on every
//! answer and 429s on demand, error bodies `{id, message, request_id}`,
//! custom-image import that really fetches the URL (HEAD, then GET) and goes
//! `NEW → pending → available`, droplet creation whose `create` action goes
//! `in-progress → completed` as it is polled. Every request is recorded.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const TOKEN: &str = "dop_v1_fake_token_0123456789abcdef";

#[derive(Default)]
pub struct FakeState {
    pub droplets: Vec<Value>,
    pub images: Vec<Value>,
    pub sizes: Vec<Value>,
    pub regions: Vec<Value>,
    pub keys: Vec<Value>,
    pub volumes: Vec<Value>,
    /// action id → (action, polls until it completes)
    pub actions: HashMap<u64, (Value, u32)>,
    /// Every request: `METHOD /path?query`.
    pub requests: Vec<String>,
    /// Answer this many of the next requests with 429.
    pub throttle_next: u32,
    /// What the image import fetched, per image id.
    pub fetched: HashMap<u64, Vec<u8>>,
    next_id: u64,
    served: u64,
}

#[derive(Clone)]
pub struct FakeDo {
    pub base: String,
    pub state: Arc<Mutex<FakeState>>,
}

impl FakeDo {
    pub async fn start() -> FakeDo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeDo {
            base,
            state: Arc::new(Mutex::new(FakeState {
                next_id: 100_000,
                ..FakeState::default()
            })),
        };
        fake.seed();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    fn seed(&self) {
        let mut s = self.state.lock().unwrap();
        for (slug, name) in [("fra1", "Frankfurt 1"), ("nyc1", "New York 1")] {
            s.regions.push(json!({
                "slug": slug, "name": name, "available": true,
                "sizes": ["s-1vcpu-1gb", "s-2vcpu-4gb", "s-4vcpu-8gb"],
                "features": ["backups", "ipv6", "metadata", "install_agent"]
            }));
        }
        for (slug, vcpus, memory, disk) in [
            ("s-1vcpu-1gb", 1, 1024, 25),
            ("s-2vcpu-4gb", 2, 4096, 80),
            ("s-4vcpu-8gb", 4, 8192, 160),
        ] {
            s.sizes.push(json!({
                "slug": slug, "memory": memory, "vcpus": vcpus, "disk": disk,
                "transfer": 4.0, "price_monthly": 24.0, "price_hourly": 0.0357,
                "regions": ["fra1", "nyc1"], "available": true
            }));
        }
        s.keys.push(json!({
            "id": 7717, "name": "ops",
            "fingerprint": "f5:d1:78:ed:28:72:5f:e1:ac:94:fd:1f:e0:a3:48:6d",
            "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI example"
        }));
    }

    /// Adds `n` running droplets named `name-0…`.
    pub fn add_droplets(&self, name: &str, n: usize, address: &str) {
        let mut s = self.state.lock().unwrap();
        for i in 0..n {
            let id = next_id(&mut s);
            let droplet = droplet_json(
                id,
                &format!("{name}-{i}"),
                "s-1vcpu-1gb",
                1,
                1024,
                25,
                "fra1",
                json!(null),
                address,
                "active",
                vec![],
            );
            s.droplets.push(droplet);
        }
    }

    /// Adds one running droplet with a `gb`-sized disk at `address`.
    pub fn add_droplet(&self, name: &str, gb: u64, address: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        let id = next_id(&mut s);
        let droplet = droplet_json(
            id,
            name,
            "s-1vcpu-1gb",
            1,
            1024,
            gb,
            "fra1",
            json!(null),
            address,
            "active",
            vec![],
        );
        s.droplets.push(droplet);
        id
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn mutating(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| !r.starts_with("GET ") && !r.starts_with("HEAD "))
            .collect()
    }

    pub fn throttle(&self, n: u32) {
        self.state.lock().unwrap().throttle_next = n;
    }
}

fn next_id(s: &mut FakeState) -> u64 {
    s.next_id += 1;
    s.next_id
}

#[allow(clippy::too_many_arguments)]
fn droplet_json(
    id: u64,
    name: &str,
    size: &str,
    vcpus: u64,
    memory: u64,
    disk: u64,
    region: &str,
    image: Value,
    address: &str,
    status: &str,
    tags: Vec<Value>,
) -> Value {
    json!({
        "id": id, "name": name, "memory": memory, "vcpus": vcpus, "disk": disk,
        "locked": false, "status": status, "created_at": "2026-11-26T12:00:00Z",
        "features": ["virtio"], "backup_ids": [], "snapshot_ids": [],
        "image": image, "size_slug": size,
        "networks": {
            "v4": [{"ip_address": address, "netmask": "255.255.240.0",
                     "gateway": "10.0.0.1", "type": "public"}],
            "v6": []
        },
        "region": {"name": region, "slug": region, "sizes": [], "features": ["virtio"], "available": true},
        "tags": tags,
        "volume_ids": []
    })
}

fn request_id(s: &FakeState) -> String {
    format!("req-{:08x}", s.served)
}

fn error(s: &FakeState, status: StatusCode, id: &str, message: &str) -> Response {
    let body = json!({"id": id, "message": message, "request_id": request_id(s)});
    (status, axum::Json(body)).into_response()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn handle(
    State(fake): State<FakeDo>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = route(&fake, &method, &uri, &headers, &body).await;
    let s = fake.state.lock().unwrap();
    let throttled = response.status() == StatusCode::TOO_MANY_REQUESTS;
    let h = response.headers_mut();
    h.insert("ratelimit-limit", "5000".parse().unwrap());
    if throttled {
        h.insert("ratelimit-remaining", "0".parse().unwrap());
        // Reset "now": the client waits its own backoff, tests never sleep long.
        h.insert("ratelimit-reset", now().to_string().parse().unwrap());
    } else {
        let left = 5000u64.saturating_sub(s.served);
        h.insert("ratelimit-remaining", left.to_string().parse().unwrap());
        h.insert("ratelimit-reset", (now() + 60).to_string().parse().unwrap());
    }
    response
}

async fn route(
    fake: &FakeDo,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let import = {
        let mut s = fake.state.lock().unwrap();
        s.served += 1;
        s.requests.push(format!(
            "{method} {}",
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
        ));
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {TOKEN}")) {
            return error(
                &s,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unable to authenticate you.",
            );
        }
        if s.throttle_next > 0 {
            s.throttle_next -= 1;
            return error(
                &s,
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "API Rate limit exceeded.",
            );
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => {
                    return error(
                        &s,
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "The request body is not valid JSON.",
                    );
                }
            }
        };
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["v2", "account"]) => {
                return axum::Json(json!({"account": {"droplet_limit": 25, "email": "ops@example.com", "uuid": "a1234567890b1234567890c1234567890d12345", "email_verified": true, "status": "active"}})).into_response();
            }
            ("GET", ["v2", "droplets"]) => {
                return page(fake, &s.droplets.clone(), "droplets", &path, &query, &s);
            }
            ("GET", ["v2", "sizes"]) => {
                return page(fake, &s.sizes.clone(), "sizes", &path, &query, &s);
            }
            ("GET", ["v2", "regions"]) => {
                return page(fake, &s.regions.clone(), "regions", &path, &query, &s);
            }
            ("GET", ["v2", "volumes"]) => {
                return page(fake, &s.volumes.clone(), "volumes", &path, &query, &s);
            }
            ("GET", ["v2", "account", "keys"]) => {
                return page(fake, &s.keys.clone(), "ssh_keys", &path, &query, &s);
            }
            ("GET", ["v2", "images"]) => {
                return page(fake, &s.images.clone(), "images", &path, &query, &s);
            }
            ("GET", ["v2", "droplets", id]) => {
                return match s
                    .droplets
                    .iter()
                    .find(|d| d["id"] == id.parse::<u64>().unwrap_or(0))
                {
                    Some(d) => axum::Json(json!({"droplet": d})).into_response(),
                    None => error(
                        &s,
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "The resource you were accessing could not be found.",
                    ),
                };
            }
            ("DELETE", ["v2", "droplets", id]) => {
                let before = s.droplets.len();
                s.droplets
                    .retain(|d| d["id"] != id.parse::<u64>().unwrap_or(0));
                if s.droplets.len() == before {
                    return error(
                        &s,
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "The resource you were accessing could not be found.",
                    );
                }
                return StatusCode::NO_CONTENT.into_response();
            }
            ("GET", ["v2", "images", id]) => {
                return match s
                    .images
                    .iter()
                    .find(|i| i["id"] == id.parse::<u64>().unwrap_or(0))
                {
                    Some(i) => axum::Json(json!({"image": i})).into_response(),
                    None => error(
                        &s,
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "The resource you were accessing could not be found.",
                    ),
                };
            }
            ("DELETE", ["v2", "images", id]) => {
                let before = s.images.len();
                s.images
                    .retain(|i| i["id"] != id.parse::<u64>().unwrap_or(0));
                if s.images.len() == before {
                    return error(
                        &s,
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "The resource you were accessing could not be found.",
                    );
                }
                return StatusCode::NO_CONTENT.into_response();
            }
            ("GET", ["v2", "actions", id]) => {
                let id: u64 = id.parse().unwrap_or(0);
                let Some((action, polls)) = s.actions.get_mut(&id) else {
                    return error(
                        &s,
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "The resource you were accessing could not be found.",
                    );
                };
                if *polls > 0 {
                    *polls -= 1;
                } else if action["status"] == "in-progress" {
                    action["status"] = json!("completed");
                    action["completed_at"] = json!("2026-11-26T12:01:00Z");
                    let droplet = action["resource_id"].clone();
                    let status = match action["type"].as_str() {
                        Some("shutdown" | "power_off") => "off",
                        _ => "active",
                    };
                    if let Some(d) = s.droplets.iter_mut().find(|d| d["id"] == droplet) {
                        d["status"] = json!(status);
                    }
                }
                let action = s.actions[&id].0.clone();
                return axum::Json(json!({"action": action})).into_response();
            }
            ("POST", ["v2", "droplets"]) => return create_droplet(&mut s, &body),
            ("POST", ["v2", "droplets", id, "actions"]) => {
                let id = id.parse::<u64>().unwrap_or(0);
                if !s.droplets.iter().any(|d| d["id"] == id) {
                    return error(
                        &s,
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "The resource you were accessing could not be found.",
                    );
                }
                let kind = body["type"].as_str().unwrap_or_default().to_string();
                if !["shutdown", "power_off", "power_on", "snapshot"].contains(&kind.as_str()) {
                    return error(
                        &s,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unprocessable_entity",
                        "The action type is not valid.",
                    );
                }
                let action_id = next_id(&mut s);
                let action = json!({
                    "id": action_id, "status": "in-progress", "type": kind,
                    "started_at": "2026-11-26T12:00:00Z", "completed_at": null,
                    "resource_id": id, "resource_type": "droplet", "region_slug": "fra1"
                });
                s.actions.insert(action_id, (action.clone(), 1));
                return (StatusCode::CREATED, axum::Json(json!({"action": action})))
                    .into_response();
            }
            ("POST", ["v2", "images"]) => match create_image(&mut s, &body) {
                Ok((id, url, response)) => Some((id, url, response)),
                Err(response) => return response,
            },
            _ => {
                return error(
                    &s,
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "The resource you were accessing could not be found.",
                );
            }
        }
    };
    let Some((id, url, response)) = import else {
        return error(
            &fake.state.lock().unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
            "not found",
        );
    };
    let state = fake.state.clone();
    tokio::spawn(async move { run_import(state, id, url).await });
    response
}

/// The image import: HEAD then GET the URL, check it is a disk image.
async fn run_import(state: Arc<Mutex<FakeState>>, id: u64, url: String) {
    let set = |status: &str, error: Option<String>| {
        let mut s = state.lock().unwrap();
        if let Some(image) = s.images.iter_mut().find(|i| i["id"] == id) {
            image["status"] = json!(status);
            if let Some(e) = error {
                image["error_message"] = json!(e);
            }
        }
    };
    set("pending", None);
    let http = reqwest::Client::new();
    let head = http.head(&url).send().await;
    if !head.as_ref().is_ok_and(|r| r.status().is_success()) {
        set(
            "deleted",
            Some(format!("HEAD {url} failed: {:?}", head.map(|r| r.status()))),
        );
        return;
    }
    let bytes = match http.get(&url).send().await {
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

#[allow(clippy::result_large_err)] // axum's Response, answered at once
fn create_image(s: &mut FakeState, body: &Value) -> Result<(u64, String, Response), Response> {
    for field in ["name", "url", "region"] {
        if !body[field].is_string() {
            return Err(error(
                s,
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable_entity",
                &format!("{field} is required"),
            ));
        }
    }
    let region = body["region"].as_str().unwrap_or_default();
    if !s.regions.iter().any(|r| r["slug"] == region) {
        return Err(error(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            "region is not valid",
        ));
    }
    let id = next_id(s);
    let image = json!({
        "id": id, "name": body["name"], "distribution": body["distribution"].as_str().unwrap_or("Unknown"),
        "slug": null, "public": false, "regions": [], "created_at": "2026-11-26T12:00:00Z",
        "min_disk_size": null, "type": "custom", "size_gigabytes": null,
        "description": body["description"], "tags": body["tags"], "status": "NEW", "error_message": ""
    });
    s.images.push(image.clone());
    let url = body["url"].as_str().unwrap_or_default().to_string();
    Ok((
        id,
        url,
        (StatusCode::ACCEPTED, axum::Json(json!({"image": image}))).into_response(),
    ))
}

fn create_droplet(s: &mut FakeState, body: &Value) -> Response {
    let unprocessable = |s: &FakeState, m: &str| {
        error(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            m,
        )
    };
    let (Some(name), Some(region), Some(size)) = (
        body["name"].as_str(),
        body["region"].as_str(),
        body["size"].as_str(),
    ) else {
        return unprocessable(s, "name, region and size are required");
    };
    let Some(size_obj) = s.sizes.iter().find(|x| x["slug"] == size).cloned() else {
        return unprocessable(s, "You specified an invalid size for Droplet creation.");
    };
    if !s.regions.iter().any(|r| r["slug"] == region) {
        return unprocessable(s, "You specified an invalid region for Droplet creation.");
    }
    let image = s.images.iter().find(|i| i["id"] == body["image"]).cloned();
    let Some(image) = image else {
        return unprocessable(s, "You specified an invalid image for Droplet creation.");
    };
    if image["status"] != "available" {
        return unprocessable(s, "The image is not available yet.");
    }
    if body["ssh_keys"].as_array().is_none_or(|k| k.is_empty()) {
        return unprocessable(s, "SSH keys are required for custom images.");
    }
    let id = next_id(s);
    let tags = body["tags"].as_array().cloned().unwrap_or_default();
    let droplet = droplet_json(
        id,
        name,
        size,
        size_obj["vcpus"].as_u64().unwrap_or(1),
        size_obj["memory"].as_u64().unwrap_or(1024),
        size_obj["disk"].as_u64().unwrap_or(25),
        region,
        image,
        "203.0.113.10",
        "new",
        tags,
    );
    s.droplets.push(droplet.clone());
    let action_id = next_id(s);
    let action = json!({
        "id": action_id, "status": "in-progress", "type": "create", "started_at": "2026-11-26T12:00:00Z",
        "completed_at": null, "resource_id": id, "resource_type": "droplet", "region_slug": region
    });
    s.actions.insert(action_id, (action, 2));
    (StatusCode::ACCEPTED, axum::Json(json!({
        "droplet": droplet,
        "links": {"actions": [{"id": action_id, "rel": "create", "href": format!("/v2/actions/{action_id}")}]}
    })))
        .into_response()
}

fn page(
    fake: &FakeDo,
    items: &[Value],
    key: &str,
    path: &str,
    query: &HashMap<String, String>,
    s: &FakeState,
) -> Response {
    let per_page: usize = query
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    if per_page == 0 || per_page > 200 {
        return error(
            s,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "per_page must be between 1 and 200",
        );
    }
    let page: usize = query
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let link =
        |p: usize| format!("https://api.digitalocean.com{path}?page={p}&per_page={per_page}");
    let mut pages = serde_json::Map::new();
    if page > 1 {
        pages.insert("first".into(), json!(link(1)));
        pages.insert("prev".into(), json!(link(page - 1)));
    }
    if page < last {
        pages.insert("next".into(), json!(link(page + 1)));
        pages.insert("last".into(), json!(link(last)));
    }
    let _ = fake;
    axum::Json(json!({key: chunk, "links": {"pages": pages}, "meta": {"total": items.len()}}))
        .into_response()
}
