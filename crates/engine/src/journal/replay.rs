//! Reading a journal back into what a resumed run needs.

use super::{DiskState, JournalError, JournalState, PassRecord, Record, boot_id};
use crate::block::BlockDigest;
use crate::units::BlockIndex;
use std::path::Path;

/// Highest block index a record may name: its byte offset must fit in 64
/// bits (a hand-edited or damaged journal must not overflow later sums).
const MAX_BLOCK_INDEX: u64 = u64::MAX / crate::units::BLOCK_SIZE;

/// Reads a journal back. A torn last line (a write cut by a crash or a full
/// disk) is ignored with a warning; damage anywhere else is an error naming
/// the file and line.
pub fn replay(path: &Path) -> Result<JournalState, JournalError> {
    let data = std::fs::read(path).map_err(|source| JournalError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let corrupt = |line: usize, message: String| JournalError::Corrupt {
        path: path.display().to_string(),
        line,
        message,
    };
    let torn = !data.is_empty() && !data.ends_with(b"\n");
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    // `split` yields an empty piece after a final newline.
    let last = if torn { lines.len() } else { lines.len() - 1 };
    let mut state = JournalState::default();
    let mut same_boot = true;
    // Block records since the last checkpoint: trusted only on the same boot.
    let mut pending: Vec<Pending> = Vec::new();
    for (n, line) in lines.iter().enumerate().take(last) {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: Record = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) if torn && n + 1 == last => {
                tracing::warn!(
                    journal = %path.display(),
                    line = n + 1,
                    "ignoring a torn last record ({e}); it was being written when the run stopped"
                );
                break;
            }
            Err(e) => return Err(corrupt(n + 1, e.to_string())),
        };
        if let Record::Block { i, .. } | Record::Zero { i, .. } | Record::Zeroed { i, .. } = &record
            && *i > MAX_BLOCK_INDEX
        {
            return Err(corrupt(
                n + 1,
                format!("block index {i} is beyond any disk (at most {MAX_BLOCK_INDEX})"),
            ));
        }
        state.records += 1;
        match record {
            Record::RunStarted {
                plan_hash,
                boot_id: id,
                ..
            } => {
                same_boot = id == boot_id();
                state.plan_hash = Some(plan_hash);
            }
            Record::Created { disk, resource } => {
                if !state.created.contains(&resource) {
                    state.created.push(resource);
                    state.created_for.push(disk);
                }
            }
            Record::SnapshotReady { disk, snapshot } => {
                state.disks.entry(disk).or_default().snapshot = Some(snapshot)
            }
            Record::WriterOpened { disk, staging_id } => {
                state.disks.entry(disk).or_default().staging_id = Some(staging_id)
            }
            Record::Block { disk, i, d, p } => {
                pending.push((n, disk, BlockIndex(i), p, BlockFate::Data(d)))
            }
            Record::Zero { disk, i, p } => {
                pending.push((n, disk, BlockIndex(i), p, BlockFate::Zero))
            }
            Record::Zeroed { disk, i, p } => {
                pending.push((n, disk, BlockIndex(i), p, BlockFate::Zeroed))
            }
            Record::Checkpoint { covers, .. } => apply_pending(&mut state, &mut pending, covers),
            Record::PassStarted { disk, pass, kind } => {
                let disk = state.disks.entry(disk).or_default();
                if disk.pass != pass {
                    disk.sent.clear();
                    disk.zero.clear();
                    disk.pass_written.clear();
                }
                disk.pass = pass;
                disk.pass_kind = Some(kind);
            }
            Record::PassFinished {
                disk,
                pass,
                kind,
                blocks_sent,
                bytes_sent,
                elapsed_ms,
            } => {
                let disk = state.disks.entry(disk).or_default();
                disk.passes.retain(|p| p.pass != pass);
                disk.passes.push(PassRecord {
                    pass,
                    kind,
                    blocks_sent,
                    bytes_sent,
                    elapsed_ms,
                });
            }
            Record::Restarted { disk } => {
                // Block records before this line are void, checkpointed or not.
                pending.retain(|p| p.1 != disk);
                let disk = state.disks.entry(disk).or_default();
                *disk = DiskState {
                    snapshot: disk.snapshot.take(),
                    staging_id: disk.staging_id.take(),
                    restarted: true,
                    ..DiskState::default()
                };
            }
            Record::Quiesced { instance } => {
                state.quiesced.insert(instance);
            }
            Record::Thawed { instance } => {
                state.quiesced.remove(&instance);
            }
            Record::PoweredOff { instance } => {
                state.quiesced.remove(&instance);
                state.powered_off.insert(instance);
            }
            Record::DiskWritten {
                disk,
                written,
                digest,
            } => {
                state.disks.entry(disk).or_default().written = Some((written, digest));
            }
            Record::Deployed { instance, deployed } => {
                state.deployed.insert(instance, deployed);
            }
            Record::Validated { instance, checks } => {
                state.validated.insert(instance, checks);
            }
            Record::Prepared { instance, checks } => {
                state.prepared.insert(instance, checks);
            }
            Record::Deleted { resource } => state.deleted.push(resource),
            Record::Revoked { cloud, items } => {
                state.revoked.insert(cloud, items);
            }
            Record::RunFinished { ok, abandoned, .. } => {
                state.finished = Some(ok);
                state.abandoned = abandoned;
            }
        }
    }
    if same_boot {
        apply_pending(&mut state, &mut pending, usize::MAX);
    }
    Ok(state)
}

