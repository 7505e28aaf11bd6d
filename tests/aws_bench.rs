//! Benchmark, not a test (ignored): the EBS direct path of our AWS provider
//! against a sequential boto3 loop doing the same PutSnapshotBlock /
//! GetSnapshotBlock calls, through moto, on loopback and behind a
//! per-request delay proxy (a region across the internet).
//!
//! `cargo test --test aws_bench -- --ignored --nocapture`
//! ALTI_BENCH_BLOCKS (default 2048 = 1 GiB) blocks each way;
//! ALTI_BENCH_DELAYS (default `0,30`, milliseconds per request);
//! ALTI_BENCH_IN_FLIGHT (default `1,16,32,64`).
//!
//! lab → aws is our writer (StartSnapshot, PutSnapshotBlock in parallel,
//! CompleteSnapshot); aws → lab is our reader (ListSnapshotBlocks,
//! GetSnapshotBlock in parallel, each block's SHA-256 checked). Each run
//! (the baseline, then each in-flight setting) gets a fresh moto: moto keeps
//! every block in memory, and a server already holding gigabytes is slower.

use altishift_testkit::aws_kit as kit;
use altishift_testkit::moto;

use altishift::cloud::aws::AwsCloud;
use altishift::secret::Secret;
use altishift::units::BLOCK_SIZE;
use kit::*;
use moto::{ACCESS_KEY, DelayProxy, Moto, SECRET_KEY};
use std::time::Duration;

fn list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// moto, and a delay proxy in front of it when `delay_ms` > 0.
fn server(delay_ms: u64) -> (Moto, Option<DelayProxy>, String) {
    let moto = Moto::start();
    let proxy =
        (delay_ms > 0).then(|| DelayProxy::start(moto.port, Duration::from_millis(delay_ms)));
    let endpoint = proxy
        .as_ref()
        .map_or(moto.endpoint.clone(), |p| p.endpoint.clone());
    (moto, proxy, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_ebs_direct_against_a_sequential_boto3_loop() {
    let blocks = list("ALTI_BENCH_BLOCKS", "2048")
        .first()
        .copied()
        .unwrap_or(2048);
    let mib = (blocks * BLOCK_SIZE) as f64 / (1 << 20) as f64;
    let mut summary = Vec::new();
    for delay_ms in list("ALTI_BENCH_DELAYS", "0,30") {
        let (moto, proxy, endpoint) = server(delay_ms);
        let out = std::process::Command::new(moto::venv_python())
            .args(["-c", BOTO3_BASELINE, &endpoint, &blocks.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop((proxy, moto));
        let base: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (bw, br) = (
            base["write"].as_f64().unwrap(),
            base["read"].as_f64().unwrap(),
        );
        println!(
            "delay {delay_ms} ms, {blocks} blocks ({mib:.0} MiB): boto3 sequential write {:.1} MiB/s ({bw:.2} s), read {:.1} MiB/s ({br:.2} s)",
            mib / bw,
            mib / br
        );
        for in_flight in list("ALTI_BENCH_IN_FLIGHT", "1,16,32,64") {
            let (moto, proxy, endpoint) = server(delay_ms);
            let mut p = profile(&moto, "us-east-1");
            p.endpoint = Some(endpoint.clone());
            let mut prompt = |label: &str| {
                Some(Secret::new(if label.contains("secret") {
                    SECRET_KEY.into()
                } else {
                    ACCESS_KEY.into()
                }))
            };
            let cloud = AwsCloud::from_profile("aws-bench", &p, &mut prompt)
                .await
                .unwrap();
            let (w, r) = ours(&cloud, blocks, in_flight as usize).await;
            drop((cloud, proxy, moto));
            println!(
                "delay {delay_ms} ms, in flight {in_flight:>2}: lab→aws {:.1} MiB/s ({w:.2} s, {:.2}x boto3), aws→lab {:.1} MiB/s ({r:.2} s, {:.2}x boto3)",
                mib / w,
                bw / w,
                mib / r,
                br / r
            );
            summary.push((delay_ms, in_flight, bw / w, br / r));
        }
    }
    println!("\nratio to the sequential boto3 loop (write / read):");
    for (delay, in_flight, w, r) in summary {
        println!("  delay {delay:>3} ms  in flight {in_flight:>2}:  {w:5.2}x / {r:5.2}x");
    }
}
