//! The gateway process: shared state, the router, and the serve loop with graceful shutdown.
//!
//! `run` takes a bound listener so integration tests boot the real server on port 0. One
//! cancellation token drives shutdown: stop accepting, finish in-flight requests, let the store
//! commit what is queued, return.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

use crate::audit::AuditLog;
use crate::config::{Config, SourceConfig, StoreLocation};
use crate::delivery::attempt::DeliveryClient;
use crate::delivery::route::RouteTable;
use crate::delivery::subscription::SubscriptionSet;
use crate::delivery::{Dispatcher, Targets};
use crate::error::ApiError;
use crate::ingest::guard::IpLimiter;
use crate::ingest::signature::Scheme;
use crate::ingest::source::Source;
use crate::ingest::DEFAULT_SOURCE;
use crate::notify::{Notifier, Thresholds};
use crate::sinks::nats::NatsSink;
use crate::store::postgres::{PgOptions, PgStore};
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::SharedStore;
use crate::worker::lag::LagTracker;
use crate::worker::retry::RetryPolicy;
use crate::worker::{apply::SourceRules, Worker};

/// Everything a request handler may need, shared by all of them.
pub struct AppState {
    /// The validated configuration (with the zero-config source filled in).
    pub config: Arc<Config>,
    /// Sources by name.
    pub sources: HashMap<String, Arc<Source>>,
    /// The store of record.
    pub store: SharedStore,
    /// Recent rejected requests.
    pub audit: AuditLog,
    /// Per client IP rate limit, when configured.
    pub ip_limiter: Option<IpLimiter>,
    /// Bearer token of the management API.
    pub admin_token: String,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// When the process started.
    pub started: Instant,
    /// Processing lag of the worker.
    pub lag: Arc<LagTracker>,
    /// Current subscriptions (loaded by `run`, replaced after every change).
    pub subscriptions: Arc<SubscriptionSet>,
    /// The outbound HTTP client of deliveries.
    pub delivery_client: DeliveryClient,
    /// Operational alerts to `[alerts] url` (and the log); counts signature failures.
    pub notifier: Arc<Notifier>,
    /// What the dashboard watches: ingest per second, and the end of live streams at shutdown.
    pub live: crate::live::Live,
}

/// A secret that start-up generated (or read from the data directory) rather than configuration.
#[derive(Debug, Clone)]
pub struct LocalSecret {
    /// What it is for.
    pub purpose: &'static str,
    /// Where it is kept.
    pub path: std::path::PathBuf,
    /// Created by this start (print it once) rather than read back.
    pub created: bool,
}

/// Configuration completed for running: the default source and admin token filled in.
pub struct Setup {
    /// Configuration with sources and admin token present.
    pub config: Config,
    /// Secrets kept in the data directory.
    pub local_secrets: Vec<LocalSecret>,
    /// Whether the zero-config `default` source signs with `TRADEHOOK_SECRET` (not with a
    /// secret of the configuration file or the data directory).
    pub secret_from_env: bool,
}

/// The zero-config `default` source's secret from `TRADEHOOK_SECRET`: trimmed, `None` when unset
/// or blank. Every command reads the variable here, so `serve` keys the source with exactly what
/// `send`, `sign` and `bench` sign with: a value with a stray space or newline works on both
/// sides, and a blank one means "generate one" to `serve` and "not set" to the others.
pub fn secret_from_env_var() -> Option<String> {
    std::env::var("TRADEHOOK_SECRET").ok().map(|secret| secret.trim().to_owned()).filter(|s| !s.is_empty())
}

/// File names of generated secrets inside the data directory.
pub const DEFAULT_SECRET_FILE: &str = "default-source.secret";
/// File name of the generated admin token inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Reads a secret file, or creates it (mode 0600) with a new random value.
fn read_or_create_secret(path: &Path) -> anyhow::Result<(String, bool)> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim().to_string();
        if !text.is_empty() {
            return Ok((text, false));
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", dir.display()))?;
    }
    let value = hex::encode(rand::random::<[u8; 24]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{value}\n").as_bytes())?;
    file.sync_all()?;
    Ok((value, true))
}

