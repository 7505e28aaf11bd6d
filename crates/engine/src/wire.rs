//! The run server's protocol: JSON lines over the run folder's Unix socket.
//!
//! A viewer sends one [`ClientMessage::Hello`], then commands; the engine
//! answers with a [`Welcome`], every event so far (the latest progress per
//! disk, not each sample), then live events as they happen. The protocol
//! has a version: an engine refuses a viewer that speaks another one, and
//! says which it speaks.

use super::event::{Command, Event, Stage, TimedEvent};
use crate::units::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bumped on any change a viewer of the previous version cannot read.
pub const PROTOCOL: u32 = 1;

/// Longest line either side accepts: events are small, a bigger line is
/// garbage or an attack, and reading stops there.
pub const MAX_LINE: usize = 1 << 20;

/// The socket in a run folder. `sun_path` holds 107 bytes: a longer path is
/// refused with its length rather than truncated.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("engine.sock")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Hello {
        protocol: u32,
        /// Who is watching, as the viewer describes itself (`apply`,
        /// `console`, `attach`); the audit log adds the kernel's uid and pid.
        viewer: String,
        /// A read-only viewer's commands are refused.
        read_only: bool,
    },
    Command {
        command: Command,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome(Welcome),
    Event(TimedEvent),
    /// A command the engine did not carry out, and why.
    Refused {
        command: Command,
        reason: String,
    },
    /// The viewer's hello was not accepted (other protocol, other user).
    Rejected {
        reason: String,
    },
}

/// What a viewer learns on connecting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol: u32,
    pub run: RunInfo,
    pub status: RunStatus,
    /// Viewers connected, this one included.
    pub viewers: usize,
}

/// The run as `runs` lists it; written to `engine.json` when the engine
/// starts, so a finished or killed run still says what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub plan_hash: String,
    pub plan_file: PathBuf,
    pub source: String,
    pub target: String,
    pub pid: u32,
    pub started_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Starting,
    Running,
    /// Every disk still moving is paused.
    Paused,
    Finished,
    Failed,
    Abandoned,
    /// Stopped before the end (killed, or shut down): `apply` resumes it.
    Interrupted,
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Abandoned => "abandoned",
            RunState::Interrupted => "interrupted",
        })
    }
}

/// Progress of a run in a few numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    pub state: RunState,
    pub disks: usize,
    pub disks_done: usize,
    pub bytes_scanned: Bytes,
    pub bytes_total: Bytes,
}

/// Everything a new viewer must see to catch up: every event but progress
/// samples, of which only each disk's latest is kept.
#[derive(Debug, Default)]
pub struct History {
    events: Vec<TimedEvent>,
    progress: BTreeMap<String, TimedEvent>,
    stages: BTreeMap<String, Stage>,
    finished: Option<bool>,
}

impl History {
    pub fn record(&mut self, timed: &TimedEvent) {
        match &timed.event {
            Event::Progress(p) => {
                self.progress.insert(p.disk.clone(), timed.clone());
                return;
            }
            Event::RunStarted { disks, .. } => {
                for disk in disks {
                    self.stages
                        .entry(disk.disk.clone())
                        .or_insert(Stage::Queued);
                }
            }
            Event::Stage { disk, stage } => {
                self.stages.insert(disk.clone(), *stage);
            }
            Event::RunFinished { ok, .. } => self.finished = Some(*ok),
            _ => {}
        }
        self.events.push(timed.clone());
    }

    /// The catch-up for a new viewer, in order: events, then the latest
    /// progress of each disk.
    pub fn replay(&self) -> impl Iterator<Item = &TimedEvent> {
        self.events.iter().chain(self.progress.values())
    }

