//! A faithful fake of the Compute Engine v1 REST API for tests, seeded with
//! the recorded answers in tests/fixtures/gce: bearer tokens issued by its
//! own OAuth endpoint (which verifies the RS256 JWT), `pageToken` paging
//! with `maxResults`, aggregated lists keyed by scope, operations that go
//! PENDING → RUNNING → DONE (with `error` when they fail), Google's error
//! bodies for 401/403/404/409/429, and images.insert that really imports
//! the `rawDisk.source` tar.gz (with GNU tar, as Compute Engine demands:
//! one `disk.raw`, a whole number of GiB). Every request is recorded.
#![allow(dead_code)]

mod api;
mod config;
mod instances;
mod net;
mod serial;
pub mod source;
pub mod storage;
pub mod testkit;
mod token;

use axum::Router;
use axum::routing::{any, post};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

pub const PROJECT: &str = "altishift-test";
pub const CLIENT_EMAIL: &str = "migrator@altishift-test.iam.gserviceaccount.com";
/// What selfLinks in the recordings start with.
const RECORDED_PREFIX: &str = "https://www.googleapis.com/compute/v1/projects/project_name";

pub type Shared = Arc<Mutex<State>>;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The bearer token was one the token endpoint issued.
    pub authorized: bool,
    pub status: u16,
}

impl Received {
    pub fn is_mutating(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
}

pub struct Op {
    pub value: Value,
    pub polls: u32,
    /// Set when the operation ends with an error.
    pub error: Option<Value>,
}

pub struct State {
    pub base_url: String,
    pub public_key: Vec<u8>,
    pub client_email: String,
    pub token_lifetime: u64,
    pub tokens: Vec<String>,
    pub assertions: Vec<Value>,
    pub refused_assertions: Vec<String>,
    pub received: Vec<Received>,
    pub zones: Vec<Value>,
    /// (zone, machine type)
    pub machine_types: Vec<(String, Value)>,
    pub instances: Vec<(String, Value)>,
    pub disks: Vec<(String, Value)>,
    pub networks: Vec<Value>,
    /// (region, subnetwork)
    pub subnetworks: Vec<(String, Value)>,
    pub firewalls: Vec<Value>,
    pub images: Vec<Value>,
    pub snapshots: Vec<Value>,
    /// `zone/name` → the file holding a disk's bytes.
    pub disk_files: HashMap<String, PathBuf>,
    /// Snapshot name → its bytes.
    pub snapshot_files: HashMap<String, PathBuf>,
    /// `zone/name` → writes its running guest makes (source.rs).
    pub guest_writes: HashMap<String, source::GuestWrites>,
    /// Instances stopped through instances.stop, by name.
    pub stops: Vec<String>,
    /// `zone/name` → what the instance wrote to serial port 1 (serial.rs).
    pub consoles: HashMap<String, Vec<u8>>,
    /// (type, base64 key) a worker's guest publishes under `hostkeys/`.
    pub host_keys: Vec<(String, String)>,
    pub operations: HashMap<String, Op>,
    /// Most items a page holds, whatever maxResults asks.
    pub page_size: usize,
    /// Where `https://storage.googleapis.com/…` objects are read from.
    pub storage_base: Option<String>,
    /// Answers queued for the next compute requests (429, 503…).
    pub fail_next: Vec<u16>,
    /// `requestId` → the operation its first request answered: a repeat is
    /// answered with it and does nothing (the API keeps them 60 minutes).
    pub request_ids: HashMap<String, Value>,
    /// Paths whose next POST acts, then loses its answer (a 503 goes back).
    pub lose_answer: Vec<String>,
    /// The next images.insert operation ends DONE with this error.
    pub fail_next_import: Option<String>,
    /// Image name → extracted `disk.raw`.
    pub image_files: HashMap<String, PathBuf>,
    /// Status polls before an instance is RUNNING.
    pub boot_polls: u32,
    /// Operations are DONE at their first poll (a quick API, as Compute
    /// Engine's often is for small resources): keeps long runs short.
    pub quick_operations: bool,
    pub dir: PathBuf,
    next_id: u64,
}

impl State {
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}", 7_000_000_000_000_000_000u64 + self.next_id)
    }

    pub fn link(&self, path: &str) -> String {
        format!("{}/compute/v1/projects/{PROJECT}/{path}", self.base_url)
    }
}

