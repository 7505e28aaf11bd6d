//! One run of an approved plan: preflight, then per disk snapshot → transfer
//! → finish, per instance deploy → validate, then clean-up, revocation and
//! the report. Every mutating call is audited and journaled.
//!
//! `mod.rs` moves disks and deploys; `live.rs` answers the operator's
//! commands and sends progress; `preflight.rs` checks the plan against
//! the clouds before any change; `wrap_up.rs` cleans up, revokes, abandons
//! and writes the report.

mod configure;
mod cutover;
mod disk;
mod live;
mod preflight;
mod prepare;
mod staged_copy;
mod waves;
mod wrap_up;

use super::audit::AuditLog;
use super::budget::{Budget, Share};
use super::control::{DiskControl, DiskCounters, Throttle};
use super::journal::{self, Journal, JournalState, PassRecord, Record};
use super::pipeline::TransferError;
use super::report::InstanceReport;
use super::{
    Command, DiskInfo, EngineError, EngineOptions, Event, Level, RunOutcome, Stage, outside_checks,
    validate,
};
use crate::block::{DigestBuilder, DiskDigest};
use crate::cloud::{
    Capability, Check, Cloud, CloudError, CreatedResource, DeploySpec, ResourceKind, WrittenDisk,
};
use crate::plan::{Approved, PlanItem};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{Semaphore, mpsc, watch};

/// Live state of one disk during the run.
struct DiskSlot {
    info: DiskInfo,
    counters: DiskCounters,
    control: DiskControl,
    throttle: Option<Throttle>,
    /// Its share of the run's bandwidth budget.
    share: Share,
    stage: Mutex<Stage>,
    result: Mutex<DiskResult>,
    /// Cutover passes finished so far (journaled ones included).
    passes: Mutex<Vec<PassRecord>>,
}

#[derive(Default, Clone)]
struct DiskResult {
    error: Option<String>,
    source_digest: Option<DiskDigest>,
    target_digest: Option<DiskDigest>,
    /// Its wave never started (why).
    not_started: Option<String>,
}

pub(super) struct Run {
    approved: Approved,
    cap: Capability,
    source: Arc<dyn Cloud>,
    target: Arc<dyn Cloud>,
    state_dir: PathBuf,
    dir: PathBuf,
    journal: Journal,
    resume: JournalState,
    events: mpsc::UnboundedSender<Event>,
    options: EngineOptions,
    audit: AuditLog,
    slots: BTreeMap<String, DiskSlot>,
    disk_permits: Semaphore,
    budget: Arc<Budget>,
    /// Set by `Command::Shutdown`: no wave starts after it, a window's
    /// wait ends.
    shutdown: watch::Sender<bool>,
    started: Instant,
    started_at: String,
    /// Cutover: when this process quiesced each instance (for its downtime).
    quiesced_at: Mutex<BTreeMap<String, Instant>>,
    /// Guests this process prepared on the run's snapshot, with the checks
    /// (a resumed run finds earlier ones in `resume.prepared`).
    prepared_snapshots: Mutex<BTreeMap<String, Vec<Check>>>,
}

type DiskOutput = (WrittenDisk, DigestBuilder);

