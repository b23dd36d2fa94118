//! The run's clock: when its work must end, and the one back-off policy of
//! everything that tries again (EC2 calls, polling for a new instance's
//! address or tag, instance metadata), which never waits past that end.

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

    /// Whichever of the two comes first.
    pub fn earlier(self, other: Deadline) -> Deadline {
        Deadline(self.0.min(other.0))
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// The first pause of a back-off; each one after doubles, up to [`BACKOFF_CAP`].
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// The longest pause between two tries.
pub const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Exponential back-off with jitter: the n-th pause is between half and all
/// of `BACKOFF_BASE * 2^n`, capped at `BACKOFF_CAP`, and never past the deadline.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn new() -> Self {
        Backoff::default()
    }

    /// Sleeps before the next attempt; false when the deadline leaves no room for one.
    pub async fn wait(&mut self, deadline: &Deadline) -> bool {
        let ceiling = BACKOFF_BASE
            .saturating_mul(1 << self.attempt.min(16))
            .min(BACKOFF_CAP);
        self.attempt += 1;
        let pause = ceiling.mul_f64(0.5 + fastrand::f64() / 2.0);
        if pause >= deadline.remaining() {
            return false;
        }
        tokio::time::sleep(pause).await;
        true
    }
}
