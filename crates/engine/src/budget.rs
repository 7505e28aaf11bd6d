//! One bandwidth budget for a whole run (`--bandwidth`): every disk's blocks
//! draw on the same rate, fairly, and the rate can change while the run goes
//! (`Command::SetBandwidth`). The per-disk `--throttle` still applies on top.
//!
//! Fairness: each disk gets a [`Share`] with its own FIFO lock, so however
//! many blocks a disk has in flight, at most one of them waits in the shared
//! queue. The shared queue is another FIFO lock (tokio's `Mutex` hands itself
//! over in arrival order), so when every disk is waiting, they are admitted
//! in turn: round-robin, one block each. A plain FIFO of reservations would
//! instead give a disk with 16 blocks in flight four times the share of a
//! disk with 4.
//!
//! Pacing: the disk at the head of the shared queue waits until the last
//! admitted block's bytes have "drained" at the current rate, then is
//! admitted. The wait is computed from the rate in force, and a rate change
//! wakes it, so a new rate holds from the very next block. Idle time builds
//! no credit beyond that (no bursts after a pause). `tokio::time` throughout,
//! so tests run on a paused clock.

use crate::units::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The run's shared limiter; unlimited while the rate is `None`.
#[derive(Debug)]
pub struct Budget {
    rate: watch::Sender<Option<Bytes>>,
    /// The shared queue: its holder is the next block to be admitted.
    turn: tokio::sync::Mutex<()>,
    /// When the last block was admitted and how big it was.
    last: Mutex<Option<(Instant, u64)>>,
}

/// One disk's place in the budget.
#[derive(Debug)]
pub struct Share {
    budget: Arc<Budget>,
    /// A disk's own queue: one of its blocks at a time in the shared one.
    turn: tokio::sync::Mutex<()>,
}

impl Budget {
    pub fn new(rate: Option<Bytes>) -> Arc<Budget> {
        Arc::new(Budget {
            rate: watch::channel(rate.map(|r| Bytes(r.0.max(1)))).0,
            turn: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
        })
    }

    /// A new disk's share of the budget.
    pub fn share(self: &Arc<Self>) -> Share {
        Share {
            budget: self.clone(),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    pub fn rate(&self) -> Option<Bytes> {
        *self.rate.borrow()
    }

    /// Changes the rate (None: unlimited); a block waiting for its turn is
    /// re-timed at once.
    pub fn set_rate(&self, rate: Option<Bytes>) {
        self.rate.send_replace(rate.map(|r| Bytes(r.0.max(1))));
    }

    /// Waits until `bytes` more may go at the current rate.
    async fn admit(&self, bytes: u64) {
        let _turn = self.turn.lock().await;
        let mut rate = self.rate.subscribe();
        let admitted = loop {
            let Some(Bytes(per_second)) = *rate.borrow_and_update() else {
                return;
            };
            let now = Instant::now();
            let ready = match *lock(&self.last) {
                Some((at, size)) => at + Duration::from_secs_f64(size as f64 / per_second as f64),
                None => now,
            };
            if ready <= now {
                break now;
            }
            tokio::select! {
                // Counted from when it was due, not when the timer fired,
                // so late wake-ups do not slow the run down over time.
                _ = tokio::time::sleep_until(ready) => break ready,
                changed = rate.changed() => if changed.is_err() { return },
            }
        };
        *lock(&self.last) = Some((admitted, bytes));
    }
}

impl Share {
    /// Waits until this disk may send `bytes`. No wait while unlimited.
    pub async fn acquire(&self, bytes: u64) {
        if self.budget.rate().is_none() {
            return;
        }
        let _mine = self.turn.lock().await;
        self.budget.admit(bytes).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::BLOCK_SIZE;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Eight disks, each with `in_flight[i]` blocks in flight, acquire
    /// blocks for ten virtual seconds; returns the bytes each got.
    async fn race(rate: Bytes, in_flight: [usize; 8]) -> Vec<u64> {
        let budget = Budget::new(Some(rate));
        let end = Instant::now() + Duration::from_secs(10);
        let mut disks = Vec::new();
        for blocks in in_flight {
            let share = Arc::new(budget.share());
            let got = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..blocks {
                let (share, got) = (share.clone(), got.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        share.acquire(BLOCK_SIZE).await;
                        if Instant::now() >= end {
                            break;
                        }
                        got.fetch_add(BLOCK_SIZE, Ordering::Relaxed);
                    }
                }));
            }
            disks.push((got, tasks));
        }
        let mut totals = Vec::new();
        for (got, tasks) in disks {
            for task in tasks {
                task.await.unwrap();
            }
            totals.push(got.load(Ordering::Relaxed));
        }
        totals
    }

