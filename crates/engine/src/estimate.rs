//! Measured throughput, kept between runs so a plan's time estimate comes
//! from this machine and these clouds rather than a guess.

use super::event::PassKind;
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
    /// `source->target` → bytes per second the source wrote during the last
    /// cutover (see [`change_rate_of`]).
    #[serde(default)]
    change_rates: BTreeMap<String, u64>,
}

/// How fast a cutover's source changed: per disk, what its final pass sent
/// was written while the pass before it ran (the final pass reads what
/// changed since); the disks' rates add up (they run side by side). None
/// without a final pass that followed another pass.
pub fn change_rate_of(report: &RunReport) -> Option<u64> {
    let mut rates = report.disks.iter().filter_map(|disk| {
        let at = disk.passes.iter().position(|p| p.kind == PassKind::Final)?;
        let before = disk.passes.get(at.checked_sub(1)?)?;
        let last = &disk.passes[at];
        Some(last.bytes_sent * 1000 / before.elapsed_ms.max(1))
    });
    let first = rates.next()?;
    Some(first + rates.sum::<u64>())
}

/// The change rate the last cutover on a route measured, for a plan.
pub fn change_rate(
    state_dir: &Path,
    source: &str,
    target: &str,
) -> Option<crate::plan::ChangeRate> {
    let rate = std::fs::read(path(state_dir))
        .ok()
        .and_then(|data| serde_json::from_slice::<Measurements>(&data).ok())
        .and_then(|m| m.change_rates.get(&format!("{source}->{target}")).copied())?;
    Some(crate::plan::ChangeRate {
        bytes_per_second: rate,
        basis: format!("measured on the last {source} → {target} cutover"),
    })
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
    let route = format!("{}->{}", report.source, report.target);
    if let Some(changes) = change_rate_of(report) {
        measurements.change_rates.insert(route.clone(), changes);
    }
    measurements.routes.insert(route, rate);
    if let Ok(data) = serde_json::to_vec_pretty(&measurements) {
        let _ = crate::fsutil::write_atomic(&path(state_dir), &data);
    }
}

/// What the final pass of a cutover disk may send and take, projected from
/// its passes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalProjection {
    pub bytes: u64,
    pub ms: u64,
}

