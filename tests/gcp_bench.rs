//! Benchmark of the Google Cloud target's disk stream (ignored by default):
//! our sparse tar + parallel gzip + resumable upload against GNU tar | gzip
//! and curl into the same Cloud Storage emulator.

#[path = "support/gce_fake/mod.rs"]
mod gce_fake;

use altishift::block::BlockDigest;
use altishift::cloud::{Cloud, TargetDiskSpec};
use altishift::inventory::DiskFormat;
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use gce_fake::testkit::*;

/// Benchmark, not a test (`cargo test --test gcp bench -- --ignored --nocapture`):
/// our sparse tar.gz stream + resumable upload against
/// `tar --format=oldgnu -Scf - | gzip -1 > file; curl -T file` of the same disk, both
/// into the same emulator. Size from ALTISHIFT_BENCH_GIB (virtual, default 4)
/// and ALTISHIFT_BENCH_ALLOC_MIB (allocated, default 512); half the
/// allocated blocks are random, half compressible text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_tar_gz_upload_against_gnu_tar_gzip_curl() {
    use std::os::unix::fs::FileExt as _;
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let virtual_size = env("ALTISHIFT_BENCH_GIB", 4) << 30;
    let allocated_blocks = (env("ALTISHIFT_BENCH_ALLOC_MIB", 512) << 20) / BLOCK_SIZE;
    let gcp = Gcp::start().await;
    let dir = gcp.dir.path();
    let raw = dir.join("disk.raw");
    let file = std::fs::File::create(&raw).unwrap();
    file.set_len(virtual_size).unwrap();
    // Eight extents spread over the disk.
    let total_blocks = virtual_size / BLOCK_SIZE;
    let per_extent = allocated_blocks / 8;
    let mut blocks = Vec::new();
    for e in 0..8 {
        let start = e * (total_blocks / 8);
        blocks.extend(start..start + per_extent);
    }
    let text: Vec<u8> = (0..BLOCK_SIZE)
        .map(|i| b"altishift moves disks between clouds; "[(i % 38) as usize])
        .collect();
    let content = |i: u64| {
        if i.is_multiple_of(2) {
            block(i)
        } else {
            text.clone()
        }
    };
    for &i in &blocks {
        file.write_all_at(&content(i), i * BLOCK_SIZE).unwrap();
    }
    drop(file);
    let cloud = gcp.cloud();
    let spec = TargetDiskSpec {
        name: "bench-disk0".into(),
        virtual_size: Bytes(virtual_size),
        format: DiskFormat::Raw,
        region: ZONE.into(),
        boot: true,
        resume: None,
    };
    // Ours: blocks read from the file, streamed, compressed, uploaded.
    let started = std::time::Instant::now();
    let writer = cloud.open_disk_writer(&capability(), &spec).await.unwrap();
    let source = std::fs::File::open(&raw).unwrap();
    let mut buf = vec![0u8; BLOCK_SIZE as usize];
    for &i in &blocks {
        source.read_exact_at(&mut buf, i * BLOCK_SIZE).unwrap();
        writer
            .write_block(BlockIndex(i), &buf, BlockDigest::of(&buf))
            .await
            .unwrap();
    }
    writer.flush().await.unwrap();
    let streamed = started.elapsed();
    writer.finish(blocks.len() as u64).await.unwrap();
    let ours_total = started.elapsed();
    let archive = gcp
        .objects()
        .await
        .into_iter()
        .find(|o| o.ends_with("disk.tar.gz"))
        .unwrap();
    let ours_bytes = gcp.object(&archive).await.len();
    // Baseline: GNU tar + gzip -1 + curl into the same emulator.
    let started = std::time::Instant::now();
    let url = format!(
        "{}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=baseline.tar.gz",
        gcp.emulator.base_url
    );
    // curl needs the length up front (the emulator speaks HTTP/1.0, no
    // chunked bodies) and --data-binary would hold it all in memory: the
    // baseline goes through a file, as a shell pipeline to GCS would.
    let script = format!(
        "tar --format=oldgnu -Scf - disk.raw | gzip -1 > baseline.tar.gz && \
         curl -sf -X POST -H 'content-type: application/gzip' -T baseline.tar.gz '{url}' >/dev/null && \
         rm baseline.tar.gz"
    );
    sh("bash", &["-o", "pipefail", "-c", &script], dir);
    let baseline = started.elapsed();
    let baseline_bytes = gcp.object("baseline.tar.gz").await.len();
    // Compression alone, no upload, for both.
    let started = std::time::Instant::now();
    sh(
        "bash",
        &[
            "-o",
            "pipefail",
            "-c",
            "tar --format=oldgnu -Scf - disk.raw | gzip -1 >/dev/null",
        ],
        dir,
    );
    let baseline_local = started.elapsed();
    println!(
        "disk: {} GiB virtual, {} MiB allocated ({} blocks, half random)",
        virtual_size >> 30,
        (blocks.len() as u64 * BLOCK_SIZE) >> 20,
        blocks.len()
    );
    println!(
        "ours: streamed+uploaded {:.2} s, with compose+verify+import {:.2} s, object {} bytes",
        streamed.as_secs_f64(),
        ours_total.as_secs_f64(),
        ours_bytes
    );
    println!(
        "baseline tar -S | gzip -1 > file; curl -T: {:.2} s, object {} bytes; tar | gzip -1 alone {:.2} s",
        baseline.as_secs_f64(),
        baseline_bytes,
        baseline_local.as_secs_f64()
    );
    println!(
        "ratio baseline/ours (streaming part): {:.2}x; (ours incl. verify+import): {:.2}x",
        baseline.as_secs_f64() / streamed.as_secs_f64(),
        baseline.as_secs_f64() / ours_total.as_secs_f64()
    );
}
