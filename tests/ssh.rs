//! The SSH source against a real sshd on loopback: migrations to the lab are
//! byte-identical with the agent and with the `dd` fallback, zero blocks never
//! cross the wire, a dropped connection is retried and a failed run resumes
//! from its journal, a delta pass sends exactly the changed blocks, and
//! failures have clear messages.

use altishift_testkit::ssh_kit;
use altishift_testkit::sshd;

use altishift::cloud::ssh::{AgentPolicy, SshCloud};
use altishift::cloud::{Cloud, DiskReader};
use altishift::engine::{self, EngineOptions, RetryPolicy};
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use ssh_kit::*;
use sshd::Sshd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

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
        .quiesce_guest(
            &cap,
            Some(&format!("touch {}", marker.display())),
            Some(&format!("rm {}", marker.display())),
        )
        .await
        .unwrap();
    assert!(marker.exists(), "the quiesce command did not run");
    cloud.thaw_guest(&quiesced).await.unwrap();
    assert!(!marker.exists(), "the thaw command did not run");
    let err = cloud
        .quiesce_guest(&cap, Some("exit 3"), None)
        .await
        .unwrap_err();
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
    let (reader, summary) = source.open_delta_stream(&previous).await.unwrap();
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
        budget: None,
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

/// sudo that wants a password, end to end: a `sudo` first on the remote PATH
/// answers as `sudo -n` does then; the error names the host and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_asking_for_a_password_names_the_host_and_the_fix() {
    let shims = tempfile::tempdir().unwrap();
    let sudo = shims.path().join("sudo");
    std::fs::write(
        &sudo,
        "#!/bin/sh\n# sudo -n, when the sudoers entry needs a password\n\
         echo 'sudo: a password is required' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sshd = Sshd::start_with_path_first(shims.path());
    let dir = tempfile::tempdir().unwrap();
    let device = source_disk(dir.path(), &[1], &[]);

    let mut s = settings(&sshd, &device, AgentPolicy::Auto);
    s.target.sudo = true;
    let cloud = SshCloud::new("needs-password", s).unwrap();
    let err = cloud.inventory().await.unwrap_err();
    assert!(
        matches!(err, altishift::cloud::CloudError::Auth(_)),
        "{err}"
    );
    let text = err.to_string();
    for needed in [
        sshd::HOST,
        "asks for a password",
        "NOPASSWD",
        "sudo = false",
    ] {
        assert!(text.contains(needed), "'{needed}' missing: {text}");
    }
    assert!(!err.is_transient(), "retrying cannot help: {err}");
    // The reader says the same (it checks sudo before touching the device).
    let err = cloud.open_stream_reader().await.err().unwrap();
    assert!(err.to_string().contains("NOPASSWD"), "{err}");

    // Without sudo the same host works: the shim was the only obstacle.
    let cloud = SshCloud::new("no-sudo", settings(&sshd, &device, AgentPolicy::Auto)).unwrap();
    assert_eq!(cloud.inventory().await.unwrap().instances.len(), 1);
    cloud.revoke().await.unwrap();
}
