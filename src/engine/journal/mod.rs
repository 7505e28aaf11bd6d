//! The run journal: append-only JSON lines under the run folder. It records
//! every resource created, every block sent, every step finished, so a killed
//! run resumes without resending finished blocks and cleanup knows what to
//! remove.
//!
//! Durability: each record is written (one `write`) as soon as its step is
//! done, which survives a killed process. Power loss is handled with
//! checkpoints: the writer flushes the target disks, then the journal is
//! fsynced and a checkpoint line written. On replay after a reboot (a new
//! boot id) block records after the last checkpoint are not trusted.

use crate::block::{BlockDigest, DiskDigest};
use crate::cloud::{Check, CreatedResource, DeployedInstance, SnapshotRef, WrittenDisk};
use crate::units::BlockIndex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
pub enum Record {
    RunStarted {
        plan_hash: String,
        operator: String,
        at: String,
        boot_id: String,
    },
    Created {
        disk: Option<String>,
        resource: CreatedResource,
    },
    SnapshotReady {
        disk: String,
        snapshot: SnapshotRef,
    },
    WriterOpened {
        disk: String,
        staging_id: String,
    },
    Block {
        disk: String,
        i: u64,
        d: BlockDigest,
    },
    Zero {
        disk: String,
        i: u64,
    },
    /// Every record before line `covers` (0-based count) is durable.
    Checkpoint {
        at: String,
        covers: usize,
    },
    DiskWritten {
        disk: String,
        written: WrittenDisk,
        digest: DiskDigest,
    },
    Deployed {
        instance: String,
        deployed: DeployedInstance,
    },
    Validated {
        instance: String,
        checks: Vec<Check>,
    },
    Deleted {
        resource: CreatedResource,
    },
    Revoked {
        cloud: String,
        items: Vec<String>,
    },
    RunFinished {
        ok: bool,
        at: String,
        /// The operator gave the run up (`altishift cleanup`): no resume.
        #[serde(default)]
        abandoned: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("journal {path}:{line}: unreadable record ({message}); the journal is damaged")]
    Corrupt {
        path: String,
        line: usize,
        message: String,
    },
}

/// Per-disk progress recovered from the journal.
#[derive(Debug, Clone, Default)]
pub struct DiskState {
    pub snapshot: Option<SnapshotRef>,
    pub staging_id: Option<String>,
    /// Blocks whose bytes are known to be on the target.
    pub sent: BTreeMap<BlockIndex, BlockDigest>,
    pub zero: BTreeSet<BlockIndex>,
    pub written: Option<(WrittenDisk, DiskDigest)>,
}

/// Everything a replay recovers.
#[derive(Debug, Clone, Default)]
pub struct JournalState {
    pub plan_hash: Option<String>,
    pub disks: BTreeMap<String, DiskState>,
    pub created: Vec<CreatedResource>,
    /// Disk each created resource belongs to (None: run-wide).
    pub created_for: Vec<Option<String>>,
    pub deleted: Vec<CreatedResource>,
    pub deployed: BTreeMap<String, DeployedInstance>,
    pub validated: BTreeMap<String, Vec<Check>>,
    pub revoked: BTreeMap<String, Vec<String>>,
    pub finished: Option<bool>,
    pub abandoned: bool,
    pub records: usize,
}

impl JournalState {
    pub fn disk(&self, key: &str) -> DiskState {
        self.disks.get(key).cloned().unwrap_or_default()
    }

    /// Resources created and not yet deleted, with the disk they belong to.
    pub fn live_resources(&self) -> Vec<(Option<String>, CreatedResource)> {
        self.created
            .iter()
            .zip(&self.created_for)
            .filter(|(r, _)| !self.deleted.contains(r))
            .map(|(r, d)| (d.clone(), r.clone()))
            .collect()
    }

