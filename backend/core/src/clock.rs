//! The platform's clock: the system time shifted by an offset.
//!
//! Every rule that depends on the time (track windows, the public/private split
//! shown, daily limits, sessions, leases) reads a `Clock` it was given, never the
//! system time directly. The offset lets tests run the shipped bundles at a fixed
//! date whatever the calendar says, and lets organizers rehearse an event before
//! its dates (`clock_offset_seconds`). Several processes sharing a database must
//! use the same offset.

use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Default)]
pub struct Clock {
    offset_seconds: AtomicI64,
}

impl Clock {
    /// The system time as it is.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system time moved by `offset_seconds` (negative: in the past).
    pub fn with_offset(offset_seconds: i64) -> Self {
        Self {
            offset_seconds: AtomicI64::new(offset_seconds),
        }
    }

    /// A clock that reads `at` (Unix seconds) now and then advances in real time.
    pub fn starting_at(at: i64) -> Self {
        Self::with_offset(at.saturating_sub(system_seconds()))
    }

    /// Current time as Unix seconds.
    pub fn now(&self) -> i64 {
        system_seconds().saturating_add(self.offset_seconds.load(Ordering::Relaxed))
    }

    /// Move the clock forward (or back, with a negative amount).
    pub fn advance(&self, seconds: i64) {
        self.offset_seconds.fetch_add(seconds, Ordering::Relaxed);
    }

    pub fn offset_seconds(&self) -> i64 {
        self.offset_seconds.load(Ordering::Relaxed)
    }
}

fn system_seconds() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_and_advance_move_the_reading() {
        let base = system_seconds();
        let clock = Clock::starting_at(1_800_000_000);
        let read = clock.now();
        assert!((1_800_000_000..1_800_000_003).contains(&read), "{read}");
        clock.advance(86_400);
        assert!(clock.now() - read >= 86_400);
        assert!((Clock::system().now() - base).abs() < 3);
        assert_eq!(Clock::with_offset(-10).offset_seconds(), -10);
    }
}
