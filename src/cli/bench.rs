//! `tradehook bench`: the load generator (see `crate::bench`).

use std::time::Duration;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Target URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/webhook")]
    pub url: String,
}

/// Runs the benchmark.
pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    let _ = Duration::from_secs(1);
    anyhow::bail!("bench is being wired")
}
