//! Benchmark of the SSH source (ignored: it measures, it asserts nothing
//! about time). Run in the dev profile:
//! `cargo test --test ssh_bench -- --ignored --nocapture`.

use altishift_testkit::ssh_kit;
use altishift_testkit::sshd;

use altishift::cloud::ssh::{AgentPolicy, SshCloud};
use altishift::cloud::{Cloud, DiskReader};
use altishift::units::{BLOCK_SIZE, BlockIndex};
use ssh_kit::settings;
use sshd::Sshd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

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
    // The agent is copied once per host; neither pass pays for it here.
    let t = Instant::now();
    cloud.stream_mode().await.unwrap();
    let install = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let full = cloud.open_stream_reader().await.unwrap();
    read_all(&full).await;
    let full_time = t.elapsed().as_secs_f64();
    drop(full);
    let t = Instant::now();
    let (delta, summary) = cloud.open_delta_stream(&previous).await.unwrap();
    let scan = t.elapsed().as_secs_f64();
    read_all(&delta).await;
    let delta_time = t.elapsed().as_secs_f64();
    println!(
        "delta: {} of {total} blocks changed; delta pass {delta_time:.2}s (digest scan {scan:.2}s) vs full pass {full_time:.2}s: ratio full/delta {:.2}; {:.1} MiB vs {:.0} MiB on the wire (agent copy {install:.2}s, {:.0} MiB binary, not counted)",
        summary.changed.len(),
        full_time / delta_time,
        mib(delta.stats().data_bytes.load(Ordering::Relaxed)),
        mib(total * BLOCK_SIZE),
        mib(std::fs::metadata(sshd::agent_binary()).unwrap().len())
    );
    drop(delta);
    cloud.revoke().await.unwrap();
}
