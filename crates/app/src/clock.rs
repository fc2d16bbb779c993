//! Where the hub's notion of "now" comes from: the system clock in production, a fixed one in
//! tests (the domain never reads a clock; this is the only place the app does).

use std::fmt;
use std::sync::Arc;

use chrono::TimeDelta;
use parking_lot::Mutex;
use wagate_domain::Timestamp;

pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<Mutex<Timestamp>>);

impl FixedClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    pub fn set(&self, now: Timestamp) {
        *self.0.lock() = now;
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock();
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock()
    }
}
