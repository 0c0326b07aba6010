//! `tradehook bench`: load-test a receiver with unique signed events (see `crate::bench`).

use std::time::Duration;

use crate::bench::{self, BenchOptions};
use crate::ingest::signature::Scheme;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Target URL (plain http).
    #[arg(long, default_value = "http://127.0.0.1:8080/webhook")]
    pub url: String,
    /// Signing secret; default: TRADEHOOK_SECRET (trimmed, as `serve` reads it).
    #[arg(long)]
    pub secret: Option<String>,
    /// Signature scheme.
    #[arg(long, default_value = "hmac-sha256")]
    pub scheme: Scheme,
    /// Concurrent keep-alive connections, 1–10000.
    #[arg(long, default_value_t = 32, value_parser = connections)]
    pub connections: usize,
    /// Measure for this long after the warmup, e.g. 15s (default 10s unless --count is given).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many requests (warmup included).
    #[arg(long)]
    pub count: Option<u64>,
    /// Cap the total rate, requests per second (open loop; latency counted from the schedule).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Requests in this first period are sent but not measured.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Approximate body size in bytes.
    #[arg(long, default_value_t = 300)]
    pub body_size: usize,
    /// Print the report as one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Also write the latency distribution (latency by percentile, 0 % to the slowest) to this
    /// SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// `ingest` (load a receiver at --url) or `deliveries` (measure outbound signed deliveries
    /// from a temporary store to a local receiver; uses --count, default 50000, and
    /// --connections as the delivery concurrency).
    #[arg(long, value_enum, default_value_t = BenchMode::Ingest)]
    pub mode: BenchMode,
    /// Admin token of the target tradehook: after the load, wait until it has processed
    /// everything and report end-to-end throughput and processing lag (ack → state applied).
    #[arg(long, env = "TRADEHOOK_API__ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// Most connections one bench opens: each is a socket and a task; beyond this the client's own
/// limits (open files, ports) fail it rather than the target.
const MAX_CONNECTIONS: usize = 10_000;

fn connections(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_CONNECTIONS).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from 1 to {MAX_CONNECTIONS}")),
    }
}

/// What `bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMode {
    /// Signed webhooks sent to a receiver (tradehook or the limit server).
    Ingest,
    /// tradehook's own outbound deliveries to a local receiver.
    Deliveries,
}

/// Runs the benchmark and prints the report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.mode == BenchMode::Deliveries {
        if args.plot.is_some() {
            anyhow::bail!("--plot draws the latency of webhooks sent; it does not apply to --mode deliveries");
        }
        let options = crate::bench::deliveries::DeliveryBenchOptions {
            count: args.count.unwrap_or(50_000),
            concurrency: args.connections,
            body_size: args.body_size,
        };
        let report = crate::bench::deliveries::run(options).await?;
        if args.json {
            println!("{}", report.to_json());
        } else {
            println!("{}", report.render());
        }
        return Ok(());
    }
    let duration = match (args.duration, args.count) {
        (None, None) => Some(bench::DEFAULT_DURATION),
        (duration, _) => duration,
    };
    // The target's store counts every event it ever processed: this run's are those beyond it.
    let processed_before = match &args.admin_token {
        Some(token) => Some(processed(&status(&args.url, token).await?)),
        None => None,
    };
    let started = std::time::Instant::now();
    let options = BenchOptions {
        url: args.url.clone(),
        secret: args
            .secret
            .or_else(crate::server::secret_from_env_var)
            .ok_or_else(|| anyhow::anyhow!("bench needs --secret (or TRADEHOOK_SECRET) to sign requests"))?,
        scheme: args.scheme,
        connections: args.connections,
        duration,
        count: args.count,
        rate: args.rate,
        warmup: args.warmup,
        progress: !args.no_progress && !args.json,
        body_size: args.body_size,
    };
    let report = bench::run(options).await?;
    if report.ok == 0 {
        // Nothing to measure: say what the target answered instead, and fail.
        println!("{}", if args.json { report.to_json().to_string() } else { report.render() });
        anyhow::bail!("no request was answered ok ({} sent): see the errors above", report.sent);
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "{} · {} connections · {:.0} ok/s · p99 {:.2} ms",
            args.url,
            args.connections,
            report.throughput,
            report.p99_us as f64 / 1000.0
        );
        bench::plot::write_svg(&report, &title, path)?;
    }
    let processing = match (&args.admin_token, processed_before) {
        (Some(token), Some(before)) => Some(drain(&args.url, token, started, before).await?),
        _ => None,
    };
    if args.json {
        let mut json = report.to_json();
        if let Some(processing) = &processing {
            json["processing"] = processing.clone();
        }
        println!("{json}");
    } else {
        println!("{}", report.render());
        if let Some(p) = &processing {
            println!(
                "processing  {} events processed, backlog drained {:.2} s after the load ended; end to end {:.0} events/s",
                p["processed"], p["drainSeconds"], p["eventsPerSecond"]
            );
            println!(
                "lag         p50 {} ms  p99 {} ms  max {} ms (ack → state applied)",
                p["lag"]["p50Ms"], p["lag"]["p99Ms"], p["lag"]["maxMs"]
            );
        }
    }
    Ok(())
}

/// Waits (up to 5 minutes) until the target has processed its whole backlog, then reads its
/// processing figures from `/api/v1/status`; `processed_before` is its count before the load.
async fn drain(
    url: &str,
    token: &str,
    started: std::time::Instant,
    processed_before: u64,
) -> anyhow::Result<serde_json::Value> {
    let load_ended = std::time::Instant::now();
    loop {
        let status = status(url, token).await?;
        if status["backlog"] == 0 {
            let processed = processed(&status).saturating_sub(processed_before);
            let total = started.elapsed().as_secs_f64();
            return Ok(serde_json::json!({
                "processed": processed,
                "drainSeconds": load_ended.elapsed().as_secs_f64(),
                "eventsPerSecond": processed as f64 / total.max(f64::EPSILON),
                "lag": status["lag"],
            }));
        }
        if load_ended.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("backlog still {} five minutes after the load ended", status["backlog"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/api/v1/status` of the tradehook whose webhook URL is `url`.
async fn status(url: &str, token: &str) -> anyhow::Result<serde_json::Value> {
    let base = url.split("/webhook").next().unwrap_or(url).trim_end_matches('/');
    let status_url = format!("{base}/api/v1/status");
    let headers = [("authorization".to_string(), format!("Bearer {token}"))];
    let (code, body) = super::client::request(http::Method::GET, &status_url, &headers, Vec::new(), None).await?;
    if !code.is_success() {
        anyhow::bail!("{status_url} answered {code}; is --admin-token right?");
    }
    Ok(serde_json::from_slice(&body)?)
}

/// The events the store has processed in its lifetime, as `/api/v1/status` counts them.
fn processed(status: &serde_json::Value) -> u64 {
    status["processed"].as_u64().unwrap_or(0)
}
