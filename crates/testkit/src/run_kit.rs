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
