//! Configuration: built-in defaults, then the TOML file, then `TRADEHOOK_*` environment variables.
//!
//! Everything is read and validated once at start-up; a bad value stops the process with one line
//! naming the key and the problem. Nested keys are set from the environment with `__` between the
//! parts: `TRADEHOOK_SERVER__LISTEN=0.0.0.0:8080`, `TRADEHOOK_STORE__URL=sqlite://x.db`.
//! `TRADEHOOK_SECRET` is not a key: it is the secret of the zero-config `default` source.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format as _, Serialized, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ingest::signature::Scheme;
pub use alerts::{redacted_url, AlertsConfig};
pub use listener::TlsConfig;
use units::{de_size, humantime_serde_compat, ser_size};

mod alerts;
mod env;
mod listener;
pub(crate) mod units;

/// The whole configuration of one gateway process.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listening socket, proxies, request limits.
    pub server: ServerConfig,
    /// Where events are stored: a `[store]` table, or just its URL (`store = "postgres://…"`).
    #[serde(deserialize_with = "store_url_or_table")]
    pub store: StoreConfig,
    /// The management API.
    pub api: ApiConfig,
    /// Webhook sources; when empty, the zero-config `default` source is used.
    #[serde(rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Routes from events to actions.
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// The background worker that processes stored events.
    pub worker: WorkerConfig,
    /// Retry schedule for actions and deliveries.
    pub retry: RetryConfig,
    /// Outbound delivery settings.
    pub delivery: DeliveryConfig,
    /// Where operational alerts go.
    pub alerts: AlertsConfig,
    /// The NATS server of `nats:<subject>` actions.
    pub nats: crate::sinks::nats::NatsConfig,
    /// Where order intents of strategy actions go.
    pub broker: crate::broker::BrokerConfig,
    /// Settings of the strategy actions routes name (`bracket_on_fill`, `signal_to_order`,
    /// `margin_guard`).
    pub actions: crate::trading::ActionsConfig,
    /// Log output.
    pub log: LogConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Socket address to listen on.
    pub listen: String,
    /// CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long a client may take to send the whole body before it gets 408.
    #[serde(with = "humantime_serde_compat")]
    pub body_timeout: Duration,
    /// Per client IP rate limit across all sources; absent = none.
    pub ip_rate_limit: Option<RateLimit>,
    /// Most client IPs whose rate-limit state is remembered at once (memory bound).
    pub max_tracked_ips: usize,
    /// Rejected requests kept in the audit log (oldest dropped first).
    pub audit_log_size: usize,
    /// Built-in TLS (`[server.tls]`); absent = plain HTTP.
    pub tls: Option<TlsConfig>,
    /// How long a client may take to send a request's headers (and, for a new connection, its
    /// TLS handshake and first request); an idle HTTP/1.1 connection is closed after it.
    #[serde(with = "humantime_serde_compat")]
    pub header_timeout: Duration,
    /// Most connections open at once; further ones wait to be accepted until one closes.
    pub max_connections: usize,
}

/// `store = "<url>"` (SPEC §7) as `[store] url = "<url>"` with every other key at its default;
/// a table as itself, with its own errors (`store.retention: …`).
fn store_url_or_table<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<StoreConfig, D::Error> {
    struct UrlOrTable;
    impl<'de> serde::de::Visitor<'de> for UrlOrTable {
        type Value = StoreConfig;
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a store URL or a [store] table")
        }
        fn visit_str<E: serde::de::Error>(self, url: &str) -> Result<StoreConfig, E> {
            Ok(StoreConfig { url: url.to_owned(), ..StoreConfig::default() })
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<StoreConfig, A::Error> {
            StoreConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    deserializer.deserialize_any(UrlOrTable)
}

/// `[store]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` (default) or `postgres://…`.
    pub url: String,
    /// How long events are kept; de-duplication holds for this long.
    #[serde(with = "humantime_serde_compat")]
    pub retention: Duration,
    /// Pending (not yet processed) events above which ingest answers 503.
    pub max_backlog: u64,
    /// Age of the oldest pending event above which `/readyz` fails.
    #[serde(with = "humantime_serde_compat")]
    pub max_pending_age: Duration,
    /// Most events committed in one transaction.
    pub max_batch: usize,
    /// Requests waiting for the writer above which ingest answers 503.
    pub queue_capacity: usize,
    /// PostgreSQL: how long the processing lease lasts unrenewed, so how soon another node
    /// takes over processing from one that died.
    #[serde(with = "humantime_serde_compat")]
    pub lease: Duration,
    /// PostgreSQL: connections each node keeps in its pool.
    pub pool_size: usize,
}

/// `[api]`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Bearer token for `/api/v1`; generated and saved in the data directory when absent.
    pub admin_token: Option<String>,
    /// API keys for seed 001 request signing.
    pub keys: Vec<ApiKey>,
}