    pub fn status(&self) -> RunStatus {
        let (mut scanned, mut total) = (0u64, 0u64);
        for timed in self.progress.values() {
            if let Event::Progress(p) = &timed.event {
                scanned += p.bytes_scanned.0;
                total += p.bytes_total.0;
            }
        }
        let moving: Vec<Stage> = self
            .stages
            .values()
            .copied()
            .filter(|s| !s.is_terminal())
            .collect();
        let state = match self.finished {
            Some(true) => RunState::Finished,
            Some(false) => RunState::Failed,
            None if self.stages.is_empty() => RunState::Starting,
            None if !moving.is_empty() && moving.iter().all(|s| *s == Stage::Paused) => {
                RunState::Paused
            }
            None => RunState::Running,
        };
        RunStatus {
            state,
            disks: self.stages.len(),
            disks_done: self.stages.values().filter(|s| **s == Stage::Done).count(),
            bytes_scanned: Bytes(scanned),
            bytes_total: Bytes(total),
        }
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes; `None` at the end of the
/// stream. A longer line is an error, never a growing buffer.
pub async fn read_line<R>(reader: &mut R) -> std::io::Result<Option<String>>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = Vec::new();
    let read = reader
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') && line.len() > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {MAX_LINE} bytes"),
        ));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// One message as its line, newline included.
pub fn to_line<T: Serialize>(message: &T) -> String {
    // Our own enums of strings and numbers: serialising cannot fail; an
    // empty line (skipped by readers) would be the only effect if it did.
    let mut line = serde_json::to_string(message).unwrap_or_default();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DiskInfo, DiskProgress};

    fn timed(event: Event) -> TimedEvent {
        TimedEvent::now(event)
    }

    fn progress(disk: &str, scanned: u64) -> Event {
        Event::Progress(DiskProgress {
            disk: disk.into(),
            bytes_scanned: Bytes(scanned),
            bytes_total: Bytes(100),
            ..DiskProgress::default()
        })
    }

    #[test]
    fn a_late_viewer_gets_every_event_and_only_the_last_progress() {
        let mut history = History::default();
        let disks = ["a/root", "b/root"].map(|d| DiskInfo {
            disk: d.into(),
            virtual_size: Bytes(100),
            allocated: Bytes(100),
        });
        history.record(&timed(Event::RunStarted {
            run_id: "run-1".into(),
            plan_hash: "h".into(),
            resumed: false,
            run_dir: "/r".into(),
            disks: disks.to_vec(),
        }));
        assert_eq!(history.status().state, RunState::Running);
        for n in [10, 20, 30] {
            history.record(&timed(progress("a/root", n)));
        }
        history.record(&timed(Event::Stage {
            disk: "a/root".into(),
            stage: Stage::Paused,
        }));
        history.record(&timed(progress("b/root", 50)));
        let replay: Vec<_> = history.replay().map(|t| t.event.clone()).collect();
        assert_eq!(replay.len(), 4, "{replay:?}");
        assert_eq!(replay[2], progress("a/root", 30));
        assert_eq!(replay[3], progress("b/root", 50));
        let status = history.status();
        assert_eq!(status.bytes_scanned, Bytes(80));
        assert_eq!(status.bytes_total, Bytes(200));
        assert_eq!(status.state, RunState::Running, "b/root still moves");
        history.record(&timed(Event::Stage {
            disk: "b/root".into(),
            stage: Stage::Paused,
        }));
        assert_eq!(history.status().state, RunState::Paused);
        history.record(&timed(Event::RunFinished {
            ok: false,
            report: "/r/report.md".into(),
            summary: "x".into(),
        }));
        assert_eq!(history.status().state, RunState::Failed);
    }

    #[test]
    fn messages_are_one_json_line_each_and_read_back() {
        let messages = [
            ServerMessage::Event(timed(progress("a/root", 1))),
            ServerMessage::Refused {
                command: Command::Pause {
                    disk: "a/root".into(),
                },
                reason: "read-only viewer".into(),
            },
        ];
        for message in messages {
            let line = serde_json::to_string(&message).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(
                serde_json::from_str::<ServerMessage>(&line).unwrap(),
                message
            );
        }
        let hello: ClientMessage = serde_json::from_str(
            r#"{"type":"hello","protocol":1,"viewer":"attach","read_only":true}"#,
        )
        .unwrap();
        assert!(matches!(
            hello,
            ClientMessage::Hello {
                read_only: true,
                ..
            }
        ));
        let command: ClientMessage =
            serde_json::from_str(r#"{"type":"command","command":{"command":"shutdown"}}"#).unwrap();
        assert_eq!(
            command,
            ClientMessage::Command {
                command: Command::Shutdown
            }
        );
    }
}
