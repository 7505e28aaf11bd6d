//! Helpers the CloudStack tests share: a tuned provider on the fake,
//! approved plans (the only way to a capability), seed disks, a lab, runs.

use super::{API_KEY, FakeCloudStack, SECRET_KEY};
#[allow(unused_imports)]
pub use crate::run_kit::{approve, inspect_stored, preparation_of, run, sha256, throughput};
use altishift::cloud::cloudstack::CloudStackCloud;
use altishift::cloud::cloudstack::client::{PollPolicy, form_encode};
use altishift::cloud::cloudstack::signing::{self, Dialect};
use altishift::cloud::lab::LabCloud;
use altishift::cloud::{
    Capability, Cloud, CloudError, CreatedResource, DeploySpec, DiskReader, ResourceKind, Target,
    TargetDiskSpec, WrittenDisk,
};
use altishift::engine::{self, EngineOptions, RunReport};
use altishift::inventory::{DiskFormat, Inventory};
use altishift::plan::build::{Request, Side, Throughput, build};
use altishift::plan::{Approved, CloudSide, PLAN_VERSION, Plan, Summary, approval};
use altishift::secret::Secret;
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub fn connect(fake: &FakeCloudStack, staging: &Path) -> CloudStackCloud {
    connect_with(fake, staging, API_KEY, SECRET_KEY)
}

/// A provider with fast polling and backoff (tests never wait on clocks).
pub fn connect_with(
    fake: &FakeCloudStack,
    staging: &Path,
    key: &str,
    secret: &str,
) -> CloudStackCloud {
    connect_named("cs-test", fake, staging, key, secret)
}

/// `connect_with` under another cloud name (two fakes in one migration).
pub fn connect_named(
    name: &str,
    fake: &FakeCloudStack,
    staging: &Path,
    key: &str,
    secret: &str,
) -> CloudStackCloud {
    let mut cloud = CloudStackCloud::new(
        name,
        &fake.endpoint,
        Secret::new(key.into()),
        Secret::new(secret.into()),
        staging,
    )
    .unwrap()
    .with_jurisdiction("DE");
    let client = cloud.client_mut().unwrap();
    client.poll = PollPolicy {
        first: Duration::from_millis(2),
        max: Duration::from_millis(20),
        deadline: Duration::from_secs(60),
    };
    cloud.transfer.first_backoff = Duration::from_millis(2);
    cloud.transfer.max_backoff = Duration::from_millis(20);
    cloud
}

