//! The run server: a detached engine process serves its run's events to any
//! number of viewers on a Unix socket in the run folder, and takes their
//! commands.
//!
//! Only the engine's own user may connect: the folder is 0700, the socket
//! 0600, and each connection's kernel credentials (`SO_PEERCRED`) are
//! checked. Every command is written to the audit log with the viewer's
//! name, uid and pid; a read-only viewer's commands are refused and audited
//! as refused. Viewers come and go; the run never waits for one.

use super::audit::AuditLog;
use super::event::{Command, TimedEvent};
use super::wire::{
    self, ClientMessage, History, PROTOCOL, RunInfo, ServerMessage, Welcome, read_line, to_line,
};
use super::{EngineError, RunHandle, RunOutcome};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};

/// Lines a slow viewer may fall behind before it is sent the catch-up again.
const VIEWER_BACKLOG: usize = 4096;
/// How long a viewer has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "{path}: a socket path has at most 107 bytes, this one {len}: use a shorter --state-dir"
    )]
    PathTooLong { path: String, len: usize },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the run folder's socket (0600), replacing a stale one: the caller
/// holds the run lock, so no live engine can own it.
pub fn bind(run_dir: &Path) -> Result<UnixListener, ServerError> {
    use std::os::unix::fs::PermissionsExt;
    let path = wire::socket_path(run_dir);
    let len = path.as_os_str().len();
    if len > 107 {
        return Err(ServerError::PathTooLong {
            path: path.display().to_string(),
            len,
        });
    }
    let io = |what, source| ServerError::Io {
        what,
        path: path.display().to_string(),
        source,
    };
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("removing", e)),
        _ => {}
    }
    let listener = UnixListener::bind(&path).map_err(|e| io("binding", e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io("restricting", e))?;
    Ok(listener)
}

/// Writes what `runs` shows of a run that is gone: `engine.json` (0600).
pub fn write_info(run_dir: &Path, info: &RunInfo) -> std::io::Result<()> {
    use std::io::Write;
    let path = run_dir.join("engine.json");
    let tmp = run_dir.join("engine.json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = crate::fsutil::open_private_append(&tmp)?;
    file.write_all(to_line(info).as_bytes())?;
    file.sync_data()?;
    std::fs::rename(&tmp, &path)
}

pub fn read_info(run_dir: &Path) -> Option<RunInfo> {
    let text = std::fs::read_to_string(run_dir.join("engine.json")).ok()?;
    serde_json::from_str(text.trim()).ok()
}

struct Hub {
    info: RunInfo,
    history: Mutex<History>,
    /// Gone once the run ended: viewers then drain and see the end of stream.
    lines: Mutex<Option<broadcast::Sender<Arc<str>>>>,
    viewers: AtomicUsize,
    commands: mpsc::UnboundedSender<Command>,
    audit: AuditLog,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves `handle`'s run on `listener` until the run is over and its viewers
/// have read the end (at most `linger` after it), then removes the socket.
pub async fn serve(
    mut handle: RunHandle,
    listener: UnixListener,
    info: RunInfo,
    audit: AuditLog,
    linger: Duration,
) -> Result<RunOutcome, EngineError> {
    let (sender, _) = broadcast::channel(VIEWER_BACKLOG);
    let hub = Arc::new(Hub {
        info,
        history: Mutex::new(History::default()),
        lines: Mutex::new(Some(sender)),
        viewers: AtomicUsize::new(0),
        commands: handle.commands.clone(),
        audit,
    });
    let socket = wire::socket_path(&handle.run_dir);
    let accept = tokio::spawn(accept_viewers(listener, hub.clone()));
    while let Some(event) = handle.events.recv().await {
        let timed = TimedEvent::now(event);
        let line: Arc<str> = to_line(&ServerMessage::Event(timed.clone())).into();
        // Recorded and sent under one lock: a viewer subscribing meanwhile
        // gets each event once, in its catch-up or live.
        let mut history = lock(&hub.history);
        history.record(&timed);
        if let Some(sender) = lock(&hub.lines).as_ref() {
            let _ = sender.send(line);
        }
    }
    let outcome = match (&mut handle.done).await {
        Ok(result) => result,
        Err(join) => Err(EngineError::Preflight(format!(
            "the engine task ended abnormally: {join}"
        ))),
    };
    {
        let _history = lock(&hub.history);
        lock(&hub.lines).take();
    }
    // Viewers read the end; late ones still get the whole story meanwhile.
    let deadline = tokio::time::Instant::now() + linger;
    tokio::time::sleep(Duration::from_millis(200)).await;
    while hub.viewers.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    accept.abort();
    let _ = std::fs::remove_file(&socket);
    outcome
}

async fn accept_viewers(listener: UnixListener, hub: Arc<Hub>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_viewer(stream, hub.clone()));
            }
            Err(e) => {
                tracing::warn!("run server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Counts a viewer for as long as it is connected.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Who sent a command, for the audit log: the viewer's own words and what
/// the kernel says of the connection.
struct Peer {
    viewer: String,
    uid: u32,
    pid: Option<i32>,
    read_only: bool,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let viewer = crate::text::safe(&self.viewer);
        write!(f, "{viewer} (uid {}", self.uid)?;
        if let Some(pid) = self.pid {
            write!(f, ", pid {pid}")?;
        }
        f.write_str(")")
    }
}

async fn serve_viewer(stream: UnixStream, hub: Arc<Hub>) {
    let credentials = stream.peer_cred();
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    // SAFETY: geteuid has no failure mode.
    let own_uid = unsafe { libc::geteuid() };
    let peer_uid = match &credentials {
        Ok(cred) if cred.uid() == own_uid => cred.uid(),
        other => {
            let who = other
                .as_ref()
                .map(|c| format!("uid {}", c.uid()))
                .unwrap_or_else(|e| format!("unknown peer ({e})"));
            let reason = format!("this run belongs to uid {own_uid}; refused {who}");
            tracing::warn!("run server: {reason}");
            let _ = write
                .write_all(to_line(&ServerMessage::Rejected { reason }).as_bytes())
                .await;
            return;
        }
    };
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_line(&mut reader)).await;
    let (viewer, read_only) = match hello {
        Ok(Ok(Some(line))) => match serde_json::from_str::<ClientMessage>(&line) {
            Ok(ClientMessage::Hello {
                protocol,
                viewer,
                read_only,
            }) if protocol == PROTOCOL => (viewer, read_only),
            Ok(ClientMessage::Hello { protocol, .. }) => {
                let reason = format!(
                    "this engine speaks protocol {PROTOCOL}, the viewer {protocol}: use the same altishift version"
                );
                let _ = write
                    .write_all(to_line(&ServerMessage::Rejected { reason }).as_bytes())
                    .await;
                return;
            }
            _ => return,
        },
        _ => return,
    };
    let peer = Peer {
        viewer,
        uid: peer_uid,
        pid: credentials.ok().and_then(|c| c.pid()),
        read_only,
    };
    hub.viewers.fetch_add(1, Ordering::SeqCst);
    let _counted = Counted(&hub.viewers);
    let (first, mut live) = catch_up(&hub);
    if write.write_all(first.as_bytes()).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            line = async {
                match live.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => Err(broadcast::error::RecvError::Closed),
                }
            } => match line {
                Ok(line) => {
                    if write.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow for the live stream: catch up again (stages
                    // are states, progress is cumulative: repeats are harmless).
                    let (again, rx) = catch_up(&hub);
                    live = rx;
                    if write.write_all(again.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = write.shutdown().await;
                    return;
                }
            },
            line = read_line(&mut reader) => match line {
                Ok(Some(line)) => {
                    if let Some(answer) = take_command(&hub, &peer, &line)
                        && write.write_all(answer.as_bytes()).await.is_err()
                    {
                        return;
                    }
                }
                _ => return,
            },
        }
    }
}

