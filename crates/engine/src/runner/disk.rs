//! One disk: snapshot, reader, writer (reopened on a resume), the transfer
//! and the finish; shared by plain runs and cutover passes.

use super::{DiskOutput, DiskSlot, Run, lock};
use crate::block::DigestBuilder;
use crate::cloud::{
    CloudError, DiskReader, DiskRef, DiskWriter, ResourceKind, SnapshotRef, TargetDiskSpec,
};
use crate::control::DiskCounters;
use crate::journal::{DiskState, Record};
use crate::pipeline::{DiskTransfer, PassContext, PassOutcome, TransferError};
use crate::plan::{PlanDisk, PlanItem};
use crate::{Event, Level, Stage};

impl Run {
    /// Moves one disk; None when it failed or was cancelled (already reported).
    pub(super) async fn migrate_disk(
        &self,
        item: &PlanItem,
        disk: &PlanDisk,
    ) -> Option<DiskOutput> {
        let key = item.disk_key(disk);
        let _permit = self.disk_permits.acquire().await.ok()?;
        let slot = self.slots.get(&key)?;
        let moved = self.move_disk(item, disk, &key, slot).await;
        self.disk_outcome(&key, slot, moved)
            .map(|output| self.disk_done(&key, slot, output))
    }

    /// Records a disk's success (its digest) and says so.
    pub(super) fn disk_done(&self, key: &str, slot: &DiskSlot, output: DiskOutput) -> DiskOutput {
        let digest = output.1.finish();
        lock(&slot.result).source_digest = Some(digest.clone());
        self.send(Event::DiskFinished {
            disk: key.to_string(),
            digest,
        });
        output
    }