/// One API key and its signing secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The public key id sent in `X-API-Key`.
    pub key: String,
    /// The secret that signs requests; never logged.
    pub secret: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey").field("key", &self.key).field("secret", &"<redacted>").finish()
    }
}

/// Payload formats a source can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The canonical events of seed 001.
    #[default]
    Vibetrading,
    /// TradingView alert JSON.
    Tradingview,
    /// Any JSON.
    Generic,
}

impl Format {
    /// The name as the configuration spells it (`format = "…"`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Vibetrading => "vibetrading",
            Format::Tradingview => "tradingview",
            Format::Generic => "generic",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `[[source]]`: one sender of webhooks.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Path segment: `POST /webhooks/{name}`.
    pub name: String,
    /// Payload format.
    #[serde(default)]
    pub format: Format,
    /// Signature scheme.
    #[serde(default)]
    pub signature: Scheme,
    /// Secrets; any one that matches passes (key rotation).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Required for `signature = "none"`.
    #[serde(default)]
    pub allow_unsigned: bool,
    /// Client CIDRs allowed to send; empty = any. `tradingview` expands to TradingView's addresses.
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// Per-source rate limit; absent = none.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Largest accepted body.
    #[serde(default = "default_max_body", deserialize_with = "de_size", serialize_with = "ser_size")]
    pub max_body: u64,
    /// Timestamp tolerance for schemes that sign a timestamp.
    #[serde(default = "default_tolerance", with = "humantime_serde_compat")]
    pub tolerance: Duration,
    /// JSON pointers tried for the event id after the headers (default `/id`, then `/eventId`).
    #[serde(default = "default_id_fields")]
    pub id_fields: Vec<String>,
    /// Whether the `webhook-id` / `X-Event-Id` headers give the event id (SPEC §1 order). Only
    /// standard-webhooks signs its id header; for other schemes `false` takes the id from the
    /// signed body alone, so a captured request re-sent under a new id header is a duplicate.
    #[serde(default = "default_id_headers")]
    pub id_headers: bool,
    /// JSON field holding the token for `signature = "token"`.
    #[serde(default = "default_token_field")]
    pub token_field: String,
    /// JSON pointers tried for the ordering key before the canonical one (order id for order
    /// events, symbol for position events, asset for account events).
    #[serde(default)]
    pub ordering_key: Vec<String>,
    /// How TradingView alert fields map to a signal (`format = "tradingview"`).
    #[serde(default)]
    pub tradingview: Option<crate::trading::TradingViewMapping>,
}

impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConfig")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("signature", &self.signature)
            .field("secrets", &format_args!("<{} redacted>", self.secrets.len()))
            .field("allow_ips", &self.allow_ips)
            .field("rate_limit", &self.rate_limit)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl SourceConfig {
    /// A source with every default and the given name, scheme and secrets.
    pub fn new(name: &str, signature: Scheme, secrets: Vec<String>) -> Self {
        SourceConfig {
            name: name.to_string(),
            format: Format::default(),
            signature,
            secrets,
            allow_unsigned: false,
            allow_ips: Vec::new(),
            rate_limit: None,
            max_body: default_max_body(),
            tolerance: default_tolerance(),
            id_fields: default_id_fields(),
            id_headers: default_id_headers(),
            token_field: default_token_field(),
            ordering_key: Vec::new(),
            tradingview: None,
        }
    }
}

