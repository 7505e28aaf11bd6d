//! A viewer's end of the run server: connects to a run folder's socket,
//! says hello, and hands over the engine's messages and a command sender —
//! the same shape the console and `apply` had with an in-process engine.

use super::event::Command;
use super::wire::{self, ClientMessage, PROTOCOL, ServerMessage, Welcome, read_line, to_line};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no run is being carried out in {dir}: {source}")]
    Unreachable {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the engine of {dir} refused this viewer: {reason}")]
    Rejected { dir: String, reason: String },
    #[error("the engine of {dir} did not say who it is: {detail}")]
    NoWelcome { dir: String, detail: String },
}

/// A connected viewer.
pub struct RunLink {
    pub welcome: Welcome,
    pub run_dir: std::path::PathBuf,
    /// Events, refusals; closed when the engine is gone or the run over.
    pub messages: mpsc::UnboundedReceiver<ServerMessage>,
    pub commands: mpsc::UnboundedSender<Command>,
}

/// Connects to the run in `run_dir` as `viewer`.
pub async fn connect(run_dir: &Path, viewer: &str, read_only: bool) -> Result<RunLink, LinkError> {
    let dir = run_dir.display().to_string();
    let stream = UnixStream::connect(wire::socket_path(run_dir))
        .await
        .map_err(|source| LinkError::Unreachable {
            dir: dir.clone(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let hello = ClientMessage::Hello {
        protocol: PROTOCOL,
        viewer: viewer.to_string(),
        read_only,
    };
    let no_welcome = |detail: String| LinkError::NoWelcome {
        dir: dir.clone(),
        detail,
    };
    write
        .write_all(to_line(&hello).as_bytes())
        .await
        .map_err(|e| no_welcome(e.to_string()))?;
    let first = tokio::time::timeout(Duration::from_secs(30), read_line(&mut reader))
        .await
        .map_err(|_| no_welcome("no answer in 30 s".into()))?
        .map_err(|e| no_welcome(e.to_string()))?
        .ok_or_else(|| no_welcome("it closed the connection".into()))?;
    let welcome = match serde_json::from_str::<ServerMessage>(&first) {
        Ok(ServerMessage::Welcome(welcome)) => welcome,
        Ok(ServerMessage::Rejected { reason }) => return Err(LinkError::Rejected { dir, reason }),
        Ok(other) => return Err(no_welcome(format!("unexpected first message {other:?}"))),
        Err(e) => return Err(no_welcome(format!("unreadable first message: {e}"))),
    };
    let (message_tx, messages) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = read_line(&mut reader).await {
            match serde_json::from_str::<ServerMessage>(&line) {
                Ok(message) => {
                    if message_tx.send(message).is_err() {
                        break;
                    }
                }
                Err(e) => tracing::warn!("run link: unreadable message skipped: {e}"),
            }
        }
    });
    let (commands, mut command_rx) = mpsc::unbounded_channel::<Command>();
    tokio::spawn(async move {
        while let Some(command) = command_rx.recv().await {
            let line = to_line(&ClientMessage::Command { command });
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    Ok(RunLink {
        welcome,
        run_dir: run_dir.to_path_buf(),
        messages,
        commands,
    })
}