impl Setup {
    /// Fills in the zero-config parts: the `default` source when no source is configured
    /// (secret from `TRADEHOOK_SECRET`, else generated once into the data directory) and the
    /// admin token when none is configured.
    pub fn prepare(mut config: Config) -> anyhow::Result<Setup> {
        let data_dir = config.data_dir();
        let mut local_secrets = Vec::new();
        let mut secret_from_env = false;
        if config.sources.is_empty() {
            let secret = match secret_from_env_var() {
                Some(secret) => {
                    secret_from_env = true;
                    secret
                }
                None => {
                    let path = data_dir.join(DEFAULT_SECRET_FILE);
                    let (secret, created) = read_or_create_secret(&path)?;
                    local_secrets.push(LocalSecret { purpose: "secret of source `default`", path, created });
                    secret
                }
            };
            config.sources.push(SourceConfig::new(DEFAULT_SOURCE, Scheme::HmacSha256, vec![secret]));
        }
        if config.api.admin_token.is_none() {
            let path = data_dir.join(ADMIN_TOKEN_FILE);
            let (token, created) = read_or_create_secret(&path)?;
            local_secrets.push(LocalSecret { purpose: "admin token of /api/v1", path, created });
            config.api.admin_token = Some(token);
        }
        config.validate()?;
        Ok(Setup { config, local_secrets, secret_from_env })
    }
}

/// Opens the configured store (for PostgreSQL: connects and migrates the schema).
pub async fn open_store(config: &Config) -> anyhow::Result<SharedStore> {
    match config.store_location().map_err(|e| anyhow::anyhow!("store.url: {e}"))? {
        StoreLocation::Sqlite(path) => {
            let options = SqliteOptions {
                max_batch: config.store.max_batch,
                queue_capacity: config.store.queue_capacity,
                max_backlog: config.store.max_backlog,
                max_page_count: None,
            };
            let store = SqliteStore::open(&path, options).map_err(|e| {
                anyhow::anyhow!("store.url: cannot open the SQLite store {}: {e}", path.display())
            })?;
            Ok(Arc::new(store))
        }
        StoreLocation::Postgres(url) => {
            let options = PgOptions {
                max_batch: config.store.max_batch,
                queue_capacity: config.store.queue_capacity,
                max_backlog: config.store.max_backlog,
                lease: config.store.lease,
                // Longer than any attempt can take (a request, or an `exec:` command if a route
                // runs one), so a live node's claim never runs out while it attempts; no longer,
                // so a dead node's claims are taken over soon.
                claim: longest_attempt(config).saturating_mul(2) + Duration::from_secs(5),
                pool_size: config.store.pool_size,
            };
            let store = PgStore::open(&url, options)
                .await
                .map_err(|e| anyhow::anyhow!("store.url: cannot open the PostgreSQL store: {e}"))?;
            Ok(Arc::new(store))
        }
    }
}

impl AppState {
    /// Builds the shared state from a prepared setup and an open store.
    pub fn new(setup: &Setup, store: SharedStore) -> anyhow::Result<AppState> {
        let config = &setup.config;
        // Install the recorder first: sources register their metric handles with it.
        let metrics = crate::metrics::install();
        // Every credential the gateway knows, each source's own secrets included: masked in the
        // audit log and kept out of stored headers.
        let credentials: Vec<String> = config
            .api
            .admin_token
            .iter()
            .chain(config.api.keys.iter().map(|k| &k.secret))
            .chain(config.sources.iter().flat_map(|s| &s.secrets))
            .chain(&config.broker.secret)
            .chain(&config.alerts.url)
            .flat_map(|credential| {
                // A `whsec_`/`whsk_` secret's key is what follows the prefix: sent alone, it is
                // the secret all the same.
                let key = ["whsec_", "whsk_"]
                    .iter()
                    .find_map(|prefix| credential.strip_prefix(prefix))
                    .filter(|key| key.len() >= 8)
                    .map(str::to_owned);
                std::iter::once(credential.clone()).chain(key)
            })
            .collect();
        let mut sources = HashMap::new();
        for source in &config.sources {
            sources.insert(
                source.name.clone(),
                Arc::new(Source::from_config(source, &credentials).map_err(anyhow::Error::msg)?),
            );
        }
        for source in config.sources.iter().filter(|s| s.signature == Scheme::None) {
            tracing::warn!(source = %source.name, "source accepts unsigned webhooks (allow-list only)");
        }
        Ok(AppState {
            config: Arc::new(config.clone()),
            sources,
            store,
            audit: AuditLog::new(config.server.audit_log_size).masking(credentials),
            ip_limiter: config
                .server
                .ip_rate_limit
                .map(|limit| IpLimiter::new(limit, config.server.max_tracked_ips)),
            admin_token: config.api.admin_token.clone().unwrap_or_default(),
            metrics,
            started: Instant::now(),
            lag: Arc::new(LagTracker::new()),
            subscriptions: Arc::new(SubscriptionSet::default()),
            delivery_client: DeliveryClient::new(&config.delivery).map_err(anyhow::Error::msg)?,
            notifier: Arc::new(Notifier::new(&config.alerts)),
            live: crate::live::Live::default(),
        })
    }
}

