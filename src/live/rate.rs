//! Ingest rate and acknowledgement latency, second by second, over the last ten minutes: what
//! the dashboard's chart draws.
//!
//! A ring of one slot per second. Recording takes one short lock (an uncontended mutex costs tens
//! of nanoseconds against the tens of microseconds a durable ack costs) and never allocates; a
//! slot is reset when its second comes round again, so memory is fixed (about 300 KiB). Latency
//! percentiles come from a log-linear histogram per slot: four buckets per power of two, so a
//! reported percentile is within about 12 % of the true value.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Seconds of history kept.
pub const WINDOW_SECONDS: u64 = 600;
/// Latency buckets: exact below 8 µs, then four per power of two up to about an hour.
const BUCKETS: usize = 128;

/// The bucket of a latency in microseconds.
fn bucket(micros: u64) -> usize {
    if micros < 8 {
        return micros as usize;
    }
    let exponent = 63 - u64::from(micros.leading_zeros()); // ≥ 3
    let sub = (micros >> (exponent - 2)) & 3;
    (8 + (exponent - 3) * 4 + sub).min(BUCKETS as u64 - 1) as usize
}

/// The middle of a bucket, in microseconds.
fn bucket_middle(index: usize) -> f64 {
    if index < 8 {
        return index as f64;
    }
    let exponent = (index - 8) / 4 + 3;
    let sub = ((index - 8) % 4) as u64;
    let width = 1u64 << (exponent - 2);
    ((4 + sub) * width) as f64 + (width as f64 - 1.0) / 2.0
}

/// One second of ingest.
#[derive(Clone)]
struct Slot {
    /// Unix second this slot holds; another value means the slot is stale.
    second: u64,
    /// Requests answered `accepted` or `duplicate`.
    accepted: u64,
    /// Requests refused (4xx/5xx).
    refused: u64,
    /// Sum of ack latencies, µs.
    sum_micros: u64,
    /// Largest ack latency, µs.
    max_micros: u64,
    /// Ack latency histogram.
    buckets: [u32; BUCKETS],
}

impl Slot {
    fn empty(second: u64) -> Self {
        Slot { second, accepted: 0, refused: 0, sum_micros: 0, max_micros: 0, buckets: [0; BUCKETS] }
    }

    /// The latency at quantile `q` (0–1), µs, capped by the largest seen.
    fn quantile(&self, q: f64) -> f64 {
        let total: u64 = self.buckets.iter().map(|&n| u64::from(n)).sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, &count) in self.buckets.iter().enumerate() {
            seen += u64::from(count);
            if seen >= rank {
                return bucket_middle(index).min(self.max_micros as f64);
            }
        }
        self.max_micros as f64
    }
}

/// One second as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateSample {
    /// Unix second.
    pub at: u64,
    /// Webhooks acknowledged (`accepted` or `duplicate`) in that second.
    pub accepted: u64,
    /// Webhooks refused in that second.
    pub refused: u64,
    /// Mean ack latency, ms.
    pub ack_mean_ms: f64,
    /// Median ack latency, ms.
    pub ack_p50_ms: f64,
    /// 99th percentile ack latency, ms.
    pub ack_p99_ms: f64,
    /// Largest ack latency, ms.
    pub ack_max_ms: f64,
}

/// The per-second ring. See the module documentation.
pub struct IngestRate {
    /// `WINDOW_SECONDS` slots, indexed by unix second modulo the window.
    slots: Mutex<Vec<Slot>>,
}

impl Default for IngestRate {
    fn default() -> Self {
        IngestRate { slots: Mutex::new(vec![Slot::empty(0); WINDOW_SECONDS as usize]) }
    }
}

