//! Processing lag: time from an event's arrival (its durable ack) to the commit of its state
//! change. Kept in an HDR histogram for `GET /api/v1/status` and `tradehook bench`, and as the
//! Prometheus histogram `tradehook_processing_lag_seconds`. A second histogram holds the lags
//! since the alert monitor last took them, so it judges the current lag rather than the lag
//! since start.

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
    histograms: Mutex<Histograms>,
}

/// Both histograms behind one lock: one lock taken per recorded event.
struct Histograms {
    /// Since start or the last reset.
    total: Histogram<u64>,
    /// Since the last `take_recent`.
    recent: Histogram<u64>,
}

fn summarise(histogram: &Histogram<u64>) -> LagSummary {
    LagSummary {
        count: histogram.len(),
        p50_ms: histogram.value_at_quantile(0.5),
        p99_ms: histogram.value_at_quantile(0.99),
        max_ms: histogram.max(),
    }
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
        LagTracker { histograms: Mutex::new(Histograms { total: histogram.clone(), recent: histogram }) }
    }

    /// Records one event's lag.
    pub fn record(&self, lag_ms: i64) {
        let lag = u64::try_from(lag_ms).unwrap_or(0).clamp(1, 3_600_000);
        metrics::histogram!("tradehook_processing_lag_seconds").record(lag as f64 / 1000.0);
        let mut histograms = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        let _ = histograms.total.record(lag);
        let _ = histograms.recent.record(lag);
    }

    /// Percentiles so far.
    pub fn summary(&self) -> LagSummary {
        summarise(&self.histograms.lock().unwrap_or_else(|p| p.into_inner()).total)
    }

    /// Percentiles since the previous call, and starts a new window. For the alert monitor
    /// only: a second caller would split its windows.
    pub fn take_recent(&self) -> LagSummary {
        let mut histograms = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        let summary = summarise(&histograms.recent);
        histograms.recent.reset();
        summary
    }

    /// Forgets what was recorded (a benchmark measures its own run).
    pub fn reset(&self) {
        self.histograms.lock().unwrap_or_else(|p| p.into_inner()).total.reset();
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

    #[test]
    fn recent_window_starts_again_after_each_take() {
        let lag = LagTracker::new();
        lag.record(40_000);
        let first = lag.take_recent();
        assert_eq!((first.count, first.p99_ms / 1000), (1, 40));
        assert_eq!(lag.take_recent().count, 0);
        lag.record(5);
        assert_eq!(lag.take_recent().p99_ms, 5);
        assert_eq!(lag.summary().count, 2, "the total keeps everything");
    }
}
