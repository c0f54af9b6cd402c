//! The circuit breaker in front of Snowflake: when Snowflake stops answering, calls fail at once
//! with `unavailable` and a retry hint instead of each waiting out its own timeouts, and the
//! server finds out by itself when Snowflake is back.
//!
//! [`Breaker`] counts consecutive failures to reach Snowflake (logins that fail or time out,
//! statements that fail at the network level). At [`TRIP_AFTER`] in a row it opens: every lease
//! is refused until a background probe (run by the pool, one at a time, with growing pauses from
//! [`FIRST_PAUSE`] up to [`MAX_PAUSE`]) logs in successfully, which closes it again. Any success
//! resets the count. The state is a few numbers behind a mutex never held across an `.await`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ToolError;
use crate::lock;

/// Consecutive failures that open the circuit.
pub const TRIP_AFTER: u32 = 3;
/// The first pause between background probes; it doubles up to [`MAX_PAUSE`].
pub const FIRST_PAUSE: Duration = Duration::from_secs(2);
pub const MAX_PAUSE: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    /// Set while open: when the next probe is due, and the pause after that one.
    open: Option<(Instant, Duration)>,
    /// Times the circuit opened (for metrics).
    trips: u64,
}

/// What a failure did to the circuit.
#[derive(Debug, PartialEq, Eq)]
pub enum Tripped {
    /// Still closed, or already open.
    No,
    /// Opened just now: start probing.
    Now,
}

impl Breaker {
    /// `Err(unavailable)` while the circuit is open.
    pub fn check(&self) -> Result<(), ToolError> {
        let state = lock(&self.state);
        match state.open {
            None => Ok(()),
            Some((next_probe, _)) => {
                let wait = next_probe
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(500));
                let mut e = ToolError::new(
                    "unavailable",
                    format!(
                        "Snowflake is not answering ({} attempts in a row failed); the server keeps checking and recovers by itself — retry in {:.1} s",
                        state.failures,
                        wait.as_secs_f64()
                    ),
                );
                e.retry_after_ms = Some(wait.as_millis() as u64);
                Err(e)
            }
        }
    }

    pub fn is_open(&self) -> bool {
        lock(&self.state).open.is_some()
    }

    /// Times the circuit has opened.
    pub fn trips(&self) -> u64 {
        lock(&self.state).trips
    }

    pub fn success(&self) {
        let mut state = lock(&self.state);
        state.failures = 0;
        state.open = None;
    }

    pub fn failure(&self) -> Tripped {
        let mut state = lock(&self.state);
        state.failures = state.failures.saturating_add(1);
        if state.open.is_none() && state.failures >= TRIP_AFTER {
            state.open = Some((Instant::now() + FIRST_PAUSE, FIRST_PAUSE));
            state.trips += 1;
            return Tripped::Now;
        }
        Tripped::No
    }

    /// A background probe failed: wait longer before the next one. Returns the pause.
    pub fn probe_failed(&self) -> Duration {
        let mut state = lock(&self.state);
        state.failures = state.failures.saturating_add(1);
        let pause = state
            .open
            .map_or(FIRST_PAUSE, |(_, p)| (p * 2).min(MAX_PAUSE));
        state.open = Some((Instant::now() + pause, pause));
        pause
    }

    /// The pause before the next probe (while open).
    pub fn next_probe_in(&self) -> Option<Duration> {
        lock(&self.state)
            .open
            .map(|(at, _)| at.saturating_duration_since(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_repeated_failures_and_closes_on_success() {
        let b = Breaker::default();
        assert!(b.check().is_ok());
        assert_eq!(b.failure(), Tripped::No);
        b.success();
        assert_eq!(b.failure(), Tripped::No);
        assert_eq!(b.failure(), Tripped::No);
        assert_eq!(b.failure(), Tripped::Now, "three in a row");
        let e = b.check().unwrap_err();
        assert_eq!(e.kind, "unavailable");
        assert!(e.retry_after_ms.unwrap() >= 500);
        assert_eq!(b.failure(), Tripped::No, "already open");
        assert_eq!(b.probe_failed(), FIRST_PAUSE * 2);
        assert_eq!(b.probe_failed(), FIRST_PAUSE * 4);
        for _ in 0..10 {
            b.probe_failed();
        }
        assert_eq!(b.next_probe_in(), Some(MAX_PAUSE));
        b.success();
        assert!(b.check().is_ok());
        assert_eq!(b.trips(), 1);
    }
}
