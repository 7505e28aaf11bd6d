//! Benchmark of the Google Cloud target's disk stream (ignored by default):
//! our sparse tar + parallel gzip + resumable upload against GNU tar | gzip
//! and curl into the same Cloud Storage emulator.

use altishift_testkit::gce_fake;

use altishift::block::BlockDigest;
use altishift::cloud::{Target, TargetDiskSpec};
use altishift::inventory::DiskFormat;
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use gce_fake::testkit::*;

/// Benchmark, not a test (`cargo test --test gcp_bench -- --ignored --nocapture`):
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
    // The writer logs the phases of finish (upload end + compose, check, import).
    let _ = tracing_subscriber::fmt()
        .with_env_filter("altishift::cloud::gcp=info")
        .with_test_writer()
        .try_init();
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
    let mut cloud = gcp.cloud();
    // Knobs for profiling: upload chunk (MiB), gzip threads and level.
    cloud.upload_chunk = (env(
        "ALTISHIFT_BENCH_CHUNK_MIB",
        (cloud.upload_chunk >> 20) as u64,
    ) << 20) as usize;
    cloud.compress_threads = env("ALTISHIFT_BENCH_THREADS", cloud.compress_threads as u64) as usize;
    cloud.gzip_level = env("ALTISHIFT_BENCH_LEVEL", u64::from(cloud.gzip_level)) as u32;
    let spec = TargetDiskSpec {
        name: "bench-disk0".into(),
        virtual_size: Bytes(virtual_size),
        format: DiskFormat::Raw,
        region: ZONE.into(),
        boot: true,
        resume: None,
        platform: Default::default(),
    };
    // Ours: blocks read from the file, streamed, compressed, uploaded.
    let started = std::time::Instant::now();
    let writer = cloud.open_disk_writer(&capability(), &spec).await.unwrap();
    let source = std::fs::File::open(&raw).unwrap();
    let mut buf = vec![0u8; BLOCK_SIZE as usize];
    for &i in &blocks {
        source.read_exact_at(&mut buf, i * BLOCK_SIZE).unwrap();
        writer
            .write_block(BlockIndex(i), buf.to_vec().into(), BlockDigest::of(&buf))
            .await
            .unwrap();
    }
    writer.flush().await.unwrap();
    let streamed = started.elapsed();
    // When the composed archive appears in the bucket (the point the
    // baseline ends at; the read-back check and the import follow).
    let list_url = format!("{}/storage/v1/b/{BUCKET}/o", gcp.emulator.base_url);
    let watch = tokio::spawn(async move {
        loop {
            let listed = reqwest::get(&list_url).await.unwrap().text().await.unwrap();
            if listed.contains("disk.tar.gz") {
                return started.elapsed();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    writer.finish(blocks.len() as u64).await.unwrap();
    let ours_total = started.elapsed();
    let composed = watch.await.unwrap();
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
    // Our tar+gzip stream alone, no upload and no block digests: the same
    // sparse map, header, 8 MiB members compressed by as many threads as
    // the writer uses, at its level, written in order to a sink.
    let started = std::time::Instant::now();
    let ours_stream_bytes = stream_alone(&raw, &blocks, virtual_size, &cloud);
    let ours_stream = started.elapsed();
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
        "ours: chunk {} MiB, {} gzip threads, level {}",
        cloud.upload_chunk >> 20,
        cloud.compress_threads,
        cloud.gzip_level
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
        "end to end (archive in the bucket): ours {:.2} s vs baseline {:.2} s: ratio {:.2}x",
        composed.as_secs_f64(),
        baseline.as_secs_f64(),
        baseline.as_secs_f64() / composed.as_secs_f64()
    );
    println!(
        "stream alone: ours {:.2} s ({} bytes, {} threads, level {}) vs tar -S | gzip -1 {:.2} s: ratio {:.2}x",
        ours_stream.as_secs_f64(),
        ours_stream_bytes,
        cloud.compress_threads,
        cloud.gzip_level,
        baseline_local.as_secs_f64(),
        baseline_local.as_secs_f64() / ours_stream.as_secs_f64()
    );
    println!(
        "ratio baseline/ours (streaming part): {:.2}x; (ours incl. verify+import): {:.2}x",
        baseline.as_secs_f64() / streamed.as_secs_f64(),
        baseline.as_secs_f64() / ours_total.as_secs_f64()
    );
}

/// Our archive stream without the upload: returns its size in bytes.
fn stream_alone(
    raw: &std::path::Path,
    blocks: &[u64],
    virtual_size: u64,
    cloud: &altishift::cloud::gcp::GcpCloud,
) -> u64 {
    use altishift::cloud::gcp::tar;
    use std::os::unix::fs::FileExt as _;
    let member_blocks = (8usize << 20) / BLOCK_SIZE as usize;
    let batches: Vec<&[u64]> = blocks.chunks(member_blocks).collect();
    let threads = cloud.compress_threads.max(1);
    let level = cloud.gzip_level;
    let file = std::fs::File::open(raw).unwrap();
    let mut map = tar::SparseMap::default();
    for &i in blocks {
        map.push(i * BLOCK_SIZE, BLOCK_SIZE);
    }
    let head = tar::gzip_member(
        &tar::sparse_header("disk.raw", tar::round_up_gib(virtual_size), &map, 0),
        level,
    );
    let tail = tar::gzip_member(&tar::trailer(map.stored()), level);
    // Members in order: thread t compresses batches t, t+n, t+2n…; the
    // sink takes them in sequence as the writer's upload does.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
    let mut total = (head.len() + tail.len()) as u64;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let tx = tx.clone();
            let (batches, file) = (&batches, &file);
            scope.spawn(move || {
                for (n, batch) in batches.iter().enumerate().skip(t).step_by(threads) {
                    let mut data = vec![0u8; batch.len() * BLOCK_SIZE as usize];
                    for (k, &i) in batch.iter().enumerate() {
                        let at = k * BLOCK_SIZE as usize;
                        file.read_exact_at(&mut data[at..at + BLOCK_SIZE as usize], i * BLOCK_SIZE)
                            .unwrap();
                    }
                    tx.send((n, tar::gzip_member(&data, level))).unwrap();
                }
            });
        }
        drop(tx);
        let mut next = 0;
        let mut waiting = std::collections::BTreeMap::new();
        let mut sink = std::io::sink();
        for (n, member) in rx {
            waiting.insert(n, member);
            while let Some(member) = waiting.remove(&next) {
                std::io::Write::write_all(&mut sink, &member).unwrap();
                total += member.len() as u64;
                next += 1;
            }
        }
    });
    total
}