/// What became of a block.
#[derive(Debug, Clone, Copy)]
enum BlockFate {
    Data(BlockDigest),
    /// Read as zero, not sent.
    Zero,
    /// Written as zeros over data the target held.
    Zeroed,
}

/// A block record not yet covered by a checkpoint: (line, disk, block, pass, fate).
type Pending = (usize, String, BlockIndex, u32, BlockFate);

fn apply_pending(state: &mut JournalState, pending: &mut Vec<Pending>, covers: usize) {
    let (covered, rest): (Vec<Pending>, Vec<Pending>) =
        pending.drain(..).partition(|p| p.0 < covers);
    *pending = rest;
    for (_, disk, index, pass, fate) in covered {
        let disk = state.disks.entry(disk).or_default();
        let current = pass == disk.pass;
        match fate {
            BlockFate::Data(d) => {
                disk.held.insert(index, d);
                if current {
                    disk.sent.insert(index, d);
                    disk.pass_written.insert(index);
                }
            }
            BlockFate::Zero => {
                if current {
                    disk.zero.insert(index);
                }
            }
            BlockFate::Zeroed => {
                disk.held.remove(&index);
                if current {
                    disk.sent.remove(&index);
                    disk.pass_written.insert(index);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;
    use crate::event::PassKind;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn block(disk: &str, i: u64) -> Record {
        Record::Block {
            disk: disk.into(),
            i,
            d: BlockDigest::of(&i.to_le_bytes()),
            p: 0,
        }
    }

    #[test]
    fn replay_recovers_blocks_and_ignores_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (journal, state) = Journal::open(&path).unwrap();
        assert_eq!(state.records, 0);
        journal
            .append(&Record::RunStarted {
                plan_hash: "abc".into(),
                operator: "o".into(),
                at: "t".into(),
                boot_id: boot_id(),
            })
            .unwrap();
        journal.append(&block("a/root", 3)).unwrap();
        journal
            .append(&Record::Zero {
                disk: "a/root".into(),
                i: 4,
                p: 0,
            })
            .unwrap();
        drop(journal);
        // A write cut in half by kill -9.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"rec\":\"block\",\"disk\":\"a/ro")
            .unwrap();
        let state = replay(&path).unwrap();
        // Reopening cuts the torn line, so new records stay readable.
        let (journal, _) = Journal::open(&path).unwrap();
        assert_eq!(journal.len(), 3);
        journal.append(&block("a/root", 5)).unwrap();
        assert!(
            replay(&path)
                .unwrap()
                .disk("a/root")
                .sent
                .contains_key(&BlockIndex(5))
        );
        assert_eq!(state.plan_hash.as_deref(), Some("abc"));
        let disk = state.disk("a/root");
        assert_eq!(
            disk.sent.keys().copied().collect::<Vec<_>>(),
            vec![BlockIndex(3)]
        );
        assert!(disk.zero.contains(&BlockIndex(4)));
    }

    #[test]
    fn a_staging_resource_that_became_the_disk_is_not_removable() {
        use crate::cloud::ResourceKind;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (journal, _) = Journal::open(&path).unwrap();
        let resource = |kind, id: &str, temporary| CreatedResource {
            cloud: "target".into(),
            kind,
            id: id.into(),
            temporary,
        };
        for r in [
            resource(ResourceKind::Snapshot, "snap-source", true),
            resource(ResourceKind::StagingDisk, "snap-target", true),
            resource(ResourceKind::Disk, "snap-target", false),
        ] {
            journal
                .append(&Record::Created {
                    disk: Some("d".into()),
                    resource: r,
                })
                .unwrap();
        }
        let state = replay(&path).unwrap();
        let ids: Vec<String> = state
            .removable_temporaries()
            .into_iter()
            .map(|(_, r)| r.id)
            .collect();
        assert_eq!(ids, vec!["snap-source".to_string()]);
    }

    #[test]
    fn after_a_reboot_only_checkpointed_blocks_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (journal, _) = Journal::open(&path).unwrap();
        journal
            .append(&Record::RunStarted {
                plan_hash: "abc".into(),
                operator: "o".into(),
                at: "t".into(),
                boot_id: "another-boot".into(),
            })
            .unwrap();
        journal.append(&block("d", 1)).unwrap();
        journal
            .append(&Record::Checkpoint {
                at: "t".into(),
                covers: journal.len(),
            })
            .unwrap();
        journal.append(&block("d", 2)).unwrap();
        let state = replay(&path).unwrap();
        assert_eq!(
            state.disk("d").sent.keys().copied().collect::<Vec<_>>(),
            vec![BlockIndex(1)]
        );
    }

    #[test]
    fn damage_in_the_middle_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let line = "{\"rec\":\"checkpoint\",\"at\":\"t\",\"covers\":0}";
        std::fs::write(&path, format!("{line}\nnot json\n{line}\n")).unwrap();
        let err = replay(&path).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
    }

    #[test]
    fn passes_keep_what_the_target_holds_and_a_restart_voids_the_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (journal, _) = Journal::open(&path).unwrap();
        let d = |n: u8| BlockDigest::of(&[n]);
        let started = |pass, kind| Record::PassStarted {
            disk: "d".into(),
            pass,
            kind,
        };
        let data = |i, n, p| Record::Block {
            disk: "d".into(),
            i,
            d: d(n),
            p,
        };
        for record in [
            started(1, PassKind::Full),
            data(0, 1, 1),
            data(1, 1, 1),
            data(2, 1, 1),
            Record::PassFinished {
                disk: "d".into(),
                pass: 1,
                kind: PassKind::Full,
                blocks_sent: 3,
                bytes_sent: 3,
                elapsed_ms: 1,
            },
            started(2, PassKind::Final),
            data(1, 2, 2),
            Record::Zeroed {
                disk: "d".into(),
                i: 2,
                p: 2,
            },
        ] {
            journal.append(&record).unwrap();
        }
        let state = replay(&path).unwrap().disk("d");
        assert_eq!(state.pass, 2);
        assert_eq!(state.pass_kind, Some(PassKind::Final));
        assert!(state.pass_open());
        assert_eq!(state.passes.len(), 1);
        let held: Vec<(u64, BlockDigest)> = state.held.iter().map(|(i, d)| (i.0, *d)).collect();
        assert_eq!(held, vec![(0, d(1)), (1, d(2))]);
        assert_eq!(state.pass_written.len(), 2, "the final pass wrote 2 blocks");
        assert_eq!(state.sent.len(), 1, "only this pass's data blocks");

        journal
            .append(&Record::Restarted { disk: "d".into() })
            .unwrap();
        let state = replay(&path).unwrap().disk("d");
        assert!(state.restarted && state.held.is_empty() && state.passes.is_empty());
        assert_eq!(state.pass, 0);
    }

    #[test]
    fn a_short_block_digest_is_an_error_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let ok = "{\"rec\":\"checkpoint\",\"at\":\"t\",\"covers\":0}";
        std::fs::write(
            &path,
            format!("{ok}\n{{\"rec\":\"block\",\"disk\":\"d\",\"i\":1,\"d\":\"abcde\"}}\n"),
        )
        .unwrap();
        let err = replay(&path).unwrap_err().to_string();
        assert!(err.contains("journal.jsonl:2:"), "{err}");
        assert!(err.contains("64 hex digits"), "{err}");
    }

    #[test]
    fn a_short_disk_digest_is_refused_before_anything_shows_a_prefix_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let digest = crate::block::DigestBuilder::default().finish();
        let record = Record::DiskWritten {
            disk: "d".into(),
            written: WrittenDisk {
                id: "x".into(),
                format: crate::inventory::DiskFormat::Raw,
                virtual_size: crate::units::Bytes(1),
            },
            digest: digest.clone(),
        };
        let line = serde_json::to_string(&record)
            .unwrap()
            .replace(&digest.linear_sha256, "abcde");
        std::fs::write(&path, format!("{line}\n")).unwrap();
        let err = replay(&path).unwrap_err().to_string();
        assert!(
            err.contains(":1:") && err.contains("linear_sha256"),
            "{err}"
        );
    }

    #[test]
    fn a_block_index_beyond_any_disk_is_an_error_not_an_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let line = format!(r#"{{"rec":"zero","disk":"d","i":{}}}"#, u64::MAX);
        std::fs::write(&path, format!("{line}\n")).unwrap();
        let err = replay(&path).unwrap_err().to_string();
        assert!(
            err.contains(":1:") && err.contains("beyond any disk"),
            "{err}"
        );
    }

    #[test]
    fn a_new_journal_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/run-x/journal.jsonl");
        Journal::open(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_full_disk_stops_the_journal_and_leaves_it_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (journal, _) = Journal::open(&path).unwrap();
        journal.append(&block("d", 1)).unwrap();
        journal.append(&block("d", 2)).unwrap();
        // What ENOSPC looks like to the writer: /dev/full fails every write.
        journal.file.lock().unwrap().file =
            OpenOptions::new().append(true).open("/dev/full").unwrap();
        let err = journal.append(&block("d", 3)).unwrap_err().to_string();
        assert!(err.contains("journal.jsonl"), "{err}");
        assert!(err.to_lowercase().contains("space"), "{err}");
        let again = journal.append(&block("d", 4)).unwrap_err().to_string();
        assert!(again.contains("takes no more records"), "{again}");
        drop(journal);
        // apply (resume) and cleanup open it again, with both blocks.
        let (_, state) = Journal::open(&path).unwrap();
        assert_eq!(state.disk("d").sent.len(), 2);
    }

    #[test]
    fn a_torn_line_cut_by_a_full_disk_does_not_block_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (journal, _) = Journal::open(&path).unwrap();
        journal.append(&block("d", 1)).unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"rec\":\"block\",\"disk\":\"d\",\"i\":2,\"d\":\"ab")
            .unwrap();
        drop(file);
        let (journal, state) = Journal::open(&path).unwrap();
        assert_eq!(state.disk("d").sent.len(), 1);
        journal.append(&block("d", 3)).unwrap();
        assert_eq!(replay(&path).unwrap().disk("d").sent.len(), 2);
    }

    #[test]
    fn bytes_that_are_not_utf8_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let ok = "{\"rec\":\"checkpoint\",\"at\":\"t\",\"covers\":0}";
        let mut data = format!("{ok}\n{ok}\n").into_bytes();
        data.extend_from_slice(b"{\"rec\":\"thawed\",\"instance\":\"\xff\"}\n");
        std::fs::write(&path, data).unwrap();
        let err = replay(&path).unwrap_err().to_string();
        assert!(err.contains(":3:"), "{err}");
    }
}
