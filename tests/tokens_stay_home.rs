//! Tokens stay home: a server that names another host in a link (a GCE
//! operation's `selfLink`, a DigitalOcean `links.pages.next`) gets a clear
//! error, and that other host never hears from us; a profile with a plain
//! http endpoint is refused unless it says `insecure_endpoint = true`; an
//! upload that breaks never shows its session URI (it authorises uploads
//! by itself) in the error text.

use altishift_testkit::cli;
use altishift_testkit::gce_fake;

use altishift::cloud::digitalocean::client::DoClient;
use altishift::cloud::gcp::auth::{ServiceAccount, TokenSource};
use altishift::cloud::gcp::client::Client;
use altishift::cloud::gcp::upload::{CHUNK_QUANTUM, ResumableUpload};
use altishift::secret::Secret;
use axum::extract::{Request, State};
use gce_fake::testkit::{TestKey, fast_poll};
use gce_fake::{FakeGce, PROJECT};
use serde_json::json;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A host that must never hear from us: it records every request.
struct Bystander {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Bystander {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Bystander {
    async fn start() -> Bystander {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let app = axum::Router::new()
            .fallback(
                |State(seen): State<Arc<Mutex<Vec<String>>>>, req: Request| async move {
                    let auth = req.headers().get("authorization").is_some();
                    seen.lock().unwrap().push(format!(
                        "{} {} (authorization: {auth})",
                        req.method(),
                        req.uri()
                    ));
                    axum::Json(json!({"droplets": [], "links": {}, "status": "DONE"}))
                },
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Bystander { base, seen, task }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn gce_client(fake: &FakeGce, key: &TestKey, storage: &str) -> Client {
    let http = reqwest::Client::new();
    let account = ServiceAccount::from_file(&key.file).unwrap();
    let mut client = Client::new(
        http.clone(),
        TokenSource::new(http, account, Some(fake.token_uri.clone())),
        format!("{}/compute/v1/projects/{PROJECT}", fake.base_url),
        storage.to_string(),
        PROJECT.to_string(),
    )
    .unwrap();
    client.poll = fast_poll();
    client
}

#[tokio::test]
async fn a_gce_operation_whose_self_link_names_another_host_is_refused_without_calling_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::generate(dir.path());
    let fake = FakeGce::start(key.public_der.clone()).await;
    let elsewhere = Bystander::start().await;
    let client = gce_client(&fake, &key, &fake.base_url);
    let (zone, names) = {
        let state = fake.state();
        let zone = state.instances[0].0.clone();
        let names: Vec<String> = state
            .instances
            .iter()
            .filter(|(z, _)| *z == zone)
            .map(|(_, vm)| vm["name"].as_str().unwrap().to_string())
            .collect();
        (zone, names)
    };
    assert!(
        names.len() >= 2,
        "the recording has two instances in {zone}"
    );

    // An honest server: its selfLink is on our endpoint and is polled there.
    let op = client
        .delete(&format!("zones/{zone}/instances/{}", names[0]))
        .await
        .unwrap();
    let done = client.wait(op).await.unwrap();
    assert_eq!(done["status"], "DONE");

    // The server now names another host in the links it hands out.
    fake.state().base_url = elsewhere.base.clone();
    let op = client
        .delete(&format!("zones/{zone}/instances/{}", names[1]))
        .await
        .unwrap();
    assert!(
        op["selfLink"]
            .as_str()
            .unwrap()
            .starts_with(&elsewhere.base),
        "{op}"
    );
    let err = client.wait(op).await.unwrap_err().to_string();
    assert!(
        err.contains("credentials only go to") && err.contains(&fake.base_url),
        "{err}"
    );
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
}

/// A DigitalOcean look-alike whose droplet list hands out `next`.
async fn do_server_with_next(next: String) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().fallback(move || {
        let next = next.clone();
        async move {
            axum::Json(json!({
                "droplets": [{"id": 1, "name": "web-1"}],
                "links": {"pages": {"next": next}},
                "meta": {"total": 2}
            }))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, task)
}

#[tokio::test]
async fn a_digitalocean_next_page_on_another_host_is_refused_and_gets_no_token() {
    let elsewhere = Bystander::start().await;
    let host = elsewhere.base.trim_start_matches("http://").to_string();
    // A relative `@host` or `.host` used to be glued onto our endpoint,
    // which made the endpoint's host the user info of a URL to `host`.
    for next in [
        format!("{}/v2/droplets?page=2", elsewhere.base),
        format!("@{host}/v2/droplets?page=2"),
        format!("http://127.0.0.1@{host}/v2/droplets?page=2"),
    ] {
        let (base, task) = do_server_with_next(next.clone()).await;
        let client = DoClient::new(Some(&base), Secret::new("dop_v1_secret".into())).unwrap();
        let err = client
            .list("/v2/droplets", "droplets")
            .await
            .unwrap_err()
            .to_string();
        task.abort();
        assert!(
            err.contains("links.pages.next")
                && err.contains(&format!("credentials only go to {base}")),
            "{next}: {err}"
        );
        assert!(!err.contains("dop_v1_secret"), "{err}");
    }
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
}

#[test]
fn a_plain_http_endpoint_is_refused_unless_the_profile_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "state_dir = \"state\"\n[clouds.cs]\nprovider = \"cloudstack\"\n\
                 endpoint = \"http://127.0.0.1:9/client/api\"\n{extra}\
                 api_key = \"env:TSH_KEY\"\nsecret_key = \"env:TSH_SECRET\"\n"
            ),
        )
        .unwrap()
    };
    let inventory = || {
        cli::bin()
            .arg("--config")
            .arg(&config)
            .args(["inventory", "cs"])
            .env("TSH_KEY", "k")
            .env("TSH_SECRET", "s")
            .output()
            .unwrap()
    };
    write("");
    let out = inventory();
    let text = cli::text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("[clouds.cs] endpoint") && text.contains("insecure_endpoint = true"),
        "{text}"
    );
    // Allowed, the same profile gets as far as the (absent) server.
    write("insecure_endpoint = true\n");
    let out = inventory();
    let text = cli::text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains("insecure_endpoint"), "{text}");
}

