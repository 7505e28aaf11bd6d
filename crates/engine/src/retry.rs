//! Bounded retries with exponential backoff and full jitter for transient
//! cloud errors; permanent errors return at once.

use crate::cloud::CloudError;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `n` (1-based retry count): uniform in
    /// [0, min(max, base * 2^n)] — "full jitter", which spreads out clients
    /// that failed together.
    pub fn delay(&self, retry: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_delay);
        let random = RandomState::new().hash_one(retry);
        let fraction = (random % 1_000_000) as f64 / 1_000_000.0;
        cap.mul_f64(fraction)
    }

    /// Runs `op` until it succeeds, fails permanently or attempts run out.
    /// `on_retry` hears each retry (for counters and logs).
    pub async fn run<T, F, Fut>(
        &self,
        mut op: F,
        mut on_retry: impl FnMut(u32, &CloudError),
    ) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let mut retry = 0;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_transient() && retry + 1 < self.attempts => {
                    retry += 1;
                    on_retry(retry, &err);
                    tokio::time::sleep(self.delay(retry)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let policy = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let mut calls = 0;
        let mut retries = Vec::new();
        let result = policy
            .run(
                || {
                    calls += 1;
                    let n = calls;
                    async move {
                        if n < 3 {
                            Err(CloudError::Transient("503".into()))
                        } else {
                            Ok(n)
                        }
                    }
                },
                |r, _| retries.push(r),
            )
            .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(retries, vec![1, 2]);
    }

    #[tokio::test]
    async fn permanent_errors_and_exhaustion_stop() {
        let policy = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        let mut calls = 0;
        let err = policy
            .run(
                || {
                    calls += 1;
                    async { Err::<(), _>(CloudError::Permanent("400".into())) }
                },
                |_, _| {},
            )
            .await
            .unwrap_err();
        assert!(!err.is_transient());
        assert_eq!(calls, 1);
        let mut calls = 0;
        let _ = policy
            .run(
                || {
                    calls += 1;
                    async { Err::<(), _>(CloudError::Transient("reset".into())) }
                },
                |_, _| {},
            )
            .await;
        assert_eq!(calls, 3);
    }

    #[test]
    fn delays_stay_under_the_cap() {
        let policy = RetryPolicy::default();
        for retry in 1..20 {
            assert!(policy.delay(retry) <= policy.max_delay);
        }
    }
}
