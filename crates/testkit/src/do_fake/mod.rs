//! A faithful fake of the DigitalOcean API v2 (the parts we use), following
//! the public reference and the recorded answers in
//! tests/fixtures/digitalocean: bearer-token check, `page`/`per_page` (max
//! 200) with absolute `links.pages` URLs, `ratelimit-*` headers on every
//! answer and 429s on demand, error bodies `{id, message, request_id}`,
//! custom-image import that really fetches the URL (HEAD, then GET, with no
//! credentials) and goes `NEW → pending → available`, droplet creation whose
//! `create` action goes `in-progress → completed` as it is polled. Every
//! request is recorded.
//!
//! By area: `catalog` (account, sizes, regions, SSH keys, VPCs, firewalls),
//! `images` (listing, import), `droplets` (droplets, volumes, actions).

#![allow(dead_code)]

mod catalog;
mod config;
mod droplets;
mod images;

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
    pub vpcs: Vec<Value>,
    pub firewalls: Vec<Value>,
    /// action id → (action, polls until it completes)
    pub actions: HashMap<u64, (Value, u32)>,
    /// Every request: `METHOD /path?query`.
    pub requests: Vec<String>,
    /// Answer this many of the next requests with 429.
    pub throttle_next: u32,
    /// Requests (`METHOD /path`) that act, then lose their answer: a 500
    /// goes back instead, as from a proxy that dropped the response.
    pub lose_answer: Vec<String>,
    /// `user_data` each droplet was created with (the metadata service's
    /// answer; the droplet object does not hold it), per droplet id.
    pub user_data: HashMap<u64, String>,
    /// `ssh_keys` each droplet was created with (not in the droplet object).
    pub droplet_keys: HashMap<u64, Vec<Value>>,
    /// What the image import fetched, per image id.
    pub fetched: HashMap<u64, Vec<u8>>,
    /// The URL each import was asked to fetch, per image id.
    pub import_urls: HashMap<u64, String>,
    /// What the importer asked of each URL: `HEAD 200`, `GET 200`, per image id.
    pub import_requests: HashMap<u64, Vec<String>>,
    next_id: u64,
    served: u64,
}

#[derive(Clone)]
pub struct FakeDo {
    pub base: String,
    pub state: Arc<Mutex<FakeState>>,
}

/// What a handler decided: an answer now, or an answer now plus an import
/// to run once the state lock is released.
pub(crate) enum Routed {
    Answer(Response),
    Import(u64, String, Response),
}

impl From<Response> for Routed {
    fn from(response: Response) -> Self {
        Routed::Answer(response)
    }
}