/// A token bucket: sustained rate and burst size.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
}

/// `[[route]]`: which events go to which actions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Event types or globs (`order.*`, `*`).
    pub events: Vec<String>,
    /// Only events from these sources; empty = any.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Only events about these symbols (`data.symbol`, case-insensitive); empty = any.
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Only events with these statuses (`data.status`, case-insensitive); empty = any.
    #[serde(default)]
    pub statuses: Vec<String>,
    /// Actions: `forward:<subscription>`, `nats:<subject>`, `exec:<command>`, or a strategy action.
    pub actions: Vec<String>,
}

/// `[worker]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Process stored events in this process (false: ingest only, events wait in the store).
    pub enabled: bool,
    /// Most events applied and committed in one round (one transaction). Under load a round
    /// takes this many and the next starts at once, so the first event of a round has waited
    /// for the whole previous one: at ~20,000 events/s, 2000 kept lag p99 at 95–163 ms and 500
    /// at 60–68 ms with the same throughput (README, Benchmarks).
    pub batch: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig { enabled: true, batch: 500 }
    }
}

/// `[retry]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Delay before each retry; after the last, the dead-letter queue.
    #[serde(with = "humantime_serde_compat::list")]
    pub delays: Vec<Duration>,
}

/// `[delivery]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Timeout of one delivery attempt.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Continuous failure after which a subscription is disabled.
    #[serde(with = "humantime_serde_compat")]
    pub disable_after: Duration,
    /// Allow loopback/private targets (local development).
    pub allow_private_targets: bool,
    /// Delivery attempts in flight at once, across all targets.
    pub concurrency: usize,
    /// Longest wait a `Retry-After` answer may impose before the next attempt.
    #[serde(with = "humantime_serde_compat")]
    pub max_retry_after: Duration,
    /// Timeout of one `exec:` action.
    #[serde(with = "humantime_serde_compat")]
    pub exec_timeout: Duration,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// tracing filter, e.g. `info` or `tradehook=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            trusted_proxies: Vec::new(),
            body_timeout: Duration::from_secs(10),
            ip_rate_limit: None,
            max_tracked_ips: 100_000,
            audit_log_size: 1000,
            tls: None,
            header_timeout: listener::default_header_timeout(),
            max_connections: listener::default_max_connections(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://data/tradehook.db".into(),
            retention: Duration::from_secs(30 * 24 * 3600),
            max_backlog: 1_000_000,
            max_pending_age: Duration::from_secs(300),
            max_batch: 1024,
            queue_capacity: 16_384,
            lease: Duration::from_secs(10),
            pool_size: 12,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        let secs = [1, 5, 30, 120, 600];
        RetryConfig { delays: secs.into_iter().map(Duration::from_secs).collect() }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            timeout: Duration::from_secs(30),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            allow_private_targets: false,
            concurrency: 256,
            max_retry_after: Duration::from_secs(3600),
            exec_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, level: "info".into() }
    }
}

fn default_max_body() -> u64 {
    256 * 1024
}
/// A `log.level` that means what it looks like: tracing reads a bare word that is not a level as
/// a target name, so `debgu` would silence every log line, warnings and errors included.
fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    // Only bare words are checked: `target=level` (numeric levels too), spans and fields are
    // EnvFilter's to judge.
    let bare = |d: &&str| !d.is_empty() && !d.contains(['=', '[', '{', ':']);
    for word in level.split(',').map(str::trim).filter(bare) {
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word)) {
            return Err(format!(
                "`{word}` is not a level ({}), nor target=level like tradehook=debug",
                LEVELS.join(", ")
            ));
        }
    }
    if tracing_subscriber::EnvFilter::try_new(level).is_err() {
        return Err(format!("`{level}` is not a log filter like info or tradehook=debug,info"));
    }
    Ok(())
}

