//! Guest preparation on the target's copy: after an instance's disks are
//! written and before it is deployed, the approved changes are applied to
//! its boot disk where the target holds it as a file (the lab), through
//! libguestfs. Preparation changes the copy, so its digest is compared with
//! the source's first; afterwards the copy is inspected again and each
//! change verified. The source is never opened.

use super::{DiskOutput, Run, lock};
use crate::cloud::{Check, CloudError};
use crate::guest::{inspect, prepare, verify};
use crate::journal::Record;
use crate::pipeline::TransferError;
use crate::plan::PlanItem;
use crate::report::InstanceReport;
use crate::{Level, Stage, validate};
use std::collections::BTreeSet;

impl Run {
    /// Applies `item`'s approved preparation, if the plan has one. Returns
    /// the disk keys whose digests were compared here (not again after
    /// deploy). Refuses to deploy a copy the target cannot prepare.
    pub(super) async fn prepare_guest(
        &self,
        item: &PlanItem,
        disks: &[DiskOutput],
        report: &mut InstanceReport,
    ) -> Result<BTreeSet<String>, TransferError> {
        let plan = self.approved.plan();
        let Some(guest) = plan.preparation.changes_for(&item.instance_name) else {
            return Ok(BTreeSet::new());
        };
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

        self.set_stage(&key, Stage::Verify);
        let in_flight = self
            .options
            .in_flight
            .unwrap_or(self.target.default_in_flight());
        let digest = match validate::read_back_digests(
            &*self.target,
            written,
            in_flight,
            self.options.retry,
        )
        .await
        {
            Ok(target) => {
                if let Some(slot) = self.slots.get(&key) {
                    lock(&slot.result).target_digest =
                        target.as_ref().map(crate::block::DigestBuilder::finish);
                }
                validate::compare(&key, source, target.as_ref())
            }
            Err(e) => Check::new(format!("digest {key}"), false, e.to_string()),
        };
        let exact = digest.passed;
        let mut checks = vec![digest];
        // A copy that is not the source's is not prepared: validation fails
        // on its digest already.
        if exact {
            for change in &guest.changes {
                self.log(Level::Info, format!("{key}: preparing the guest: {change}"));
            }
            let (file, format, changes) = (path.clone(), written.format, guest.changes.clone());
            let applied = self
                .audited(&*self.target, "prepare_guest", &key, async move {
                    tokio::task::spawn_blocking(move || {
                        prepare::apply(&file, format, &changes)?;
                        inspect::inspect(&file, format)
                    })
                    .await
                    .map_err(|e| CloudError::Permanent(format!("preparation task: {e}")))?
                    .map_err(|e| CloudError::Permanent(e.to_string()))
                })
                .await;
            match applied {
                Ok(after) => {
                    for change in &guest.changes {
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
                }
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
}
