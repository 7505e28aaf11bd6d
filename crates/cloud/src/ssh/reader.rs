//! Reads a remote device as one ordered stream, served to the engine's
//! concurrent `read_block` calls from a bounded buffer.
//!
//! The engine asks for blocks in ascending order with up to `in_flight`
//! outstanding; the remote end (the agent, or `dd` as a fallback) sends them
//! in the same order. A block asked for that the stream has already passed,
//! or after the stream broke, restarts the stream at the lowest block still
//! wanted — that is how a retry after a dropped connection resumes.

use super::session::{Session, quote};
use super::wire::{self, Block, Checked, Expect, StreamFault, block_len};
use crate::block::BlockDigest;
use crate::units::{BLOCK_SIZE, BlockIndex, Bytes};
use crate::{BlockData, CloudError, DiskReader};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

/// How blocks leave the remote host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMode {
    /// Our agent at this remote path: zero blocks stay there, digests come along.
    Agent { path: String },
    /// Plain `dd` of the whole device; zero detection happens here.
    Dd,
}

/// Counters a benchmark or a delta pass reads.
#[derive(Debug, Default)]
pub struct WireStats {
    /// Payload bytes of blocks that crossed the network.
    pub data_bytes: AtomicU64,
    pub data_blocks: AtomicU64,
    /// Zero blocks the agent reported without sending them.
    pub zero_blocks: AtomicU64,
    /// Streams started (1 + restarts).
    pub streams: AtomicU64,
}

/// Blocks buffered ahead of the engine's requests (32 MiB).
const WINDOW: usize = 64;

struct Shared {
    session: Arc<Session>,
    device: String,
    size: u64,
    mode: StreamMode,
    ranges: Vec<Range<u64>>,
    state: Mutex<State>,
    /// Wakes waiting readers (a block arrived, the stream ended).
    arrived: Notify,
    /// Wakes the producer (room in the buffer).
    room: Notify,
    stats: Arc<WireStats>,
}

#[derive(Default)]
struct State {
    buffer: BTreeMap<u64, BlockData>,
    /// Requested and not yet served.
    pending: BTreeSet<u64>,
    /// Highest block ever requested: blocks below it that are not pending
    /// will not be asked for (served, or resumed from the journal).
    max_requested: Option<u64>,
    /// The next block the stream will deliver; None when no stream runs.
    position: Option<u64>,
    generation: u64,
    /// How the stream of `generation` ended, when it failed.
    failure: Option<(bool, String)>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub struct SshDiskReader {
    shared: Arc<Shared>,
}

impl SshDiskReader {
    pub fn new(
        session: Arc<Session>,
        device: String,
        size: u64,
        mode: StreamMode,
        ranges: Vec<Range<u64>>,
    ) -> SshDiskReader {
        SshDiskReader {
            shared: Arc::new(Shared {
                session,
                device,
                size,
                mode,
                ranges,
                state: Mutex::new(State::default()),
                arrived: Notify::new(),
                room: Notify::new(),
                stats: Arc::new(WireStats::default()),
            }),
        }
    }

    pub fn stats(&self) -> Arc<WireStats> {
        self.shared.stats.clone()
    }

