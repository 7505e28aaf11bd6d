//! Test setup for the Google Cloud provider: a throw-away service-account
//! key, the Cloud Storage emulator (PyPI `gcp-storage-emulator`) behind a
//! recording proxy, the Compute Engine fake, and plans run through the engine.

use super::storage::StorageProxy;
use super::{CLIENT_EMAIL, FakeGce, PROJECT};
#[allow(unused_imports)]
pub use crate::run_kit::{approve, run, throughput};
use altishift::block::BlockDigest;
use altishift::cloud::gcp::auth::ServiceAccount;
use altishift::cloud::gcp::client::PollPolicy;
use altishift::cloud::gcp::{Endpoints, GcpCloud};
use altishift::cloud::lab::LabCloud;
use altishift::cloud::{Capability, Cloud, CloudError, Target, TargetDiskSpec, WrittenDisk};
use altishift::inventory::DiskFormat;
use altishift::inventory::Inventory;
use altishift::plan::Plan;
use altishift::plan::build::{Request, Side, build};
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub const BUCKET: &str = "altishift-staging";
pub const ZONE: &str = "europe-west1-b";

/// A service-account key made for this test: the key file and the public half.
pub struct TestKey {
    pub file: PathBuf,
    pub public_der: Vec<u8>,
    /// The PEM body, to check that it never appears in any output.
    pub pem: String,
}

impl TestKey {
    pub fn generate(dir: &Path) -> TestKey {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = pair.as_der().unwrap();
        let body = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        let public_der = pair.public_key().as_ref().to_vec();
        TestKey::write(dir, pem, public_der)
    }

    fn write(dir: &Path, pem: String, public_der: Vec<u8>) -> TestKey {
        let file = dir.join("service-account.json");
        let json = serde_json::json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "0123456789abcdef",
            "private_key": pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        std::fs::write(&file, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        TestKey {
            file,
            public_der,
            pem,
        }
    }

    /// A line of the key that would only appear if the key leaked.
    pub fn fingerprint(&self) -> String {
        self.pem.lines().nth(3).unwrap().to_string()
    }
}

/// `gcp-storage-emulator` on a loopback port, killed on drop.
pub struct Emulator {
    pub base_url: String,
    child: Child,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn emulator_binary() -> PathBuf {
    let name = "gcp-storage-emulator";
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    }) {
        return found;
    }
    let local = crate::repo_root().join(".venv/bin").join(name);
    assert!(
        local.is_file(),
        "{name} not found on PATH or in .venv/bin: run scripts/test (it installs tests/requirements.txt into .venv)"
    );
    local
}

impl Emulator {
    /// Starts the emulator; its log goes to `dir/gcs-emulator.log`.
    pub async fn start(dir: &Path) -> Emulator {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(emulator_binary())
            .args([
                "start",
                "--host=127.0.0.1",
                &format!("--port={port}"),
                "--in-memory",
            ])
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("gcs-emulator.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start gcp-storage-emulator");
        let base_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http
                .get(format!("{base_url}/storage/v1/b"))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let created = http
            .post(format!("{base_url}/storage/v1/b"))
            .json(&serde_json::json!({"name": BUCKET}))
            .send()
            .await
            .expect("emulator answers");
        assert!(
            created.status().is_success(),
            "bucket: {}",
            created.status()
        );
        Emulator { base_url, child }
    }
}

/// Everything a Google Cloud test talks to.
pub struct Gcp {
    pub key: TestKey,
    pub fake: FakeGce,
    pub emulator: Emulator,
    pub storage: StorageProxy,
    pub dir: tempfile::TempDir,
}

