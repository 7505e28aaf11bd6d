//! A faithful fake of the Apache CloudStack API for tests: it checks
//! request signatures the way `ApiServer.verifyRequest` does (its own
//! implementation, not the client's), paginates like a server with
//! `default.page.size` 500, runs async jobs through pending → done/failed,
//! stores uploads (checking the upload signature headers) and serves extract
//! URLs with Range support. It records every command it receives.
#![allow(dead_code, unused_imports)]

mod api;
mod api_mutate;
pub mod config;
pub mod guest;
mod shapes;
pub mod testkit;
mod transfer;

pub use shapes::{Templates, fixture};

use axum::Router;
use axum::routing::{any, get, post};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

pub const API_KEY: &str = "FAKE-api-key-for-tests";
pub const SECRET_KEY: &str = "FAKE-secret-key-for-tests";

/// Commands this fake counts as changing the cloud (its own list, kept apart
/// from the client's on purpose).
pub const MUTATING: &[&str] = &[
    "createsnapshot",
    "deletesnapshot",
    "createvolume",
    "deletevolume",
    "attachvolume",
    "detachvolume",
    "createtemplate",
    "deletetemplate",
    "registertemplate",
    "deployvirtualmachine",
    "destroyvirtualmachine",
    "startvirtualmachine",
    "stopvirtualmachine",
    "rebootvirtualmachine",
    "createtags",
    "deletetags",
    "createsecuritygroup",
    "deletesecuritygroup",
    "authorizesecuritygroupingress",
    "authorizesecuritygroupegress",
    "registersshkeypair",
    "deletesshkeypair",
    "getuploadparamsforvolume",
    "getuploadparamsfortemplate",
];

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub command: String,
    pub params: BTreeMap<String, String>,
    /// False when the signature check refused it.
    pub accepted: bool,
}