pub fn new_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "ya29.fake-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A recorded answer from tests/fixtures/gce (vendored; see tests/fixtures/README.md).
pub fn fixture(name: &str) -> Value {
    let path = crate::repo_root().join("tests/fixtures/gce").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Points a recorded value's links at this fake.
fn relink(value: &Value, base: &str) -> Value {
    let text = serde_json::to_string(value).unwrap().replace(
        RECORDED_PREFIX,
        &format!("{base}/compute/v1/projects/{PROJECT}"),
    );
    serde_json::from_str(&text).unwrap()
}

fn scoped(file: &str, key: &str, base: &str) -> Vec<(String, Value)> {
    let recorded = fixture(file);
    let mut out = Vec::new();
    for (scope, content) in recorded["items"].as_object().unwrap() {
        let zone = scope.trim_start_matches("zones/").to_string();
        for item in content[key].as_array().into_iter().flatten() {
            out.push((zone.clone(), relink(item, base)));
        }
    }
    out
}

pub struct FakeGce {
    pub base_url: String,
    pub token_uri: String,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for FakeGce {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGce {
    /// Starts the fake on a loopback port; `public_key` is the service
    /// account's (DER RSAPublicKey) that assertions must verify against.
    pub async fn start(public_key: Vec<u8>) -> FakeGce {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let zones = fixture("zones.json")["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|z| relink(z, &base_url))
            .collect();
        let networks = fixture("global_networks.json")["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| relink(n, &base_url))
            .collect();
        let state = State {
            base_url: base_url.clone(),
            public_key,
            client_email: CLIENT_EMAIL.into(),
            token_lifetime: 3600,
            tokens: Vec::new(),
            assertions: Vec::new(),
            refused_assertions: Vec::new(),
            received: Vec::new(),
            zones,
            machine_types: scoped("aggregated_machineTypes.json", "machineTypes", &base_url),
            instances: scoped("aggregated_instances.json", "instances", &base_url),
            disks: scoped("aggregated_disks.json", "disks", &base_url),
            networks,
            subnetworks: Vec::new(),
            firewalls: Vec::new(),
            images: Vec::new(),
            snapshots: Vec::new(),
            disk_files: HashMap::new(),
            snapshot_files: HashMap::new(),
            host_keys: Vec::new(),
            guest_writes: HashMap::new(),
            stops: Vec::new(),
            consoles: HashMap::new(),
            operations: HashMap::new(),
            page_size: 500,
            storage_base: None,
            fail_next: Vec::new(),
            request_ids: HashMap::new(),
            lose_answer: Vec::new(),
            fail_next_import: None,
            image_files: HashMap::new(),
            boot_polls: 2,
            quick_operations: false,
            dir: dir.path().to_path_buf(),
            next_id: 0,
        };
        let mut state = state;
        state.subnetworks = net::seed_subnetworks(&mut state);
        state.firewalls = net::seed_firewalls(&mut state);
        let state = Arc::new(Mutex::new(state));
        let app = Router::new()
            .route("/token", post(token::token))
            .route("/compute/v1/projects/{project}/{*rest}", any(api::handle))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGce {
            token_uri: format!("{base_url}/token"),
            base_url,
            state,
            server,
            _dir: dir,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn received(&self) -> Vec<Received> {
        self.state().received.clone()
    }

    pub fn mutating_received(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(Received::is_mutating)
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    pub fn set_page_size(&self, n: usize) {
        self.state().page_size = n;
    }

    pub fn set_storage(&self, base: &str) {
        self.state().storage_base = Some(base.to_string());
    }

    /// The next POST to `path` acts, then its answer is lost.
    pub fn lose_answer(&self, path: &str) {
        self.state().lose_answer.push(path.into());
    }

    pub fn fail_next(&self, statuses: &[u16]) {
        self.state().fail_next.extend_from_slice(statuses);
    }

    pub fn fail_next_import(&self, message: &str) {
        self.state().fail_next_import = Some(message.into());
    }

    /// Adds `n` running instances named `vm-0001`… in `zone`.
    pub fn add_many_instances(&self, zone: &str, n: usize) {
        let mut s = self.state();
        let model = fixture("zones_us-central1-a_instances_node-name.json");
        for i in 0..n {
            let mut vm = relink(&model, &s.base_url);
            let name = format!("vm-{:04}", i + 1);
            vm["name"] = name.clone().into();
            vm["id"] = s.new_id().into();
            vm["zone"] = s.link(&format!("zones/{zone}")).into();
            vm["selfLink"] = s.link(&format!("zones/{zone}/instances/{name}")).into();
            s.instances.push((zone.to_string(), vm));
        }
    }

    pub fn instance(&self, name: &str) -> Option<Value> {
        self.state()
            .instances
            .iter()
            .find(|(_, i)| i["name"] == name)
            .map(|(_, i)| i.clone())
    }

    pub fn image(&self, name: &str) -> Option<Value> {
        self.state()
            .images
            .iter()
            .find(|i| i["name"] == name)
            .cloned()
    }

    /// A running instance `name` in `zone` whose boot disk (also `name`)
    /// holds the bytes of `file` (a whole number of GiB).
    pub fn add_source_vm(&self, zone: &str, name: &str, machine: &str, file: &std::path::Path) {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(
            size > 0 && size.is_multiple_of(1 << 30),
            "disk files are whole GiB"
        );
        let mut s = self.state();
        let disk_link = s.link(&format!("zones/{zone}/disks/{name}"));
        let vm_link = s.link(&format!("zones/{zone}/instances/{name}"));
        let mut disk = relink(
            &fixture("zones_us-central1-a_disks_lcdisk.json"),
            &s.base_url,
        );
        disk["id"] = s.new_id().into();
        disk["name"] = name.into();
        disk["sizeGb"] = (size >> 30).to_string().into();
        disk["zone"] = s.link(&format!("zones/{zone}")).into();
        disk["selfLink"] = disk_link.clone().into();
        disk["type"] = s.link(&format!("zones/{zone}/diskTypes/pd-ssd")).into();
        disk["users"] = serde_json::json!([vm_link.clone()]);
        s.disks.push((zone.to_string(), disk));
        s.disk_files
            .insert(format!("{zone}/{name}"), file.to_path_buf());
        let mut vm = relink(
            &fixture("zones_us-central1-a_instances_node-name.json"),
            &s.base_url,
        );
        vm["name"] = name.into();
        vm["id"] = s.new_id().into();
        vm["zone"] = s.link(&format!("zones/{zone}")).into();
        vm["machineType"] = s
            .link(&format!("zones/{zone}/machineTypes/{machine}"))
            .into();
        vm["selfLink"] = vm_link.into();
        vm["status"] = "RUNNING".into();
        vm["disks"][0]["source"] = disk_link.into();
        vm["disks"][0]["deviceName"] = "persistent-disk-0".into();
        s.instances.push((zone.to_string(), vm));
    }

    /// Operations finish at their first poll and instances boot at their
    /// first status poll.
    /// The guest of instance `zone/name` writes `text` to its serial port 1.
    pub fn write_console(&self, zone: &str, name: &str, text: &str) {
        self.state()
            .consoles
            .entry(format!("{zone}/{name}"))
            .or_default()
            .extend_from_slice(text.as_bytes());
    }

    pub fn quick_operations(&self) {
        let mut s = self.state();
        s.quick_operations = true;
        s.boot_polls = 1;
    }

    /// Scripts the writes the running guest of `zone`'s disk `disk` makes
    /// before each snapshot and as it stops.
    pub fn script_writes(&self, zone: &str, disk: &str, writes: source::GuestWrites) {
        self.state()
            .guest_writes
            .insert(format!("{zone}/{disk}"), writes);
    }

    /// Where attached disks appear as `google-<deviceName>` (the worker's
    /// `/dev/disk/by-id`).
    pub fn by_id_dir(&self) -> PathBuf {
        source::by_id_dir(&self.state().dir)
    }

    /// Host keys a worker's guest publishes (`ssh-ed25519 AAAA…` lines).
    pub fn publish_host_keys(&self, public_key_lines: &[String]) {
        self.state().host_keys = public_key_lines
            .iter()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                Some((words.next()?.to_string(), words.next()?.to_string()))
            })
            .collect();
    }

    pub fn snapshot_names(&self) -> Vec<String> {
        self.state()
            .snapshots
            .iter()
            .map(|x| x["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub fn disk(&self, zone: &str, name: &str) -> Option<Value> {
        self.state()
            .disks
            .iter()
            .find(|(z, d)| z == zone && d["name"] == name)
            .map(|(_, d)| d.clone())
    }

    pub fn disk_names(&self, zone: &str) -> Vec<String> {
        self.state()
            .disks
            .iter()
            .filter(|(z, _)| z == zone)
            .map(|(_, d)| d["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The project's recorded images (global_images_paged.json: the other
    /// recording names two images alike), as if made earlier.
    pub fn seed_recorded_images(&self) {
        let mut s = self.state();
        let base = s.base_url.clone();
        for image in fixture("global_images_paged.json")["items"]
            .as_array()
            .unwrap()
        {
            let mut image = relink(image, &base);
            let name = image["name"].as_str().unwrap().to_string();
            // The recording's selfLinks are partial; the API's are absolute.
            image["selfLink"] = s.link(&format!("global/images/{name}")).into();
            s.images.push(image);
        }
    }

    pub fn image_file(&self, name: &str) -> Option<PathBuf> {
        self.state().image_files.get(name).cloned()
    }
}
