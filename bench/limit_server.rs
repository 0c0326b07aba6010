//! `limit-server`: the bare hyper + HMAC webhook receiver that bounds what any receiver could do on
//! this machine. `bench/run.sh` benchmarks it next to `tradehook serve` with the same client.
//!
//! On start it prints exactly one line, `listening on <addr>`, so a script can learn the port when
//! it asked for port 0. It exits on SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;

/// Command-line arguments of the limit server.
#[derive(Debug, Parser)]
#[command(name = "limit-server", about = "Bare hyper + HMAC webhook receiver: the upper bound for tradehook")]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Secret keying the HMAC-SHA256 in `X-Webhook-Signature`.
    #[arg(long, env = "LIMIT_SECRET", default_value = "bench-secret", hide_env_values = true)]
    secret: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr().context("cannot read the bound address")?;
    // The script reading this line blocks until it arrives, so flush before serving.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {local}")?;
    stdout.flush()?;
    drop(stdout);

    tokio::select! {
        served = tradehook::bench::limit::serve_limit(listener, args.secret) => {
            served.context("the listener failed")
        }
        signal = shutdown_signal() => signal,
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot install the SIGTERM handler")?;
        tokio::select! {
            ctrl_c = tokio::signal::ctrl_c() => ctrl_c.context("cannot install the SIGINT handler"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("cannot install the Ctrl-C handler")
    }
}
