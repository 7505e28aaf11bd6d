//! What every provider's tests do with a plan: approve it as an operator
//! would, and run it through the engine to its report.

#![allow(dead_code)]

use altishift::cloud::Cloud;
use altishift::engine::{self, EngineOptions, RunReport};
use altishift::plan::build::Throughput;
use altishift::plan::{Approved, Plan, approval};
use std::path::Path;
use std::sync::Arc;

/// Approves a plan by its short hash, as an operator does who read it and
/// acknowledged its cross-border transfer and lossy configuration (targets
/// that create no configuration yet list every part as lossy).
pub fn approve(mut plan: Plan) -> Approved {
    let short = plan.hash().short().to_string();
    let acks = approval::Acks {
        cross_border: true,
        lossy: true,
    };
    approval::approve_with(&mut plan, &short, acks, "tester@localhost").unwrap();
    approval::verify(plan).unwrap()
}

/// The time estimate's basis in tests (it changes no behaviour).
pub fn throughput() -> Throughput {
    Throughput {
        bytes_per_second: 100_000_000,
        basis: "test".into(),
    }
}

/// Runs an approved plan through the engine to its report.
pub async fn run(
    approved: Approved,
    source: Arc<dyn Cloud>,
    target: Arc<dyn Cloud>,
    state: &Path,
) -> RunReport {
    let handle = engine::start(approved, source, target, state, EngineOptions::default()).unwrap();
    let mut events = handle.events;
    let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
    let outcome = handle.done.await.unwrap().unwrap();
    drain.abort();
    outcome.report
}

/// What `altishift plan` records for a plan's guests (inspected now, or
/// during the run), without `--unprepared`.
pub async fn preparation_of(
    plan: &Plan,
    source: &dyn Cloud,
    target: &dyn Cloud,
) -> altishift::plan::preparation::Preparation {
    altishift::preparation::plan_preparation(
        source.source_role().unwrap(),
        target.target_role().unwrap(),
        plan,
        false,
    )
    .await
    .unwrap()
}

/// A disk image's guest, as libguestfs sees it, in the format `qemu-img`
/// finds (a cloud's stored volume may be raw or qcow2).
pub fn inspect_stored(path: &Path) -> altishift::guest::inspect::Inspection {
    use altishift::inventory::DiskFormat;
    let out = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let format = match info["format"].as_str().unwrap() {
        "qcow2" => DiskFormat::Qcow2,
        "raw" => DiskFormat::Raw,
        other => panic!("{} is stored as {other}", path.display()),
    };
    altishift::guest::inspect::inspect(path, format).unwrap()
}

/// A file's SHA-256 (to show a run left a source untouched).
pub fn sha256(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}
