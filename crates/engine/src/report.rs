//! The run report: JSON for machines, Markdown for people, both written to
//! the run folder and rebuilt by `altishift report RUN`.

use super::journal::PassRecord;
use crate::block::DiskDigest;
use crate::cloud::Check;
use crate::text::{md_cell as cell, md_code as code};
use crate::units::{Bytes, mb_per_s};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskReport {
    pub disk: String,
    pub status: String,
    pub virtual_size: Bytes,
    pub allocated: Bytes,
    pub bytes_scanned: Bytes,
    pub bytes_skipped: Bytes,
    pub bytes_sent: Bytes,
    pub bytes_resumed: Bytes,
    pub blocks_sent: u64,
    pub retries: u32,
    pub duration_ms: u64,
    pub average_mb_s: f64,
    pub peak_mb_s: f64,
    pub source_digest: Option<DiskDigest>,
    pub target_digest: Option<DiskDigest>,
    pub error: Option<String>,
    /// Cutover runs: each pass over the disk (full, delta…, final).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passes: Vec<PassRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceReport {
    pub instance: String,
    pub target_id: Option<String>,
    pub checks: Vec<Check>,
    pub validated: bool,
    /// Cutover: how long the source was down, from its quiesce (or stop) to
    /// the target's validation, measured by the process that did both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanupReport {
    pub resource: String,
    pub cloud: String,
    pub outcome: String,
}

/// Something the run made on the target that is meant to stay (an
/// instance, its image and disks, a firewall, an imported key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedReport {
    /// `firewall`, `ssh key`, `instance`, `image`, `disk`.
    pub kind: String,
    /// The plan's name for it (the source rule set, the key, the instance).
    pub name: String,
    /// Its id on the target.
    pub id: String,
    pub cloud: String,
    /// As an event: `created` or `reused`; in the report: `in place` or
    /// `removed`.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub plan_hash: String,
    pub operator: String,
    pub source: String,
    pub target: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub ok: bool,
    pub resumed: bool,
    pub cross_border: Option<String>,
    pub disks: Vec<DiskReport>,
    pub instances: Vec<InstanceReport>,
    /// What the run made on the target, from its journal.
    #[serde(default)]
    pub created: Vec<CreatedReport>,
    pub cleanup: Vec<CleanupReport>,
    pub revoked: Vec<String>,
    pub access_kept: bool,
    /// What became of the run's verbose log (purged unless kept).
    #[serde(default)]
    pub debug_log: Option<String>,
    /// A plan in waves: the wave that did not validate, so the run stopped
    /// before the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_wave: Option<u32>,
}