/// The whole HTTP surface: ingest, the API and the OpenAPI document that describes both.
pub fn router(state: Arc<AppState>) -> Router {
    let routes = OpenApiRouter::with_openapi(crate::api::openapi::base())
        .merge(crate::ingest::router())
        .merge(crate::api::router(state.clone()))
        .merge(crate::ui::router());
    let (router, _) = crate::api::openapi::serve(routes);
    router
        .fallback(|| async { ApiError::not_found("no such route").into_response() })
        // axum's own refusals (bad path encoding, wrong content type, 405) become JSON too.
        .layer(axum::middleware::map_response(crate::api::rejection::json_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
                .into_response()
        }))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled, then drains requests and closes the store.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    state.subscriptions.reload(|| state.store.subscriptions()).await?;
    let worker_stop = CancellationToken::new();
    let retry = RetryPolicy::new(state.config.retry.delays.clone());
    let worker_task = if state.config.worker.enabled {
        let worker = Worker::start(
            state.store.clone(),
            SourceRules::from_config(&state.config.sources),
            retry.clone(),
            state.lag.clone(),
            state.config.worker.batch,
        )
        .await?
        .with_delivery(RouteTable::new(&state.config.routes), state.subscriptions.clone())
        .with_actions(state.config.actions.clone(), state.config.broker.target());
        let targets = Targets {
            client: state.delivery_client.clone(),
            nats: Arc::new(NatsSink::new(state.config.nats.clone())),
            notifier: state.notifier.clone(),
            broker: state.config.broker.clone(),
            entry_max_age: state.config.actions.signal_to_order.as_ref().map(|s| s.max_signal_age),
        };
        let dispatcher = Dispatcher::new(
            state.store.clone(),
            state.subscriptions.clone(),
            targets,
            retry,
            state.config.delivery.clone(),
        );
        let worker = tokio::spawn(worker.run(worker_stop.clone()));
        let dispatcher = tokio::spawn(dispatcher.run(worker_stop.clone()));
        Some(async move {
            let worker = worker.await;
            let dispatcher = dispatcher.await;
            worker.and(dispatcher)
        })
    } else {
        tracing::warn!("worker disabled ([worker] enabled = false): events are stored but not processed");
        None
    };
    let pruner = state.ip_limiter.is_some().then(|| {
        let state = state.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => if let Some(limiter) = &state.ip_limiter { limiter.prune() },
                }
            }
        })
    });
    let retention = tokio::spawn(prune_loop(state.clone(), shutdown.clone()));
    // Other nodes may change subscriptions in a shared store: follow the stored list.
    let follower = state.store.shared().then(|| {
        let state = state.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(error) = state.subscriptions.reload(|| state.store.subscriptions()).await {
                            tracing::debug!(%error, "cannot reload subscriptions");
                        }
                    }
                }
            }
        })
    });
    let monitor = tokio::spawn(state.notifier.clone().watch(
        state.store.clone(),
        state.lag.clone(),
        Thresholds::from_config(&state.config.alerts),
        shutdown.clone(),
    ));
    state.live.close_on(shutdown.clone());
    // Plain or TLS, bounded, with header deadlines; returns when every connection has ended.
    // An error (a TLS file gone since validation) still stops the worker and closes the store.
    let served =
        crate::listener::serve(listener, router(state.clone()), &state.config.server, shutdown.clone()).await;
    if let Some(pruner) = pruner {
        pruner.abort();
    }
    retention.abort();
    monitor.abort();
    if let Some(follower) = follower {
        follower.abort();
    }
    worker_stop.cancel();
    if let Some(Err(error)) = match worker_task {
        Some(task) => Some(task.await),
        None => None,
    } {
        tracing::error!(%error, "worker task failed");
    }
    state.store.close().await;
    served
}