    pub fn mode(&self) -> &StreamMode {
        &self.shared.mode
    }
}

impl Drop for SshDiskReader {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.shared.state).task.take() {
            task.abort(); // drops the child, which kills it
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl DiskReader for SshDiskReader {
    fn virtual_size(&self) -> Bytes {
        Bytes(self.shared.size)
    }

    async fn allocated_blocks(&self) -> Result<Vec<Range<u64>>, CloudError> {
        Ok(self.shared.ranges.clone())
    }

    async fn read_block(&self, index: BlockIndex) -> Result<BlockData, CloudError> {
        let i = index.0;
        let shared = &self.shared;
        if i.checked_mul(BLOCK_SIZE).is_none_or(|o| o >= shared.size) {
            return Err(CloudError::Permanent(format!(
                "block {i} is beyond the end of {}",
                shared.device
            )));
        }
        let mut waited_on: Option<u64> = None;
        loop {
            let notified = shared.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = lock(&shared.state);
                if let Some(block) = state.buffer.remove(&i) {
                    state.pending.remove(&i);
                    drop(state);
                    shared.room.notify_one();
                    return Ok(block);
                }
                state.pending.insert(i);
                if state.max_requested.is_none_or(|m| m < i) {
                    state.max_requested = Some(i);
                    purge(&mut state);
                    shared.room.notify_one();
                }
                match state.position {
                    Some(position) if position <= i => {}
                    _ => {
                        if let (Some(generation), Some((transient, message))) =
                            (waited_on, &state.failure)
                            && generation == state.generation
                        {
                            // The stream this request waited on broke: say so
                            // (the engine retries transient errors, and the
                            // retry restarts the stream here).
                            let err = if *transient {
                                CloudError::Transient(message.clone())
                            } else {
                                CloudError::Permanent(message.clone())
                            };
                            return Err(err);
                        }
                        let from = state.pending.first().copied().unwrap_or(i);
                        start_stream(shared, &mut state, from);
                    }
                }
                waited_on = Some(state.generation);
            }
            notified.await;
        }
    }
}

/// Drops buffered blocks nobody will ask for (below the highest request and
/// not pending: the journal had them), so they cannot clog the window.
fn purge(state: &mut State) {
    let Some(max) = state.max_requested else {
        return;
    };
    let pending = &state.pending;
    state
        .buffer
        .retain(|index, _| *index >= max || pending.contains(index));
}

fn start_stream(shared: &Arc<Shared>, state: &mut State, from: u64) {
    if let Some(task) = state.task.take() {
        task.abort();
    }
    state.generation += 1;
    state.failure = None;
    state.position = Some(from);
    state.buffer.retain(|index, _| *index >= from);
    shared.stats.streams.fetch_add(1, Ordering::Relaxed);
    let generation = state.generation;
    let task_shared = shared.clone();
    state.task = Some(tokio::spawn(async move {
        let result = produce(&task_shared, generation, from).await;
        let mut state = lock(&task_shared.state);
        if state.generation == generation {
            state.position = None;
            if let Err(err) = result {
                state.failure = Some((err.is_transient(), err.to_string()));
            }
        }
        drop(state);
        task_shared.arrived.notify_waiters();
    }));
}

/// Ranges clipped to start at `from`.
fn ranges_from(ranges: &[Range<u64>], from: u64) -> Vec<Range<u64>> {
    ranges
        .iter()
        .filter(|r| r.end > from)
        .map(|r| r.start.max(from)..r.end)
        .collect()
}

/// Runs one stream from block `from` to the end of the ranges.
async fn produce(shared: &Arc<Shared>, generation: u64, from: u64) -> Result<(), CloudError> {
    let ranges = ranges_from(&shared.ranges, from);
    let device = quote(&shared.device);
    let command = match &shared.mode {
        StreamMode::Agent { path } => shared
            .session
            .remote(&format!("{} stream {device}", quote(path))),
        StreamMode::Dd => {
            let end = ranges.last().map(|r| r.end).unwrap_or(from);
            shared.session.remote(&format!(
                "dd if={device} bs={BLOCK_SIZE} skip={from} count={} status=none",
                end.saturating_sub(from)
            ))
        }
    };
    let mut child = shared.session.spawn(&command).await?;
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let collect_stderr = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_string(&mut text).await;
        }
        text
    });
    if let (StreamMode::Agent { .. }, Some(input)) = (&shared.mode, stdin.as_mut()) {
        let list: String = ranges
            .iter()
            .map(|r| format!("{} {}\n", r.start, r.end))
            .collect();
        // A failure to write shows up as a broken stream below.
        let _ = input.write_all(list.as_bytes()).await;
    }
    drop(stdin);
    let Some(stdout) = stdout else {
        return Err(CloudError::Permanent("ssh gave no stdout".into()));
    };
    let mut input = BufReader::with_capacity(1 << 20, stdout);
    let streamed = match &shared.mode {
        StreamMode::Agent { .. } => read_agent(shared, generation, &ranges, &mut input).await,
        StreamMode::Dd => read_dd(shared, generation, &ranges, &mut input).await,
    };
    let status = child.wait().await;
    let stderr = collect_stderr.await.unwrap_or_default();
    let code = status.as_ref().ok().and_then(|s| s.code());
    match streamed {
        Ok(()) if status.as_ref().is_ok_and(|s| s.success()) => Ok(()),
        Ok(()) => Err(super::session::classify(
            shared.session.target(),
            code,
            &stderr,
            Some(&command),
        )),
        Err(StreamError::Remote(message)) => {
            let text = format!("{stderr}\n{message}");
            Err(super::session::classify(
                shared.session.target(),
                code.or(Some(1)),
                &text,
                Some(&command),
            ))
        }
        Err(StreamError::Bad(message)) => Err(CloudError::Permanent(format!(
            "the agent on {} sent a bad stream: {message}",
            shared.session.target().label()
        ))),
        Err(StreamError::Broken(message)) => {
            let err =
                super::session::classify(shared.session.target(), code, &stderr, Some(&command));
            // A stream cut short is a lost connection unless ssh said otherwise.
            Err(match err {
                CloudError::Permanent(_) if code.is_none() || code == Some(255) => {
                    CloudError::Transient(format!("{message}; {err}"))
                }
                CloudError::Permanent(m) if !stderr.trim().is_empty() => CloudError::Permanent(m),
                _ if stderr.trim().is_empty() => CloudError::Transient(format!(
                    "stream from {} broke: {message}",
                    shared.session.target().label()
                )),
                other => other,
            })
        }
    }
}

