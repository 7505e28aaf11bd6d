//! A cutover, as the approved plan lists it: every disk is copied while the
//! source runs (pass 1, the writer stays open), then delta passes send what
//! changed until the changes stop shrinking; then the instance is quiesced,
//! a final delta pass runs per disk, the source is powered off (or thawed),
//! and only then are the writers finished and the target deployed.
//!
//! Every pass is journaled (its start, each block with its pass number, its
//! end), so a delta compares with what the target actually holds and a
//! resumed run carries on in the pass it was in.

use super::disk::OpenDisk;
use super::{DiskOutput, DiskSlot, Run, lock};
use crate::block::{BlockDigest, DigestBuilder};
use crate::cloud::{CloudError, DiskReader, DiskRef, SnapshotRef, WriteOrder};
use crate::event::PassKind;
use crate::journal::{DiskState, PassRecord, Record};
use crate::pipeline::{PassContext, TransferError};
use crate::plan::{Cutover, PlanDisk, PlanItem};
use crate::units::{BLOCK_SIZE, BlockIndex};
use crate::{Event, Level};
use std::collections::BTreeMap;
use std::time::Instant;

/// A disk between its passes: the writer open, what the target holds known.
struct LiveDisk {
    key: String,
    instance_id: String,
    plan: PlanDisk,
    snapshot: SnapshotRef,
    open: OpenDisk,
    held: BTreeMap<BlockIndex, BlockDigest>,
    /// Passes finished, journaled ones included.
    passes: Vec<PassRecord>,
    /// For sources whose delta passes read fresh snapshots: the snapshot
    /// the target holds all of (the last pass this process finished), so
    /// the next delta can be listed between snapshots. None after a resume:
    /// the delta is then found by hashing.
    base: Option<SnapshotRef>,
}

impl LiveDisk {
    fn next_pass(&self) -> u32 {
        self.passes.last().map_or(1, |p| p.pass + 1)
    }

    fn final_done(&self) -> bool {
        self.passes.iter().any(|p| p.kind == PassKind::Final)
    }
}

/// Where a disk stands when the instance's cutover steps begin.
enum Ready {
    /// The journal says the disk was finished already.
    Written(DiskOutput),
    Live(Box<LiveDisk>),
}

impl Run {
    /// Moves an instance's disks as a cutover; one entry per disk, None for
    /// a disk that failed (already reported).
    pub(super) async fn cutover_instance(
        &self,
        item: &PlanItem,
        cutover: &Cutover,
    ) -> Vec<Option<DiskOutput>> {
        let prepared = futures::future::join_all(
            item.disks
                .iter()
                .map(|disk| self.prepare_disk(item, disk, cutover)),
        )
        .await;
        if prepared.iter().any(Option::is_none) {
            // The others wait, their writers unfinished, for `apply` to resume.
            for (disk, ready) in item.disks.iter().zip(&prepared) {
                let key = item.disk_key(disk);
                if let (Some(_), Some(slot)) = (ready, self.slots.get(&key)) {
                    lock(&slot.result).error = Some(
                        "stopped before the cutover: another disk of the instance failed".into(),
                    );
                    self.set_stage(&key, crate::Stage::Failed);
                }
            }
        }
        let Some(ready) = prepared.into_iter().collect::<Option<Vec<Ready>>>() else {
            self.log(
                Level::Warn,
                format!(
                    "{}: a disk failed before the cutover; the source was not quiesced \
                     (apply resumes)",
                    item.instance_name
                ),
            );
            return vec![None; item.disks.len()];
        };
        match self.cut_over(item, cutover, ready).await {
            Ok(outputs) => outputs,
            Err(e) => {
                let error = e.to_string();
                for disk in &item.disks {
                    let key = item.disk_key(disk);
                    if let Some(slot) = self.slots.get(&key) {
                        self.disk_outcome::<()>(
                            &key,
                            slot,
                            Err(TransferError::Cloud(CloudError::Permanent(error.clone()))),
                        );
                    }
                }
                vec![None; item.disks.len()]
            }
        }
    }

    /// Pass 1 and the delta passes of one disk, while the source runs.
    async fn prepare_disk(
        &self,
        item: &PlanItem,
        disk: &PlanDisk,
        cutover: &Cutover,
    ) -> Option<Ready> {
        let key = item.disk_key(disk);
        let _permit = self.disk_permits.acquire().await.ok()?;
        let slot = self.slots.get(&key)?;
        let prepared = self
            .passes_while_running(item, disk, cutover, &key, slot)
            .await;
        self.disk_outcome(&key, slot, prepared)
    }