/// Deletes processed events older than `store.retention` once a minute, in chunks so no single
/// transaction holds the writer long. De-duplication holds for at least the retention period.
async fn prune_loop(state: Arc<AppState>, stop: CancellationToken) {
    const CHUNK: u32 = 5000;
    let retention = i64::try_from(state.config.store.retention.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff = crate::store::now_ms().saturating_sub(retention);
        // In chunks, so the writer is never held long; one log line for the whole pass.
        let mut deleted = 0;
        loop {
            match state.store.prune(cutoff, CHUNK).await {
                Ok(chunk) => {
                    deleted += chunk;
                    if chunk < u64::from(CHUNK) {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, deleted, "pruning old events failed; will retry");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "pruned events older than the retention period");
        }
    }
}

/// The longest one delivery attempt can take: an outbound request (a subscription, a broker),
/// and an `exec:` command or a NATS publish when a route has one.
fn longest_attempt(config: &Config) -> Duration {
    let routed = |prefix: &str| config.routes.iter().any(|route| route.actions.iter().any(|a| a.starts_with(prefix)));
    let mut longest = config.delivery.timeout;
    if routed("exec:") {
        longest = longest.max(config.delivery.exec_timeout);
    }
    if routed("nats:") {
        longest = longest.max(config.nats.timeout);
    }
    longest
}

/// Cancels `token` on SIGINT or SIGTERM. The handlers are in place when this returns, and so is
/// one for SIGHUP: whatever the listener does with it (see [`crate::tls::reload_on_hangup`]), it
/// must never end the process the way SIGHUP's default action does.
pub fn cancel_on_signals(token: CancellationToken) {
    #[cfg(unix)]
    let stop = {
        use tokio::signal::unix::{signal, SignalKind};
        if let Err(error) = signal(SignalKind::hangup()) {
            tracing::warn!(%error, "cannot handle SIGHUP");
        }
        let streams = [signal(SignalKind::interrupt()), signal(SignalKind::terminate())];
        async move {
            let [interrupt, terminate] = streams.map(|stream| async move {
                match stream {
                    Ok(mut signal) => drop(signal.recv().await),
                    Err(_) => std::future::pending::<()>().await,
                }
            });
            tokio::select! {
                _ = interrupt => {}
                _ = terminate => {}
            }
        }
    };
    #[cfg(not(unix))]
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::spawn(async move {
        stop.await;
        token.cancel();
        tracing::info!("shutting down: no new requests; finishing in-flight work");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dead node's delivery claims are taken over after twice the longest attempt (+5 s): a
    /// command's or a publish's timeout counts only when a route runs one.
    #[test]
    fn the_longest_attempt_counts_only_the_actions_routes_have() {
        let mut config = Config::default();
        config.delivery.timeout = Duration::from_secs(3);
        config.delivery.exec_timeout = Duration::from_secs(30);
        config.nats.timeout = Duration::from_secs(10);
        assert_eq!(longest_attempt(&config), Duration::from_secs(3));
        let mut route = crate::config::RouteConfig {
            events: vec!["*".into()],
            sources: Vec::new(),
            symbols: Vec::new(),
            statuses: Vec::new(),
            actions: vec!["nats:fills".into()],
        };
        config.routes.push(route.clone());
        assert_eq!(longest_attempt(&config), Duration::from_secs(10));
        route.actions = vec!["forward:desk".into(), "exec:./notify.sh".into()];
        config.routes.push(route);
        assert_eq!(longest_attempt(&config), Duration::from_secs(30));
    }
}
