//! What the engine tells its listeners and what they may ask of it. Plain
//! serde types over channels, so the same stream can later cross a socket.

use crate::block::DiskDigest;
use crate::cloud::Check;
use crate::units::Bytes;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a disk is in its journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Queued,
    Snapshot,
    /// Reading, hashing and writing blocks (they overlap).
    Transfer,
    Paused,
    /// Writer finishing: format conversion, import, completion.
    Finish,
    Verify,
    Done,
    Failed,
    Cancelled,
}

impl Stage {
    pub fn is_terminal(self) -> bool {
        matches!(self, Stage::Done | Stage::Failed | Stage::Cancelled)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Stage::Queued => "queued",
            Stage::Snapshot => "snapshot",
            Stage::Transfer => "transfer",
            Stage::Paused => "paused",
            Stage::Finish => "finish",
            Stage::Verify => "verify",
            Stage::Done => "done",
            Stage::Failed => "failed",
            Stage::Cancelled => "cancelled",
        };
        f.write_str(text)
    }
}

/// A disk as the run sees it when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskInfo {
    /// `instance/disk`, the key every other event uses.
    pub disk: String,
    pub virtual_size: Bytes,
    pub allocated: Bytes,
}

/// Cumulative counters for one disk (sent a few times a second at most).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskProgress {
    pub disk: String,
    /// Bytes of allocated ranges scanned so far (read, whether sent or not).
    pub bytes_scanned: Bytes,
    /// Of those, bytes in all-zero blocks that were not sent.
    pub bytes_skipped: Bytes,
    /// Bytes written to the target.
    pub bytes_sent: Bytes,
    /// Bytes that an earlier, interrupted run had already sent.
    pub bytes_resumed: Bytes,
    /// Allocated bytes to scan in total.
    pub bytes_total: Bytes,
    pub retries: u32,
    /// Time spent transferring, excluding pauses.
    pub elapsed_ms: u64,
}

/// A cutover copies a disk in passes: a full pass while the source runs,
/// delta passes that send only the blocks that changed, and a final delta
/// pass after the source is quiesced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassKind {
    Full,
    Delta,
    Final,
}

impl std::fmt::Display for PassKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PassKind::Full => "full",
            PassKind::Delta => "delta",
            PassKind::Final => "final",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        plan_hash: String,
        resumed: bool,
        run_dir: PathBuf,
        disks: Vec<DiskInfo>,
    },
    Stage {
        disk: String,
        stage: Stage,
    },
    Progress(DiskProgress),
    Log {
        level: Level,
        message: String,
    },
    /// One pass over a disk ended (cutover runs have several per disk).
    PassFinished {
        disk: String,
        /// 1 for the first pass.
        pass: u32,
        kind: PassKind,
        blocks_sent: u64,
        bytes_sent: Bytes,
        elapsed_ms: u64,
    },
    DiskFinished {
        disk: String,
        digest: DiskDigest,
    },
    DiskFailed {
        disk: String,
        error: String,
    },
    InstanceDeployed {
        instance: String,
        id: String,
    },
    /// A firewall or key of the plan now exists on the target (made now,
    /// or reused: made by this plan before an interruption).
    Created(super::report::CreatedReport),
    Validated {
        instance: String,
        checks: Vec<Check>,
    },
    CleanedUp {
        resource: String,
        ok: bool,
        detail: String,
    },
    Revoked {
        cloud: String,
        items: Vec<String>,
    },
    RunFinished {
        ok: bool,
        report: PathBuf,
        summary: String,
    },
}

/// An event as `apply --json` prints it: the event's own fields, tagged by
/// `event` as always, plus `time`, when the listener received it (RFC 3339,
/// UTC, milliseconds: `2026-12-04T02:05:09.123Z`), so a log of the lines
/// shows how long each stage took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedEvent {
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
}

impl TimedEvent {
    /// Stamps `event` with the current time.
    pub fn now(event: Event) -> TimedEvent {
        TimedEvent {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            event,
        }
    }
}

/// What a listener may ask of a running engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    Pause {
        disk: String,
    },
    Resume {
        disk: String,
    },
    Cancel {
        disk: String,
    },
    /// Stop every disk at a consistent point; the journal lets `apply` resume.
    Shutdown,
    /// The run's bandwidth budget, shared by every disk (None: unlimited).
    SetBandwidth {
        rate: Option<Bytes>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timed_event_is_the_event_plus_its_time() {
        let progress = Event::Progress(DiskProgress {
            disk: "web-1/root".into(),
            bytes_sent: Bytes(4096),
            ..DiskProgress::default()
        });
        let stage = Event::Stage {
            disk: "web-1/root".into(),
            stage: Stage::Transfer,
        };
        for event in [progress, stage] {
            let timed = TimedEvent::now(event.clone());
            let line = serde_json::to_string(&timed).unwrap();
            let fields: serde_json::Value = serde_json::from_str(&line).unwrap();
            // The old shape, untouched, with `time` beside it.
            let mut expected = serde_json::to_value(&event).unwrap();
            expected["time"] = timed.time.clone().into();
            assert_eq!(fields, expected, "{line}");
            assert!(humantime::parse_rfc3339(&timed.time).is_ok(), "{line}");
            assert_eq!(timed.time.len(), "2026-12-04T02:05:09.123Z".len(), "{line}");
            assert_eq!(serde_json::from_str::<TimedEvent>(&line).unwrap(), timed);
        }
    }
}