    /// Live temporary resources that cleanup may remove. A temporary that
    /// became a result — on EBS the staging snapshot *is* the finished disk,
    /// journaled once as staging and once as the disk — is not one of them.
    pub fn removable_temporaries(&self) -> Vec<(Option<String>, CreatedResource)> {
        let results: Vec<(&str, &str)> = self
            .created
            .iter()
            .filter(|r| !r.temporary)
            .map(|r| (r.cloud.as_str(), r.id.as_str()))
            .collect();
        self.live_resources()
            .into_iter()
            .filter(|(_, r)| r.temporary && !results.contains(&(r.cloud.as_str(), r.id.as_str())))
            .collect()
    }
}

pub struct Journal {
    path: PathBuf,
    /// The file and the number of records (lines) it holds.
    file: Mutex<(File, usize)>,
}

/// This boot's id: equal ids mean the page cache survived since a record was written.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Journal {
    /// Opens (creating) the journal and replays what it holds.
    pub fn open(path: &Path) -> Result<(Journal, JournalState), JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let state = if path.exists() {
            replay(path)?
        } else {
            JournalState::default()
        };
        let lines = cut_torn_tail(path).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                file: Mutex::new((file, lines)),
            },
            state,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record with a single write.
    pub fn append(&self, record: &Record) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(record).map_err(|e| JournalError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let mut guard = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard
            .0
            .write_all(&line)
            .map_err(|source| JournalError::Io {
                path: self.path.display().to_string(),
                source,
            })?;
        guard.1 += 1;
        Ok(())
    }

    /// Records written so far (a checkpoint's `covers`).
    pub fn len(&self) -> usize {
        self.file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a record and makes the journal durable.
    pub fn append_durable(&self, record: &Record) -> Result<(), JournalError> {
        self.append(record)?;
        self.sync()
    }

    pub fn sync(&self) -> Result<(), JournalError> {
        let guard = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.0.sync_data().map_err(|source| JournalError::Io {
            path: self.path.display().to_string(),
            source,
        })
    }
}

/// Drops a torn last line so the next record starts on a line of its own;
/// returns the number of complete lines.
fn cut_torn_tail(path: &Path) -> std::io::Result<usize> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let keep = data
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    if keep < data.len() {
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(keep as u64)?;
    }
    Ok(data[..keep].iter().filter(|&&b| b == b'\n').count())
}

/// Reads a journal back. A torn last line (a write cut by a crash) is
/// ignored; damage anywhere else is an error.
pub fn replay(path: &Path) -> Result<JournalState, JournalError> {
    let text = std::fs::read_to_string(path).map_err(|source| JournalError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let mut state = JournalState::default();
    let mut same_boot = true;
    // Block records since the last checkpoint: trusted only on the same boot.
    let mut pending: Vec<Pending> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(_) if n + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(JournalError::Corrupt {
                    path: path.display().to_string(),
                    line: n + 1,
                    message: e.to_string(),
                });
            }
        };
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
            Record::Block { disk, i, d } => pending.push((n, disk, BlockIndex(i), Some(d))),
            Record::Zero { disk, i } => pending.push((n, disk, BlockIndex(i), None)),
            Record::Checkpoint { covers, .. } => apply_pending(&mut state, &mut pending, covers),
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

/// A block record not yet covered by a checkpoint: (line, disk, block, digest).
type Pending = (usize, String, BlockIndex, Option<BlockDigest>);

fn apply_pending(state: &mut JournalState, pending: &mut Vec<Pending>, covers: usize) {
    let (covered, rest): (Vec<Pending>, Vec<Pending>) =
        pending.drain(..).partition(|p| p.0 < covers);
    *pending = rest;
    for (_, disk, index, digest) in covered {
        let disk = state.disks.entry(disk).or_default();
        match digest {
            Some(d) => {
                disk.sent.insert(index, d);
            }
            None => {
                disk.zero.insert(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(disk: &str, i: u64) -> Record {
        Record::Block {
            disk: disk.into(),
            i,
            d: BlockDigest::of(&i.to_le_bytes()),
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
            cloud: "aws".into(),
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
}
