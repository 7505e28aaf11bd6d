//! Per-disk control (pause, resume, cancel), rate limiting and the counters
//! the progress reporter reads.

use crate::units::Bytes;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ControlState {
    pub paused: bool,
    pub cancelled: bool,
}

/// Pause/cancel switch of one disk; block tasks wait on it.
#[derive(Debug)]
pub struct DiskControl {
    tx: watch::Sender<ControlState>,
}

#[derive(Debug, thiserror::Error)]
#[error("cancelled by the operator")]
pub struct Cancelled;

impl Default for DiskControl {
    fn default() -> Self {
        DiskControl {
            tx: watch::channel(ControlState::default()).0,
        }
    }
}

impl DiskControl {
    pub fn set_paused(&self, paused: bool) {
        self.tx.send_modify(|s| s.paused = paused);
    }

    pub fn cancel(&self) {
        self.tx.send_modify(|s| s.cancelled = true);
    }

    pub fn state(&self) -> ControlState {
        *self.tx.borrow()
    }

    /// Returns when the disk may proceed; errors once it is cancelled.
    pub async fn proceed(&self) -> Result<(), Cancelled> {
        let mut rx = self.tx.subscribe();
        loop {
            let state = *rx.borrow_and_update();
            if state.cancelled {
                return Err(Cancelled);
            }
            if !state.paused {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(Cancelled);
            }
        }
    }
}

/// Token-bucket style limiter: each call reserves time for its bytes.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: u64,
    next_free: Mutex<Instant>,
}

impl Throttle {
    pub fn new(rate: Bytes) -> Throttle {
        Throttle {
            bytes_per_second: rate.0.max(1),
            next_free: Mutex::new(Instant::now()),
        }
    }

    pub async fn acquire(&self, bytes: u64) {
        let wait = {
            let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
            start.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Live counters of one disk, shared by its block tasks and the reporter.
#[derive(Debug, Default)]
pub struct DiskCounters {
    pub scanned: AtomicU64,
    pub skipped: AtomicU64,
    pub sent: AtomicU64,
    pub resumed: AtomicU64,
    pub total: AtomicU64,
    pub retries: AtomicU32,
    pub blocks_sent: AtomicU64,
    /// Time spent transferring (not paused), in ms, accumulated on pause.
    pub active_ms: AtomicU64,
    pub active_since: Mutex<Option<Instant>>,
    pub peak_bytes_per_second: AtomicU64,
}

impl DiskCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn start_clock(&self) {
        let mut since = self.active_since.lock().unwrap_or_else(|p| p.into_inner());
        if since.is_none() {
            *since = Some(Instant::now());
        }
    }

    pub fn stop_clock(&self) {
        let mut since = self.active_since.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(start) = since.take() {
            self.active_ms
                .fetch_add(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }

    pub fn elapsed_ms(&self) -> u64 {
        let since = self.active_since.lock().unwrap_or_else(|p| p.into_inner());
        self.active_ms.load(Ordering::Relaxed)
            + since.map(|s| s.elapsed().as_millis() as u64).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paused_disk_waits_and_cancel_releases_it() {
        let control = std::sync::Arc::new(DiskControl::default());
        control.set_paused(true);
        let waiter = {
            let control = control.clone();
            tokio::spawn(async move { control.proceed().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        control.cancel();
        assert!(waiter.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn resume_lets_a_paused_disk_go_on() {
        let control = DiskControl::default();
        control.set_paused(true);
        let mut waiter = Box::pin(control.proceed());
        // Polled once while paused, the waiter is parked, not finished.
        assert!(
            futures::poll!(waiter.as_mut()).is_pending(),
            "a paused disk must wait"
        );
        assert!(control.state().paused);
        control.set_paused(false);
        assert!(waiter.await.is_ok());
    }
}
