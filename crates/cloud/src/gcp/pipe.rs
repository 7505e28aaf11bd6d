//! The upload side of a disk writer as a task of its own: compressed
//! members go out while the next blocks arrive and compress (the writer
//! used to wait for each chunk's PUT with its state locked).
//!
//! A member handed over is never lost: when the session cannot be opened
//! it waits here, and when a chunk fails its bytes stay pending in the
//! upload; the next member or flush sends them again, and a flush reports
//! whatever still fails.

use super::client::Client;
use super::target::Sessions;
use super::upload::ResumableUpload;
use crate::CloudError;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Members queued for the upload task (each up to ~8 MiB).
const QUEUED: usize = 2;

enum Msg {
    Member(Vec<u8>),
    /// Commit every whole 256 KiB quantum received; answer when done.
    Flush(oneshot::Sender<Result<(), CloudError>>),
}

/// Where the task uploads to.
pub struct Target {
    pub client: Arc<Client>,
    pub bucket: String,
    pub object: String,
    pub chunk: usize,
    pub sessions: Sessions,
    /// Key of the session in `sessions` (the disk's staging prefix).
    pub prefix: String,
}

pub struct Uploader {
    tx: mpsc::Sender<Msg>,
    task: JoinHandle<Option<ResumableUpload>>,
}

struct Job {
    target: Target,
    upload: Option<ResumableUpload>,
    /// Members received before a session could be opened.
    waiting: Vec<u8>,
}

fn ended() -> CloudError {
    CloudError::Permanent("the upload task ended".into())
}

impl Job {
    /// The session, opened on first use, with any waiting bytes handed to it.
    async fn session(&mut self) -> Result<&mut ResumableUpload, CloudError> {
        let t = &self.target;
        let upload = match &mut self.upload {
            Some(upload) => upload,
            empty => {
                let started =
                    ResumableUpload::start(&t.client, &t.bucket, &t.object, t.chunk).await?;
                t.sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(t.prefix.clone(), started.session().clone());
                empty.insert(started)
            }
        };
        if !self.waiting.is_empty() {
            // Taken into the upload's pending bytes before any sending.
            let waiting = std::mem::take(&mut self.waiting);
            upload.write(&t.client, &waiting).await?;
        }
        Ok(upload)
    }

    async fn member(&mut self, member: Vec<u8>) {
        let client = self.target.client.clone();
        let sent = match self.session().await {
            Ok(upload) => upload.write(&client, &member).await,
            Err(e) => {
                self.waiting.extend_from_slice(&member);
                Err(e)
            }
        };
        if let Err(e) = sent {
            // Reported by the next flush if it still fails then.
            tracing::debug!(object = %self.target.object, "upload chunk failed, kept: {e}");
        }
    }

    async fn flush(&mut self) -> Result<(), CloudError> {
        if self.upload.is_none() && self.waiting.is_empty() {
            return Ok(());
        }
        let client = self.target.client.clone();
        self.session().await?.send_aligned(&client).await
    }
}

impl Uploader {
    pub fn start(target: Target) -> Uploader {
        let (tx, mut rx) = mpsc::channel(QUEUED);
        let task = tokio::spawn(async move {
            let mut job = Job {
                target,
                upload: None,
                waiting: Vec::new(),
            };
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Member(member) => job.member(member).await,
                    Msg::Flush(reply) => {
                        let _ = reply.send(job.flush().await);
                    }
                }
            }
            job.upload
        });
        Uploader { tx, task }
    }

    /// Queues a member (waits while the queue is full).
    pub async fn send(&self, member: Vec<u8>) -> Result<(), CloudError> {
        self.tx.send(Msg::Member(member)).await.map_err(|_| ended())
    }

    /// Everything queued so far sent, whole quanta committed.
    pub async fn flush(&self) -> Result<(), CloudError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Msg::Flush(reply)).await.map_err(|_| ended())?;
        answer.await.map_err(|_| ended())?
    }

    /// Flushes and hands back the upload, to be finished.
    pub async fn close(self) -> Result<Option<ResumableUpload>, CloudError> {
        self.flush().await?;
        drop(self.tx);
        self.task
            .await
            .map_err(|e| CloudError::Permanent(format!("upload task: {e}")))
    }
}
