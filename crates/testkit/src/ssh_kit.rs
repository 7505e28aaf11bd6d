//! Shared pieces of the SSH tests: source disks as files, settings for the
//! test sshd, a lab target, plans (with or without a cutover), running a plan.

#![allow(dead_code)]

#[allow(unused_imports)]
pub use crate::run_kit::{approve, throughput};
use crate::sshd::{Sshd, agent_binary};
use altishift::cloud::Cloud;
use altishift::cloud::lab::LabCloud;
use altishift::cloud::ssh::{AgentPolicy, SshCloud, SshSettings};
use altishift::engine::{self, EngineOptions, Event, RetryPolicy, RunReport};
use altishift::plan::build::{Request, Side, build};
use altishift::plan::{Approved, Cutover, Plan};
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "src-host";

/// A sparse source disk: data in `blocks`, explicit zeros (allocated, yet
/// zero) in `zero_blocks`, and a short last block.
pub fn source_disk(dir: &Path, blocks: &[u64], zero_blocks: &[u64]) -> PathBuf {
    let path = dir.join("source.raw");
    let file = std::fs::File::create(&path).unwrap();
    let last = blocks.iter().chain(zero_blocks).max().copied().unwrap_or(0);
    let size = (last + 2).max(48) * BLOCK_SIZE + 4096;
    file.set_len(size).unwrap();
    for &b in zero_blocks {
        file.write_all_at(&vec![0u8; BLOCK_SIZE as usize], b * BLOCK_SIZE)
            .unwrap();
    }
    for &b in blocks {
        file.write_all_at(&block_content(b, 1), b * BLOCK_SIZE)
            .unwrap();
    }
    file.write_all_at(b"the very end", size - 12).unwrap();
    path
}

pub fn block_content(index: u64, version: u8) -> Vec<u8> {
    (0..BLOCK_SIZE as usize)
        .map(|i| ((i as u64 * 31 + index * 7 + u64::from(version) * 13) % 251) as u8)
        .collect()
}

pub fn settings(sshd: &Sshd, device: &Path, agent: AgentPolicy) -> SshSettings {
    SshSettings {
        target: sshd.target(),
        device: device.display().to_string(),
        instance_name: Some(NAME.into()),
        agent,
        agent_binary: Some(agent_binary()),
        jurisdiction: Some("DE".into()),
    }
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

    pub fn west(&self) -> Arc<dyn Cloud> {
        Arc::new(
            LabCloud::open("lab-west", &self.root.join("lab-west"), Some("DE".into())).unwrap(),
        )
    }

    pub fn disk_of(&self, name: &str) -> PathBuf {
        let dir = self.root.join("lab-west");
        let text =
            std::fs::read_to_string(dir.join("instances").join(format!("{name}.toml"))).unwrap();
        let manifest: altishift::cloud::lab::manifest::InstanceManifest =
            toml::from_str(&text).unwrap();
        dir.join(&manifest.disks[0].file)
    }
}

pub async fn plan_to_lab(source: &SshCloud, lab: &Lab) -> Approved {
    let plan = plan_for_lab(source, lab, None).await;
    approve(plan)
}

/// The plan ssh → lab-west, a cutover when `cutover` is given (not approved).
pub async fn plan_for_lab(source: &SshCloud, lab: &Lab, cutover: Option<Cutover>) -> Plan {
    let mut source_inventory = source.inventory().await.unwrap();
    // The host is this machine: plan it as a small one, so a lab size fits.
    source_inventory.instances[0].vcpus = 1;
    source_inventory.instances[0].memory = Bytes::gib(1);
    let target_inventory = lab.west().inventory().await.unwrap();
    let s = Side {
        cloud: "ssh-src",
        provider: "ssh".into(),
        jurisdiction: Some("DE".into()),
        inventory: &source_inventory,
    };
    let t = Side {
        cloud: "lab-west",
        provider: "lab".into(),
        jurisdiction: Some("DE".into()),
        inventory: &target_inventory,
    };
    let request = Request {
        select: vec![NAME.into()],
        cutover,
        ..Request::default()
    };
    let throughput = throughput();
    build(&s, &t, &request, &throughput, "tester@localhost").unwrap()
}

pub fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
    }
}

/// Runs to the end; `on_progress(bytes_sent)` hears progress events.
pub async fn run(
    approved: Approved,
    source: Arc<dyn Cloud>,
    target: Arc<dyn Cloud>,
    state: &Path,
    options: EngineOptions,
    mut on_progress: impl FnMut(u64) + Send + 'static,
) -> RunReport {
    let handle = engine::start(approved, source, target, state, options).unwrap();
    let mut events = handle.events;
    let listen = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Progress(p) = event {
                on_progress(p.bytes_sent.0);
            }
        }
    });
    let outcome = handle.done.await.unwrap().unwrap();
    listen.abort();
    outcome.report
}

pub fn same_bytes(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

/// The first pass's raw target, written in place by the delta pass.
pub struct RawFile(pub altishift::cloud::local_disk::SparseFileWriter);

#[async_trait::async_trait]
impl altishift::cloud::DiskWriter for RawFile {
    fn order(&self) -> altishift::cloud::WriteOrder {
        altishift::cloud::WriteOrder::Any
    }
    fn staging_id(&self) -> String {
        self.0.path().display().to_string()
    }
    async fn write_block(
        &self,
        index: BlockIndex,
        data: bytes::Bytes,
        _digest: altishift::block::BlockDigest,
    ) -> Result<(), altishift::cloud::CloudError> {
        self.0.write_block(index, data).await
    }
    async fn flush(&self) -> Result<(), altishift::cloud::CloudError> {
        self.0.sync().await
    }
    async fn finish(
        self: Box<Self>,
        _blocks: u64,
    ) -> Result<altishift::cloud::WrittenDisk, altishift::cloud::CloudError> {
        unreachable!("the delta pass writes in place")
    }
}