impl RunReport {
    pub fn load(path: &Path) -> Result<RunReport, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a run report: {e}", path.display()))
    }

    pub fn total_sent(&self) -> Bytes {
        self.disks.iter().map(|d| d.bytes_sent).sum()
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let duration = humantime::format_duration(std::time::Duration::from_secs(
            self.duration_ms.div_ceil(1000),
        ));
        let _ = writeln!(md, "# Migration report `{}`\n", code(&self.run_id));
        let _ = writeln!(
            md,
            "- **Result:** {}",
            if self.ok {
                "migrated and validated"
            } else {
                "INCOMPLETE"
            }
        );
        let _ = writeln!(
            md,
            "- **Plan:** `{}` approved by {}",
            code(&self.plan_hash),
            cell(&self.operator)
        );
        let _ = writeln!(
            md,
            "- **From → to:** {} → {}",
            cell(&self.source),
            cell(&self.target)
        );
        if let Some(cross) = &self.cross_border {
            let _ = writeln!(
                md,
                "- **Cross-border transfer (acknowledged):** {}",
                cell(cross)
            );
        }
        let _ = writeln!(
            md,
            "- **Started / finished:** {} / {} ({duration})",
            cell(&self.started_at),
            cell(&self.finished_at)
        );
        if self.resumed {
            let _ = writeln!(md, "- **Resumed** from the journal of an interrupted run");
        }
        if let Some(wave) = self.failed_wave {
            let _ = writeln!(
                md,
                "- **Stopped at wave {wave}:** it did not validate, so the waves after it did \
                 not start (their disks are \"not started\"); `altishift apply` resumes from wave {wave}"
            );
        }
        let _ = writeln!(md, "\n## Disks\n");
        let _ = writeln!(
            md,
            "| disk | status | scanned | skipped (zero) | sent | resumed | avg MB/s | peak MB/s | retries | time | digest (LINEAR) |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
        for d in &self.disks {
            let digest = d
                .source_digest
                .as_ref()
                .map(|g| code(g.linear_sha256.get(..16).unwrap_or(&g.linear_sha256)))
                .unwrap_or_else(|| "—".into());
            let matched = match (&d.source_digest, &d.target_digest) {
                (Some(s), Some(t)) if s == t => " ✓ target equal",
                (Some(_), Some(_)) => " ✗ TARGET DIFFERS",
                _ => "",
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {} | `{digest}`{matched} |",
                cell(&d.disk),
                cell(&d.status),
                d.bytes_scanned,
                d.bytes_skipped,
                d.bytes_sent,
                d.bytes_resumed,
                d.average_mb_s,
                d.peak_mb_s,
                d.retries,
                humantime::format_duration(std::time::Duration::from_millis(
                    d.duration_ms - d.duration_ms % 100
                )),
            );
            if let Some(error) = &d.error {
                let _ = writeln!(md, "|  | error: {} |||||||||", cell(error));
            }
        }
        if self.disks.iter().any(|d| !d.passes.is_empty()) {
            let _ = writeln!(md, "\n## Cutover passes\n");
            let _ = writeln!(
                md,
                "| disk | pass | kind | blocks sent | bytes sent | time |"
            );
            let _ = writeln!(md, "|---|---|---|---|---|---|");
            for d in &self.disks {
                for p in &d.passes {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {} |",
                        cell(&d.disk),
                        p.pass,
                        cell(&p.kind.to_string()),
                        p.blocks_sent,
                        Bytes(p.bytes_sent),
                        humantime::format_duration(std::time::Duration::from_millis(
                            p.elapsed_ms - p.elapsed_ms % 100
                        )),
                    );
                }
            }
        }
        let _ = writeln!(md, "\n## Validation\n");
        for instance in &self.instances {
            let state = if instance.validated {
                "passed"
            } else {
                "FAILED"
            };
            let id = instance.target_id.as_deref().unwrap_or("not deployed");
            let _ = writeln!(
                md,
                "### {} ({}): {state}\n",
                cell(&instance.instance),
                cell(id)
            );
            if let Some(ms) = instance.downtime_ms {
                let _ = writeln!(
                    md,
                    "Source down {:.1} s (quiesce to validation).\n",
                    ms as f64 / 1000.0
                );
            }
            for check in &instance.checks {
                let mark = if check.passed { "✓" } else { "✗" };
                let _ = writeln!(
                    md,
                    "- {mark} {}: {}",
                    cell(&check.name),
                    cell(&check.detail)
                );
                // Evidence verbatim, as an indented block of the item.
                if !check.evidence.is_empty() {
                    let _ = writeln!(md, "\n  ```text");
                    for line in &check.evidence {
                        let _ = writeln!(md, "  {}", crate::text::safe(line).replace("```", "'''"));
                    }
                    let _ = writeln!(md, "  ```\n");
                }
            }
            let _ = writeln!(md);
        }
        if !self.created.is_empty() {
            let _ = writeln!(md, "## Created on the target\n");
            let _ = writeln!(md, "| kind | name | id | cloud | now |");
            let _ = writeln!(md, "|---|---|---|---|---|");
            for c in &self.created {
                let _ = writeln!(
                    md,
                    "| {} | {} | `{}` | {} | {} |",
                    cell(&c.kind),
                    cell(&c.name),
                    code(&c.id),
                    cell(&c.cloud),
                    cell(&c.state)
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "## Clean-up\n");
        if self.cleanup.is_empty() {
            let _ = writeln!(md, "- nothing to remove");
        }
        for c in &self.cleanup {
            let _ = writeln!(
                md,
                "- {} on {}: {}",
                cell(&c.resource),
                cell(&c.cloud),
                cell(&c.outcome)
            );
        }
        if let Some(log) = &self.debug_log {
            let _ = writeln!(md, "\n- {}", cell(log));
        }
        let _ = writeln!(md, "\n## Access\n");
        if self.access_kept {
            let _ = writeln!(md, "- temporary access KEPT at the operator's request");
        } else if self.revoked.is_empty() {
            let _ = writeln!(
                md,
                "- no temporary access was created; all secrets wiped from memory"
            );
        } else {
            for r in &self.revoked {
                let _ = writeln!(md, "- revoked: {}", cell(r));
            }
            let _ = writeln!(md, "- all secrets wiped from memory");
        }
        md
    }

    pub fn average(bytes: Bytes, ms: u64) -> f64 {
        mb_per_s(bytes.0, ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text report lists what the run made on the target and what
    /// became of it (a test migration removes it again).
    #[test]
    fn the_report_lists_what_was_created_on_the_target() {
        let made = |kind: &str, name: &str, id: &str, state: &str| CreatedReport {
            kind: kind.into(),
            name: name.into(),
            id: id.into(),
            cloud: "aws-target".into(),
            state: state.into(),
        };
        let report = RunReport {
            run_id: "run-0123456789ab".into(),
            plan_hash: "0123456789ab".repeat(5),
            operator: "ops@example.com".into(),
            source: "lab-east".into(),
            target: "aws-target".into(),
            started_at: "2026-12-04T16:00:00Z".into(),
            finished_at: "2026-12-04T16:00:09Z".into(),
            duration_ms: 9_000,
            ok: true,
            resumed: false,
            cross_border: None,
            disks: Vec::new(),
            instances: Vec::new(),
            created: vec![
                made("ssh key", "ops", "ops", "in place"),
                made("firewall", "web", "sg-0a1b2c3d", "in place"),
                made("instance", "web-1", "i-0123456789", "removed"),
            ],
            cleanup: Vec::new(),
            revoked: Vec::new(),
            access_kept: false,
            debug_log: None,
            failed_wave: None,
        };
        let md = report.to_markdown();
        let start = md.find("## Created").unwrap_or(0);
        let end = md.find("## Clean-up").unwrap_or(md.len());
        insta::assert_snapshot!("report_created", &md[start..end]);
        // An old report without the list still loads.
        let mut json = serde_json::to_value(&report).unwrap_or_default();
        if let Some(o) = json.as_object_mut() {
            o.remove("created");
        }
        let old: RunReport = serde_json::from_value(json).unwrap_or(report);
        assert!(old.created.is_empty());
        assert!(!old.to_markdown().contains("## Created"));
    }
}