/// Seconds since the unix epoch, now.
pub fn unix_second() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl IngestRate {
    /// Runs `change` on the slot of `second`, resetting it first if it held an older second.
    fn with_slot(&self, second: u64, change: impl FnOnce(&mut Slot)) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[(second % WINDOW_SECONDS) as usize];
        if slot.second != second {
            if slot.second > second {
                return; // a late record for a second already overwritten: drop it
            }
            *slot = Slot::empty(second);
        }
        change(slot);
    }

    /// Records an acknowledged webhook and how long its ack took.
    pub fn record_ack(&self, latency: Duration) {
        self.record_ack_at(unix_second(), latency);
    }

    /// [`Self::record_ack`] at a given second (tests).
    pub fn record_ack_at(&self, second: u64, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.with_slot(second, |slot| {
            slot.accepted += 1;
            slot.sum_micros = slot.sum_micros.saturating_add(micros);
            slot.max_micros = slot.max_micros.max(micros);
            let bucket = &mut slot.buckets[bucket(micros)];
            *bucket = bucket.saturating_add(1);
        });
    }

    /// Records a refused webhook.
    pub fn record_refused(&self) {
        self.record_refused_at(unix_second());
    }

    /// [`Self::record_refused`] at a given second (tests).
    pub fn record_refused_at(&self, second: u64) {
        self.with_slot(second, |slot| slot.refused += 1);
    }

    /// The seconds with traffic among the last `seconds` before and including `now`, oldest first.
    pub fn samples(&self, now: u64, seconds: u64) -> Vec<RateSample> {
        let seconds = seconds.clamp(1, WINDOW_SECONDS);
        let oldest = now.saturating_sub(seconds - 1);
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<RateSample> = slots
            .iter()
            .filter(|s| s.second >= oldest && s.second <= now && (s.accepted > 0 || s.refused > 0))
            .map(|s| {
                let ms = |micros: f64| (micros / 10.0).round() / 100.0;
                let mean = if s.accepted == 0 { 0.0 } else { s.sum_micros as f64 / s.accepted as f64 };
                RateSample {
                    at: s.second,
                    accepted: s.accepted,
                    refused: s.refused,
                    ack_mean_ms: ms(mean),
                    ack_p50_ms: ms(s.quantile(0.5)),
                    ack_p99_ms: ms(s.quantile(0.99)),
                    ack_max_ms: ms(s.max_micros as f64),
                }
            })
            .collect();
        drop(slots);
        found.sort_by_key(|s| s.at);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_their_middles_fall_inside() {
        let mut previous = 0;
        for micros in (0..100_000u64).step_by(7) {
            let index = bucket(micros);
            assert!(index >= previous, "{micros}");
            previous = index;
            let middle = bucket_middle(index);
            assert!((middle - micros as f64).abs() <= micros as f64 * 0.25 + 1.0, "{micros} → {middle}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn counts_and_percentiles_per_second() {
        let rate = IngestRate::default();
        for i in 1..=100u64 {
            rate.record_ack_at(1000, Duration::from_micros(i * 100));
        }
        rate.record_refused_at(1000);
        rate.record_ack_at(1002, Duration::from_millis(3));
        let samples = rate.samples(1002, 60);
        assert_eq!(samples.len(), 2);
        let first = &samples[0];
        assert_eq!((first.at, first.accepted, first.refused), (1000, 100, 1));
        assert!((first.ack_p50_ms - 5.0).abs() < 0.7, "{first:?}");
        assert!((first.ack_p99_ms - 9.9).abs() < 1.3, "{first:?}");
        assert_eq!(first.ack_max_ms, 10.0);
        assert!((first.ack_mean_ms - 5.05).abs() < 0.01, "{first:?}");
        assert_eq!(samples[1].accepted, 1);
    }

    #[test]
    fn a_second_a_window_later_replaces_its_slot_and_old_seconds_drop_out() {
        let rate = IngestRate::default();
        rate.record_ack_at(5, Duration::from_millis(1));
        rate.record_ack_at(5 + WINDOW_SECONDS, Duration::from_millis(1));
        rate.record_ack_at(5, Duration::from_millis(1)); // late: ignored
        let samples = rate.samples(5 + WINDOW_SECONDS, WINDOW_SECONDS);
        assert_eq!(samples.len(), 1);
        assert_eq!((samples[0].at, samples[0].accepted), (5 + WINDOW_SECONDS, 1));
        assert!(rate.samples(5 + 2 * WINDOW_SECONDS, WINDOW_SECONDS).is_empty());
    }
}
