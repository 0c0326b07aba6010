//! `tradehook send`: sign and POST one event, print the answer and the latency.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use super::samples;
use crate::config::Config;
use crate::ingest::signature::{self, Scheme, SignContext};
use crate::ingest::DEFAULT_SOURCE;
use crate::server::{secret_from_env_var, DEFAULT_SECRET_FILE};

/// Arguments of `send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Sample event type to send (e.g. order.created, position.updated, tradingview; `list` shows all).
    #[arg(default_value = "order.created")]
    pub event: String,
    /// Send this file's bytes instead of a sample.
    #[arg(long, conflicts_with = "event")]
    pub file: Option<PathBuf>,
    /// Target URL; default: the configured listen address and source.
    #[arg(long)]
    pub url: Option<String>,
    /// Source name (used for the default URL and to find its secret in the configuration).
    #[arg(long, default_value = DEFAULT_SOURCE)]
    pub source: String,
    /// Signature scheme; default: the source's, else hmac-sha256.
    #[arg(long)]
    pub scheme: Option<Scheme>,
    /// Signing secret; default: TRADEHOOK_SECRET (trimmed, as `serve` reads it), the source's
    /// first secret, or the generated one.
    #[arg(long)]
    pub secret: Option<String>,
    /// Event id: the sample's `id`, and the `webhook-id` of a standard-webhooks request (same id
    /// twice shows de-duplication); default: random.
    #[arg(long)]
    pub id: Option<String>,
    /// For the token scheme: put the token in this JSON field instead of the query.
    #[arg(long)]
    pub token_field: Option<String>,
    /// PEM file of the CA (or self-signed certificate) to trust for https:// instead of the
    /// system's roots; default: `server.tls.cert` when the configuration has TLS.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
}

/// Builds, signs, sends and reports.
pub async fn run(args: SendArgs, config_path: Option<&Path>) -> anyhow::Result<()> {
    if args.event == "list" {
        println!("{}", samples::EVENT_TYPES.join("\n"));
        return Ok(());
    }
    let config = Config::load(config_path)?;
    let source = config.sources.iter().find(|s| s.name == args.source);
    // Without sources the gateway serves `default` alone.
    let zero_config = config.sources.is_empty();
    if source.is_none() && args.url.is_none() && !(zero_config && args.source == DEFAULT_SOURCE) {
        let mut names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        if zero_config {
            names.push(DEFAULT_SOURCE);
        }
        anyhow::bail!(
            "no source `{}` in the configuration (it has: {}); pass --url to send to another gateway",
            args.source,
            names.join(", ")
        );
    }
    let scheme = args.scheme.or(source.map(|s| s.signature)).unwrap_or_default();
    let url = args.url.clone().unwrap_or_else(|| default_url(&config, &args.source));
    let body = match &args.file {
        Some(path) => std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        None => {
            let id = args
                .id
                .clone()
                .unwrap_or_else(|| format!("evt-{}", ulid::Ulid::new().to_string().to_lowercase()));
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let event = samples::sample(&args.event, &id, &now).with_context(|| {
                format!("no sample for `{}`; one of: {}", args.event, samples::EVENT_TYPES.join(", "))
            })?;
            serde_json::to_vec(&event)?
        }
    };
    let secret = match scheme {
        Scheme::None => String::new(),
        _ => resolve_secret(&args, source.and_then(|s| s.secrets.first()), &config)?,
    };
    let context = SignContext {
        timestamp: chrono::Utc::now().timestamp(),
        // The header's id wins over the body's (SPEC §1), so it must follow --id too.
        message_id: args.id.clone().unwrap_or_else(|| format!("msg_{}", ulid::Ulid::new())),
        token_field: args.token_field.clone(),
    };
    let signed = signature::sign(scheme, &secret, &body, &context)?;
    let url = match &signed.query {
        Some(query) if url.contains('?') => format!("{url}&{query}"),
        Some(query) => format!("{url}?{query}"),
        None => url,
    };
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(signed.headers.iter().cloned());
    let started = Instant::now();
    let cacert = super::client::cacert(args.cacert.as_deref(), &config);
    let (status, answer) =
        super::client::request(http::Method::POST, &url, &headers, signed.body, cacert.as_deref()).await?;
    let elapsed = started.elapsed();
    println!(
        "{} {} in {:.2} ms",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        elapsed.as_secs_f64() * 1000.0
    );
    println!("{}", String::from_utf8_lossy(&answer));
    if !status.is_success() {
        anyhow::bail!("the gateway answered {status}");
    }
    Ok(())
}

fn default_url(config: &Config, source: &str) -> String {
    let listen = &config.server.listen;
    let scheme = super::client::scheme(config);
    if source == DEFAULT_SOURCE {
        format!("{scheme}://{listen}/webhook")
    } else {
        format!("{scheme}://{listen}/webhooks/{source}")
    }
}

fn resolve_secret(args: &SendArgs, configured: Option<&String>, config: &Config) -> anyhow::Result<String> {
    if let Some(secret) = args.secret.as_ref().filter(|s| !s.is_empty()) {
        return Ok(secret.clone());
    }
    if let Some(secret) = secret_from_env_var() {
        return Ok(secret);
    }
    if let Some(secret) = configured {
        return Ok(secret.clone());
    }
    let path = config.data_dir().join(DEFAULT_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        _ => anyhow::bail!(
            "no secret: pass --secret, set TRADEHOOK_SECRET, or run `tradehook serve` once to generate {}",
            path.display()
        ),
    }
}