/// Cloud Storage look-alike: starts a resumable session (its URI carries
/// `upload_id`), then drops every later connection before answering.
async fn breaking_storage() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let location = format!(
        "{base}/upload/storage/v1/b/bk/o?uploadType=resumable&name=disk&upload_id=SESSION-SECRET-42"
    );
    let task = tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut head = vec![0u8; 64 * 1024];
            let _ = socket.read(&mut head).await;
            if first {
                first = false;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
            drop(socket);
        }
    });
    (base, task)
}

#[tokio::test]
async fn a_broken_upload_never_shows_its_session_uri() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::generate(dir.path());
    let fake = FakeGce::start(key.public_der.clone()).await;
    let (storage, task) = breaking_storage().await;
    let client = gce_client(&fake, &key, &storage);
    let mut upload = ResumableUpload::start(&client, "bk", "disk", CHUNK_QUANTUM)
        .await
        .unwrap();
    let err = upload
        .write(&client, &vec![7u8; CHUNK_QUANTUM])
        .await
        .unwrap_err()
        .to_string();
    task.abort();
    assert!(err.contains("upload of disk"), "{err}");
    assert!(
        !err.contains("upload_id=") && !err.contains("SESSION-SECRET-42"),
        "{err}"
    );
}

#[tokio::test]
async fn a_session_uri_on_another_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::generate(dir.path());
    let fake = FakeGce::start(key.public_der.clone()).await;
    let elsewhere = Bystander::start().await;
    // The storage endpoint answers the session start with a Location elsewhere.
    let location = format!("{}/upload?upload_id=SESSION-SECRET-43", elsewhere.base);
    let app = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move { ([("location", location)], "") }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let storage = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = gce_client(&fake, &key, &storage);
    let err = ResumableUpload::start(&client, "bk", "disk", CHUNK_QUANTUM)
        .await
        .err()
        .unwrap()
        .to_string();
    task.abort();
    assert!(
        err.contains("not on the configured storage endpoint"),
        "{err}"
    );
    assert!(!err.contains("SESSION-SECRET-43"), "{err}");
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
}