enum StreamError {
    /// The agent reported an error.
    Remote(String),
    /// The byte stream ended early (a lost connection, worth a retry).
    Broken(String),
    /// The agent sent something it must not (a block not asked for, a
    /// length that is not the block's, garbage): not worth a retry.
    Bad(String),
}

async fn read_agent(
    shared: &Arc<Shared>,
    generation: u64,
    ranges: &[Range<u64>],
    input: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<(), StreamError> {
    let frame_error = |e: wire::FrameError| {
        if e.is_truncation() {
            StreamError::Broken(e.to_string())
        } else {
            StreamError::Bad(e.to_string())
        }
    };
    let idle = shared.session.timeout();
    let silent = || {
        StreamError::Broken(format!(
            "the agent sent nothing for {} s",
            idle.as_secs_f64()
        ))
    };
    tokio::time::timeout(idle, wire::read_magic(input))
        .await
        .map_err(|_| silent())?
        .map_err(frame_error)?;
    let mut expect = Expect::new(ranges, shared.size, false);
    loop {
        let frame = tokio::time::timeout(idle, wire::next_frame(input))
            .await
            .map_err(|_| silent())?
            .map_err(frame_error)?;
        if let wire::Frame::Error(message) = frame {
            return Err(StreamError::Remote(message));
        }
        let (index, block) = match expect.check(frame).map_err(StreamError::Bad)? {
            Checked::End => return Ok(()),
            Checked::Block(index, Block::Zero { len }) => {
                shared.stats.zero_blocks.fetch_add(1, Ordering::Relaxed);
                let block = BlockData {
                    bytes: vec![0; len].into(),
                    provider_digest: None,
                };
                (index, block)
            }
            Checked::Block(index, Block::Data { bytes, digest }) => {
                shared
                    .stats
                    .data_bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                shared.stats.data_blocks.fetch_add(1, Ordering::Relaxed);
                let block = BlockData {
                    bytes: bytes.into(),
                    provider_digest: Some(digest),
                };
                (index, block)
            }
            Checked::Block(index, Block::Digest(_)) => {
                return Err(StreamError::Bad(format!(
                    "block {index}: digest frame in a data stream"
                )));
            }
        };
        if !deliver(shared, generation, index, block).await {
            return Ok(());
        }
    }
}

async fn read_dd(
    shared: &Arc<Shared>,
    generation: u64,
    ranges: &[Range<u64>],
    input: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<(), StreamError> {
    let first = ranges.first().map(|r| r.start).unwrap_or(0);
    let end = ranges.last().map(|r| r.end).unwrap_or(first);
    for index in first..end {
        let len = block_len(shared.size, index);
        let mut bytes = vec![0u8; len];
        let idle = shared.session.timeout();
        tokio::time::timeout(idle, input.read_exact(&mut bytes))
            .await
            .map_err(|_| {
                StreamError::Broken(format!(
                    "block {index}: dd sent nothing for {} s",
                    idle.as_secs_f64()
                ))
            })?
            .map_err(|e| StreamError::Broken(format!("block {index}: {e}")))?;
        shared
            .stats
            .data_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        shared.stats.data_blocks.fetch_add(1, Ordering::Relaxed);
        let wanted = ranges.iter().any(|r| r.contains(&index));
        if wanted {
            let block = BlockData {
                bytes: bytes.into(),
                provider_digest: None,
            };
            if !deliver(shared, generation, index, block).await {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Puts a block in the buffer, waiting for room unless it is wanted now.
/// False when this stream was replaced (the producer stops).
async fn deliver(shared: &Arc<Shared>, generation: u64, index: u64, block: BlockData) -> bool {
    let mut block = Some(block);
    loop {
        let room = shared.room.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        {
            let mut state = lock(&shared.state);
            if state.generation != generation {
                return false;
            }
            let wanted = state.pending.contains(&index);
            let stale = state.max_requested.is_some_and(|m| index < m) && !wanted;
            if stale || wanted || state.buffer.len() < WINDOW {
                if !stale && let Some(block) = block.take() {
                    state.buffer.insert(index, block);
                }
                state.position = Some(index + 1);
                drop(state);
                shared.arrived.notify_waiters();
                return true;
            }
        }
        room.await;
    }
}

/// Per-block digests of the remote device, for a delta pass: the agent reads
/// and hashes the blocks there and sends only the digests.
pub async fn remote_digests(
    session: &Session,
    agent_path: &str,
    device: &str,
    device_size: u64,
    ranges: &[Range<u64>],
) -> Result<BTreeMap<u64, Option<BlockDigest>>, CloudError> {
    let command = session.remote(&format!(
        "{} stream {} --digests",
        quote(agent_path),
        quote(device)
    ));
    let list: String = ranges
        .iter()
        .map(|r| format!("{} {}\n", r.start, r.end))
        .collect();
    // The agent reads and hashes the whole range list: allow for a slow
    // disk (10 MB/s) on top of the command timeout.
    let scan = std::time::Duration::from_secs(device_size / 10_000_000);
    let output = session
        .run_with_input(&command, list.into_bytes(), session.timeout() + scan)
        .await?;
    match wire::parse_digests(&output.stdout, ranges, device_size) {
        Ok(digests) => Ok(digests.into_iter().collect()),
        Err(StreamFault::Cut(e)) => Err(CloudError::Transient(format!(
            "digest stream from {} cut short: {e}",
            session.target().label()
        ))),
        Err(StreamFault::Bad(e)) => Err(CloudError::Permanent(format!(
            "digest stream from {}: {e}",
            session.target().label()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_clipped_to_the_restart_point() {
        let ranges = vec![0..4, 10..12, 20..30];
        assert_eq!(ranges_from(&ranges, 0), ranges);
        assert_eq!(ranges_from(&ranges, 3), vec![3..4, 10..12, 20..30]);
        assert_eq!(ranges_from(&ranges, 11), vec![11..12, 20..30]);
        assert_eq!(ranges_from(&ranges, 30), Vec::<Range<u64>>::new());
    }

    #[test]
    fn the_last_block_may_be_short() {
        assert_eq!(block_len(BLOCK_SIZE * 2 + 10, 2), 10);
        assert_eq!(block_len(BLOCK_SIZE * 2, 1), BLOCK_SIZE as usize);
    }
}
