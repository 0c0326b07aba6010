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
    /// Signing secret.
    #[arg(long, env = "TRADEHOOK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Signature scheme.
    #[arg(long, default_value = "hmac-sha256")]
    pub scheme: Scheme,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
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
}

/// Runs the benchmark and prints the report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let duration = match (args.duration, args.count) {
        (None, None) => Some(bench::DEFAULT_DURATION),
        (duration, _) => duration,
    };
    let options = BenchOptions {
        url: args.url,
        secret: args.secret,
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
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.render());
    }
    Ok(())
}