    async fn passes_while_running(
        &self,
        item: &PlanItem,
        disk: &PlanDisk,
        cutover: &Cutover,
        key: &str,
        slot: &DiskSlot,
    ) -> Result<Ready, TransferError> {
        let resume = self.resume.disk(key);
        if let Some(output) = self.already_written(key, slot, &resume) {
            return Ok(Ready::Written(output));
        }
        let snapshot = self.take_snapshot(item, disk, key, slot, &resume).await?;
        let open = self.open_writer(item, disk, key, resume).await?;
        if open.writer.order() != WriteOrder::Any {
            return Err(CloudError::Permanent(format!(
                "{key}: {} takes blocks only in order, so it cannot take delta passes: \
                 plan without --cutover",
                self.target.name()
            ))
            .into());
        }
        let mut live = LiveDisk {
            key: key.to_string(),
            instance_id: item.instance_id.clone(),
            plan: disk.clone(),
            snapshot,
            held: open.resume.held.clone(),
            passes: open.resume.passes.clone(),
            open,
            base: None,
        };
        if live.open.resume.restarted && live.passes.is_empty() {
            // The writer lost the earlier passes: they no longer count.
            lock(&slot.passes).clear();
        }
        self.set_transfer_stage(key, slot);
        // An interrupted pass is finished first (a final one waits for the
        // instance's quiesce, which the journal also knows about).
        let resume = live.open.resume.clone();
        if resume.pass_open() {
            match resume.pass_kind {
                Some(PassKind::Final) => return Ok(Ready::Live(Box::new(live))),
                Some(kind) => self.pass(&mut live, slot, resume.pass, kind).await?,
                None => {}
            }
        }
        if live.passes.is_empty() {
            self.pass(&mut live, slot, 1, PassKind::Full).await?;
        }
        while !live.final_done() && self.another_delta(&live.passes, cutover) {
            let pass = live.next_pass();
            self.pass(&mut live, slot, pass, PassKind::Delta).await?;
        }
        Ok(Ready::Live(Box::new(live)))
    }

    /// True while delta passes are allowed and still shrinking.
    fn another_delta(&self, passes: &[PassRecord], cutover: &Cutover) -> bool {
        let deltas: Vec<&PassRecord> = passes
            .iter()
            .filter(|p| p.kind == PassKind::Delta)
            .collect();
        if deltas.len() as u32 >= cutover.max_delta_passes {
            return false;
        }
        match deltas[..] {
            [] => true,
            [.., last] if last.blocks_sent == 0 => false,
            [.., before, last] => last.blocks_sent < before.blocks_sent,
            [_] => true,
        }
    }

