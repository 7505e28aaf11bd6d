//! `plan --rehearse`: every plan item's boot disk boots in QEMU on this
//! machine (the local rehearsal of `guest::rehearse`, the disk never
//! written) before the plan is written, so a guest that cannot boot is
//! caught before any cloud is touched. Only sources whose disks are local
//! files (the lab) can be rehearsed; others are refused with the reason.

use super::plan::RehearseFlags;
use crate::cloud::Source;
use crate::guest::rehearse::{self, Accel, RehearsalSpec};
use crate::plan::{Plan, RehearsalRecord};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::time::Duration;

/// Lines of the serial console a record keeps.
const TAIL_LINES: usize = 12;

pub async fn run(
    source: &dyn Source,
    plan: &Plan,
    flags: &RehearseFlags,
    dir: &Path,
) -> Result<Vec<RehearsalRecord>> {
    let expect = match &flags.expect {
        Some(text) => Some(
            regex::Regex::new(text)
                .with_context(|| format!("--expect '{text}' is not a regular expression"))?,
        ),
        None => None,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut records = Vec::new();
    for item in &plan.items {
        let Some(disk) = item.disks.iter().find(|d| d.boot) else {
            continue;
        };
        let Some((path, format)) = source.local_disk(&item.instance_id, &disk.disk_id) else {
            bail!(
                "--rehearse: {} ({}) keeps '{}' in the cloud; the rehearsal boots disks this \
                 machine holds as files (a lab source)",
                crate::text::safe(&plan.source.cloud),
                crate::text::safe(&plan.source.provider),
                crate::text::safe(&item.instance_name)
            );
        };
        // A disk without boot code cannot boot: said now, not after the timeout.
        if !crate::cloud::lab::boot::has_boot_sector(&path, format).await? {
            records.push(RehearsalRecord {
                instance: item.instance_name.clone(),
                disk: disk.disk_id.clone(),
                booted: false,
                accel: String::new(),
                elapsed_ms: 0,
                expect: String::new(),
                matched: None,
                detail: "its first sector holds no BIOS boot code".into(),
                serial_tail: Vec::new(),
            });
            break;
        }
        let file = crate::fsutil::file_name(&item.instance_name).map_err(anyhow::Error::msg)?;
        let log = dir.join(format!("{file}.serial.log"));
        let mut spec = RehearsalSpec::new(&path, format, &log);
        if let Some(expect) = &expect {
            spec.expect = expect.clone();
        }
        spec.timeout = Duration::from_secs(flags.timeout);
        eprintln!(
            "rehearsal: booting {}/{} in QEMU (TCG, no network, up to {}s)…",
            crate::text::safe(&item.instance_name),
            crate::text::safe(&disk.disk_id),
            flags.timeout
        );
        let result = rehearse::rehearse(&spec)
            .await
            .with_context(|| format!("rehearsing {}", item.instance_name))?;
        records.push(RehearsalRecord {
            instance: item.instance_name.clone(),
            disk: disk.disk_id.clone(),
            booted: result.booted,
            accel: match result.accel {
                Accel::Tcg => "tcg",
                Accel::Kvm => "kvm",
            }
            .into(),
            elapsed_ms: result.elapsed.as_millis() as u64,
            expect: spec.expect.as_str().to_string(),
            matched: result.matched,
            detail: result.detail,
            serial_tail: rehearse::serial_tail(&log, TAIL_LINES)
                .lines()
                .map(str::to_string)
                .collect(),
        });
        // The first guest that does not boot refuses the plan: no need to
        // boot the rest.
        if !result.booted {
            break;
        }
    }
    Ok(records)
}