impl Run {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        approved: Approved,
        source: Arc<dyn Cloud>,
        target: Arc<dyn Cloud>,
        state_dir: &std::path::Path,
        dir: PathBuf,
        journal: Journal,
        resume: JournalState,
        events: mpsc::UnboundedSender<Event>,
        options: EngineOptions,
    ) -> Run {
        let cap = approved.capability();
        let audit = AuditLog::new(
            &state_dir.join("audit.jsonl"),
            &approved.hash().0,
            approved.operator(),
        );
        let budget = Budget::new(options.bandwidth);
        let slots = approved
            .plan()
            .disks()
            .map(|(item, disk)| {
                let key = item.disk_key(disk);
                let slot = DiskSlot {
                    info: DiskInfo {
                        disk: key.clone(),
                        virtual_size: disk.virtual_size,
                        allocated: disk.allocated,
                    },
                    counters: DiskCounters::default(),
                    control: DiskControl::default(),
                    throttle: options.throttle.map(Throttle::new),
                    share: budget.share(),
                    stage: Mutex::new(Stage::Queued),
                    result: Mutex::new(DiskResult::default()),
                    passes: Mutex::new(resume.disk(&key).passes),
                };
                (key, slot)
            })
            .collect();
        let disk_permits = Semaphore::new(options.parallel_disks.max(1));
        Run {
            approved,
            cap,
            source,
            target,
            state_dir: state_dir.to_path_buf(),
            dir,
            journal,
            resume,
            events,
            options,
            audit,
            slots,
            disk_permits,
            budget,
            shutdown: watch::channel(false).0,
            started: Instant::now(),
            started_at: crate::fsutil::now_rfc3339(),
            quiesced_at: Mutex::new(BTreeMap::new()),
            prepared_snapshots: Mutex::new(BTreeMap::new()),
        }
    }

    pub(super) async fn execute(
        self,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<RunOutcome, EngineError> {
        let run = Arc::new(self);
        let listener = {
            let run = run.clone();
            tokio::spawn(async move {
                while let Some(command) = commands.recv().await {
                    run.command(command);
                }
            })
        };
        let reporter = tokio::spawn(run.clone().report_progress());
        let result = run.work().await;
        reporter.abort();
        listener.abort();
        result
    }

    fn send(&self, event: Event) {
        // A listener that went away (console closed) must not stop the work.
        let _ = self.events.send(event);
    }

    fn log(&self, level: Level, message: String) {
        tracing::info!(?level, "{message}");
        self.send(Event::Log { level, message });
    }

    fn set_stage(&self, key: &str, stage: Stage) {
        if let Some(slot) = self.slots.get(key) {
            *lock(&slot.stage) = stage;
        }
        self.send(Event::Stage {
            disk: key.to_string(),
            stage,
        });
    }

    /// Runs an audited cloud call: "started" before, the outcome after.
    async fn audited<T>(
        &self,
        cloud: &dyn Cloud,
        action: &str,
        resource: &str,
        call: impl Future<Output = Result<T, CloudError>>,
    ) -> Result<T, CloudError> {
        let audit_error =
            |e: std::io::Error| CloudError::Permanent(format!("cannot write the audit log: {e}"));
        self.audit
            .record(cloud.name(), action, resource, "started")
            .map_err(audit_error)?;
        tracing::debug!(cloud = cloud.name(), action, resource, "started");
        let result = call.await;
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        tracing::debug!(cloud = cloud.name(), action, resource, outcome, "finished");
        self.audit
            .record(cloud.name(), action, resource, &outcome)
            .map_err(audit_error)?;
        result
    }

    /// An audited call that creates something: `journal` records what it
    /// made before the outcome goes to the audit log, so a failing audit
    /// write can never lose a resource the cloud already holds.
    async fn audited_create<T>(
        &self,
        cloud: &dyn Cloud,
        action: &str,
        resource: &str,
        call: impl Future<Output = Result<T, CloudError>>,
        journal: impl FnOnce(&T) -> Result<(), TransferError>,
    ) -> Result<T, TransferError> {
        let audit_error =
            |e: std::io::Error| CloudError::Permanent(format!("cannot write the audit log: {e}"));
        self.audit
            .record(cloud.name(), action, resource, "started")
            .map_err(audit_error)?;
        tracing::debug!(cloud = cloud.name(), action, resource, "started");
        let result = call.await;
        let journaled = match &result {
            Ok(value) => journal(value),
            Err(_) => Ok(()),
        };
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        tracing::debug!(cloud = cloud.name(), action, resource, outcome, "finished");
        let audited = self.audit.record(cloud.name(), action, resource, &outcome);
        let value = result?;
        journaled?;
        audited.map_err(audit_error)?;
        Ok(value)
    }

    fn journal_created(
        &self,
        disk: Option<&str>,
        kind: ResourceKind,
        cloud: &dyn Cloud,
        id: &str,
        temporary: bool,
    ) -> Result<(), TransferError> {
        let resource = CreatedResource {
            cloud: cloud.name().to_string(),
            kind,
            id: id.to_string(),
            temporary,
        };
        self.journal.append_durable(&Record::Created {
            disk: disk.map(str::to_string),
            resource,
        })?;
        Ok(())
    }

    async fn work(self: &Arc<Self>) -> Result<RunOutcome, EngineError> {
        let resumed = self.resume.plan_hash.is_some();
        if self.options.abandon {
            return self.abandon(resumed).await;
        }
        self.preflight().await?;
        self.check_windows()?;
        if !resumed {
            self.journal.append_durable(&Record::RunStarted {
                plan_hash: self.approved.hash().0.clone(),
                operator: self.approved.operator().to_string(),
                at: self.started_at.clone(),
                boot_id: journal::boot_id(),
            })?;
        }
        self.send(Event::RunStarted {
            run_id: super::run_id(&self.approved.hash().0),
            plan_hash: self.approved.hash().0.clone(),
            resumed,
            run_dir: self.dir.clone(),
            disks: self.slots.values().map(|s| s.info.clone()).collect(),
        });
        if let Some(rate) = self.options.bandwidth {
            self.log(
                Level::Info,
                format!("bandwidth budget: {rate}/s for the whole run, shared by every disk"),
            );
        }
        // Firewalls and keys before any instance that uses them.
        self.create_configuration().await?;
        let (instances, failed_wave) = self.migrate_waves().await;
        let healthy: BTreeSet<String> = self
            .approved
            .plan()
            .items
            .iter()
            .zip(&instances)
            .filter(|(_, report)| report.validated)
            .flat_map(|(item, _)| item.disks.iter().map(|d| item.disk_key(d)))
            .collect();
        let mut cleanup = self.clean_up(&healthy).await?;
        if self.approved.plan().test_migration {
            cleanup.extend(self.remove_test_targets().await?);
        }
        let revoked = self.revoke().await?;
        self.finish(instances, cleanup, revoked, resumed, failed_wave)
    }

    async fn migrate_instance(&self, item: &PlanItem) -> InstanceReport {
        let moved = match &self.approved.plan().cutover {
            Some(cutover) => self.cutover_instance(item, cutover).await,
            None => {
                futures::future::join_all(
                    item.disks.iter().map(|disk| self.migrate_disk(item, disk)),
                )
                .await
            }
        };
        let failed = moved.iter().filter(|m| m.is_none()).count();
        let mut report = InstanceReport {
            instance: item.instance_name.clone(),
            target_id: None,
            checks: Vec::new(),
            validated: false,
            downtime_ms: None,
        };
        if failed > 0 {
            report.checks.push(Check::new(
                "disks",
                false,
                format!(
                    "{failed} of {} disks did not arrive; instance not deployed",
                    item.disks.len()
                ),
            ));
            return report;
        }
        let disks: Vec<DiskOutput> = moved.into_iter().flatten().collect();
        match self.deploy_and_validate(item, &disks, &mut report).await {
            Ok(()) => report.validated = report.checks.iter().all(|c| c.passed),
            Err(e) => report
                .checks
                .push(Check::new("deploy", false, e.to_string())),
        }
        report.downtime_ms = lock(&self.quiesced_at)
            .get(&item.instance_name)
            .map(|at| at.elapsed().as_millis() as u64);
        let _ = self.journal.append_durable(&Record::Validated {
            instance: item.instance_name.clone(),
            checks: report.checks.clone(),
        });
        let final_stage = if report.validated {
            Stage::Done
        } else {
            Stage::Failed
        };
        for disk in &item.disks {
            self.set_stage(&item.disk_key(disk), final_stage);
        }
        self.send(Event::Validated {
            instance: item.instance_name.clone(),
            checks: report.checks.clone(),
        });
        report
    }

    async fn deploy_and_validate(
        &self,
        item: &PlanItem,
        disks: &[DiskOutput],
        report: &mut InstanceReport,
    ) -> Result<(), TransferError> {
        let config = self.deploy_config(item)?;
        let mut tags = config.tags.clone();
        tags.insert(
            "altishift:source".to_string(),
            format!("{}/{}", self.source.name(), item.instance_name),
        );
        let spec = DeploySpec {
            name: item.target_name.clone(),
            size: item.target_size.clone(),
            region: item.target_region.clone(),
            disks: disks.iter().map(|(w, _)| w.clone()).collect(),
            tags,
            platform: item.platform.clone(),
            config,
        };
        // Before deploy: the copy boots prepared on the target.
        let compared = self.prepare_guest(item, disks, report).await?;
        let deployed = match self.resume.deployed.get(&item.target_name) {
            Some(deployed) => deployed.clone(),
            None => {
                let target = &*self.target;
                self.audited_create(
                    target,
                    "deploy_instance",
                    &item.target_name,
                    target.target_role()?.deploy(&self.cap, &spec),
                    |deployed| {
                        self.journal_created(
                            None,
                            ResourceKind::Instance,
                            target,
                            &deployed.id,
                            false,
                        )?;
                        self.journal.append_durable(&Record::Deployed {
                            instance: item.target_name.clone(),
                            deployed: deployed.clone(),
                        })?;
                        Ok(())
                    },
                )
                .await?
            }
        };
        report.target_id = Some(deployed.id.clone());
        self.send(Event::InstanceDeployed {
            instance: item.instance_name.clone(),
            id: deployed.id.clone(),
        });
        for ((written, source), disk) in disks.iter().zip(&item.disks) {
            let key = item.disk_key(disk);
            if !compared.contains(&key) {
                report
                    .checks
                    .push(self.digest_check(&key, written, source).await);
            }
        }
        report
            .checks
            .extend(self.target.target_role()?.probe(&deployed, &spec).await?);
        // From outside: the console, the ports, the URLs the plan names.
        let outside = &self.approved.plan().checks;
        if !outside.is_empty() {
            report
                .checks
                .extend(outside_checks::run(&*self.target, &deployed, outside).await);
        }
        Ok(())
    }
}

impl Run {
    /// Reads `written` back from the target and compares it block for block
    /// with the source's digests; the target's digest goes into the report.
    async fn digest_check(
        &self,
        key: &str,
        written: &WrittenDisk,
        source: &DigestBuilder,
    ) -> Check {
        self.set_stage(key, Stage::Verify);
        let in_flight = self
            .options
            .in_flight
            .unwrap_or(self.target.default_in_flight());
        let read =
            validate::read_back_digests(&*self.target, written, in_flight, self.options.retry)
                .await;
        match read {
            Ok(target) => {
                if let Some(slot) = self.slots.get(key) {
                    lock(&slot.result).target_digest = target.as_ref().map(DigestBuilder::finish);
                }
                validate::compare(key, source, target.as_ref())
            }
            Err(e) => Check::new(format!("digest {key}"), false, e.to_string()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
