//! Guests of sources whose disks stay in their cloud until the run: the
//! plan could not inspect them, so it approved the target's needs instead
//! (`inspect-at-run`). The run inspects a copy on this machine and applies
//! what those needs call for:
//! - the target's copy (the lab), before deploy: `prepare_guest`;
//! - for a cloud that takes the disk before deploy, a copy of the run's
//!   snapshot staged here first (two hops: source → this machine → target).
//!   The copy is prepared, then it is what the target receives, and its
//!   digest is what validation compares the target with.
//!
//! A guest found not preparable (Windows, a missing driver, no OS), or that
//! libguestfs cannot read, stops its disk before a block reaches the target
//! unless the plan says `--unprepared`.

use super::Run;
use crate::Level;
use crate::cloud::local_disk::LocalDiskReader;
use crate::cloud::staging::{KeepStaged, StagedWriter};
use crate::cloud::{Check, CloudError, DiskReader, DiskWriter, SnapshotRef};
use crate::control::DiskCounters;
use crate::guest::{inspect, prepare};
use crate::inventory::DiskFormat;
use crate::journal::DiskState;
use crate::pipeline::{DiskTransfer, TransferError};
use crate::plan::preparation::{AppliedTo, GuestPreparation, Status};
use crate::plan::{PlanDisk, PlanItem};
use std::path::{Path, PathBuf};

impl Run {
    /// The reader of the disk's staged, prepared copy when the plan
    /// prepares `disk` that way; None otherwise.
    pub(super) async fn staged_reader(
        &self,
        item: &PlanItem,
        disk: &PlanDisk,
        key: &str,
        snapshot: &SnapshotRef,
    ) -> Result<Option<Box<dyn DiskReader>>, TransferError> {
        let plan = self.approved.plan();
        let Some(guest) = plan.preparation.to_apply(&item.instance_name).filter(|g| {
            g.applied_to == AppliedTo::StagedCopy
                && g.status == Status::InspectAtRun
                && g.disk == disk.disk_id
        }) else {
            return Ok(None);
        };
        // One block read decides: a disk without boot code goes straight
        // to the target (no second hop), as the interrupted run decided.
        let source = self.open_reader(disk, key, snapshot).await?;
        if !crate::cloud::lab::boot::starts_with_boot_sector(&*source).await? {
            if !self.resume.prepared.contains_key(&item.instance_name) {
                self.prepared_before_sending(key, item, vec![no_boot_code()])?;
            }
            return Ok(Some(source));
        }
        let path = self.copy_path(key);
        // Journaled once the copy was prepared: blocks of it may be on the
        // target already, so the same copy must be sent on.
        if self.resume.prepared.contains_key(&item.instance_name) {
            if !path.is_file() {
                return Err(CloudError::Permanent(format!(
                    "{key}: the interrupted run's prepared copy {} is gone, and part of it \
                     may be on {} already: abandon this run and make a new plan",
                    path.display(),
                    self.target.name()
                ))
                .into());
            }
            return Ok(Some(Box::new(LocalDiskReader::open(
                &path,
                DiskFormat::Raw,
            )?)));
        }
        // A copy without `Prepared` may have stopped halfway through the
        // changes: copied again from the snapshot.
        self.stage_copy(disk, key, &*source, &path).await?;
        drop(source);
        let prepared = self
            .prepare_at_run(key, path.clone(), DiskFormat::Raw, guest)
            .await
            .map_err(TransferError::from)
            .and_then(|checks| self.prepared_before_sending(key, item, checks));
        if let Err(e) = prepared {
            // Refused or not verified: a copy no run will send.
            self.remove_copy(key);
            return Err(e);
        }
        Ok(Some(Box::new(LocalDiskReader::open(
            &path,
            DiskFormat::Raw,
        )?)))
    }

    /// Where `key`'s staged copy lives: the run folder, so a resumed run
    /// finds it; named by a digest of the key (instance names are the
    /// operator's text).
    fn copy_path(&self, key: &str) -> PathBuf {
        let digest = crate::block::BlockDigest::of(key.as_bytes());
        let name = crate::block::to_hex(&digest.0);
        self.dir
            .join("guest-copies")
            .join(format!("{}.raw", &name[..16]))
    }

    /// Removes `key`'s staged copy once the target holds the disk.
    pub(super) fn remove_copy(&self, key: &str) {
        let path = self.copy_path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => self.log(
                Level::Info,
                format!("{key}: staged copy {} removed", path.display()),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.log(
                Level::Warn,
                format!("{key}: cannot remove staged copy {}: {e}", path.display()),
            ),
        }
    }

