//! One log line per interval for a failure that repeats on every request or every pass of a loop
//! (a full disk, a database that is down), so the log says what is wrong without drowning in it.
//! The next line let through counts the ones held back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets an occurrence through when none was let through within `every`.
pub struct LogThrottle {
    every: Duration,
    /// When one was last let through, and how many have been held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    /// A throttle letting one through per `every`.
    pub const fn new(every: Duration) -> LogThrottle {
        LogThrottle { every, state: Mutex::new((None, 0)) }
    }

    /// `Some(held back since the last one let through)` if this occurrence is to be logged.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last, held_back) = &mut *state;
        if last.is_some_and(|at| now.duration_since(at) < self.every) {
            *held_back += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval_and_the_next_counts_the_held_back() {
        let throttle = LogThrottle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(throttle.admit_at(start), Some(0));
        assert_eq!(throttle.admit_at(start + Duration::from_secs(1)), None);
        assert_eq!(throttle.admit_at(start + Duration::from_secs(9)), None);
        assert_eq!(throttle.admit_at(start + Duration::from_secs(10)), Some(2));
        assert_eq!(throttle.admit_at(start + Duration::from_secs(11)), None);
        assert_eq!(throttle.admit_at(start + Duration::from_secs(30)), Some(1));
    }
}