pub(crate) fn default_tolerance() -> Duration {
    Duration::from_secs(300)
}
fn default_id_headers() -> bool {
    true
}
fn default_id_fields() -> Vec<String> {
    vec!["/id".into(), "/eventId".into()]
}
/// `store.url` fit to print: as written, but a password, in the user part or a `password`
/// parameter, shows as `***`. SQLite URLs (a file path) are printed as they are.
pub fn printable_store_url(url: &str) -> String {
    if url.trim_start().starts_with("sqlite://") {
        return url.to_owned();
    }
    let written = url.trim();
    let Ok(mut parsed) = reqwest::Url::parse(written) else {
        return "<not a URL>".into();
    };
    let is_password = |key: &str| key.eq_ignore_ascii_case("password");
    if parsed.password().is_none() && !parsed.query_pairs().any(|(key, _)| is_password(&key)) {
        return written.to_owned();
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query_pairs().any(|(key, _)| is_password(&key)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if is_password(&key) { "***".into() } else { value.into_owned() };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // The scheme as written (`POSTGRES://`): the parser lower-cases it.
    let masked = parsed.to_string();
    let scheme = parsed.scheme().len();
    match (written.get(..scheme), masked.get(scheme..)) {
        (Some(as_written), Some(rest)) if as_written.eq_ignore_ascii_case(parsed.scheme()) => {
            format!("{as_written}{rest}")
        }
        _ => masked,
    }
}

fn default_token_field() -> String {
    "passphrase".into()
}

/// The shortest `store.retention`: below it a sender's retry of an acknowledged event (Stripe and
/// others retry for hours to days) would be stored and applied again, not answered as a duplicate.
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);

/// A configuration that cannot be used; the message names the key and the problem.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads defaults, then `file` (when given), then `TRADEHOOK_*` variables, and validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!("config file {} does not exist", path.display())));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = env::from_environment(figment)?;
        let config: Config = figment.extract().map_err(|e| ConfigError(one_line(&e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types cannot: addresses, URLs, names, secrets, limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, problem: String| Err(ConfigError(format!("`{key}`: {problem}")));
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return fail(
                "server.listen",
                format!("`{}` is not an address like 127.0.0.1:8080", self.server.listen),
            );
        }
        match self.store_location() {
            Err(problem) => return fail("store.url", problem),
            Ok(StoreLocation::Postgres(url)) => {
                if let Err(problem) = crate::store::postgres::check_url(&url) {
                    return fail("store.url", problem);
                }
            }
            Ok(StoreLocation::Sqlite(path)) if path.is_dir() => {
                let path = path.display();
                return fail(
                    "store.url",
                    format!("`{path}` is a directory, not a database file: name the file, e.g. sqlite://{path}/tradehook.db"),
                );
            }
            Ok(StoreLocation::Sqlite(_)) => {}
        }
        if let Err(problem) = check_log_level(&self.log.level) {
            return fail("log.level", problem);
        }
        if self.store.retention < MIN_RETENTION {
            return fail(
                "store.retention",
                "must be at least 1h: an event id de-duplicates only while its event is kept, and senders retry for hours".into(),
            );
        }
        if self.store.lease < Duration::from_secs(1) {
            return fail("store.lease", "must be at least 1s".into());
        }
        if !(2..=1000).contains(&self.store.pool_size) {
            return fail("store.pool_size", "must be between 2 and 1000".into());
        }
        if !(1..=MAX_STORE_BATCH).contains(&self.store.max_batch) {
            return fail("store.max_batch", format!("must be between 1 and {MAX_STORE_BATCH}"));
        }
        if !(1..=MAX_QUEUE_CAPACITY).contains(&self.store.queue_capacity) {
            return fail("store.queue_capacity", format!("must be between 1 and {MAX_QUEUE_CAPACITY}"));
        }
        if self.store.max_backlog == 0 {
            return fail("store.max_backlog", "must be at least 1: with 0 every event would be refused".into());
        }
        if self.server.body_timeout < Duration::from_millis(100) {
            return fail(
                "server.body_timeout",
                "must be at least 100ms: a shorter one times out requests still being sent".into(),
            );
        }
        if self.worker.batch == 0 || self.worker.batch > 100_000 {
            return fail("worker.batch", "must be between 1 and 100000".into());
        }
        if self.retry.delays.is_empty() {
            return fail("retry.delays", "needs at least one delay".into());
        }
        if self.delivery.concurrency == 0 || self.delivery.concurrency > 10_000 {
            return fail("delivery.concurrency", "must be between 1 and 10000".into());
        }
        if self.delivery.timeout.is_zero() || self.delivery.exec_timeout.is_zero() {
            return fail("delivery.timeout", "timeout and exec_timeout must be more than 0".into());
        }
        if matches!(&self.api.admin_token, Some(token) if token.len() < 16) {
            return fail("api.admin_token", "must be at least 16 characters".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let key = format!("source[{i}]");
            if source.name.is_empty()
                || !source.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return fail(
                    &format!("{key}.name"),
                    format!("`{}` must be letters, digits, - or _", source.name),
                );
            }
            if !names.insert(source.name.as_str()) {
                return fail(&format!("{key}.name"), format!("source `{}` is defined twice", source.name));
            }
            let allowed = match crate::ingest::guard::parse_allow_list(&source.allow_ips) {
                Ok(nets) => nets,
                Err(problem) => return fail(&format!("{key}.allow_ips"), problem),
            };
            if source.signature == Scheme::None && (!source.allow_unsigned || source.allow_ips.is_empty()) {
                return fail(
                    &format!("{key}.signature"),
                    "`none` needs allow_unsigned = true and a non-empty allow_ips".into(),
                );
            }
            if source.signature == Scheme::None && crate::ingest::guard::admits_every_address(&allowed) {
                return fail(
                    &format!("{key}.allow_ips"),
                    "an unsigned source's allow-list must not admit every address (0.0.0.0/0, ::/0, or \
                     networks that add up to them)"
                        .into(),
                );
            }
            // Only the schemes that sign a timestamp use it (a config written for another scheme
            // keeps starting). Timestamps are whole seconds: less than 1 s would be 0.
            if source.tolerance < Duration::from_secs(1)
                && matches!(source.signature, Scheme::Stripe | Scheme::StandardWebhooks)
            {
                return fail(
                    &format!("{key}.tolerance"),
                    "must be at least 1s: a signed timestamp is never exactly now".into(),
                );
            }
            if source.signature == Scheme::Token && source.token_field.trim().is_empty() {
                return fail(&format!("{key}.token_field"), "must name the JSON field of the token".into());
            }
            if let Some(limit) = source.rate_limit {
                if limit.per_second == 0 || limit.burst == 0 {
                    return fail(
                        &format!("{key}.rate_limit"),
                        "per_second and burst must be at least 1".into(),
                    );
                }
            }
            if source.max_body == 0 {
                return fail(&format!("{key}.max_body"), "must be at least 1 byte".into());
            }
            if let Some(bad) = source.ordering_key.iter().find(|p| !p.starts_with('/')) {
                return fail(
                    &format!("{key}.ordering_key"),
                    format!("`{bad}` is not a JSON pointer like /data/orderId"),
                );
            }
            if let Some(bad) = source.id_fields.iter().find(|p| !p.starts_with('/')) {
                return fail(&format!("{key}.id_fields"), format!("`{bad}` is not a JSON pointer like /id"));
            }
            if let Some((field, problem)) = source.tradingview.as_ref().and_then(|m| m.problem()) {
                return fail(&format!("{key}.tradingview.{field}"), problem);
            }
            let options = crate::ingest::signature::VerifyOptions {
                tolerance: source.tolerance,
                token_field: source.token_field.clone(),
            };
            if let Err(e) =
                crate::ingest::signature::Verifier::new(source.signature, &source.secrets, options)
            {
                return fail(&format!("{key}.secrets"), e.to_string());
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            if route.events.is_empty() {
                return fail(&format!("route[{i}].events"), "needs at least one event type or glob".into());
            }
            if route.actions.is_empty() {
                return fail(&format!("route[{i}].actions"), "needs at least one action".into());
            }
            // A typo in a filter would make the route silently match nothing. Statuses are only
            // a closed set on order events (a withdrawal's is `completed`, a generic source's
            // anything).
            let orders_only = route.events.iter().all(|pattern| pattern.starts_with("order."));
            let not_a_status = |s: &&String| crate::trading::OrderStatus::parse(&s.to_ascii_lowercase()).is_none();
            if let Some(bad) = route.statuses.iter().find(not_a_status).filter(|_| orders_only) {
                return fail(
                    &format!("route[{i}].statuses"),
                    format!("`{bad}` is not an order status (pending, open, partially_filled, filled, cancelled, rejected, expired)"),
                );
            }
            // Routes match source names in any case.
            let source_exists = |name: &str| {
                self.sources.iter().any(|s| s.name.eq_ignore_ascii_case(name))
                    || (self.sources.is_empty() && name.eq_ignore_ascii_case(crate::ingest::DEFAULT_SOURCE))
                    || name.eq_ignore_ascii_case(crate::broker::PAPER_SOURCE)
            };
            if let Some(bad) = route.sources.iter().find(|s| !source_exists(s)) {
                return fail(&format!("route[{i}].sources"), format!("no source is named `{bad}`"));
            }
            for action in &route.actions {
                if action.strip_prefix("forward:").is_some_and(|name| name.trim().is_empty()) {
                    return fail(&format!("route[{i}].actions"), "`forward:` needs a subscription name or id".into());
                }
                let known = ["forward:", "nats:", "exec:"].iter().any(|p| action.starts_with(p))
                    || ["bracket_on_fill", "signal_to_order", "margin_guard"].contains(&action.as_str());
                if !known {
                    return fail(
                        &format!("route[{i}].actions"),
                        format!("`{action}` is not forward:<subscription>, nats:<subject>, exec:<command>, bracket_on_fill, signal_to_order or margin_guard"),
                    );
                }
                if let Some(subject) = action.strip_prefix("nats:") {
                    crate::sinks::nats::check_subject(subject, false)
                        .map_err(|problem| ConfigError(format!("`route[{i}].actions`: {problem}")))?;
                }
                if action.strip_prefix("exec:").is_some_and(|command| command.trim().is_empty()) {
                    return fail(&format!("route[{i}].actions"), "`exec:` needs a command".into());
                }
            }
        }
        let sections =
            self.alerts.validate().and_then(|()| self.nats.validate()).and_then(|()| self.broker.validate());
        if let Err((key, problem)) = sections {
            return fail(key, problem);
        }
        if let Err((key, problem)) = self.actions.validate() {
            return fail(&format!("actions.{key}"), problem);
        }
        for (i, route) in self.routes.iter().enumerate() {
            let configured = |name: &str| match name {
                "bracket_on_fill" => self.actions.bracket_on_fill.is_some(),
                "signal_to_order" => self.actions.signal_to_order.is_some(),
                "margin_guard" => self.actions.margin_guard.is_some(),
                _ => true,
            };
            if let Some(action) = route.actions.iter().find(|a| !configured(a)) {
                return fail(
                    &format!("route[{i}].actions"),
                    format!("`{action}` needs an [actions.{action}] section"),
                );
            }
        }
        if self.server.ip_rate_limit.is_some() && self.server.max_tracked_ips == 0 {
            return fail(
                "server.max_tracked_ips",
                "must be at least 1 with an ip_rate_limit: with 0, every client shares one bucket".into(),
            );
        }
        if let Some(limit) = self.server.ip_rate_limit {
            if limit.per_second == 0 || limit.burst == 0 {
                return fail("server.ip_rate_limit", "per_second and burst must be at least 1".into());
            }
        }
        let server = &self.server;
        if let Err((key, problem)) =
            listener::validate(server.tls.as_ref(), server.header_timeout, server.max_connections)
        {
            return fail(key, problem);
        }
        Ok(())
    }

    /// Where the store lives, parsed from `store.url`.
    pub fn store_location(&self) -> Result<StoreLocation, String> {
        let url = self.store.url.trim();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://data/tradehook.db".into());
            }
            if path == ":memory:" || path.starts_with("file:") {
                return Err(format!(
                    "`{path}` is not a file path: an in-memory or URI database would lose acknowledged events; use e.g. sqlite://data/tradehook.db"
                ));
            }
            // The path is opened as written: `t.db?mode=ro` would be a file of that name.
            if path.contains('?') {
                return Err(format!(
                    "`{path}`: a SQLite store URL takes no `?` parameters, only a file path, e.g. sqlite://data/tradehook.db"
                ));
            }
            if path.ends_with('/') {
                return Err(format!(
                    "`{path}` is a directory, not a database file: name the file, e.g. sqlite://{path}tradehook.db"
                ));
            }
            Ok(StoreLocation::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(StoreLocation::Postgres(url.to_string()))
        } else {
            Err(format!("`{}` must start with sqlite:// or postgres://", printable_store_url(url)))
        }
    }

    /// The directory for the database and generated secrets.
    pub fn data_dir(&self) -> PathBuf {
        match self.store_location() {
            Ok(StoreLocation::Sqlite(path)) => {
                path.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_default()
            }
            _ => PathBuf::from("data"),
        }
    }
}

/// Most appends in one store commit (`store.max_batch`).
const MAX_STORE_BATCH: usize = 100_000;
/// Most appends waiting for a commit (`store.queue_capacity`).
const MAX_QUEUE_CAPACITY: usize = 10_000_000;

/// A parsed `store.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string.
    Postgres(String),
}

