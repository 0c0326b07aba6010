//! The retry schedule: the configured delays (`[retry] delays`, default 1 s, 5 s, 30 s, 2 min,
//! 10 min) with up to 20 % random jitter so failures that happened together do not retry
//! together; after the last delay the item goes to the dead-letter queue.

use std::time::Duration;

use rand::Rng;

/// When to try again after a failure, or `None` when the retries are used up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    delays: Vec<Duration>,
}

impl RetryPolicy {
    /// A policy with these delays.
    pub fn new(delays: Vec<Duration>) -> Self {
        RetryPolicy { delays }
    }

    /// Delay before the next attempt after `failed_attempts` failures (1-based), with jitter;
    /// `None` when that many failures exhaust the schedule.
    pub fn next_delay(&self, failed_attempts: u32) -> Option<Duration> {
        let base = *self.delays.get(usize::try_from(failed_attempts).ok()?.checked_sub(1)?)?;
        let jitter = rand::rng().random_range(0.0..=0.2);
        Some(base.mul_f64(1.0 + jitter))
    }

    /// Retries before the dead-letter queue.
    pub fn retries(&self) -> usize {
        self.delays.len()
    }
}

/// `history` (a JSON array of attempts) with one more failed attempt at `at` (unix ms).
pub fn append_history(history: &str, at: i64, error: &str) -> String {
    let mut list: Vec<serde_json::Value> = serde_json::from_str(history).unwrap_or_default();
    list.push(serde_json::json!({ "at": crate::store::rfc3339(at), "error": error }));
    serde_json::Value::Array(list).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_schedule_with_bounded_jitter_then_gives_up() {
        let policy = RetryPolicy::new(vec![Duration::from_secs(1), Duration::from_secs(5)]);
        for _ in 0..100 {
            let first = policy.next_delay(1).unwrap();
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1200), "{first:?}");
            let second = policy.next_delay(2).unwrap();
            assert!(second >= Duration::from_secs(5) && second <= Duration::from_secs(6), "{second:?}");
        }
        assert_eq!(policy.next_delay(3), None);
        assert_eq!(policy.next_delay(0), None);
        assert_eq!(policy.retries(), 2);
    }
}