/// A small plan, approved by typing its short hash, as an operator would.
pub fn capability() -> Capability {
    let plan = Plan {
        version: PLAN_VERSION,
        created_at: "2026-11-26T12:00:00Z".into(),
        created_by: "tester".into(),
        source: CloudSide {
            cloud: "a".into(),
            provider: "cloudstack".into(),
            jurisdiction: "DE".into(),
            rules: Default::default(),
        },
        target: CloudSide {
            cloud: "b".into(),
            provider: "cloudstack".into(),
            jurisdiction: "DE".into(),
            rules: Default::default(),
        },
        keep_access: false,
        test_migration: false,
        rehearsals: Vec::new(),
        preparation: Default::default(),
        summary: Summary {
            instances: 0,
            disks: 0,
            bytes_to_move: Bytes(0),
            virtual_bytes: Bytes(0),
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

pub fn created(kind: ResourceKind, id: &str) -> CreatedResource {
    CreatedResource {
        cloud: "cs-test".into(),
        kind,
        id: id.into(),
        temporary: true,
    }
}

/// A raw disk with distinct data in some blocks, and its qcow2 twin.
pub struct Seed {
    pub raw: PathBuf,
    pub qcow2: PathBuf,
    pub size: u64,
}

impl Seed {
    pub fn new(dir: &Path, name: &str, size: u64, blocks: &[u64]) -> Seed {
        use std::os::unix::fs::FileExt as _;
        let raw = dir.join(format!("{name}.raw"));
        let file = std::fs::File::create(&raw).unwrap();
        file.set_len(size).unwrap();
        let seed = Seed {
            raw: raw.clone(),
            qcow2: dir.join(format!("{name}.qcow2")),
            size,
        };
        for &index in blocks {
            file.write_all_at(&seed.block(index), index * BLOCK_SIZE)
                .unwrap();
        }
        let status = std::process::Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&seed.qcow2)
            .status()
            .unwrap();
        assert!(status.success());
        seed
    }

    /// The bytes of block `index` (a pattern that differs per block).
    pub fn block(&self, index: u64) -> Vec<u8> {
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
}

/// Every non-zero block a reader serves.
pub async fn read_all(reader: &dyn DiskReader) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    for index in reader
        .allocated_blocks()
        .await
        .unwrap()
        .into_iter()
        .flatten()
    {
        let bytes = reader.read_block(BlockIndex(index)).await.unwrap().bytes;
        if bytes.iter().any(|&b| b != 0) {
            out.insert(index, bytes.to_vec());
        }
    }
    out
}

/// Writes a seed's blocks through a target writer and finishes it.
pub async fn upload_disk(
    cloud: &CloudStackCloud,
    cap: &Capability,
    name: &str,
    seed: &Seed,
) -> Result<WrittenDisk, CloudError> {
    let spec = TargetDiskSpec {
        name: name.into(),
        virtual_size: Bytes(seed.size),
        format: DiskFormat::Qcow2,
        region: "zone1".into(),
        // Seeds named like the engine names boot disks (`<vm>-root`) boot.
        boot: name.ends_with("-root"),
        resume: None,
        platform: Default::default(),
    };
    let writer = cloud.open_disk_writer(cap, &spec).await?;
    let data = std::fs::read(&seed.raw).unwrap();
    let mut written = 0;
    for (index, block) in data.chunks(BLOCK_SIZE as usize).enumerate() {
        if block.iter().any(|&b| b != 0) {
            writer
                .write_block(
                    BlockIndex(index as u64),
                    block.to_vec().into(),
                    altishift::block::BlockDigest::of(block),
                )
                .await?;
            written += 1;
        }
    }
    writer.flush().await?;
    writer.finish(written).await
}

pub fn deploy_spec(name: &str, size: &str, disks: Vec<WrittenDisk>) -> DeploySpec {
    DeploySpec {
        name: name.into(),
        size: size.into(),
        region: "zone1".into(),
        disks,
        tags: BTreeMap::new(),
        platform: Default::default(),
        config: Default::default(),
    }
}

/// `qemu-img compare`: same guest content, whatever the formats.
pub fn same_guest_content(a: &Path, b: &Path) -> bool {
    std::process::Command::new("qemu-img")
        .args(["compare", "-q"])
        .arg(a)
        .arg(b)
        .status()
        .unwrap()
        .success()
}

pub fn staging_is_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let left: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !left.is_empty() {
                eprintln!("staging holds: {left:?}");
            }
            left.is_empty()
        }
        Err(_) => true,
    }
}

/// Two lab clouds (small scale) in `dir/lab`.
pub struct Lab {
    root: PathBuf,
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