/// Projects the final pass from a disk's finished passes (kind, bytes
/// sent, milliseconds), once a delta pass has measured how fast the disk
/// changes: the next delta shrinks as the last one did (never grows past
/// it, since the final pass also holds no more than a delta's worth of
/// writes); its time follows the line through the last two deltas (a fixed
/// cost per pass, such as a snapshot, plus a cost per byte), or the last
/// delta's time scaled by bytes when one delta is all there is. None before
/// the first delta pass and once the final pass ran.
pub fn project_final(passes: &[(PassKind, u64, u64)]) -> Option<FinalProjection> {
    if passes.iter().any(|(kind, _, _)| *kind == PassKind::Final) {
        return None;
    }
    let deltas: Vec<(u64, u64)> = passes
        .iter()
        .filter(|(kind, _, _)| *kind == PassKind::Delta)
        .map(|&(_, bytes, ms)| (bytes, ms))
        .collect();
    let &(last_bytes, last_ms) = deltas.last()?;
    let Some(&(prev_bytes, prev_ms)) = deltas.len().checked_sub(2).and_then(|i| deltas.get(i))
    else {
        return Some(FinalProjection {
            bytes: last_bytes,
            ms: last_ms,
        });
    };
    let bytes = if prev_bytes == 0 || last_bytes >= prev_bytes {
        last_bytes
    } else {
        (u128::from(last_bytes) * u128::from(last_bytes) / u128::from(prev_bytes)) as u64
    };
    let scaled = if last_bytes == 0 {
        last_ms
    } else {
        (u128::from(last_ms) * u128::from(bytes) / u128::from(last_bytes)) as u64
    };
    // The line through the two deltas, when it has a fixed part and a slope.
    let ms = if last_bytes != prev_bytes {
        let slope = (last_ms as f64 - prev_ms as f64) / (last_bytes as f64 - prev_bytes as f64);
        let fixed = last_ms as f64 - slope * last_bytes as f64;
        if slope >= 0.0 && fixed >= 0.0 {
            (fixed + slope * bytes as f64).round() as u64
        } else {
            scaled
        }
    } else {
        last_ms
    };
    Some(FinalProjection { bytes, ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use PassKind::*;

    /// A report whose disks made these passes (kind, bytes, ms).
    fn report(disks: &[&[(PassKind, u64, u64)]]) -> RunReport {
        let disks: Vec<serde_json::Value> = disks
            .iter()
            .enumerate()
            .map(|(n, passes)| {
                let passes: Vec<serde_json::Value> = passes
                    .iter()
                    .enumerate()
                    .map(|(i, (kind, bytes, ms))| {
                        serde_json::json!({"pass": i + 1, "kind": kind, "blocks_sent": 1,
                            "bytes_sent": bytes, "elapsed_ms": ms})
                    })
                    .collect();
                serde_json::json!({"disk": format!("vm/d{n}"), "status": "done",
                    "virtual_size": 0, "allocated": 0, "bytes_scanned": 0, "bytes_skipped": 0,
                    "bytes_sent": 0, "bytes_resumed": 0, "blocks_sent": 0, "retries": 0,
                    "duration_ms": 0, "average_mb_s": 0.0, "peak_mb_s": 0.0,
                    "source_digest": null, "target_digest": null, "error": null,
                    "passes": passes})
            })
            .collect();
        serde_json::from_value(serde_json::json!({"run_id": "r", "plan_hash": "h",
            "operator": "o", "source": "a", "target": "b", "started_at": "",
            "finished_at": "", "duration_ms": 1, "ok": true, "resumed": false,
            "cross_border": null, "disks": disks, "instances": [], "cleanup": [],
            "revoked": [], "access_kept": false}))
        .unwrap()
    }

    #[test]
    fn a_cutover_measures_the_change_rate_over_the_pass_before_the_final() {
        assert_eq!(change_rate_of(&report(&[&[(Full, 1 << 30, 10_000)]])), None);
        // 2 MB written while the 4 s delta ran; the other disk 1 MB in 1 s.
        let both = report(&[
            &[
                (Full, 1 << 30, 10_000),
                (Delta, 8_000_000, 4_000),
                (Final, 2_000_000, 500),
            ],
            &[(Full, 1 << 20, 1_000), (Final, 1_000_000, 100)],
        ]);
        assert_eq!(change_rate_of(&both), Some(500_000 + 1_000_000));
    }

    #[test]
    fn the_final_pass_is_projected_from_the_deltas() {
        assert_eq!(project_final(&[(Full, 1 << 30, 40_000)]), None);
        // One delta: the next is assumed as large and as long.
        assert_eq!(
            project_final(&[(Full, 1 << 30, 40_000), (Delta, 100, 900)]),
            Some(FinalProjection {
                bytes: 100,
                ms: 900
            })
        );
        // 400 → 200 bytes: 100 next; 500 ms fixed + 1 ms per byte.
        assert_eq!(
            project_final(&[
                (Full, 1 << 30, 40_000),
                (Delta, 400, 900),
                (Delta, 200, 700)
            ]),
            Some(FinalProjection {
                bytes: 100,
                ms: 600
            })
        );
        // Growing deltas never project past the last one.
        assert_eq!(
            project_final(&[(Delta, 200, 700), (Delta, 400, 900)]),
            Some(FinalProjection {
                bytes: 400,
                ms: 900
            })
        );
        // Time that fell while bytes grew: scaled by bytes instead.
        assert_eq!(
            project_final(&[(Delta, 400, 300), (Delta, 200, 800)]),
            Some(FinalProjection {
                bytes: 100,
                ms: 400
            })
        );
        assert_eq!(
            project_final(&[(Full, 10, 10), (Delta, 5, 5), (Final, 1, 1)]),
            None
        );
    }
}
