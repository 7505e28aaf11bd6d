//! Guest preparation on a copy, never the source, through libguestfs. The
//! plan says which copy (`AppliedTo`):
//! - the target's, where it holds written disks as files until deploy (the
//!   lab): after the disks are written, its digest is compared with the
//!   source's first, then the changes are applied;
//! - the run's own snapshot of the source, a file on this machine (a lab
//!   source), before any block of it is read: a cloud target receives the
//!   prepared disk, and its digest is checked against that snapshot's;
//! - a copy of the run's snapshot staged on this machine (a remote source
//!   into such a cloud): see `staged_copy.rs`.
//!
//! Either way the copy is inspected again afterwards, each change verified,
//! and the checks journaled (`Prepared`) so a resumed run applies nothing
//! twice. A source whose disks stay in its cloud was not inspected at plan
//! time: the run inspects the copy and derives the changes from the needs
//! the plan approved (`prepare_at_run`).

use super::{DiskOutput, Run, lock};
use crate::Level;
use crate::cloud::{Check, CloudError, DiskRef, SnapshotRef};
use crate::guest::{inspect, prepare, verify};
use crate::inventory::DiskFormat;
use crate::journal::Record;
use crate::pipeline::TransferError;
use crate::plan::preparation::{AppliedTo, Change, Status};
use crate::plan::{PlanDisk, PlanItem};
use crate::report::InstanceReport;
use std::collections::BTreeSet;
use std::path::PathBuf;

impl Run {
    /// Before deploy: applies `item`'s approved preparation to the target's
    /// copy, or reports what was applied to the run's snapshot. Returns the
    /// disk keys whose digests were compared here (not again after deploy).
    /// Refuses to deploy a copy the target cannot prepare.
    pub(super) async fn prepare_guest(
        &self,
        item: &PlanItem,
        disks: &[DiskOutput],
        report: &mut InstanceReport,
    ) -> Result<BTreeSet<String>, TransferError> {
        let plan = self.approved.plan();
        let Some(guest) = plan.preparation.to_apply(&item.instance_name) else {
            return Ok(BTreeSet::new());
        };
        if guest.applied_to != AppliedTo::TargetCopy {
            report
                .checks
                .extend(self.snapshot_checks(&item.instance_name));
            return Ok(BTreeSet::new());
        }
        let Some(index) = item.disks.iter().position(|d| d.disk_id == guest.disk) else {
            return Err(CloudError::Permanent(format!(
                "the plan prepares disk '{}' of {}, which it does not migrate",
                guest.disk, item.instance_name
            ))
            .into());
        };
        let key = item.disk_key(&item.disks[index]);
        let compared = BTreeSet::from([key.clone()]);
        // A resumed run prepared this copy already: its checks stand.
        if let Some(checks) = self.resume.prepared.get(&item.instance_name) {
            report.checks.extend(checks.iter().cloned());
            return Ok(compared);
        }
        let (written, source) = &disks[index];
        let Some(path) = self.target.target_role()?.local_written_disk(written) else {
            return Err(CloudError::Permanent(format!(
                "{} holds {key} in the cloud: the approved guest preparation cannot be applied",
                self.target.name()
            ))
            .into());
        };

        let digest = self.digest_check(&key, written, source).await;
        let exact = digest.passed;
        let mut checks = vec![digest];
        // A copy that is not the source's is not prepared: validation fails
        // on its digest already.
        if exact && guest.status == Status::InspectAtRun {
            // A guest found not preparable stops here, before deploy.
            checks.extend(
                self.prepare_at_run(&key, path, written.format, guest)
                    .await?,
            );
        } else if exact {
            let applied = self
                .apply_changes(&*self.target, &key, path, written.format, &guest.changes)
                .await;
            match applied {
                Ok(verified) => checks.extend(verified),
                Err(e) => checks.push(Check::new("guest preparation", false, e.to_string())),
            }
        }
        self.journal.append_durable(&Record::Prepared {
            instance: item.instance_name.clone(),
            checks: checks.clone(),
        })?;
        report.checks.extend(checks);
        Ok(compared)
    }