    fn check_shares(rate: Bytes, totals: &[u64]) {
        let total: u64 = totals.iter().sum();
        let expected = rate.0 as f64 * 10.0;
        // What was measured, for `--nocapture`.
        eprintln!("budget {rate}/s over 10 virtual s: total {total} of {expected}, {totals:?}");
        assert!(
            (total as f64 - expected).abs() <= expected * 0.10,
            "total {total} vs {expected}: {totals:?}"
        );
        let fair = total as f64 / totals.len() as f64;
        for got in totals {
            assert!(
                (*got as f64 - fair).abs() <= fair * 0.25,
                "share {got} vs fair {fair}: {totals:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn eight_disks_share_the_budget_fairly_over_ten_seconds() {
        let rate = Bytes::mib(40);
        check_shares(rate, &race(rate, [1; 8]).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_disk_with_more_blocks_in_flight_does_not_starve_the_others() {
        let rate = Bytes::mib(40);
        check_shares(rate, &race(rate, [16, 1, 1, 4, 1, 8, 1, 2]).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_change_takes_effect_within_one_block() {
        // 512 KiB every 100 s: the second block would wait 100 s.
        let budget = Budget::new(Some(Bytes(BLOCK_SIZE / 100)));
        let share = Arc::new(budget.share());
        let start = Instant::now();
        share.acquire(BLOCK_SIZE).await;
        assert_eq!(Instant::now(), start, "the first block goes at once");
        let waiting = {
            let share = share.clone();
            tokio::spawn(async move {
                share.acquire(BLOCK_SIZE).await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiting.is_finished());
        // One block per second now: the waiting block is due one second
        // after the first, not a hundred.
        budget.set_rate(Some(Bytes(BLOCK_SIZE)));
        let admitted = waiting.await.unwrap() - start;
        // The paused clock jumps to timers at millisecond granularity.
        assert!(
            admitted >= Duration::from_secs(1) && admitted <= Duration::from_millis(1002),
            "{admitted:?}"
        );
        // Lifting the budget lets the next blocks go without any wait.
        budget.set_rate(None);
        let before = Instant::now();
        for _ in 0..1000 {
            share.acquire(BLOCK_SIZE).await;
        }
        assert_eq!(Instant::now(), before);
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let budget = Budget::new(None);
        let shares: Vec<Share> = (0..8).map(|_| budget.share()).collect();
        let start = Instant::now();
        for _ in 0..100 {
            for share in &shares {
                share.acquire(BLOCK_SIZE).await;
            }
        }
        assert_eq!(Instant::now(), start);
    }

    #[tokio::test(start_paused = true)]
    async fn lifting_the_budget_releases_a_waiting_block() {
        let budget = Budget::new(Some(Bytes(1)));
        let share = Arc::new(budget.share());
        share.acquire(BLOCK_SIZE).await;
        let start = Instant::now();
        let waiting = {
            let share = share.clone();
            tokio::spawn(async move { share.acquire(BLOCK_SIZE).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !waiting.is_finished(),
            "at one byte a second it waits for days"
        );
        budget.set_rate(None);
        waiting.await.unwrap();
        assert_eq!(Instant::now(), start + Duration::from_secs(1));
    }
}
