//! The SSH source against a real sshd on loopback: migrations to the lab are
//! byte-identical with the agent and with the `dd` fallback, zero blocks never
//! cross the wire, a dropped connection is retried and a failed run resumes
//! from its journal, a delta pass sends exactly the changed blocks, and
//! failures have clear messages.

#[path = "support/sshd.rs"]
mod sshd;

use altishift::cloud::lab::LabCloud;
use altishift::cloud::ssh::{AgentPolicy, SshCloud, SshSettings};
use altishift::cloud::{Cloud, DiskReader};
use altishift::engine::{self, EngineOptions, Event, RetryPolicy, RunReport};
use altishift::plan::build::{Request, Side, Throughput, build};
use altishift::plan::{Approved, Plan, approval};
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use sshd::{Sshd, altishift_binary};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const NAME: &str = "src-host";

/// A sparse source disk: data in `blocks`, explicit zeros (allocated, yet
/// zero) in `zero_blocks`, and a short last block.
fn source_disk(dir: &Path, blocks: &[u64], zero_blocks: &[u64]) -> PathBuf {
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

fn block_content(index: u64, version: u8) -> Vec<u8> {
    (0..BLOCK_SIZE as usize)
        .map(|i| ((i as u64 * 31 + index * 7 + u64::from(version) * 13) % 251) as u8)
        .collect()
}

fn settings(sshd: &Sshd, device: &Path, agent: AgentPolicy) -> SshSettings {
    SshSettings {
        target: sshd.target(),
        device: device.display().to_string(),
        instance_name: Some(NAME.into()),
        agent,
        agent_binary: Some(altishift_binary()),
        jurisdiction: Some("DE".into()),
    }
}

struct Lab {
    root: PathBuf,
}

impl Lab {
    fn new(dir: &Path) -> Lab {
        let root = dir.join("lab");
        altishift::cloud::lab::generate::init(
            &root,
            altishift::cloud::lab::generate::LabScale::Small,
        )
        .unwrap();
        Lab { root }
    }

    fn west(&self) -> Arc<dyn Cloud> {
        Arc::new(
            LabCloud::open("lab-west", &self.root.join("lab-west"), Some("DE".into())).unwrap(),
        )
    }

    fn disk_of(&self, name: &str) -> PathBuf {
        let dir = self.root.join("lab-west");
        let text =
            std::fs::read_to_string(dir.join("instances").join(format!("{name}.toml"))).unwrap();
        let manifest: altishift::cloud::lab::manifest::InstanceManifest =
            toml::from_str(&text).unwrap();
        dir.join(&manifest.disks[0].file)
    }
}

async fn plan_to_lab(source: &SshCloud, lab: &Lab) -> Approved {
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
        ..Request::default()
    };
    let throughput = Throughput {
        bytes_per_second: 100_000_000,
        basis: "test".into(),
    };
    let mut plan: Plan = build(&s, &t, &request, &throughput, "tester@localhost").unwrap();
    let short = plan.hash().short().to_string();
    approval::approve(&mut plan, &short, true, "tester@localhost").unwrap();
    approval::verify(plan).unwrap()
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
    }
}

