//! The log of `serve`: records to stderr, as text or JSON, filtered by `log.level` (or
//! `RUST_LOG`), with the crates that log secrets below INFO held at INFO whatever the filter
//! asks for.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{FilterExt as _, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{Config, LogFormat};

/// Crates whose DEBUG and TRACE records carry secrets; they log at INFO at most, or less when
/// the filter is stricter for them.
/// - `tokio_postgres` logs every statement's parameters at DEBUG: event bodies, subscription
///   secrets.
/// - `async_nats` logs its connect options at DEBUG (`async_nats::connector`), the password of
///   a `nats://user:password@…` URL included.
const SECRET_LOGGING_CRATES: [&str; 2] = ["tokio_postgres", "async_nats"];

/// Sets up logging to stderr as the configuration says; `RUST_LOG` overrides the level.
pub fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: in a file or a log shipper they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = subscriber(filter, config.log.format, ansi, std::io::stderr).try_init();
}

/// The subscriber of the log: `filter` with [`SECRET_LOGGING_CRATES`] capped at INFO, records
/// written to `writer`.
fn subscriber<W>(filter: EnvFilter, format: LogFormat, ansi: bool, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Both filters must let a record through: a directive such as `async_nats=debug` (or a
    // bare `debug`) cannot lower the cap, and a stricter filter (`warn`) still applies to these
    // crates, which an added `async_nats=info` directive would have loosened.
    let cap = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(SECRET_LOGGING_CRATES.map(|target| (target, LevelFilter::INFO)));
    // A log line that cannot be written is dropped: tracing's fallback, an `eprintln!` of the
    // failure, panics on a closed stderr pipe (a log shipper restarted, `serve 2>&1 | head`) and
    // would kill the task that logged — the signal handler's, leaving SIGTERM without effect.
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi).log_internal_errors(false);
    let layer = match format {
        LogFormat::Json => layer.json().boxed(),
        LogFormat::Text => layer.boxed(),
    };
    tracing_subscriber::registry().with(layer.with_filter(filter.and(cap)))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What a subscriber built from `filter` writes while the records of `log` are made.
    fn logged(filter: &str, log: impl FnOnce()) -> String {
        #[derive(Clone)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured(Arc::default());
        let writer = captured.clone();
        let subscriber = subscriber(EnvFilter::new(filter), LogFormat::Text, false, move || writer.clone());
        tracing::subscriber::with_default(subscriber, log);
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn records() {
        tracing::trace!(target: "tokio_postgres::query", "executing statement with parameters [\"whsec_PGSECRET\"]");
        tracing::debug!(target: "async_nats::connector", "connect options: password: Some(\"NATSPASS\")");
        tracing::info!(target: "async_nats", "nats-info-line");
        tracing::warn!(target: "async_nats", "nats-warn-line");
        tracing::debug!(target: "tradehook::worker", "tradehook-debug-line");
    }

    #[test]
    fn crates_that_log_secrets_never_log_below_info_whatever_the_filter() {
        for filter in ["debug", "trace", "async_nats=trace,tokio_postgres=trace,debug"] {
            let text = logged(filter, records);
            assert!(!text.contains("NATSPASS") && !text.contains("PGSECRET"), "{filter}: {text}");
            assert!(text.contains("nats-info-line") && text.contains("tradehook-debug-line"), "{filter}: {text}");
        }
    }

    #[test]
    fn a_stricter_filter_still_applies_to_them() {
        let text = logged("warn", records);
        assert!(!text.contains("nats-info-line") && text.contains("nats-warn-line"), "{text}");
        assert!(!text.contains("tradehook-debug-line"), "{text}");
    }
}
