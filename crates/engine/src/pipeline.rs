//! Moves one disk: allocated blocks are read, hashed and checked for zeros
//! off the async threads, and written with a bounded number in flight, so
//! memory stays at `in_flight` blocks whatever the disk's size. Each block is
//! journaled once written; periodic checkpoints flush the target first.

use super::budget::Share;
use super::control::{DiskControl, DiskCounters, Throttle};
use super::journal::{DiskState, Journal, JournalError, Record};
use super::retry::RetryPolicy;
use crate::block::{BlockDigest, DigestBuilder, is_all_zero};
use crate::cloud::{CloudError, DiskReader, DiskWriter, WriteOrder};
use crate::units::{BLOCK_SIZE, BlockIndex};
use futures::{StreamExt, TryStreamExt, stream};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("cancelled by the operator")]
    Cancelled,
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Everything one disk's transfer needs.
pub struct DiskTransfer<'a> {
    pub key: &'a str,
    pub reader: &'a dyn DiskReader,
    pub writer: &'a dyn DiskWriter,
    /// What an interrupted run already did.
    pub resume: &'a DiskState,
    pub counters: &'a DiskCounters,
    pub control: &'a DiskControl,
    pub throttle: Option<&'a Throttle>,
    /// This disk's share of the run's bandwidth budget.
    pub budget: Option<&'a Share>,
    pub journal: &'a Journal,
    pub retry: RetryPolicy,
    pub in_flight: usize,
    pub checkpoint_every: Duration,
}

/// What one pass over a disk did.
#[derive(Debug, Default)]
pub struct PassOutcome {
    /// Digests of every non-zero block written in this pass (resumed ones
    /// included).
    pub digests: DigestBuilder,
    /// Blocks overwritten with zeros (the target held data there).
    pub zeroed: Vec<BlockIndex>,
    /// Written by this process in this pass (data and zeros).
    pub blocks_sent: u64,
    pub bytes_sent: u64,
}

/// Which pass a transfer is, and what the target holds before it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassContext<'a> {
    /// Journaled with every block; 0 in a run without passes.
    pub pass: u32,
    /// Blocks the target holds data in: one read as zero is written as
    /// zeros, not skipped.
    pub held: Option<&'a BTreeMap<BlockIndex, BlockDigest>>,
}

/// Per-pass tallies shared by the concurrent writes.
#[derive(Default)]
struct Tally {
    digests: Mutex<DigestBuilder>,
    zeroed: Mutex<Vec<BlockIndex>>,
    /// Blocks read as zeros and not written (the target never held them).
    zeros: Mutex<Vec<BlockIndex>>,
    blocks: AtomicU64,
    bytes: AtomicU64,
}

/// A block read and hashed, ready to write (or to skip when zero).
struct ReadBlock {
    index: BlockIndex,
    bytes: bytes::Bytes,
    digest: Option<BlockDigest>,
}

