//! The local boot rehearsal of a plan: every item's boot disk boots in QEMU
//! on this machine (`guest::rehearse`, the disk never written: QEMU's
//! throwaway overlay) before the plan is approved, so a guest that cannot
//! boot is caught before any cloud is touched. Only sources whose disks are
//! local files (the lab) can be rehearsed; others are refused with the
//! reason. Shared by `plan --rehearse` and the console's plan screen.
//! When the plan prepares a guest, the rehearsal boots the prepared copy:
//! a qcow2 overlay over the source disk with the changes applied to the
//! overlay (the source only read), removed afterwards. KVM where it opens,
//! TCG when it does not or fails (the record says why).

use crate::cloud::{CloudError, Source};
use crate::guest::GuestError;
use crate::guest::overlay::Overlay;
use crate::guest::prepare::{self, Change};
use crate::guest::rehearse::{self, Accel, RehearsalSpec};
use crate::inventory::DiskFormat;
use crate::plan::{Plan, RehearsalRecord};
use std::path::PathBuf;
use std::time::Duration;

/// Seconds a boot may take to show the marker (TCG on a busy jump host is
/// slow: a small guest takes 7–20 s here).
pub const DEFAULT_TIMEOUT_SECS: u64 = 180;

/// Lines of the serial console a record keeps.
const TAIL_LINES: usize = 12;

/// How to rehearse: the success marker (the rehearsal's default when None),
/// how long a boot may take, where the serial logs go.
#[derive(Debug, Clone)]
pub struct RehearsalOptions {
    pub expect: Option<regex::Regex>,
    pub timeout: Duration,
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RehearsalError {
    #[error(
        "{cloud} ({provider}) keeps '{instance}' in the cloud; the rehearsal boots disks this \
         machine holds as files (a lab source)"
    )]
    NotLocal {
        cloud: String,
        provider: String,
        instance: String,
    },
    #[error("rehearsing {instance}: {source}")]
    Guest {
        instance: String,
        #[source]
        source: GuestError,
    },
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("{0}")]
    Other(String),
}

/// Boots each item's boot disk in turn; `on_boot(instance, disk)` is told
/// before each boot (they take seconds). Stops at the first guest that does
/// not boot: that one refuses the plan, the rest need not be booted.
pub async fn rehearse_plan(
    source: &dyn Source,
    plan: &Plan,
    options: &RehearsalOptions,
    on_boot: &(dyn Fn(&str, &str) + Send + Sync),
) -> Result<Vec<RehearsalRecord>, RehearsalError> {
    std::fs::create_dir_all(&options.dir)
        .map_err(|e| RehearsalError::Other(format!("creating {}: {e}", options.dir.display())))?;
    let mut records = Vec::new();
    for item in &plan.items {
        let Some(disk) = item.disks.iter().find(|d| d.boot) else {
            continue;
        };
        let Some((path, format)) = source.local_disk(&item.instance_id, &disk.disk_id) else {
            return Err(RehearsalError::NotLocal {
                cloud: crate::text::safe(&plan.source.cloud).into_owned(),
                provider: crate::text::safe(&plan.source.provider).into_owned(),
                instance: crate::text::safe(&item.instance_name).into_owned(),
            });
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
                accel_note: String::new(),
                prepared: false,
            });
            break;
        }
        let file = crate::fsutil::file_name(&item.instance_name).map_err(RehearsalError::Other)?;
        let log = options.dir.join(format!("{file}.serial.log"));
        // Dropped (the overlay file removed) when this item's boot is over.
        let overlay = match plan.preparation.changes_for(&item.instance_name) {
            Some(guest) => Some(
                prepared_overlay(&path, format, &options.dir, &file, &guest.changes)
                    .await
                    .map_err(|source| RehearsalError::Guest {
                        instance: item.instance_name.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        let mut spec = match &overlay {
            Some(overlay) => RehearsalSpec::new(overlay.path(), DiskFormat::Qcow2, &log),
            None => RehearsalSpec::new(&path, format, &log),
        };
        spec.accel = Accel::host_default();
        if let Some(expect) = &options.expect {
            spec.expect = expect.clone();
        }
        spec.timeout = options.timeout;
        on_boot(&item.instance_name, &disk.disk_id);
        let result = rehearse::rehearse(&spec)
            .await
            .map_err(|source| RehearsalError::Guest {
                instance: item.instance_name.clone(),
                source,
            })?;
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
            accel_note: match &result.kvm_failure {
                Some(why) => format!("KVM failed here ({why}); booted again with TCG"),
                None => String::new(),
            },
            prepared: overlay.is_some(),
        });
        drop(overlay);
        if !result.booted {
            break;
        }
    }
    Ok(records)
}

/// A qcow2 overlay over the source disk with `changes` applied to it.
async fn prepared_overlay(
    disk: &std::path::Path,
    format: DiskFormat,
    dir: &std::path::Path,
    file: &str,
    changes: &[Change],
) -> Result<Overlay, GuestError> {
    let overlay = Overlay::create(disk, format, &dir.join(format!("{file}.prepared.qcow2")))?;
    let (path, changes) = (overlay.path().to_path_buf(), changes.to_vec());
    tokio::task::spawn_blocking(move || prepare::apply(&path, DiskFormat::Qcow2, &changes))
        .await
        .map_err(|e| GuestError::Other(format!("preparation task: {e}")))??;
    Ok(overlay)
}

/// The rehearsal that refuses the plan, if one did not boot.
pub fn refusal(records: &[RehearsalRecord]) -> Option<&RehearsalRecord> {
    records.iter().find(|r| !r.booted)
}