/// Runs to the end; `on_progress(bytes_sent)` hears progress events.
async fn run(
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

fn same_bytes(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

async fn migrate(policy: AgentPolicy) {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let data = [0, 1, 2, 9, 30, 31, 47];
    let device = source_disk(dir.path(), &data, &[10, 11, 12]);
    let source = Arc::new(SshCloud::new("ssh-src", settings(&sshd, &device, policy)).unwrap());
    let lab = Lab::new(dir.path());
    let approved = plan_to_lab(&source, &lab).await;
    let report = run(
        approved,
        source.clone(),
        lab.west(),
        &dir.path().join("state"),
        EngineOptions::default(),
        |_| {},
    )
    .await;
    assert!(report.ok, "{report:#?}");
    let disk = &report.disks[0];
    assert_eq!(disk.source_digest, disk.target_digest);
    // Seven data blocks and the short last block; never a zero one.
    assert_eq!(disk.blocks_sent, data.len() as u64 + 1, "{disk:?}");
    assert!(disk.bytes_skipped.0 >= 3 * BLOCK_SIZE, "{disk:?}");
    assert!(
        same_bytes(&device, &lab.disk_of(NAME)),
        "the lab disk differs from the source"
    );
    for used in source.agent_dirs() {
        assert!(!Path::new(&used).exists(), "agent left behind in {used}");
    }
    if policy == AgentPolicy::Require {
        assert_eq!(source.agent_dirs().len(), 1, "the agent was used");
    } else {
        assert!(source.agent_dirs().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_to_lab_with_the_agent_is_byte_identical_and_removes_the_agent() {
    migrate(AgentPolicy::Require).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_to_lab_with_dd_is_byte_identical() {
    migrate(AgentPolicy::Never).await;
}

/// The agent never sends a zero block; every block it sends carries its digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_blocks_never_cross_the_wire() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let data = [3, 4, 20];
    let device = source_disk(dir.path(), &data, &[0, 1, 2, 5, 6]);
    let cloud = SshCloud::new("ssh-src", settings(&sshd, &device, AgentPolicy::Require)).unwrap();
    let reader = cloud.open_stream_reader().await.unwrap();
    let stats = reader.stats();
    let ranges = reader.allocated_blocks().await.unwrap();
    let mut nonzero = 0;
    for index in ranges.into_iter().flatten() {
        let block = reader.read_block(BlockIndex(index)).await.unwrap();
        if block.bytes.iter().any(|b| *b != 0) {
            nonzero += 1;
            assert!(
                block.provider_digest.is_some(),
                "block {index} has no digest"
            );
        }
    }
    assert_eq!(nonzero, data.len() + 1);
    assert_eq!(stats.data_blocks.load(Ordering::Relaxed), nonzero as u64);
    assert_eq!(
        stats.zero_blocks.load(Ordering::Relaxed),
        5,
        "the explicit zeros"
    );
    drop(reader);
    cloud.revoke().await.unwrap();
}

/// Connections killed mid-stream: the engine retries, the stream restarts at
/// the first block still wanted, and the copy is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_stream_is_retried_and_the_copy_is_whole() {
    let sshd = Arc::new(Sshd::start());
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u64> = (0..160).collect();
    let device = source_disk(dir.path(), &data, &[]);
    let source =
        Arc::new(SshCloud::new("ssh-src", settings(&sshd, &device, AgentPolicy::Require)).unwrap());
    let lab = Lab::new(dir.path());
    let approved = plan_to_lab(&source, &lab).await;
    let options = EngineOptions {
        throttle: Some(Bytes::mib(16)),
        retry: fast_retry(6),
        ..EngineOptions::default()
    };
    let killer = sshd.clone();
    let mut killed = false;
    let report = run(
        approved,
        source.clone(),
        lab.west(),
        &dir.path().join("state"),
        options,
        move |sent| {
            if !killed && sent >= 4 * BLOCK_SIZE {
                killed = killer.kill_connections() > 0;
            }
        },
    )
    .await;
    assert!(report.ok, "{report:#?}");
    let disk = &report.disks[0];
    // The break was noticed and the stream restarted: either inside the
    // reader (a request after the break restarts it) or by an engine retry
    // of a request that was waiting when it broke.
    let streams: u64 = source
        .reader_stats()
        .iter()
        .map(|s| s.streams.load(Ordering::Relaxed))
        .sum();
    assert!(streams >= 2, "the kill was not noticed: {disk:?}");
    assert_eq!(disk.source_digest, disk.target_digest);
    assert!(same_bytes(&device, &lab.disk_of(NAME)));
}

/// A run that fails mid-stream (no retries left) is resumed by the next run
/// from its journal: finished blocks are not read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_broken_mid_stream_resumes_from_the_journal() {
    let sshd = Arc::new(Sshd::start());
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u64> = (0..160).collect();
    let device = source_disk(dir.path(), &data, &[]);
    let state = dir.path().join("state");
    let lab = Lab::new(dir.path());
    let first =
        Arc::new(SshCloud::new("ssh-src", settings(&sshd, &device, AgentPolicy::Require)).unwrap());
    let approved = plan_to_lab(&first, &lab).await;
    let options = EngineOptions {
        throttle: Some(Bytes::mib(16)),
        retry: fast_retry(1),
        in_flight: Some(4),
        ..EngineOptions::default()
    };
    let killer = sshd.clone();
    let mut killed = false;
    let report = run(
        approved.clone(),
        first.clone(),
        lab.west(),
        &state,
        options,
        move |sent| {
            if !killed && sent >= 6 * BLOCK_SIZE {
                // The host goes away: reconnecting fails too.
                killer.stop();
                killed = true;
            }
        },
    )
    .await;
    assert!(!report.ok, "the broken run should fail: {report:#?}");
    let error = report.disks[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("connection") || error.contains("broke"),
        "{error}"
    );
    // The host is back. Revocation failed while it was away and is
    // repeated: the copied agent goes.
    sshd.restart();
    first.revoke().await.unwrap();
    for used in first.agent_dirs() {
        assert!(!Path::new(&used).exists(), "agent left behind in {used}");
    }
    // A new process, the same plan: resumes.
    let second =
        Arc::new(SshCloud::new("ssh-src", settings(&sshd, &device, AgentPolicy::Require)).unwrap());
    let report = run(
        approved,
        second.clone(),
        lab.west(),
        &state,
        EngineOptions::default(),
        |_| {},
    )
    .await;
    assert!(report.ok, "{report:#?}");
    let disk = &report.disks[0];
    assert!(disk.bytes_resumed.0 >= 6 * BLOCK_SIZE, "{disk:?}");
    assert!(
        disk.bytes_sent.0 + disk.bytes_resumed.0 <= 161 * BLOCK_SIZE + 4096,
        "blocks were sent twice: {disk:?}"
    );
    assert_eq!(disk.source_digest, disk.target_digest);
    assert!(same_bytes(&device, &lab.disk_of(NAME)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_named_clearly() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let device = source_disk(dir.path(), &[1], &[]);

    let mut s = settings(&sshd, &device, AgentPolicy::Require);
    s.target = sshd.target_wrong_host_key();
    let err = SshCloud::new("x", s)
        .unwrap()
        .inventory()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("host key verification failed"),
        "{err}"
    );
    assert!(!err.is_transient());

    let mut s = settings(&sshd, &device, AgentPolicy::Require);
    s.target = sshd.target_wrong_key();
    let err = SshCloud::new("x", s)
        .unwrap()
        .inventory()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("login refused"), "{err}");

    let missing = dir.path().join("no-such-disk");
    let cloud = SshCloud::new("x", settings(&sshd, &missing, AgentPolicy::Require)).unwrap();
    let err = cloud.inventory().await.unwrap_err();
    assert!(err.to_string().contains("no-such-disk"), "{err}");
    let err = cloud.open_stream_reader().await.err().unwrap();
    assert!(
        matches!(err, altishift::cloud::CloudError::NotFound(_)),
        "{err}"
    );
    cloud.revoke().await.unwrap();

    // Nothing listening: a lost connection, worth retrying.
    let port = sshd.port();
    drop(sshd);
    let mut s = settings(&Sshd::start(), &device, AgentPolicy::Require);
    s.target.options = vec![
        "-o".into(),
        format!("Port={port}"),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
    ];
    s.target.host = "127.0.0.1".into();
    let err = SshCloud::new("x", s)
        .unwrap()
        .inventory()
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
}

/// Cutover's quiesce step runs the operator's command (and its thaw).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiesce_and_thaw_run_the_operators_commands() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let device = source_disk(dir.path(), &[1], &[]);
    let cloud = SshCloud::new("q", settings(&sshd, &device, AgentPolicy::Never)).unwrap();
    let marker = dir.path().join("quiesced");
    let cap = plan_to_lab(&cloud, &Lab::new(dir.path()))
        .await
        .capability();
    let quiesced = cloud
        .quiesce(
            &cap,
            Some(&format!("touch {}", marker.display())),
            Some(&format!("rm {}", marker.display())),
        )
        .await
        .unwrap();
    assert!(marker.exists(), "the quiesce command did not run");
    cloud.thaw(&quiesced).await.unwrap();
    assert!(!marker.exists(), "the thaw command did not run");
    let err = cloud.quiesce(&cap, Some("exit 3"), None).await.unwrap_err();
    assert!(err.to_string().contains("exit 3"), "{err}");
}

/// Cutover's delta pass: after a first pass, blocks change on the source;
/// the agent compares digests on the host and only those blocks are sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_pass_sends_exactly_the_changed_blocks() {
    use altishift::engine::control::{DiskControl, DiskCounters};
    use altishift::engine::journal::Journal;
    use altishift::engine::pipeline::DiskTransfer;

    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u64> = (0..30).collect();
    let device = source_disk(dir.path(), &data, &[]);
    let source =
        Arc::new(SshCloud::new("ssh-src", settings(&sshd, &device, AgentPolicy::Require)).unwrap());
    let lab = Lab::new(dir.path());
    let state = dir.path().join("state");
    let approved = plan_to_lab(&source, &lab).await;
    let hash = approved.hash().0.clone();
    let report = run(
        approved,
        source.clone(),
        lab.west(),
        &state,
        EngineOptions::default(),
        |_| {},
    )
    .await;
    assert!(report.ok, "{report:#?}");
    let target = lab.disk_of(NAME);
    assert!(same_bytes(&device, &target));

    // The source keeps running: 3 blocks change, one new block gets data.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&device)
        .unwrap();
    let changed = [2u64, 17, 29, 40];
    for &b in &changed {
        file.write_all_at(&block_content(b, 2), b * BLOCK_SIZE)
            .unwrap();
    }
    drop(file);

    let (_, journal_state) =
        Journal::open(&engine::run_dir(&state, &hash).join("journal.jsonl")).unwrap();
    let key = format!("{NAME}/disk-0");
    let previous = journal_state.disk(&key).sent;
    let (reader, summary) = source.open_delta_reader(&previous).await.unwrap();
    assert_eq!(summary.changed, changed.to_vec());
    assert!(summary.zeroed.is_empty());
    let stats = reader.stats();

    let writer = RawFile(
        altishift::cloud::local_disk::SparseFileWriter::create_or_open(
            &target,
            Bytes(std::fs::metadata(&target).unwrap().len()),
        )
        .unwrap(),
    );
    let (journal, _) = Journal::open(&dir.path().join("delta.jsonl")).unwrap();
    let counters = DiskCounters::default();
    let control = DiskControl::default();
    DiskTransfer {
        key: &key,
        reader: &reader,
        writer: &writer,
        resume: &Default::default(),
        counters: &counters,
        control: &control,
        throttle: None,
        journal: &journal,
        retry: RetryPolicy::default(),
        in_flight: 8,
        checkpoint_every: Duration::from_secs(1),
    }
    .run()
    .await
    .unwrap();
    assert_eq!(
        DiskCounters::get(&counters.blocks_sent),
        changed.len() as u64,
        "the delta pass sent other blocks too"
    );
    assert_eq!(
        stats.data_blocks.load(Ordering::Relaxed),
        changed.len() as u64
    );
    assert!(same_bytes(&device, &target), "the target missed a change");
    source.revoke().await.unwrap();
}

/// The first pass's raw target, written in place by the delta pass.
struct RawFile(altishift::cloud::local_disk::SparseFileWriter);

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
        data: &[u8],
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

/// Benchmark, not a test (`cargo test --test ssh -- --ignored --nocapture bench`):
/// our stream vs `ssh host dd if=FILE bs=4M | cat > /dev/null` on the same
/// files in the same run, and a 1% delta pass vs a full pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures, asserts nothing about time"]
async fn bench_ssh_stream_vs_dd_baseline() {
    use futures::{StreamExt, TryStreamExt, stream};
    use std::time::Instant;

    fn fill(file: &std::fs::File, blocks: impl Iterator<Item = u64>, seed: u64) {
        let mut x = seed | 1;
        let mut buf = vec![0u8; BLOCK_SIZE as usize];
        for b in blocks {
            for chunk in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
            file.write_all_at(&buf, b * BLOCK_SIZE).unwrap();
        }
    }
    async fn read_all(reader: &dyn DiskReader) -> u64 {
        let ranges = reader.allocated_blocks().await.unwrap();
        stream::iter(ranges.into_iter().flatten())
            .map(|i| reader.read_block(BlockIndex(i)))
            .buffer_unordered(16)
            .try_fold(0u64, |n, b| async move { Ok(n + b.bytes.len() as u64) })
            .await
            .unwrap()
    }
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let cases = [("sparse", 2048u64, 256u64), ("dense", 512, 512)];
    for (label, virtual_mib, data_mib) in cases {
        let path = dir.path().join(format!("{label}.raw"));
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(virtual_mib << 20).unwrap();
        let blocks = (virtual_mib << 20) / BLOCK_SIZE;
        let data = (data_mib << 20) / BLOCK_SIZE;
        let step = blocks / data;
        fill(&file, (0..data).map(|i| i * step), 7);
        file.sync_all().unwrap();
        drop(file);
        let _ = std::fs::read(&path); // warm the page cache for both sides

        let t = Instant::now();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ssh {} dd if={} bs=4M status=none | cat > /dev/null",
                sshd.ssh_args().join(" "),
                path.display()
            ))
            .status()
            .unwrap();
        assert!(status.success());
        let baseline = t.elapsed().as_secs_f64();

        let mut results = Vec::new();
        for policy in [AgentPolicy::Require, AgentPolicy::Never] {
            let cloud = SshCloud::new("b", settings(&sshd, &path, policy)).unwrap();
            let t = Instant::now();
            cloud.stream_mode().await.unwrap();
            let setup = t.elapsed().as_secs_f64();
            let reader = cloud.open_stream_reader().await.unwrap();
            let t = Instant::now();
            let bytes = read_all(&reader).await;
            let took = t.elapsed().as_secs_f64();
            let wire = reader.stats().data_bytes.load(Ordering::Relaxed);
            drop(reader);
            cloud.revoke().await.unwrap();
            results.push((policy, setup, took, bytes, wire));
        }
        println!(
            "{label}: {virtual_mib} MiB virtual, {data_mib} MiB data | baseline ssh dd|cat {baseline:.2}s ({:.0} MiB/s of virtual)",
            virtual_mib as f64 / baseline
        );
        for (policy, setup, took, bytes, wire) in results {
            println!(
                "  {policy:?}: setup {setup:.2}s, stream {took:.2}s, {:.0} MiB scanned, {:.0} MiB on the wire, ratio baseline/ours {:.2}",
                mib(bytes),
                mib(wire),
                baseline / took
            );
        }
    }

    // Delta: 1% of the dense file's blocks change; digests pass + changed blocks vs full.
    let path = dir.path().join("dense.raw");
    let cloud = SshCloud::new("b", settings(&sshd, &path, AgentPolicy::Require)).unwrap();
    let content = std::fs::read(&path).unwrap();
    let previous: std::collections::BTreeMap<BlockIndex, altishift::block::BlockDigest> = content
        .chunks(BLOCK_SIZE as usize)
        .enumerate()
        .map(|(i, c)| (BlockIndex(i as u64), altishift::block::BlockDigest::of(c)))
        .collect();
    let total = previous.len() as u64;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    fill(&file, (0..total).step_by(100), 99);
    drop(file);
    let t = Instant::now();
    let full = cloud.open_stream_reader().await.unwrap();
    read_all(&full).await;
    let full_time = t.elapsed().as_secs_f64();
    drop(full);
    let t = Instant::now();
    let (delta, summary) = cloud.open_delta_reader(&previous).await.unwrap();
    read_all(&delta).await;
    let delta_time = t.elapsed().as_secs_f64();
    println!(
        "delta: {} of {total} blocks changed; delta pass {delta_time:.2}s vs full pass {full_time:.2}s (ratio {:.2}), {:.1} MiB vs {:.0} MiB on the wire",
        summary.changed.len(),
        full_time / delta_time,
        mib(delta.stats().data_bytes.load(Ordering::Relaxed)),
        mib(total * BLOCK_SIZE)
    );
    drop(delta);
    cloud.revoke().await.unwrap();
}
