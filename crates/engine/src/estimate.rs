//! Measured throughput, kept between runs so a plan's time estimate comes
//! from this machine and these clouds rather than a guess.

use super::report::RunReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Assumed when nothing was measured yet between two clouds.
pub const ASSUMED_BYTES_PER_SECOND: u64 = 100_000_000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Measurements {
    /// `source->target` → bytes per second of the last successful run.
    routes: BTreeMap<String, u64>,
}

fn path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("throughput.json")
}

/// Throughput for a route and where the figure comes from.
pub fn lookup(state_dir: &Path, source: &str, target: &str) -> crate::plan::build::Throughput {
    let measured = std::fs::read(path(state_dir))
        .ok()
        .and_then(|data| serde_json::from_slice::<Measurements>(&data).ok())
        .and_then(|m| m.routes.get(&format!("{source}->{target}")).copied());
    match measured {
        Some(rate) => crate::plan::build::Throughput {
            bytes_per_second: rate,
            basis: format!(
                "measured {:.0} MB/s on the last {source} → {target} run",
                rate as f64 / 1e6
            ),
        },
        None => crate::plan::build::Throughput {
            bytes_per_second: ASSUMED_BYTES_PER_SECOND,
            basis: format!(
                "assumed {} MB/s (no run measured yet)",
                ASSUMED_BYTES_PER_SECOND / 1_000_000
            ),
        },
    }
}

/// Records a finished run's aggregate rate (best effort: a failure here only
/// makes the next estimate less informed).
pub fn record(state_dir: &Path, report: &RunReport) {
    let sent = report.total_sent().0;
    if sent == 0 || report.duration_ms == 0 {
        return;
    }
    let rate = sent * 1000 / report.duration_ms;
    let mut measurements = std::fs::read(path(state_dir))
        .ok()
        .and_then(|data| serde_json::from_slice::<Measurements>(&data).ok())
        .unwrap_or_default();
    measurements
        .routes
        .insert(format!("{}->{}", report.source, report.target), rate);
    if let Ok(data) = serde_json::to_vec_pretty(&measurements) {
        let _ = crate::fsutil::write_atomic(&path(state_dir), &data);
    }
}