    /// The lab's directory (its clouds are folders in it).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn east(&self) -> Arc<dyn Cloud> {
        Arc::new(LabCloud::open("lab-east", &self.root.join("lab-east"), None).unwrap())
    }

    pub fn west(&self) -> Arc<dyn Cloud> {
        Arc::new(LabCloud::open("lab-west", &self.root.join("lab-west"), None).unwrap())
    }

    pub async fn east_inventory(&self) -> Inventory {
        self.east().inventory().await.unwrap()
    }

    pub async fn west_inventory(&self) -> Inventory {
        self.west().inventory().await.unwrap()
    }

    /// Disk files of a lab instance, boot first.
    pub fn instance_disks(&self, cloud: &str, name: &str) -> Vec<PathBuf> {
        let dir = self.root.join(cloud);
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

pub fn plan_between(
    source: (&str, &str, &Inventory),
    target: (&str, &str, &Inventory),
    select: &[&str],
) -> Plan {
    let side = |(cloud, provider, inventory): (&str, &str, &Inventory)| {
        let jurisdiction = (provider == "cloudstack").then(|| "DE".to_string());
        (
            cloud.to_string(),
            provider.to_string(),
            jurisdiction,
            inventory.clone(),
        )
    };
    let (s, t) = (side(source), side(target));
    let source = Side {
        cloud: &s.0,
        provider: s.1,
        jurisdiction: s.2,
        inventory: &s.3,
    };
    let target = Side {
        cloud: &t.0,
        provider: t.1,
        jurisdiction: t.2,
        inventory: &t.3,
    };
    let request = Request {
        select: select.iter().map(|s| s.to_string()).collect(),
        ..Request::default()
    };
    let throughput = throughput();
    build(&source, &target, &request, &throughput, "tester@localhost").unwrap()
}

/// Replays a recorded `cs` request against the fake (optionally tampered).
pub async fn replay(
    http: &reqwest::Client,
    origin: &str,
    vector: &Value,
    tamper: Option<(&str, &str)>,
) -> (u16, Value) {
    let fix = |text: &str| match tamper {
        Some((from, to)) => text.replace(from, to),
        None => text.to_string(),
    };
    let url = fix(vector["request_url"].as_str().unwrap())
        .replace("https://cloudstack.example.invalid", origin);
    let request = if vector["http_method"] == "POST" {
        http.post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(fix(vector["request_body"].as_str().unwrap()))
    } else {
        http.get(url)
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A raw signed GET (the test signs it; no provider code in between).
pub async fn signed_get(
    fake: &FakeCloudStack,
    command: &str,
    params: &[(&str, &str)],
) -> (u16, Value) {
    let mut all: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.push(("command".into(), command.into()));
    all.push(("apiKey".into(), API_KEY.into()));
    all.push(("response".into(), "json".into()));
    all.push(("signatureVersion".into(), "3".into()));
    all.push((
        "expires".into(),
        signing::format_expires(std::time::SystemTime::now() + Duration::from_secs(300)),
    ));
    let signature = signing::sign(&all, SECRET_KEY, Dialect::Server);
    all.push(("signature".into(), signature));
    let response = reqwest::get(format!("{}?{}", fake.endpoint, form_encode(&all)))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Served keys exist in the recorded object with the same JSON type (ids
/// may be numbers or strings: CloudStack has sent both).
pub fn assert_same_shape(served: &Value, recorded: &Value, context: &str) {
    let (Value::Object(served), Value::Object(recorded)) = (served, recorded) else {
        panic!("{context}: expected two objects, got {served} and {recorded}");
    };
    for (key, value) in served {
        let Some(model) = recorded.get(key) else {
            panic!("{context}: served key '{key}' is not in the recorded answer");
        };
        let id_like = key == "id" || key.ends_with("id");
        let same = std::mem::discriminant(value) == std::mem::discriminant(model)
            || (id_like
                && (value.is_string() || value.is_number())
                && (model.is_string() || model.is_number()));
        assert!(
            same,
            "{context}: '{key}' is {value} here but {model} in the recording"
        );
        if let (Value::Object(_), Value::Object(_)) = (value, model) {
            assert_same_shape(value, model, &format!("{context}.{key}"));
        }
        if let (Some(v), Some(m)) = (value.get(0), model.get(0))
            && v.is_object()
        {
            assert_same_shape(v, m, &format!("{context}.{key}[0]"));
        }
    }
    for key in recorded.keys() {
        if !served.contains_key(key) {
            eprintln!("{context}: recorded key '{key}' not served");
        }
    }
}

pub fn record(name: &str, value: &Value) {
    let dir = crate::repo_root().join("tests/fixtures/cloudstack");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(name),
        serde_json::to_string_pretty(value).unwrap() + "\n",
    )
    .unwrap();
}