/// The welcome and every event so far, and the live stream from there on
/// (none when the run is over).
fn catch_up(hub: &Hub) -> (String, Option<broadcast::Receiver<Arc<str>>>) {
    let history = lock(&hub.history);
    let live = lock(&hub.lines).as_ref().map(|s| s.subscribe());
    let welcome = Welcome {
        protocol: PROTOCOL,
        run: hub.info.clone(),
        status: history.status(),
        viewers: hub.viewers.load(Ordering::SeqCst),
    };
    let mut text = to_line(&ServerMessage::Welcome(welcome));
    for timed in history.replay() {
        text.push_str(&to_line(&ServerMessage::Event(timed.clone())));
    }
    (text, live)
}

/// Carries out (or refuses) one command line; returns the answer to send
/// back, if any. Every command is audited, refused ones too.
fn take_command(hub: &Hub, peer: &Peer, line: &str) -> Option<String> {
    let command = match serde_json::from_str::<ClientMessage>(line) {
        Ok(ClientMessage::Command { command }) => command,
        // A second hello, or garbage: ignored, the viewer stays.
        _ => return None,
    };
    let (action, resource) = describe(&command);
    let who = peer.to_string();
    if peer.read_only {
        let _ = hub.audit.record(
            "-",
            action,
            &resource,
            &format!("refused: read-only viewer {who}"),
        );
        return Some(to_line(&ServerMessage::Refused {
            command,
            reason: "this viewer is read-only (attach without --read-only to control the run)"
                .into(),
        }));
    }
    if let Err(e) = hub
        .audit
        .record("-", action, &resource, &format!("from {who}"))
    {
        return Some(to_line(&ServerMessage::Refused {
            command,
            reason: format!("cannot write the audit log: {e}"),
        }));
    }
    if hub.commands.send(command.clone()).is_err() {
        return Some(to_line(&ServerMessage::Refused {
            command,
            reason: "the run is over".into(),
        }));
    }
    None
}

/// The audit log's action and resource for a command.
fn describe(command: &Command) -> (&'static str, String) {
    match command {
        Command::Pause { disk } => ("command_pause", disk.clone()),
        Command::Resume { disk } => ("command_resume", disk.clone()),
        Command::Cancel { disk } => ("command_cancel", disk.clone()),
        Command::Shutdown => ("command_shutdown", "run".into()),
        Command::SetBandwidth { rate } => (
            "command_set_bandwidth",
            rate.map(|r| format!("{r}/s"))
                .unwrap_or_else(|| "unlimited".into()),
        ),
    }
}

/// Where a run's socket is, for viewers: refuses a run folder that has none.
pub fn socket_of(run_dir: &Path) -> Option<PathBuf> {
    let path = wire::socket_path(run_dir);
    path.exists().then_some(path)
}
