//! `tradehook serve`: run the gateway until SIGINT/SIGTERM.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ingest::DEFAULT_SOURCE;
use crate::server::{self, AppState, Setup};

/// Prepares the zero-config parts, opens the store, binds, prints how to send a first event,
/// and serves.
pub async fn run(config: Config) -> anyhow::Result<()> {
    super::init_logging(&config);
    let setup = Setup::prepare(config)?;
    let store = server::open_store(&setup.config).await?;
    let state = Arc::new(AppState::new(&setup, store)?);
    let listen = &setup.config.server.listen;
    let listener =
        TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let address = listener.local_addr()?;
    // Before the banner: whoever starts the gateway may signal it as soon as it is up.
    let shutdown = CancellationToken::new();
    server::cancel_on_signals(shutdown.clone());
    print_banner(&setup, address);
    tracing::info!(%address, store = state.store.kind(), sources = state.sources.len(), "tradehook is listening");
    if let Some(warning) = plain_http_warning(address, setup.config.server.tls.is_some()) {
        tracing::warn!("{warning}");
    }
    server::run(listener, state, shutdown).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// What a new user needs to see: where it listens, which sources, where the generated secrets
/// are, and a command to paste. A secret is printed only on the start that generated it.
/// Write errors are ignored: a closed stdout must not stop the gateway.
fn print_banner(setup: &Setup, address: std::net::SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    macro_rules! println {
        ($($arg:tt)*) => { let _ = writeln!(out, $($arg)*); };
    }
    let config = &setup.config;
    let scheme = if config.server.tls.is_some() { "https" } else { "http" };
    println!("tradehook {} listening on {scheme}://{address}", env!("CARGO_PKG_VERSION"));
    for source in &config.sources {
        let path = if source.name == DEFAULT_SOURCE {
            "/webhook (and /webhooks/default)".to_string()
        } else {
            format!("/webhooks/{}", source.name)
        };
        println!("  source {:<12} POST {path}  signature {}", source.name, source.signature);
    }
    for secret in &setup.local_secrets {
        if secret.created {
            let value = std::fs::read_to_string(&secret.path).unwrap_or_default();
            println!("  generated {}: {} (saved in {})", secret.purpose, value.trim(), secret.path.display());
        } else {
            println!("  {} is in {}", secret.purpose, secret.path.display());
        }
    }
    if config.sources.iter().any(|s| s.name == DEFAULT_SOURCE) {
        let config_flag =
            std::env::var("TRADEHOOK_CONFIG").map(|p| format!(" --config {p}")).unwrap_or_default();
        let cacert = match &config.server.tls {
            Some(tls) => format!(" --cacert {}", tls.cert.display()),
            None => String::new(),
        };
        if setup.secret_from_env {
            // Without it, send would sign with a secret saved by an earlier start: a 401.
            println!("  the default source's secret is TRADEHOOK_SECRET's: set it where you run send too");
        }
        println!(
            "send a first event:\n  tradehook{config_flag} send order.created --url {scheme}://{address}/webhook{cacert}"
        );
    }
    if let Some(warning) = plain_http_warning(address, config.server.tls.is_some()) {
        println!("warning: {warning}");
    }
    let _ = out.flush();
}

/// The warning for listening in plain HTTP where other machines can reach it, if that is the case.
fn plain_http_warning(address: std::net::SocketAddr, tls: bool) -> Option<&'static str> {
    (!tls && !address.ip().is_loopback())
        .then_some("plain HTTP on a non-loopback address; configure [server.tls] or put TLS in front")
}

#[cfg(test)]
mod tests {
    use super::plain_http_warning;

    #[test]
    fn plain_http_on_a_public_address_warns() {
        assert!(plain_http_warning("0.0.0.0:8080".parse().unwrap(), false).is_some());
        assert!(plain_http_warning("[::]:8080".parse().unwrap(), false).is_some());
        assert!(plain_http_warning("192.0.2.7:8080".parse().unwrap(), false).is_some());
    }

    #[test]
    fn loopback_or_tls_does_not_warn() {
        assert!(plain_http_warning("127.0.0.1:8080".parse().unwrap(), false).is_none());
        assert!(plain_http_warning("[::1]:8080".parse().unwrap(), false).is_none());
        assert!(plain_http_warning("0.0.0.0:8443".parse().unwrap(), true).is_none());
    }
}
