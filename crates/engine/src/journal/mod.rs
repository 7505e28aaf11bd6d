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

use super::event::PassKind;
use crate::block::{BlockDigest, DiskDigest};
use crate::cloud::{Check, CreatedResource, DeployedInstance, SnapshotRef, WrittenDisk};
use crate::units::BlockIndex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod replay;
pub use replay::replay;

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
    /// A block written (`p`: the cutover pass, 0 in a run without passes).
    Block {
        disk: String,
        i: u64,
        d: BlockDigest,
        #[serde(default, skip_serializing_if = "is_zero")]
        p: u32,
    },
    /// A block read as zero and not sent.
    Zero {
        disk: String,
        i: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        p: u32,
    },
    /// A block the target held data in, overwritten with zeros (it became
    /// zero on the source since an earlier pass).
    Zeroed {
        disk: String,
        i: u64,
        p: u32,
    },
    /// A cutover pass over a disk began; records until the next one belong to it.
    PassStarted {
        disk: String,
        pass: u32,
        kind: PassKind,
    },
    PassFinished {
        disk: String,
        pass: u32,
        kind: PassKind,
        blocks_sent: u64,
        bytes_sent: u64,
        elapsed_ms: u64,
    },
    /// The reopened writer could not keep what the interrupted run wrote:
    /// every block record of the disk before this one is void.
    Restarted {
        disk: String,
    },
    /// Cutover steps on a source instance.
    Quiesced {
        instance: String,
    },
    Thawed {
        instance: String,
    },
    PoweredOff {
        instance: String,
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
    /// The approved guest preparation was applied to the instance's target
    /// copy (checks: its digest before, each change verified after).
    Prepared {
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

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A finished cutover pass, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassRecord {
    pub pass: u32,
    pub kind: PassKind,
    pub blocks_sent: u64,
    pub bytes_sent: u64,
    pub elapsed_ms: u64,
}

/// Per-disk progress recovered from the journal.
#[derive(Debug, Clone, Default)]
pub struct DiskState {
    pub snapshot: Option<SnapshotRef>,
    pub staging_id: Option<String>,
    /// Blocks of the current pass whose bytes are known to be on the target
    /// (in a run without passes: all of them).
    pub sent: BTreeMap<BlockIndex, BlockDigest>,
    /// Blocks of the current pass read as zero.
    pub zero: BTreeSet<BlockIndex>,
    /// What the target holds after every pass so far: block → digest.
    pub held: BTreeMap<BlockIndex, BlockDigest>,
    /// The pass begun last (0: none), and its kind.
    pub pass: u32,
    pub pass_kind: Option<PassKind>,
    /// Blocks written (data or zeros) in the current pass.
    pub pass_written: BTreeSet<BlockIndex>,
    /// Passes that finished, in order.
    pub passes: Vec<PassRecord>,
    /// The writer restarted from block 0 at least once.
    pub restarted: bool,
    pub written: Option<(WrittenDisk, DiskDigest)>,
}

impl DiskState {
    /// True when the pass begun last has not finished.
    pub fn pass_open(&self) -> bool {
        self.pass > 0 && self.passes.last().is_none_or(|p| p.pass != self.pass)
    }
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
    /// Instances whose target copy was prepared, with the checks then.
    pub prepared: BTreeMap<String, Vec<Check>>,
    pub revoked: BTreeMap<String, Vec<String>>,
    /// Cutover: source instances quiesced (and not thawed since), powered off.
    pub quiesced: BTreeSet<String>,
    pub powered_off: BTreeSet<String>,
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
    file: Mutex<Tail>,
}

/// The open file and what it durably holds so far.
struct Tail {
    file: File,
    /// Records (lines) it holds.
    lines: usize,
    /// Bytes of whole records: a failed write is cut back to this.
    bytes: u64,
    /// A write failed (disk full, I/O error): the journal takes no more
    /// records, so nothing half-written follows a gap.
    failed: bool,
}

/// This boot's id: equal ids mean the page cache survived since a record was written.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Journal {
    /// Opens (creating) the journal and replays what it holds. A new journal
    /// is made durable in its folder at once (0600, folder 0700), so a crash
    /// right after the first record cannot lose the file itself.
    pub fn open(path: &Path) -> Result<(Journal, JournalState), JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::fsutil::create_private_dir_all(dir).map_err(io)?;
        let existed = path.exists();
        let state = if existed {
            replay(path)?
        } else {
            JournalState::default()
        };
        let (lines, bytes) = cut_torn_tail(path).map_err(io)?;
        let file = crate::fsutil::open_private_append(path).map_err(io)?;
        if !existed {
            // The new file's entry, and the run folder's own entry.
            crate::fsutil::sync_dir(dir).map_err(io)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                crate::fsutil::sync_dir(parent).map_err(io)?;
            }
        }
        Ok((
            Journal {
                path: path.to_path_buf(),
                file: Mutex::new(Tail {
                    file,
                    lines,
                    bytes,
                    failed: false,
                }),
            },
            state,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Appends one record with a single write. When the write fails (ENOSPC
    /// and the like) whatever part of the line reached the file is cut off
    /// and the journal refuses further records: the run stops, and the file
    /// still replays for `apply` (resume) and `cleanup`.
    pub fn append(&self, record: &Record) -> Result<(), JournalError> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| self.io_error(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut tail = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if tail.failed {
            return Err(self.io_error(std::io::Error::other(
                "an earlier write failed; the journal takes no more records",
            )));
        }
        if let Err(source) = tail.file.write_all(&line) {
            tail.failed = true;
            // Shrinking needs no free space. If it fails too, replay still
            // ignores a torn last line.
            let _ = tail.file.set_len(tail.bytes);
            return Err(self.io_error(source));
        }
        tail.lines += 1;
        tail.bytes += line.len() as u64;
        Ok(())
    }

    /// Records written so far (a checkpoint's `covers`).
    pub fn len(&self) -> usize {
        self.file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .lines
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
        let tail = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tail.file
            .sync_data()
            .map_err(|source| self.io_error(source))
    }
}

/// Drops a torn last line so the next record starts on a line of its own;
/// returns the number of complete lines and their bytes.
fn cut_torn_tail(path: &Path) -> std::io::Result<(usize, u64)> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
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
    Ok((
        data[..keep].iter().filter(|&&b| b == b'\n').count(),
        keep as u64,
    ))
}