    /// Before the transfer: applies `item`'s approved preparation to the
    /// run's snapshot of `disk` when the plan puts it there. Returns the
    /// snapshot to read. Preparation that fails or does not verify fails
    /// the disk before a block leaves: nothing reaches the target.
    pub(super) async fn prepare_snapshot(
        &self,
        item: &PlanItem,
        disk: &PlanDisk,
        key: &str,
        snapshot: SnapshotRef,
    ) -> Result<SnapshotRef, TransferError> {
        let plan = self.approved.plan();
        let Some(guest) = plan
            .preparation
            .changes_for(&item.instance_name)
            .filter(|g| g.applied_to == AppliedTo::RunSnapshot && g.disk == disk.disk_id)
        else {
            return Ok(snapshot);
        };
        // Journaled before any block was read: this snapshot is prepared.
        if self.resume.prepared.contains_key(&item.instance_name) {
            return Ok(snapshot);
        }
        // A snapshot kept from an interrupted run that has no `Prepared` may
        // have stopped halfway through the changes: a fresh one, under a new
        // name (cleanup removes both, each journaled as created).
        let snapshot = if self.resume.disk(key).snapshot.is_some() {
            let name = format!(
                "altishift-{}-{}-{}-{}",
                self.cap.plan_hash().short(),
                item.instance_name,
                disk.disk_id,
                self.journal.len()
            );
            let at = DiskRef {
                instance_id: item.instance_id.clone(),
                disk_id: disk.disk_id.clone(),
            };
            self.log(
                Level::Info,
                format!("{key}: the interrupted run's snapshot may be half-prepared: a new one"),
            );
            self.journaled_snapshot(key, &at, &name).await?
        } else {
            snapshot
        };
        let source = self.source.source_role()?;
        let Some(path) = source.local_snapshot(&snapshot) else {
            return Err(CloudError::Permanent(format!(
                "{}: snapshot {} is not a file of this run's here: the approved guest \
                 preparation cannot be applied",
                self.source.name(),
                snapshot.id
            ))
            .into());
        };
        let checks = self
            .apply_changes(&*self.source, key, path, snapshot.format, &guest.changes)
            .await?;
        self.prepared_before_sending(key, item, checks)?;
        Ok(snapshot)
    }

    /// Journals the preparation of the copy about to be sent (`Prepared`,
    /// so a resumed run neither applies it again nor sends another copy),
    /// once every change verified: one that did not fails the disk before
    /// a block leaves.
    pub(super) fn prepared_before_sending(
        &self,
        key: &str,
        item: &PlanItem,
        checks: Vec<Check>,
    ) -> Result<(), TransferError> {
        if let Some(failed) = checks.iter().find(|c| !c.passed) {
            return Err(CloudError::Permanent(format!(
                "{key}: guest preparation did not verify, nothing was sent: {}: {}",
                failed.name, failed.detail
            ))
            .into());
        }
        self.journal.append_durable(&Record::Prepared {
            instance: item.instance_name.clone(),
            checks: checks.clone(),
        })?;
        lock(&self.prepared_snapshots).insert(item.instance_name.clone(), checks);
        Ok(())
    }

    /// The checks of the preparation applied to `instance`'s snapshot (or
    /// its staged copy), by this process or the interrupted run; a failed
    /// check if neither did.
    fn snapshot_checks(&self, instance: &str) -> Vec<Check> {
        let here = lock(&self.prepared_snapshots).get(instance).cloned();
        here.or_else(|| self.resume.prepared.get(instance).cloned())
            .unwrap_or_else(|| {
                vec![Check::new(
                    "guest preparation",
                    false,
                    "the approved preparation was not applied to the copy that was sent",
                )]
            })
    }

    /// Applies `changes` to the file at `path` (audited on `cloud`, which
    /// holds it), inspects it again and verifies each change: one
    /// `prepared: …` check per change. Err when libguestfs failed.
    pub(super) async fn apply_changes(
        &self,
        cloud: &dyn crate::cloud::Cloud,
        key: &str,
        path: PathBuf,
        format: DiskFormat,
        changes: &[Change],
    ) -> Result<Vec<Check>, CloudError> {
        for change in changes {
            self.log(Level::Info, format!("{key}: preparing the guest: {change}"));
        }
        let to_apply = changes.to_vec();
        let after = self
            .audited(cloud, "prepare_guest", key, async move {
                tokio::task::spawn_blocking(move || {
                    prepare::apply(&path, format, &to_apply)?;
                    inspect::inspect(&path, format)
                })
                .await
                .map_err(|e| CloudError::Permanent(format!("preparation task: {e}")))?
                .map_err(|e| CloudError::Permanent(e.to_string()))
            })
            .await?;
        let mut checks = Vec::new();
        for change in changes {
            let (passed, detail) = match verify::verify(change, &after) {
                Ok(evidence) => (true, format!("verified: {evidence}")),
                Err(why) => (false, format!("not found after applying: {why}")),
            };
            self.log(
                if passed { Level::Info } else { Level::Warn },
                format!("{key}: {change}: {detail}"),
            );
            checks.push(Check::new(format!("prepared: {change}"), passed, detail));
        }
        Ok(checks)
    }
}