impl DiskTransfer<'_> {
    /// Runs the transfer; returns the digests of every non-zero block (the
    /// resumed ones included), from which the disk digest follows.
    pub async fn run(&self) -> Result<DigestBuilder, TransferError> {
        Ok(self.run_pass(PassContext::default()).await?.digests)
    }

    /// Runs one pass of a cutover (or, with the default context, the only one).
    pub async fn run_pass(&self, context: PassContext<'_>) -> Result<PassOutcome, TransferError> {
        let ranges = self
            .retry
            .run(|| self.reader.allocated_blocks(), |_, _| self.count_retry())
            .await?;
        let virtual_size = self.reader.virtual_size().0;
        let block_len = |i: u64| (virtual_size.saturating_sub(i * BLOCK_SIZE)).min(BLOCK_SIZE);
        let total: u64 = ranges.iter().flat_map(|r| r.clone()).map(block_len).sum();
        self.retry
            .run(
                || self.writer.preallocate(&ranges),
                |_, _| self.count_retry(),
            )
            .await?;
        // Passes add up: the gauge runs over every pass's blocks.
        DiskCounters::add(&self.counters.total, total);

        let tally = Tally::default();
        let mut resumed = 0;
        for (index, digest) in &self.resume.sent {
            lock(&tally.digests).insert(*index, *digest);
            resumed += block_len(index.0);
        }
        let resumed_zero: u64 = self.resume.zero.iter().map(|i| block_len(i.0)).sum();
        DiskCounters::add(&self.counters.resumed, resumed);
        DiskCounters::add(&self.counters.scanned, resumed + resumed_zero);
        DiskCounters::add(&self.counters.skipped, resumed_zero);

        let todo = ranges
            .into_iter()
            .flatten()
            .map(BlockIndex)
            .filter(|i| !self.resume.sent.contains_key(i) && !self.resume.zero.contains(i));
        let in_flight = self.in_flight.max(1);
        self.counters.start_clock();
        let tally_ref = &tally;
        let outcome = {
            let work = async {
                match self.writer.order() {
                    WriteOrder::Any => {
                        stream::iter(todo)
                            .map(|index| async move {
                                let block = self.read(index).await?;
                                self.write(block, context, tally_ref).await
                            })
                            .buffer_unordered(in_flight)
                            .try_collect::<()>()
                            .await
                    }
                    // Reads still overlap; `buffered` hands them back in order.
                    WriteOrder::Sequential => {
                        stream::iter(todo)
                            .map(|index| self.read(index))
                            .buffered(in_flight)
                            .try_for_each(|block| self.write(block, context, tally_ref))
                            .await
                    }
                }
            };
            // Checkpoints run beside the work, not instead of it: a flush
            // can take a while and the pipeline keeps reading meanwhile.
            let done = tokio::sync::Notify::new();
            let work = async {
                let result = work.await;
                done.notify_one();
                result
            };
            let checkpoints = async {
                let mut ticker = tokio::time::interval(self.checkpoint_every);
                ticker.tick().await; // the first tick is immediate
                loop {
                    tokio::select! {
                        _ = done.notified() => return Ok::<(), TransferError>(()),
                        _ = ticker.tick() => self.checkpoint().await?,
                    }
                }
            };
            let (result, checkpointed) = tokio::join!(work, checkpoints);
            checkpointed?;
            result
        };
        self.counters.stop_clock();
        if outcome.is_ok() {
            // Space reserved for blocks that turned out to be zeros goes back.
            let mut zeros = lock(&tally.zeros).clone();
            zeros.extend(self.resume.zero.iter().copied());
            self.retry
                .run(|| self.writer.discard(&zeros), |_, _| self.count_retry())
                .await?;
        }
        // Whatever happened, make what was written count for a resume.
        self.checkpoint().await?;
        outcome?;
        Ok(PassOutcome {
            digests: tally
                .digests
                .into_inner()
                .unwrap_or_else(|p| p.into_inner()),
            zeroed: tally.zeroed.into_inner().unwrap_or_else(|p| p.into_inner()),
            blocks_sent: tally.blocks.load(Ordering::Relaxed),
            bytes_sent: tally.bytes.load(Ordering::Relaxed),
        })
    }

    fn count_retry(&self) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
    }

    async fn read(&self, index: BlockIndex) -> Result<ReadBlock, TransferError> {
        self.control
            .proceed()
            .await
            .map_err(|_| TransferError::Cancelled)?;
        if let Some(throttle) = self.throttle {
            throttle.acquire(BLOCK_SIZE).await;
        }
        // The per-disk limit first, then the run's: both hold.
        if let Some(budget) = self.budget {
            budget.acquire(BLOCK_SIZE).await;
        }
        let block = self
            .retry
            .run(
                || async move {
                    let data = self.reader.read_block(index).await?;
                    let claimed = data.provider_digest;
                    let (bytes, digest) = tokio::task::spawn_blocking(move || {
                        let digest =
                            (!is_all_zero(&data.bytes)).then(|| BlockDigest::of(&data.bytes));
                        (data.bytes, digest)
                    })
                    .await
                    .map_err(|e| CloudError::Permanent(format!("hash task failed: {e}")))?;
                    if let (Some(claimed), Some(actual)) = (claimed, digest)
                        && claimed != actual
                    {
                        // Corrupted on the way: reading again is the cure.
                        return Err(CloudError::Transient(format!(
                            "block {} of {}: checksum from the cloud does not match the bytes",
                            index.0, self.key
                        )));
                    }
                    Ok(ReadBlock {
                        index,
                        bytes,
                        digest,
                    })
                },
                |_, _| self.count_retry(),
            )
            .await?;
        Ok(block)
    }

    async fn write(
        &self,
        block: ReadBlock,
        context: PassContext<'_>,
        tally: &Tally,
    ) -> Result<(), TransferError> {
        let len = block.bytes.len() as u64;
        let (disk, i, p) = (self.key.to_string(), block.index.0, context.pass);
        let held = context
            .held
            .is_some_and(|held| held.contains_key(&block.index));
        let record = match block.digest {
            None if !held => {
                self.journal.append(&Record::Zero { disk, i, p })?;
                lock(&tally.zeros).push(block.index);
                DiskCounters::add(&self.counters.skipped, len);
                DiskCounters::add(&self.counters.scanned, len);
                return Ok(());
            }
            // It became zero since the target got it: zeros go over it.
            None => {
                let digest = BlockDigest::of(&block.bytes);
                self.retry
                    .run(
                        || {
                            self.writer
                                .write_block(block.index, block.bytes.clone(), digest)
                        },
                        |_, _| self.count_retry(),
                    )
                    .await?;
                lock(&tally.zeroed).push(block.index);
                Record::Zeroed { disk, i, p }
            }
            Some(digest) => {
                self.retry
                    .run(
                        || {
                            self.writer
                                .write_block(block.index, block.bytes.clone(), digest)
                        },
                        |_, _| self.count_retry(),
                    )
                    .await?;
                lock(&tally.digests).insert(block.index, digest);
                Record::Block {
                    disk,
                    i,
                    d: digest,
                    p,
                }
            }
        };
        self.journal.append(&record)?;
        tally.blocks.fetch_add(1, Ordering::Relaxed);
        tally.bytes.fetch_add(len, Ordering::Relaxed);
        DiskCounters::add(&self.counters.sent, len);
        DiskCounters::add(&self.counters.scanned, len);
        DiskCounters::add(&self.counters.blocks_sent, 1);
        Ok(())
    }

    /// Target data first, then the journal: a checkpoint only covers records
    /// whose blocks are durable.
    async fn checkpoint(&self) -> Result<(), TransferError> {
        let covers = self.journal.len();
        self.retry
            .run(|| self.writer.flush(), |_, _| self.count_retry())
            .await?;
        self.journal.append_durable(&Record::Checkpoint {
            at: crate::fsutil::now_rfc3339(),
            covers,
        })?;
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
