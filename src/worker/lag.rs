//! Processing lag: time from an event's arrival (its durable ack) to the commit of its state
//! change. Kept in an HDR histogram for `GET /api/v1/status` and `tradehook bench`, and as the
//! Prometheus histogram `tradehook_processing_lag_seconds`.

use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Lag percentiles since start (or the last reset), in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LagSummary {
    /// Events measured.
    pub count: u64,
    /// Median.
    pub p50_ms: u64,
    /// 99th percentile.
    pub p99_ms: u64,
    /// Largest.
    pub max_ms: u64,
}

/// Records lags; cheap enough to call for every processed event.
pub struct LagTracker {
    histogram: Mutex<Histogram<u64>>,
}

impl Default for LagTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl LagTracker {
    /// An empty tracker (1 ms to 1 h, 3 significant figures).
    pub fn new() -> Self {
        // Fixed, valid bounds: construction cannot fail.
        let histogram = Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid histogram bounds");
        LagTracker { histogram: Mutex::new(histogram) }
    }

    /// Records one event's lag.
    pub fn record(&self, lag_ms: i64) {
        let lag = u64::try_from(lag_ms).unwrap_or(0).clamp(1, 3_600_000);
        metrics::histogram!("tradehook_processing_lag_seconds").record(lag as f64 / 1000.0);
        let mut histogram = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        let _ = histogram.record(lag);
    }

    /// Percentiles so far.
    pub fn summary(&self) -> LagSummary {
        let histogram = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        LagSummary {
            count: histogram.len(),
            p50_ms: histogram.value_at_quantile(0.5),
            p99_ms: histogram.value_at_quantile(0.99),
            max_ms: histogram.max(),
        }
    }

    /// Forgets what was recorded (a benchmark measures its own run).
    pub fn reset(&self) {
        self.histogram.lock().unwrap_or_else(|p| p.into_inner()).reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_and_resets() {
        let lag = LagTracker::new();
        for ms in 1..=100 {
            lag.record(ms);
        }
        let summary = lag.summary();
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50_ms, 50);
        assert_eq!(summary.p99_ms, 99);
        assert_eq!(summary.max_ms, 100);
        lag.reset();
        assert_eq!(lag.summary().count, 0);
    }
}
