//! The end of a run: clean-up of temporaries, revocation, abandoning an
//! interrupted run, and the report.

use super::{DiskSlot, Run, lock};
use crate::cloud::{Check, Cloud, CreatedResource, ResourceKind};
use crate::control::DiskCounters;
use crate::journal::{self, Record};
use crate::report::{CleanupReport, CreatedReport, DiskReport, InstanceReport, RunReport};
use crate::{EngineError, Event, Level, RunOutcome, Stage};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

impl Run {
    /// Gives up an interrupted run: removes every temporary resource its
    /// journal lists, revokes access, and records that it cannot resume.
    /// Needs no source inventory — the journal says what exists.
    pub(super) async fn abandon(&self, resumed: bool) -> Result<RunOutcome, EngineError> {
        let plan = self.approved.plan();
        let every_disk: BTreeSet<String> = plan.disks().map(|(i, d)| i.disk_key(d)).collect();
        let mut cleanup = self.clean_up(&every_disk).await?;
        cleanup.extend(self.remove_configuration().await?);
        cleanup.extend(self.clean_up_leftovers().await?);
        let revoked = self.revoke().await?;
        let instances = plan
            .items
            .iter()
            .map(|item| InstanceReport {
                instance: item.instance_name.clone(),
                target_id: self
                    .resume
                    .deployed
                    .get(&item.target_name)
                    .map(|d| d.id.clone()),
                checks: vec![Check::new(
                    "abandoned",
                    false,
                    "run abandoned by the operator; its temporary resources were removed",
                )],
                validated: false,
                downtime_ms: None,
            })
            .collect();
        self.finish(instances, cleanup, revoked, resumed, None)
    }

    /// Removes temporary resources of disks that made it; keeps those of
    /// failed disks so that `apply` can resume them.
    pub(super) async fn clean_up(
        &self,
        healthy: &BTreeSet<String>,
    ) -> Result<Vec<CleanupReport>, EngineError> {
        let state = journal::replay(self.journal.path())?;
        let mut reports = Vec::new();
        for (disk, resource) in state.removable_temporaries() {
            let label = format!("{:?} {}", resource.kind, resource.id).to_lowercase();
            let keep = disk.as_ref().is_some_and(|d| !healthy.contains(d));
            if keep {
                reports.push(CleanupReport {
                    resource: label,
                    cloud: resource.cloud.clone(),
                    outcome: "kept: its disk did not finish (apply resumes from it)".into(),
                });
                continue;
            }
            let cloud: &dyn Cloud = if resource.cloud == self.source.name() {
                &*self.source
            } else {
                &*self.target
            };
            reports.push(
                self.remove(cloud, &resource, "delete", ("deleted", "NOT deleted"))
                    .await?,
            );
        }
        Ok(reports)
    }

    /// Removes temporaries and configuration objects (firewalls, keys) that
    /// carry this plan's tag but that no journal record names (a process
    /// killed between a cloud creating one and the journal recording it).
    /// Only an abandon does this: a resumable run may still be about to
    /// journal them (and a re-run reuses them).
    async fn clean_up_leftovers(&self) -> Result<Vec<CleanupReport>, EngineError> {
        let state = journal::replay(self.journal.path())?;
        let known: BTreeSet<(String, String)> = state
            .created
            .iter()
            .map(|r| (r.cloud.clone(), bare_id(&r.id).to_string()))
            .collect();
        let tag = self.cap.tag();
        let mut clouds: Vec<&dyn Cloud> = vec![&*self.source];
        if self.target.name() != self.source.name() {
            clouds.push(&*self.target);
        }
        let mut reports = Vec::new();
        for cloud in clouds {
            let found = match cloud.find_leftovers(&tag).await {
                Ok(found) => found,
                Err(e) => {
                    self.log(
                        Level::Warn,
                        format!(
                            "{}: could not search for leftovers of this plan: {e}",
                            cloud.name()
                        ),
                    );
                    continue;
                }
            };
            for resource in found {
                // A firewall or key no journal names was never given to an
                // instance (deploying needs its journaled id): removable.
                let configuration =
                    matches!(resource.kind, ResourceKind::Firewall | ResourceKind::SshKey);
                if !(resource.temporary || configuration)
                    || known.contains(&(resource.cloud.clone(), bare_id(&resource.id).to_string()))
                {
                    continue;
                }
                let done = "deleted (found by the plan's tag; no journal record named it)";
                reports.push(
                    self.remove(cloud, &resource, "delete", (done, "NOT deleted"))
                        .await?,
                );
            }
        }
        Ok(reports)
    }