/// One request, parsed, as the area handlers see it.
pub(crate) struct Req<'a> {
    pub method: &'a str,
    pub parts: Vec<&'a str>,
    pub path: &'a str,
    pub query: HashMap<String, String>,
    pub body: Value,
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
        {
            let mut s = fake.state.lock().unwrap();
            catalog::seed(&mut s);
            images::seed(&mut s);
        }
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// Adds `n` running droplets named `name-0…`.
    pub fn add_droplets(&self, name: &str, n: usize, address: &str) {
        let mut s = self.state.lock().unwrap();
        for i in 0..n {
            droplets::add(&mut s, &format!("{name}-{i}"), 25, address);
        }
    }

    /// Adds one running droplet with a `gb`-sized disk at `address`.
    pub fn add_droplet(&self, name: &str, gb: u64, address: &str) -> u64 {
        droplets::add(&mut self.state.lock().unwrap(), name, gb, address)
    }

    /// Attaches a new `gb`-sized volume to a droplet.
    pub fn attach_volume(&self, droplet: u64, name: &str, gb: u64) -> String {
        droplets::attach_volume(&mut self.state.lock().unwrap(), droplet, name, gb)
    }

    /// Adds `n` private snapshots, `n` VPCs and `n` firewalls (paging tests).
    pub fn add_many(&self, n: usize) {
        let mut s = self.state.lock().unwrap();
        for i in 0..n {
            images::add_snapshot(&mut s, &format!("snap-{i}"));
            catalog::add_vpc(
                &mut s,
                &format!("vpc-{i}"),
                "fra1",
                &format!("10.{}.0.0/20", i % 250),
            );
            catalog::add_firewall(&mut s, &format!("fw-{i}"), 22 + i as u16);
        }
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

    /// The slug `/v2/regions` lists first.
    pub fn first_region(&self) -> String {
        let s = self.state.lock().unwrap();
        s.regions[0]["slug"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The next `METHOD /path` request acts, then its answer is lost (a 500).
    pub fn lose_answer(&self, request: &str) {
        self.state.lock().unwrap().lose_answer.push(request.into());
    }

    pub fn throttle(&self, n: u32) {
        self.state.lock().unwrap().throttle_next = n;
    }
}

pub(crate) fn next_id(s: &mut FakeState) -> u64 {
    s.next_id += 1;
    s.next_id
}

fn request_id(s: &FakeState) -> String {
    format!("req-{:08x}", s.served)
}

pub(crate) fn error(s: &FakeState, status: StatusCode, id: &str, message: &str) -> Response {
    let body = json!({"id": id, "message": message, "request_id": request_id(s)});
    (status, axum::Json(body)).into_response()
}

pub(crate) fn not_found(s: &FakeState) -> Response {
    error(
        s,
        StatusCode::NOT_FOUND,
        "not_found",
        "The resource you were accessing could not be found.",
    )
}

pub(crate) fn unprocessable(s: &FakeState, message: &str) -> Response {
    error(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable_entity",
        message,
    )
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
    let routed = route(&fake, &method, &uri, &headers, &body);
    let mut response = match routed {
        Routed::Answer(response) => response,
        Routed::Import(id, url, response) => {
            let state = fake.state.clone();
            tokio::spawn(async move { images::run_import(state, id, url).await });
            response
        }
    };
    let mut s = fake.state.lock().unwrap();
    let asked = format!("{method} {}", uri.path());
    if response.status().is_success()
        && let Some(at) = s.lose_answer.iter().position(|r| *r == asked)
    {
        s.lose_answer.remove(at);
        response = error(
            &s,
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Server was unable to give you a response.",
        );
    }
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

fn route(fake: &FakeDo, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Routed {
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
        )
        .into();
    }
    if s.throttle_next > 0 {
        s.throttle_next -= 1;
        return error(
            &s,
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "API Rate limit exceeded.",
        )
        .into();
    }
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
                )
                .into();
            }
        }
    };
    let req = Req {
        method: method.as_str(),
        parts: path.split('/').filter(|p| !p.is_empty()).collect(),
        path: &path,
        query,
        body,
    };
    catalog::route(&mut s, &req)
        .or_else(|| config::route(&mut s, &req))
        .or_else(|| images::route(&mut s, &req))
        .or_else(|| droplets::route(&mut s, &req))
        .unwrap_or_else(|| not_found(&s).into())
}

/// One page of `items` under `key`, with absolute `links.pages` URLs the
/// way the API writes them, and `meta.total`.
pub(crate) fn page(s: &FakeState, items: &[Value], key: &str, req: &Req) -> Routed {
    let per_page: usize = req
        .query
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    if per_page == 0 || per_page > 200 {
        return error(
            s,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "per_page must be between 1 and 200",
        )
        .into();
    }
    let page: usize = req
        .query
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
    let path = req.path;
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
    axum::Json(json!({key: chunk, "links": {"pages": pages}, "meta": {"total": items.len()}}))
        .into_response()
        .into()
}

/// The id in a path segment, as the numeric ids droplets and images have.
pub(crate) fn numeric(id: &str) -> u64 {
    id.parse().unwrap_or(0)
}
