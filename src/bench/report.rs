//! What a bench run measured, and how it is shown: a table for people, one JSON object for
//! scripts (`bench/run.sh` divides tradehook's figures by the limit server's).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;

/// The outcome of one bench run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Requests attempted, warmup included (a failed connect counts as one).
    pub sent: u64,
    /// Requests answered 2xx with status `accepted` or `duplicate`, warmup included.
    pub ok: u64,
    /// Every other outcome by HTTP status (`"401"`, `"503"`) or failure (`"connect"`, `"io"`,
    /// `"timeout"`, `"unexpected-body"`, `"sign"`), warmup included.
    pub errors_by_status: BTreeMap<String, u64>,
    /// Wall time of the whole run, warmup included.
    pub elapsed: Duration,
    /// Ok responses per second after the warmup.
    pub throughput: f64,
    /// Median latency of ok responses after the warmup, in microseconds.
    pub p50_us: u64,
    /// 90th percentile latency, in microseconds.
    pub p90_us: u64,
    /// 99th percentile latency, in microseconds.
    pub p99_us: u64,
    /// 99.9th percentile latency, in microseconds.
    pub p999_us: u64,
    /// Slowest ok response, in microseconds.
    pub max_us: u64,
    /// Mean latency of ok responses, in microseconds.
    pub mean_us: f64,
    /// (percentile, microseconds) from 0 % to the slowest, denser towards the tail: what
    /// `bench --plot` draws.
    pub latency_by_percentile: Vec<(f64, u64)>,
}

impl BenchReport {
    /// Builds the report from the run's counts and its latency histogram.
    pub(crate) fn new(
        sent: u64,
        ok: u64,
        errors_by_status: BTreeMap<String, u64>,
        elapsed: Duration,
        throughput: f64,
        latency: &Histogram<u64>,
    ) -> Self {
        BenchReport {
            sent,
            ok,
            errors_by_status,
            elapsed,
            throughput,
            p50_us: latency.value_at_quantile(0.5),
            p90_us: latency.value_at_quantile(0.9),
            p99_us: latency.value_at_quantile(0.99),
            p999_us: latency.value_at_quantile(0.999),
            max_us: latency.max(),
            mean_us: latency.mean(),
            latency_by_percentile: by_percentile(latency),
        }
    }

    /// Requests that did not end in an ok answer.
    pub fn errors(&self) -> u64 {
        self.errors_by_status.values().sum()
    }

    /// A human-readable table of the run.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "requests    {} sent, {} ok, {} errors", self.sent, self.ok, self.errors());
        if !self.errors_by_status.is_empty() {
            let errors: Vec<String> =
                self.errors_by_status.iter().map(|(kind, count)| format!("{kind}: {count}")).collect();
            let _ = writeln!(out, "errors      {}", errors.join(", "));
        }
        let _ = writeln!(out, "elapsed     {:.2} s", self.elapsed.as_secs_f64());
        let _ = writeln!(out, "throughput  {:.0} ok/s (after warmup)", self.throughput);
        let _ = writeln!(
            out,
            "latency     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}",
            millis(self.p50_us as f64),
            millis(self.p90_us as f64),
            millis(self.p99_us as f64),
            millis(self.p999_us as f64),
            millis(self.max_us as f64),
            millis(self.mean_us),
        );
        out
    }

    /// The report as one JSON object; field names are those of this struct, times in µs/s.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors(),
            "errors_by_status": self.errors_by_status,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "throughput": self.throughput,
            "p50_us": self.p50_us,
            "p90_us": self.p90_us,
            "p99_us": self.p99_us,
            "p999_us": self.p999_us,
            "max_us": self.max_us,
            "mean_us": self.mean_us,
        })
    }
}

/// Latency at percentiles spaced evenly in "nines" (0, 90, 99, 99.9 % … equally far apart), ten
/// steps per nine, as far as the sample count can tell apart, then the slowest.
fn by_percentile(latency: &Histogram<u64>) -> Vec<(f64, u64)> {
    if latency.is_empty() {
        return Vec::new();
    }
    let nines = (latency.len() as f64).log10().floor().clamp(1.0, 6.0);
    let mut points: Vec<(f64, u64)> = (0..=(nines * 10.0) as u32)
        .map(|step| {
            let quantile = 1.0 - 10f64.powf(-f64::from(step) / 10.0);
            (quantile * 100.0, latency.value_at_quantile(quantile))
        })
        .collect();
    points.push((100.0, latency.max()));
    points
}

/// Microseconds shown as milliseconds with three decimals.
fn millis(micros: f64) -> String {
    format!("{:.3} ms", micros / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BenchReport {
        let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for micros in 1..=1000 {
            latency.record(micros).unwrap();
        }
        let errors = BTreeMap::from([("401".to_owned(), 3), ("timeout".to_owned(), 1)]);
        BenchReport::new(1004, 1000, errors, Duration::from_secs(2), 1000.0, &latency)
    }

    #[test]
    fn json_carries_every_figure() {
        let json = sample().to_json();
        assert_eq!(json["sent"], 1004);
        assert_eq!(json["errors"], 4);
        assert_eq!(json["errors_by_status"]["401"], 3);
        assert_eq!(json["p50_us"], 500);
        assert_eq!(json["max_us"], 1000);
        assert_eq!(json["elapsed_secs"], 2.0);
    }

    #[test]
    fn table_names_errors_and_percentiles() {
        let table = sample().render();
        assert!(table.contains("401: 3, timeout: 1"), "{table}");
        assert!(table.contains("p99 0.990 ms"), "{table}");
    }
}
