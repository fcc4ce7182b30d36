//! The injected clock. Only the edges read time; events carry it from here on.

use domain::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, UTC.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::new(time::OffsetDateTime::now_utc())
    }
}