impl Gcp {
    pub async fn start() -> Gcp {
        let dir = tempfile::tempdir().unwrap();
        let key = TestKey::generate(dir.path());
        let fake = FakeGce::start(key.public_der.clone()).await;
        let emulator = Emulator::start(dir.path()).await;
        let storage = StorageProxy::start(&emulator.base_url).await;
        fake.set_storage(&emulator.base_url);
        Gcp {
            key,
            fake,
            emulator,
            storage,
            dir,
        }
    }

    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            compute: self.fake.base_url.clone(),
            storage: self.storage.base_url.clone(),
            token_uri: Some(self.fake.token_uri.clone()),
        }
    }

    pub fn cloud(&self) -> GcpCloud {
        let account = ServiceAccount::from_file(&self.key.file).unwrap();
        GcpCloud::new("gcp-test", PROJECT, account, self.endpoints())
            .unwrap()
            .with_zone(ZONE)
            .with_bucket(BUCKET)
            .with_poll(fast_poll())
    }

    /// Objects in the staging bucket, straight from the emulator.
    pub async fn objects(&self) -> Vec<String> {
        let list: serde_json::Value = reqwest::get(format!(
            "{}/storage/v1/b/{BUCKET}/o",
            self.emulator.base_url
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn object(&self, name: &str) -> Vec<u8> {
        let url = format!(
            "{}/storage/v1/b/{BUCKET}/o/{}?alt=media",
            self.emulator.base_url,
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
        );
        reqwest::get(url)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }
}

pub fn fast_poll() -> PollPolicy {
    PollPolicy {
        first: Duration::from_millis(2),
        max: Duration::from_millis(20),
        deadline: Duration::from_secs(60),
        attempts: 6,
    }
}

pub fn capability() -> Capability {
    let plan = Plan {
        version: altishift::plan::PLAN_VERSION,
        created_at: "2026-11-26T12:00:00Z".into(),
        created_by: "tester".into(),
        source: altishift::plan::CloudSide {
            cloud: "lab-east".into(),
            provider: "lab".into(),
            jurisdiction: "DE".into(),
            rules: Default::default(),
        },
        target: altishift::plan::CloudSide {
            cloud: "gcp-test".into(),
            provider: "gcp".into(),
            jurisdiction: "BE".into(),
            rules: Default::default(),
        },
        keep_access: false,
        test_migration: false,
        rehearsals: Vec::new(),
        preparation: Default::default(),
        summary: altishift::plan::Summary {
            instances: 0,
            disks: 0,
            bytes_to_move: altishift::units::Bytes(0),
            virtual_bytes: altishift::units::Bytes(0),
            estimate_seconds: 0,
            estimate_basis: "test".into(),
            change_rate: None,
        },
        cross_border: None,
        cutover: None,
        waves: Default::default(),
        clouds: Default::default(),
        items: vec![],
        actions: vec![],
        checks: Default::default(),
        approval: None,
    };
    approve(plan).capability()
}

pub struct Lab {
    pub root: PathBuf,
}

impl Lab {
    pub fn new(dir: &Path) -> Lab {
        let root = dir.join("lab");
        altishift::cloud::lab::generate::init(
            &root,
            altishift::cloud::lab::generate::LabScale::Small,
        )
        .unwrap();
        Lab { root }
    }

    pub fn east(&self) -> Arc<dyn Cloud> {
        Arc::new(LabCloud::open("lab-east", &self.root.join("lab-east"), None).unwrap())
    }

    pub fn instance_disks(&self, name: &str) -> Vec<PathBuf> {
        let dir = self.root.join("lab-east");
        let text =
            std::fs::read_to_string(dir.join("instances").join(format!("{name}.toml"))).unwrap();
        let manifest: altishift::cloud::lab::manifest::InstanceManifest =
            toml::from_str(&text).unwrap();
        manifest
            .disks
            .into_iter()
            .map(|d| dir.join(d.file))
            .collect()
    }
}

pub fn plan_to_gcp(source: &Inventory, target: &Inventory, select: &[&str]) -> Plan {
    let source = Side {
        cloud: "lab-east",
        provider: "lab".into(),
        jurisdiction: None,
        inventory: source,
    };
    let target = Side {
        cloud: "gcp-test",
        provider: "gcp".into(),
        jurisdiction: None,
        inventory: target,
    };
    let request = Request {
        select: select.iter().map(|s| s.to_string()).collect(),
        ..Request::default()
    };
    let throughput = throughput();
    build(&source, &target, &request, &throughput, "tester@localhost").unwrap()
}

/// Runs a command; panics with its stderr when it fails.
pub fn sh(program: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pseudo-random (incompressible) content for block `index`.
pub fn block(index: u64) -> Vec<u8> {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..BLOCK_SIZE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Writes `blocks` of a disk of `size` through the provider's writer, the
/// way the engine does (ascending, zero blocks never sent); also writes the
/// same disk to `raw` for comparison.
pub async fn upload(
    cloud: &GcpCloud,
    name: &str,
    size: u64,
    blocks: &[u64],
    raw: &Path,
) -> Result<WrittenDisk, CloudError> {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::File::create(raw).unwrap();
    file.set_len(size).unwrap();
    let spec = TargetDiskSpec {
        name: name.into(),
        virtual_size: Bytes(size),
        format: DiskFormat::Raw,
        region: ZONE.into(),
        boot: true,
        resume: None,
        platform: Default::default(),
    };
    let writer = cloud.open_disk_writer(&capability(), &spec).await?;
    for &index in blocks {
        let data = block(index);
        let len = (size - index * BLOCK_SIZE).min(BLOCK_SIZE) as usize;
        file.write_all_at(&data[..len], index * BLOCK_SIZE).unwrap();
        writer
            .write_block(
                BlockIndex(index),
                data[..len].to_vec().into(),
                BlockDigest::of(&data[..len]),
            )
            .await?;
        if index % 7 == 0 {
            writer.flush().await?;
        }
    }
    writer.flush().await?;
    writer.finish(blocks.len() as u64).await
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Every key of `served` exists in `recorded` with the same JSON type.
pub fn check_shape(served: &serde_json::Value, recorded: &serde_json::Value, what: &str) {
    use serde_json::Value;
    let (Value::Object(s), Value::Object(r)) = (served, recorded) else {
        panic!("{what}: not objects");
    };
    for (key, value) in s {
        let model = r
            .get(key)
            .unwrap_or_else(|| panic!("{what}: '{key}' not in the recording"));
        assert_eq!(
            std::mem::discriminant(value),
            std::mem::discriminant(model),
            "{what}: '{key}' is {value} here, {model} recorded"
        );
    }
}