    /// A test migration, once every instance is validated (or failed): the
    /// target's instances go first (AWS deregisters their images with them),
    /// then images, then written disks, so nothing is removed while in use.
    pub(super) async fn remove_test_targets(&self) -> Result<Vec<CleanupReport>, EngineError> {
        let state = journal::replay(self.journal.path())?;
        let target = &*self.target;
        let mut results: Vec<_> = state
            .live_resources()
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| !r.temporary && r.cloud == target.name())
            .collect();
        // Firewalls and keys last (instances use them), newest first: a
        // group another group's rule names is removed after that group.
        let rank = |kind: ResourceKind| match kind {
            ResourceKind::Instance => 0,
            ResourceKind::Image => 1,
            ResourceKind::Firewall | ResourceKind::SshKey => 3,
            _ => 2,
        };
        results.reverse();
        results.sort_by_key(|r| rank(r.kind));
        results.dedup_by(|a, b| a.kind == b.kind && a.id == b.id);
        let mut reports = Vec::new();
        for resource in results {
            let done = "removed (test migration)";
            reports.push(
                self.remove(target, &resource, "remove_test", (done, "NOT removed"))
                    .await?,
            );
        }
        Ok(reports)
    }

    /// Deletes one resource through the audit log (`{verb}_{kind}`),
    /// journals it once gone, tells listeners and says what happened:
    /// `texts` is what to say on success and the prefix of a failure.
    pub(super) async fn remove(
        &self,
        cloud: &dyn Cloud,
        resource: &CreatedResource,
        verb: &str,
        texts: (&str, &str),
    ) -> Result<CleanupReport, EngineError> {
        let label = format!("{:?} {}", resource.kind, resource.id).to_lowercase();
        let action = format!("{verb}_{:?}", resource.kind).to_lowercase();
        let deleted = self
            .audited(
                cloud,
                &action,
                &resource.id,
                cloud.delete(&self.cap, resource),
            )
            .await;
        let outcome = match deleted {
            Ok(()) => {
                self.journal.append_durable(&Record::Deleted {
                    resource: resource.clone(),
                })?;
                texts.0.to_string()
            }
            Err(e) => format!("{}: {e}", texts.1),
        };
        let ok = outcome == texts.0;
        self.send(Event::CleanedUp {
            resource: label.clone(),
            ok,
            detail: outcome.clone(),
        });
        Ok(CleanupReport {
            resource: label,
            cloud: resource.cloud.clone(),
            outcome,
        })
    }

    pub(super) async fn revoke(&self) -> Result<Vec<String>, EngineError> {
        if self.approved.plan().keep_access {
            self.log(
                Level::Warn,
                "temporary access kept at the operator's request (see the report)".into(),
            );
            return Ok(Vec::new());
        }
        let mut revoked = Vec::new();
        let mut clouds: Vec<&dyn Cloud> = vec![&*self.source];
        if self.target.name() != self.source.name() {
            clouds.push(&*self.target);
        }
        for cloud in clouds {
            let items = match cloud.revoke().await {
                Ok(items) => items,
                Err(e) => vec![format!("{}: revocation FAILED: {e}", cloud.name())],
            };
            self.journal.append_durable(&Record::Revoked {
                cloud: cloud.name().to_string(),
                items: items.clone(),
            })?;
            self.send(Event::Revoked {
                cloud: cloud.name().to_string(),
                items: items.clone(),
            });
            revoked.extend(items.into_iter().map(|i| format!("{}: {i}", cloud.name())));
        }
        Ok(revoked)
    }

    pub(super) fn finish(
        &self,
        instances: Vec<InstanceReport>,
        cleanup: Vec<CleanupReport>,
        revoked: Vec<String>,
        resumed: bool,
        failed_wave: Option<u32>,
    ) -> Result<RunOutcome, EngineError> {
        let plan = self.approved.plan();
        let disks: Vec<DiskReport> = plan
            .disks()
            .filter_map(|(item, disk)| self.slots.get(&item.disk_key(disk)))
            .map(|slot| self.disk_report(slot))
            .collect();
        let ok = disks.iter().all(|d| d.status == "done") && instances.iter().all(|i| i.validated);
        let debug_log = crate::debug_log::close(ok && !self.options.keep_debug_log);
        let report = RunReport {
            run_id: crate::run_id(&self.approved.hash().0),
            plan_hash: self.approved.hash().0.clone(),
            operator: self.approved.operator().to_string(),
            source: plan.source.cloud.clone(),
            target: plan.target.cloud.clone(),
            started_at: self.started_at.clone(),
            finished_at: crate::fsutil::now_rfc3339(),
            duration_ms: self.started.elapsed().as_millis() as u64,
            ok,
            resumed,
            cross_border: plan
                .cross_border
                .as_ref()
                .map(|c| format!("{} → {} ({})", c.from, c.to, c.bytes)),
            disks,
            instances,
            created: self.created_report()?,
            cleanup,
            revoked,
            access_kept: plan.keep_access,
            debug_log,
            failed_wave,
        };
        let io = |what: &str| {
            let what = what.to_string();
            move |source| EngineError::Io { what, source }
        };
        let json = serde_json::to_vec_pretty(&report).map_err(|e| EngineError::Io {
            what: "report".into(),
            source: std::io::Error::other(e),
        })?;
        crate::fsutil::write_atomic(&self.dir.join("report.json"), &json)
            .map_err(io("writing report.json"))?;
        let report_path = self.dir.join("report.md");
        crate::fsutil::write_atomic(&report_path, report.to_markdown().as_bytes())
            .map_err(io("writing report.md"))?;
        if ok {
            crate::estimate::record(&self.state_dir, &report);
        }
        self.journal.append_durable(&Record::RunFinished {
            abandoned: self.options.abandon,
            ok,
            at: report.finished_at.clone(),
        })?;
        let mut summary = format!(
            "{} of {} disks migrated, {} sent, {} of {} instances validated",
            report.disks.iter().filter(|d| d.status == "done").count(),
            report.disks.len(),
            report.total_sent(),
            report.instances.iter().filter(|i| i.validated).count(),
            report.instances.len()
        );
        if let Some(wave) = failed_wave {
            summary.push_str(&format!(
                "; stopped at wave {wave} (the waves after it did not start)"
            ));
        }
        self.send(Event::RunFinished {
            ok,
            report: report_path.clone(),
            summary,
        });
        Ok(RunOutcome {
            ok,
            report_path,
            report,
        })
    }

    /// What the run made on the target to stay, from the journal, each
    /// once, with whether it is still there (a test migration removes it).
    fn created_report(&self) -> Result<Vec<CreatedReport>, EngineError> {
        let state = journal::replay(self.journal.path())?;
        let mut out: Vec<CreatedReport> = Vec::new();
        for (resource, key) in state.created.iter().zip(&state.created_for) {
            if resource.temporary || resource.cloud != self.target.name() {
                continue;
            }
            if out
                .iter()
                .any(|c| c.id == resource.id && c.kind == kind_label(resource.kind))
            {
                continue;
            }
            let name = match key.as_deref() {
                Some(k) if k.starts_with("config/") => {
                    k.rsplit('/').next().unwrap_or(k).to_string()
                }
                Some(k) => k.to_string(),
                None => state
                    .deployed
                    .iter()
                    .find(|(_, d)| d.id == resource.id)
                    .map(|(name, _)| name.clone())
                    .unwrap_or_default(),
            };
            out.push(CreatedReport {
                kind: kind_label(resource.kind).into(),
                name,
                id: resource.id.clone(),
                cloud: resource.cloud.clone(),
                state: if state.deleted.contains(resource) {
                    "removed".into()
                } else {
                    "in place".into()
                },
            });
        }
        Ok(out)
    }

    pub(super) fn disk_report(&self, slot: &DiskSlot) -> DiskReport {
        let p = self.progress(slot);
        let result = lock(&slot.result).clone();
        let stage = *lock(&slot.stage);
        let average = RunReport::average(p.bytes_sent, p.elapsed_ms);
        let peak = slot.counters.peak_bytes_per_second.load(Ordering::Relaxed) as f64 / 1e6;
        DiskReport {
            disk: slot.info.disk.clone(),
            status: match (&result.error, stage) {
                _ if result.not_started.is_some() => "not started".into(),
                (Some(e), _) if e == "cancelled" => "cancelled".into(),
                (Some(_), _) => "failed".into(),
                (None, Stage::Done) => "done".into(),
                (None, stage) => stage.to_string(),
            },
            virtual_size: slot.info.virtual_size,
            allocated: slot.info.allocated,
            bytes_scanned: p.bytes_scanned,
            bytes_skipped: p.bytes_skipped,
            bytes_sent: p.bytes_sent,
            bytes_resumed: p.bytes_resumed,
            blocks_sent: DiskCounters::get(&slot.counters.blocks_sent),
            retries: p.retries,
            duration_ms: p.elapsed_ms,
            average_mb_s: average,
            peak_mb_s: peak.max(average),
            source_digest: result.source_digest,
            target_digest: result.target_digest,
            error: result.error,
            passes: lock(&slot.passes).clone(),
        }
    }
}

/// A resource id without the region some providers put before it
/// (`eu-west-1/snap-1` and `snap-1` name the same snapshot).
fn bare_id(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// How the report names a kind of resource.
pub(super) fn kind_label(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Snapshot => "snapshot",
        ResourceKind::StagingDisk => "staging disk",
        ResourceKind::Disk => "disk",
        ResourceKind::Image => "image",
        ResourceKind::Instance => "instance",
        ResourceKind::AccessKey => "access key",
        ResourceKind::Firewall => "firewall",
        ResourceKind::SshKey => "ssh key",
    }
}