    /// The instance's cutover steps once every disk is ready.
    async fn cut_over(
        &self,
        item: &PlanItem,
        cutover: &Cutover,
        ready: Vec<Ready>,
    ) -> Result<Vec<Option<DiskOutput>>, TransferError> {
        let mut live: Vec<LiveDisk> = Vec::new();
        let mut outputs: Vec<Option<DiskOutput>> = Vec::new();
        for disk in ready {
            match disk {
                Ready::Written(output) => outputs.push(Some(output)),
                Ready::Live(disk) => {
                    outputs.push(None);
                    live.push(*disk);
                }
            }
        }
        if live.is_empty() {
            return Ok(outputs);
        }
        let instance = &item.instance_name;
        let source = &*self.source;
        let powered_off = self.resume.powered_off.contains(instance);
        let needs_final = live.iter().any(|d| !d.final_done());
        if needs_final && !self.resume.quiesced.contains(instance) && !powered_off {
            // The wave's window holds the final pass (and the quiesce before it).
            if !self.wait_for_window(item.wave, "its final pass").await {
                return Err(TransferError::Cancelled);
            }
            lock(&self.quiesced_at).insert(instance.clone(), Instant::now());
            self.audited(
                source,
                "quiesce_source",
                instance,
                source.cutover_role()?.quiesce(
                    &self.cap,
                    &item.instance_id,
                    cutover.quiesce.as_deref(),
                    cutover.thaw.as_deref(),
                ),
            )
            .await?;
            self.journal.append_durable(&Record::Quiesced {
                instance: instance.clone(),
            })?;
        }
        let finals =
            futures::future::join_all(live.iter_mut().map(|disk| self.final_pass(disk))).await;
        if let Some(failed) = finals.into_iter().find_map(Result::err) {
            // The copy is not whole: the source goes back to work.
            self.thaw_source(item, cutover).await;
            return Err(failed);
        }
        if !powered_off {
            if cutover.power_off {
                let stopped = self
                    .audited(
                        source,
                        "power_off_source",
                        instance,
                        source
                            .cutover_role()?
                            .power_off(&self.cap, &item.instance_id),
                    )
                    .await;
                if let Err(e) = stopped {
                    self.thaw_source(item, cutover).await;
                    return Err(e.into());
                }
                self.journal.append_durable(&Record::PoweredOff {
                    instance: instance.clone(),
                })?;
            } else {
                self.audited(
                    source,
                    "thaw_source",
                    instance,
                    source.cutover_role()?.thaw(
                        &self.cap,
                        &item.instance_id,
                        cutover.thaw.as_deref(),
                    ),
                )
                .await?;
                self.journal.append_durable(&Record::Thawed {
                    instance: instance.clone(),
                })?;
            }
        }
        let mut finished = live.into_iter();
        for output in outputs.iter_mut().filter(|o| o.is_none()) {
            let Some(disk) = finished.next() else {
                break;
            };
            let mut digests = DigestBuilder::default();
            for (index, digest) in &disk.held {
                digests.insert(*index, *digest);
            }
            let done = self.finish_disk(&disk.key, disk.open, digests).await?;
            let slot = self.slots.get(&disk.key).ok_or_else(|| {
                TransferError::Cloud(CloudError::Permanent(format!("no disk {}", disk.key)))
            })?;
            *output = Some(self.disk_done(&disk.key, slot, done));
        }
        Ok(outputs)
    }

    /// The last delta pass of a disk, after the quiesce (once).
    async fn final_pass(&self, disk: &mut LiveDisk) -> Result<(), TransferError> {
        if disk.final_done() {
            return Ok(());
        }
        let slot = self.slots.get(&disk.key).ok_or_else(|| {
            TransferError::Cloud(CloudError::Permanent(format!("no disk {}", disk.key)))
        })?;
        let _permit = self
            .disk_permits
            .acquire()
            .await
            .map_err(|_| TransferError::Cancelled)?;
        let resume = &disk.open.resume;
        let pass = if resume.pass_open() && resume.pass_kind == Some(PassKind::Final) {
            resume.pass
        } else {
            disk.next_pass()
        };
        self.set_transfer_stage(&disk.key, slot);
        self.pass(disk, slot, pass, PassKind::Final).await
    }

    /// Best effort: the source resumes work after a failed cutover step.
    async fn thaw_source(&self, item: &PlanItem, cutover: &Cutover) {
        let source = &*self.source;
        // Only a cutover source was quiesced (preflight checked the role).
        let Some(cutover_source) = source.as_cutover() else {
            return;
        };
        let thawed = self
            .audited(
                source,
                "thaw_source",
                &item.instance_name,
                cutover_source.thaw(&self.cap, &item.instance_id, cutover.thaw.as_deref()),
            )
            .await;
        match thawed {
            Ok(()) => {
                let _ = self.journal.append_durable(&Record::Thawed {
                    instance: item.instance_name.clone(),
                });
            }
            Err(e) => self.log(
                Level::Error,
                format!(
                    "{}: could not thaw the source after a failed cutover: {e}",
                    item.instance_name
                ),
            ),
        }
    }

    /// A new snapshot of a disk for delta pass `pass`, journaled (removed at
    /// cleanup) like the first.
    async fn pass_snapshot(
        &self,
        disk: &LiveDisk,
        pass: u32,
    ) -> Result<SnapshotRef, TransferError> {
        let key = &disk.key;
        let name = format!(
            "altishift-{}-{}-p{pass}",
            self.cap.plan_hash().short(),
            disk.key.replace('/', "-")
        );
        let at = DiskRef {
            instance_id: disk.instance_id.clone(),
            disk_id: disk.plan.disk_id.clone(),
        };
        self.journaled_snapshot(key, &at, &name).await
    }