    /// The first hop: every allocated block of the snapshot into a sparse
    /// raw file here, through the same pipeline (pause, cancel, retries,
    /// bandwidth share) but with counters of its own, so the disk's figures
    /// stay those of the target.
    async fn stage_copy(
        &self,
        disk: &PlanDisk,
        key: &str,
        reader: &dyn DiskReader,
        path: &Path,
    ) -> Result<(), TransferError> {
        let slot = self
            .slots
            .get(key)
            .ok_or_else(|| CloudError::Permanent(format!("{key}: not a disk of this run")))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CloudError::from_io(format!("creating {}", parent.display()), e))?;
        }
        match std::fs::remove_file(path) {
            Ok(()) => self.log(
                Level::Info,
                format!("{key}: the interrupted run's copy may be half-prepared: copied again"),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CloudError::from_io(format!("removing {}", path.display()), e).into());
            }
        }
        self.log(
            Level::Info,
            format!(
                "{key}: copying the snapshot to {} to prepare the guest before it is sent",
                path.display()
            ),
        );
        // Its blocks are journaled under their own key, which no disk has.
        let copy_key = format!("{key} (staged copy)");
        let writer = StagedWriter::open(
            path,
            copy_key.clone(),
            disk.virtual_size,
            Box::new(KeepStaged),
        )?;
        let counters = DiskCounters::default();
        // Always from block 0: see `staged_reader`.
        let resume = DiskState::default();
        DiskTransfer {
            counters: &counters,
            // The operator's figure, else the source's: its reads are the
            // limit here, not the local file.
            in_flight: self
                .options
                .in_flight
                .unwrap_or(self.source.default_in_flight()),
            ..self.disk_transfer(&copy_key, slot, reader, &writer, &resume)
        }
        .run()
        .await?;
        let writer: Box<dyn DiskWriter> = Box::new(writer);
        writer.finish(0).await?;
        Ok(())
    }

    /// Inspects the copy at `path` and applies what the plan's approved
    /// needs call for, verified: the checks. Err when the guest cannot be
    /// prepared (unless `--unprepared`) or libguestfs failed.
    pub(super) async fn prepare_at_run(
        &self,
        key: &str,
        path: PathBuf,
        format: DiskFormat,
        guest: &GuestPreparation,
    ) -> Result<Vec<Check>, CloudError> {
        let target = self.target.name().to_string();
        let unprepared = self.approved.plan().preparation.unprepared;
        let refuse = |why: String| {
            if unprepared {
                Ok(vec![Check::new(
                    "guest preparation",
                    true,
                    format!("not prepared, migrated as it is (--unprepared): {why}"),
                )])
            } else {
                Err(CloudError::Permanent(format!(
                    "{key} cannot be prepared for {target}: {why}; the instance is not \
                     deployed (--unprepared migrates such guests as they are)"
                )))
            }
        };
        if !crate::cloud::lab::boot::has_boot_sector(&path, format).await? {
            return Ok(vec![no_boot_code()]);
        }
        self.log(Level::Info, format!("{key}: inspecting the guest"));
        let inspected = path.clone();
        let found = tokio::task::spawn_blocking(move || inspect::inspect(&inspected, format))
            .await
            .map_err(|e| CloudError::Permanent(format!("inspection task: {e}")))?;
        let found = match found {
            Ok(found) => found,
            Err(e) => return refuse(e.to_string()),
        };
        let what = format!("{} {} ({})", found.distro, found.version, found.product);
        let changes = match prepare::changes(&found, &guest.needs, &target) {
            Ok(changes) => changes,
            Err(refusal) => return refuse(refusal.reason),
        };
        let inspected = Check::new(
            "guest inspection",
            true,
            format!("{what}: {} change(s) for {target}", changes.len()),
        );
        if changes.is_empty() {
            return Ok(vec![inspected]);
        }
        let mut checks = vec![inspected];
        checks.extend(
            self.apply_changes(&*self.target, key, path, format, &changes)
                .await?,
        );
        Ok(checks)
    }
}

/// The check of a disk that has nothing to boot, so nothing to prepare.
fn no_boot_code() -> Check {
    Check::new(
        "guest preparation",
        true,
        "no BIOS boot code on the disk: nothing to prepare",
    )
}