impl Received {
    pub fn is_mutating(&self) -> bool {
        MUTATING.contains(&self.command.to_ascii_lowercase().as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Vm {
    pub id: String,
    pub name: String,
    pub state: String,
    pub offering_id: String,
    pub template_id: String,
    pub network_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Volume {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub vm: Option<String>,
    pub device: u64,
    pub size: u64,
    pub state: String,
    /// Content on disk, in `format`; None for inventory-only volumes.
    pub data: Option<PathBuf>,
    pub format: String,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub name: String,
    pub volume_id: String,
    pub size: u64,
    pub data: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub format: String,
    pub hypervisor: String,
    pub size: u64,
    pub status: String,
    pub ready: bool,
    pub data: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Offering {
    pub id: String,
    pub name: String,
    pub cpus: u64,
    pub memory_mib: u64,
}

pub(crate) enum JobOutcome {
    Done(Value),
    Failed(u64, String),
}

pub(crate) struct Job {
    pub command: String,
    pub polls_left: u32,
    pub outcome: JobOutcome,
}

/// Where a signed upload goes.
pub(crate) struct UploadSlot {
    pub kind: &'static str,
    pub id: String,
    pub signature: String,
    pub metadata: String,
    pub expires: String,
    pub format: String,
    /// `{SHA-256}hex` the upload must match, when declared.
    pub checksum: Option<String>,
}

pub struct State {
    pub api_key: String,
    pub secret_key: String,
    pub templates_json: Templates,
    pub clock_offset_secs: i64,
    pub frozen_now: Option<SystemTime>,
    pub received: Vec<Received>,
    pub zone_id: String,
    pub zone_name: String,
    pub hypervisor: String,
    pub network_id: String,
    pub offerings: Vec<Offering>,
    pub vms: Vec<Vm>,
    pub volumes: Vec<Volume>,
    pub snapshots: Vec<Snapshot>,
    pub templates: Vec<Template>,
    pub(crate) jobs: HashMap<String, Job>,
    pub(crate) uploads: HashMap<String, UploadSlot>,
    pub(crate) extracts: HashMap<String, PathBuf>,
    /// Polls a new job answers "pending" before its result.
    pub pending_polls: u32,
    /// Commands whose next job fails, with the error text.
    pub fail_jobs: HashMap<String, String>,
    pub fail_downloads: u32,
    /// Downloads served before every later one fails (a dying server).
    pub fail_downloads_after: Option<u64>,
    pub break_uploads: u32,
    pub downloads_served: u64,
    pub upload_attempts: u64,
    pub dir: PathBuf,
    pub base_url: String,
    /// Security groups, as listSecurityGroups answers them.
    pub sec_groups: Vec<serde_json::Value>,
    /// Registered key pairs (`name`, `fingerprint`, `publickey`).
    pub keypairs: Vec<serde_json::Value>,
    /// Groups, key pairs, user data and tags each VM was given.
    pub vm_config: HashMap<String, config::VmConfig>,
    /// Volume id → the writes its running guest makes (guest.rs).
    pub guest_writes: HashMap<String, guest::GuestWrites>,
    /// VMs stopped by stopVirtualMachine while running, by id.
    pub stops: Vec<String>,
    next_id: u64,
}

impl State {
    pub fn now(&self) -> SystemTime {
        let base = self.frozen_now.unwrap_or_else(SystemTime::now);
        if self.clock_offset_secs >= 0 {
            base + Duration::from_secs(self.clock_offset_secs as u64)
        } else {
            base - Duration::from_secs(self.clock_offset_secs.unsigned_abs())
        }
    }

    /// UUID-shaped ids, unique in this fake.
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{:08x}-0000-4000-8000-{:012x}", self.next_id, self.next_id)
    }

    pub fn path_for(&mut self, what: &str) -> PathBuf {
        let id = self.new_id();
        self.dir.join(format!("{what}-{id}"))
    }
}

pub struct FakeCloudStack {
    /// The API endpoint, `http://127.0.0.1:PORT/client/api`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for FakeCloudStack {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeCloudStack {
    /// A KVM zone with one network and three offerings, no VMs.
    pub async fn start() -> FakeCloudStack {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base_url = format!("http://{addr}");
        let mut state = State {
            api_key: API_KEY.into(),
            secret_key: SECRET_KEY.into(),
            templates_json: Templates::load(),
            clock_offset_secs: 0,
            frozen_now: None,
            received: Vec::new(),
            zone_id: String::new(),
            zone_name: "zone1".into(),
            hypervisor: "KVM".into(),
            network_id: String::new(),
            offerings: Vec::new(),
            vms: Vec::new(),
            volumes: Vec::new(),
            snapshots: Vec::new(),
            templates: Vec::new(),
            jobs: HashMap::new(),
            uploads: HashMap::new(),
            extracts: HashMap::new(),
            pending_polls: 1,
            fail_jobs: HashMap::new(),
            fail_downloads: 0,
            fail_downloads_after: None,
            break_uploads: 0,
            downloads_served: 0,
            upload_attempts: 0,
            dir: dir.path().to_path_buf(),
            base_url: base_url.clone(),
            sec_groups: Vec::new(),
            keypairs: Vec::new(),
            vm_config: HashMap::new(),
            guest_writes: HashMap::new(),
            stops: Vec::new(),
            next_id: 0,
        };
        state.zone_id = state.new_id();
        state.network_id = state.new_id();
        for (name, cpus, memory_mib) in [
            ("Small Instance", 1, 1024),
            ("Medium Instance", 2, 4096),
            ("Large Instance", 4, 8192),
            // Offerings are the operator's; a big one fits the machine the
            // tests run on, read over SSH as a source.
            ("Memory Instance", 8, 32768),
        ] {
            let id = state.new_id();
            state.offerings.push(Offering {
                id,
                name: name.into(),
                cpus,
                memory_mib,
            });
        }
        let state = Arc::new(Mutex::new(state));
        let app = Router::new()
            .route("/client/api", any(api::handle))
            .route("/upload/{token}", post(transfer::upload))
            .route("/extract/{token}", get(transfer::extract))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeCloudStack {
            endpoint: format!("{base_url}/client/api"),
            state,
            server,
            _dir: dir,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    pub fn received(&self) -> Vec<Received> {
        self.state().received.clone()
    }

    pub fn mutating_received(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| r.is_mutating())
            .map(|r| r.command)
            .collect()
    }

    pub fn offering(&self, name: &str) -> Offering {
        self.state()
            .offerings
            .iter()
            .find(|o| o.name == name)
            .cloned()
            .expect("offering")
    }

    /// Adds a VM with a ROOT volume whose content is `root` (a file in the
    /// zone's format, or None for an inventory-only VM). Returns (vm, volume).
    pub fn add_vm(
        &self,
        name: &str,
        offering: &str,
        root: Option<(PathBuf, u64)>,
    ) -> (String, String) {
        let mut s = self.state();
        let offering_id = s
            .offerings
            .iter()
            .find(|o| o.name == offering)
            .map(|o| o.id.clone())
            .expect("offering");
        let vm_id = s.new_id();
        let volume_id = s.new_id();
        let (data, size) = match root {
            Some((path, size)) => {
                let stored = s.path_for("volume");
                std::fs::copy(&path, &stored).expect("copy seed disk");
                (Some(stored), size)
            }
            None => (None, 8 << 30),
        };
        let network_id = s.network_id.clone();
        s.vms.push(Vm {
            id: vm_id.clone(),
            name: name.into(),
            state: "Running".into(),
            offering_id,
            template_id: String::new(),
            network_id: Some(network_id),
        });
        let format = if s.hypervisor == "KVM" {
            "QCOW2"
        } else {
            "VHD"
        }
        .to_string();
        s.volumes.push(Volume {
            id: volume_id.clone(),
            name: format!("ROOT-{name}"),
            kind: "ROOT",
            vm: Some(vm_id.clone()),
            device: 0,
            size,
            state: "Ready".into(),
            data,
            format,
        });
        (vm_id, volume_id)
    }

    /// Adds `n` inventory-only VMs named `vm-0001`….
    pub fn add_many_vms(&self, n: usize) {
        for i in 0..n {
            self.add_vm(&format!("vm-{:04}", i + 1), "Small Instance", None);
        }
    }

    /// Scripts the writes the guest makes to `volume_id` before each
    /// snapshot and as its VM stops.
    pub fn script_writes(&self, volume_id: &str, writes: guest::GuestWrites) {
        self.state()
            .guest_writes
            .insert(volume_id.to_string(), writes);
    }

    /// The file holding a volume's bytes (in its `format`).
    pub fn volume_file(&self, volume_id: &str) -> Option<PathBuf> {
        self.state()
            .volumes
            .iter()
            .find(|v| v.id == volume_id)
            .and_then(|v| v.data.clone())
    }

    pub fn fail_next_job(&self, command: &str, text: &str) {
        self.state()
            .fail_jobs
            .insert(command.to_ascii_lowercase(), text.to_string());
    }

    pub fn fail_next_downloads(&self, n: u32) {
        self.state().fail_downloads = n;
    }

    pub fn fail_downloads_after(&self, ok: Option<u64>) {
        self.state().fail_downloads_after = ok;
    }

    /// An extract URL serving `path` (for benchmarks).
    pub fn serve_file(&self, path: &std::path::Path) -> String {
        let mut s = self.state();
        let token = s.new_id();
        s.extracts.insert(token.clone(), path.to_path_buf());
        format!("{}/extract/{token}", s.base_url)
    }

    pub fn break_next_uploads(&self, n: u32) {
        self.state().break_uploads = n;
    }

    /// Accepts a different key pair (the recorded vectors use their own).
    pub fn set_keys(&self, api_key: &str, secret_key: &str) {
        let mut s = self.state();
        s.api_key = api_key.into();
        s.secret_key = secret_key.into();
    }

    /// Freezes the server clock (to check the recorded, long-expired vectors).
    pub fn freeze_clock(&self, at: SystemTime) {
        self.state().frozen_now = Some(at);
    }
}