    /// Runs pass `pass` over a disk: a full copy, or the blocks that differ
    /// from what the target holds. Journals and announces its end.
    async fn pass(
        &self,
        disk: &mut LiveDisk,
        slot: &DiskSlot,
        pass: u32,
        kind: PassKind,
    ) -> Result<(), TransferError> {
        let key = disk.key.clone();
        let journaled = disk.open.resume.clone();
        let resuming = journaled.pass == pass && journaled.pass_open();
        if !resuming {
            self.journal.append_durable(&Record::PassStarted {
                disk: key.clone(),
                pass,
                kind,
            })?;
        }
        let started = Instant::now();
        let reader: Box<dyn DiskReader> = match kind {
            PassKind::Full => {
                let reader = self.open_reader(&disk.plan, &key, &disk.snapshot).await?;
                // Opening the reader settled how the source streams (an SSH
                // agent, or dd where the agent could not run): without delta
                // passes the full copy would be wasted, so stop before it.
                self.source
                    .cutover_role()?
                    .cutover_support(&disk.instance_id)
                    .await?;
                reader
            }
            PassKind::Delta | PassKind::Final if self.source.cutover_role()?.delta_snapshots() => {
                // A snapshot is a point in time: each delta reads a new one.
                let fresh = self.pass_snapshot(disk, pass).await?;
                let source = self.source.cutover_role()?;
                let (base, held) = (disk.base.as_ref(), &disk.held);
                let reader = self
                    .options
                    .retry
                    .run(|| source.open_snapshot_delta(base, &fresh, held), |_, _| {})
                    .await?;
                disk.snapshot = fresh;
                reader
            }
            PassKind::Delta | PassKind::Final => {
                let source = self.source.cutover_role()?;
                let held = &disk.held;
                let snapshot = &disk.snapshot;
                self.options
                    .retry
                    .run(|| source.open_delta_reader(snapshot, held), |_, _| {})
                    .await?
                    .ok_or_else(|| {
                        CloudError::Unsupported(format!(
                            "{}: {} cannot send only changed blocks",
                            key,
                            source.name()
                        ))
                    })?
            }
        };
        // Within a full pass the journal's blocks are skipped; a delta is
        // computed against what the target holds, resumed blocks included.
        let fresh = DiskState::default();
        let resume = if kind == PassKind::Full && resuming {
            &journaled
        } else {
            &fresh
        };
        let outcome = self
            .transfer(
                &key,
                slot,
                &*reader,
                &*disk.open.writer,
                resume,
                PassContext {
                    pass,
                    held: Some(&disk.held),
                },
            )
            .await?;
        drop(reader);
        for (index, digest) in outcome.digests.blocks() {
            disk.held.insert(*index, *digest);
        }
        for index in &outcome.zeroed {
            disk.held.remove(index);
        }
        // Blocks the interrupted process wrote in this pass count for it.
        let (mut blocks, mut bytes) = (outcome.blocks_sent, outcome.bytes_sent);
        if resuming {
            let size = disk.plan.virtual_size.0;
            blocks += journaled.pass_written.len() as u64;
            bytes += journaled
                .pass_written
                .iter()
                .map(|i| size.saturating_sub(i.0 * BLOCK_SIZE).min(BLOCK_SIZE))
                .sum::<u64>();
        }
        let record = PassRecord {
            pass,
            kind,
            blocks_sent: blocks,
            bytes_sent: bytes,
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        self.journal.append_durable(&Record::PassFinished {
            disk: key.clone(),
            pass,
            kind,
            blocks_sent: record.blocks_sent,
            bytes_sent: record.bytes_sent,
            elapsed_ms: record.elapsed_ms,
        })?;
        self.log(
            Level::Info,
            format!(
                "{key}: pass {pass} ({kind}) sent {blocks} blocks ({})",
                crate::units::Bytes(bytes)
            ),
        );
        self.send(Event::PassFinished {
            disk: key.clone(),
            pass,
            kind,
            blocks_sent: record.blocks_sent,
            bytes_sent: crate::units::Bytes(record.bytes_sent),
            elapsed_ms: record.elapsed_ms,
        });
        let mut passes = lock(&slot.passes);
        passes.retain(|p| p.pass != pass);
        passes.push(record.clone());
        drop(passes);
        disk.passes.push(record);
        // The target now holds this pass's snapshot, block for block.
        disk.base = Some(disk.snapshot.clone());
        // The next pass of this process starts clean.
        disk.open.resume = DiskState {
            pass,
            pass_kind: Some(kind),
            passes: disk.passes.clone(),
            ..DiskState::default()
        };
        Ok(())
    }
}