/// A key as the rest of the errors name it: `source[0].name`, not figment's `source.0.name`.
fn key_name(path: &[String]) -> String {
    let mut key = String::new();
    for segment in path {
        if segment.parse::<usize>().is_ok() {
            key.push_str(&format!("[{segment}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(segment);
        }
    }
    key
}

/// figment errors can span lines and list several problems; keep the first on one line.
fn one_line(error: &figment::Error) -> String {
    let first = error.clone().into_iter().next().unwrap_or_else(|| error.clone());
    let key = key_name(&first.path);
    let problem = if holds_secrets(&first.path) {
        without_value(&first.kind)
    } else if key.is_empty() {
        // A syntax error quotes the offending line, which may hold a secret (an unquoted
        // `admin_token = …`): keep where it is and what is wrong, not the line.
        first
            .kind
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.contains('|') && !line.starts_with('^'))
            .collect::<Vec<_>>()
            .join(": ")
    } else {
        first.kind.to_string()
    };
    let place = first.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
    if key.is_empty() {
        format!("{problem}{place}")
    } else {
        format!("`{key}`: {problem}{place}")
    }
}

/// Whether a key holds a credential: its value must not be echoed in an error, however wrong
/// its type (`secrets = "…"` instead of a list, an all-digit `admin_token`).
fn holds_secrets(path: &[String]) -> bool {
    path.iter().any(|segment| {
        let segment = segment.to_ascii_lowercase();
        ["secret", "token", "password", "passphrase", "key"].iter().any(|word| segment.contains(word))
    })
}

/// A type or value error with the value left out: `found a string, expected a sequence`.
fn without_value(kind: &figment::error::Kind) -> String {
    use figment::error::{Actual, Kind};
    let what = |actual: &Actual| match actual {
        Actual::Bool(_) => "a boolean".to_string(),
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer".to_string(),
        Actual::Float(_) => "a float".to_string(),
        Actual::Char(_) | Actual::Str(_) => "a string".to_string(),
        Actual::Bytes(_) => "bytes".to_string(),
        Actual::Other(_) => "a value".to_string(),
        other => other.to_string(),
    };
    match kind {
        Kind::InvalidType(actual, expected) => format!("invalid type: found {}, expected {expected}", what(actual)),
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value: found {}, expected {expected}", what(actual))
        }
        Kind::Unsupported(actual) => format!("unsupported type {}", what(actual)),
        Kind::UnsupportedKey(actual, _) => format!("unsupported key type {}", what(actual)),
        Kind::Message(_) => "invalid value (not shown: it may be a credential)".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
