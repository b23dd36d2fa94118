use std::time::{Duration, Instant};

/// The point by which a program run must have finished its EC2 work.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// `budget` from now; a budget too large for the clock ends in a year.
    pub fn after(budget: Duration) -> Self {
        let now = Instant::now();
        let year = Duration::from_secs(365 * 86_400);
        Deadline(now.checked_add(budget.min(year)).unwrap_or(now))
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// Exponential back-off with full jitter: attempt n waits a random time up to
/// `base * 2^n`, capped, and never past the deadline.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// Sleeps before the next attempt; false when the deadline leaves no room for one.
    pub async fn wait(&mut self, deadline: &Deadline) -> bool {
        let ceiling = self
            .base
            .saturating_mul(1 << self.attempt.min(16))
            .min(self.cap);
        self.attempt += 1;
        let pause = ceiling.mul_f64(0.5 + fastrand::f64() / 2.0);
        if pause >= deadline.remaining() {
            return false;
        }
        tokio::time::sleep(pause).await;
        true
    }
}