    /// Reports a disk's failure or cancellation; None then.
    pub(super) fn disk_outcome<T>(
        &self,
        key: &str,
        slot: &DiskSlot,
        result: Result<T, TransferError>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(TransferError::Cancelled) => {
                lock(&slot.result).error = Some("cancelled".into());
                self.set_stage(key, Stage::Cancelled);
                None
            }
            Err(e) => {
                let error = e.to_string();
                tracing::warn!(disk = key, "failed: {error}");
                lock(&slot.result).error = Some(error.clone());
                self.set_stage(key, Stage::Failed);
                self.send(Event::DiskFailed {
                    disk: key.to_string(),
                    error,
                });
                None
            }
        }
    }

    pub(super) async fn move_disk(
        &self,
        item: &PlanItem,
        disk: &PlanDisk,
        key: &str,
        slot: &DiskSlot,
    ) -> Result<DiskOutput, TransferError> {
        let resume = self.resume.disk(key);
        if let Some(output) = self.already_written(key, slot, &resume) {
            return Ok(output);
        }
        let snapshot = self.take_snapshot(item, disk, key, slot, &resume).await?;
        let snapshot = self.prepare_snapshot(item, disk, key, snapshot).await?;
        let reader = match self.staged_reader(item, disk, key, &snapshot).await? {
            Some(prepared) => prepared,
            None => self.open_reader(disk, key, &snapshot).await?,
        };
        let open = self.open_writer(item, disk, key, resume).await?;
        self.set_transfer_stage(key, slot);
        let outcome = self
            .transfer(
                key,
                slot,
                &*reader,
                &*open.writer,
                &open.resume,
                PassContext::default(),
            )
            .await?;
        let output = self.finish_disk(key, open, outcome.digests).await?;
        self.remove_copy(key);
        Ok(output)
    }

    /// The disk an interrupted run already finished, from its journal.
    pub(super) fn already_written(
        &self,
        key: &str,
        slot: &DiskSlot,
        resume: &DiskState,
    ) -> Option<DiskOutput> {
        let (written, _) = resume.written.as_ref()?;
        let mut digests = DigestBuilder::default();
        for (index, digest) in &resume.held {
            digests.insert(*index, *digest);
        }
        let resumed: u64 = resume.held.len() as u64 * crate::units::BLOCK_SIZE;
        DiskCounters::add(&slot.counters.resumed, resumed);
        self.log(
            Level::Info,
            format!("{key}: already written by the interrupted run"),
        );
        Some((written.clone(), digests))
    }

    /// The plan's snapshot, the journaled one, or a new one.
    pub(super) async fn take_snapshot(
        &self,
        item: &PlanItem,
        disk: &PlanDisk,
        key: &str,
        slot: &DiskSlot,
        resume: &DiskState,
    ) -> Result<SnapshotRef, TransferError> {
        slot.control
            .proceed()
            .await
            .map_err(|_| TransferError::Cancelled)?;
        self.set_stage(key, Stage::Snapshot);
        if let Some(id) = &disk.source_snapshot {
            return Ok(SnapshotRef {
                id: id.clone(),
                virtual_size: disk.virtual_size,
                format: disk.source_format,
                created_by_run: false,
            });
        }
        if let Some(snapshot) = &resume.snapshot {
            return Ok(snapshot.clone());
        }
        let name = format!(
            "altishift-{}-{}-{}",
            self.cap.plan_hash().short(),
            item.instance_name,
            disk.disk_id
        );
        let at = DiskRef {
            instance_id: item.instance_id.clone(),
            disk_id: disk.disk_id.clone(),
        };
        self.journaled_snapshot(key, &at, &name).await
    }

    /// Takes a snapshot of `at` named `name`, audited; journals it as created
    /// (removed at cleanup) when the run made it, and as the disk's snapshot.
    pub(super) async fn journaled_snapshot(
        &self,
        key: &str,
        at: &DiskRef,
        name: &str,
    ) -> Result<SnapshotRef, TransferError> {
        let source = &*self.source;
        self.audited_create(
            source,
            "snapshot_disk",
            key,
            source.source_role()?.snapshot_disk(&self.cap, at, name),
            |snapshot| {
                if snapshot.created_by_run {
                    self.journal_created(
                        Some(key),
                        ResourceKind::Snapshot,
                        source,
                        &snapshot.id,
                        true,
                    )?;
                }
                self.journal.append_durable(&Record::SnapshotReady {
                    disk: key.to_string(),
                    snapshot: snapshot.clone(),
                })?;
                Ok(())
            },
        )
        .await
    }

    /// Opens a full reader of the snapshot and checks its size against the plan.
    pub(super) async fn open_reader(
        &self,
        disk: &PlanDisk,
        key: &str,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn DiskReader>, TransferError> {
        let source = self.source.source_role()?;
        let reader = self
            .options
            .retry
            .run(|| source.open_disk_reader(snapshot), |_, _| {})
            .await?;
        if reader.virtual_size() != disk.virtual_size {
            return Err(CloudError::Permanent(format!(
                "{key}: disk is {} now, the plan says {}: make a new plan",
                reader.virtual_size(),
                disk.virtual_size
            ))
            .into());
        }
        Ok(reader)
    }

    /// Opens (or reopens) the target writer. A reopened writer that could
    /// not keep what the interrupted run wrote voids the journaled blocks:
    /// the disk is sent again from block 0.
    pub(super) async fn open_writer(
        &self,
        item: &PlanItem,
        disk: &PlanDisk,
        key: &str,
        resume: DiskState,
    ) -> Result<OpenDisk, TransferError> {
        let target = &*self.target;
        let spec = TargetDiskSpec {
            name: format!("{}-{}", item.target_name, disk.disk_id),
            virtual_size: disk.virtual_size,
            format: disk.target_format,
            region: item.target_region.clone(),
            boot: disk.boot,
            resume: resume.staging_id.clone(),
            platform: item.platform.clone(),
        };
        let fresh = resume.staging_id.is_none();
        let writer = self
            .audited_create(
                target,
                "open_disk_writer",
                &spec.name,
                target.target_role()?.open_disk_writer(&self.cap, &spec),
                |writer| {
                    if fresh {
                        self.journal_created(
                            Some(key),
                            ResourceKind::StagingDisk,
                            target,
                            &writer.staging_id(),
                            true,
                        )?;
                        self.journal.append_durable(&Record::WriterOpened {
                            disk: key.to_string(),
                            staging_id: writer.staging_id(),
                        })?;
                    }
                    Ok(())
                },
            )
            .await?;
        let mut resume = resume;
        if !fresh && writer.restarted() {
            self.journal.append_durable(&Record::Restarted {
                disk: key.to_string(),
            })?;
            self.log(
                Level::Warn,
                format!(
                    "{key}: the target could not keep what the interrupted run wrote; \
                     sending the disk again from block 0"
                ),
            );
            resume = DiskState {
                snapshot: resume.snapshot,
                staging_id: resume.staging_id,
                restarted: true,
                ..DiskState::default()
            };
        }
        Ok(OpenDisk {
            writer,
            spec,
            resume,
        })
    }

    pub(super) fn set_transfer_stage(&self, key: &str, slot: &DiskSlot) {
        self.set_stage(
            key,
            if slot.control.state().paused {
                Stage::Paused
            } else {
                Stage::Transfer
            },
        );
    }

    /// One pass of blocks from `reader` to `writer`.
    pub(super) async fn transfer(
        &self,
        key: &str,
        slot: &DiskSlot,
        reader: &dyn DiskReader,
        writer: &dyn DiskWriter,
        resume: &DiskState,
        context: PassContext<'_>,
    ) -> Result<PassOutcome, TransferError> {
        self.disk_transfer(key, slot, reader, writer, resume)
            .run_pass(context)
            .await
    }

    /// The transfer of `reader` into `writer` under `slot`'s counters,
    /// control, throttle and bandwidth share, with the run's options.
    pub(super) fn disk_transfer<'a>(
        &'a self,
        key: &'a str,
        slot: &'a DiskSlot,
        reader: &'a dyn DiskReader,
        writer: &'a dyn DiskWriter,
        resume: &'a DiskState,
    ) -> DiskTransfer<'a> {
        DiskTransfer {
            key,
            reader,
            writer,
            resume,
            counters: &slot.counters,
            control: &slot.control,
            throttle: slot.throttle.as_ref(),
            budget: Some(&slot.share),
            journal: &self.journal,
            retry: self.options.retry,
            in_flight: self
                .options
                .in_flight
                .unwrap_or(self.target.default_in_flight()),
            checkpoint_every: self.options.checkpoint_every,
        }
    }

    /// Completes the target disk and journals it.
    pub(super) async fn finish_disk(
        &self,
        key: &str,
        open: OpenDisk,
        digests: DigestBuilder,
    ) -> Result<DiskOutput, TransferError> {
        let target = &*self.target;
        self.set_stage(key, Stage::Finish);
        let blocks = digests.len() as u64;
        let digest = digests.finish();
        let written = self
            .audited_create(
                target,
                "write_disk",
                &open.spec.name,
                open.writer.finish(blocks),
                |written| {
                    self.journal_created(
                        Some(key),
                        ResourceKind::Disk,
                        target,
                        &written.id,
                        false,
                    )?;
                    self.journal.append_durable(&Record::DiskWritten {
                        disk: key.to_string(),
                        written: written.clone(),
                        digest,
                    })?;
                    Ok(())
                },
            )
            .await?;
        Ok((written, digests))
    }
}

/// A disk whose target writer is open.
pub(super) struct OpenDisk {
    pub(super) writer: Box<dyn DiskWriter>,
    pub(super) spec: TargetDiskSpec,
    /// What the journal says about the disk (emptied when the writer restarted).
    pub(super) resume: DiskState,
}
