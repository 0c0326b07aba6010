//! Brokers: where order intents go (TRADING.md "Brokers").
//!
//! An intent reaches its broker as a delivery (`broker:paper` or `broker:http`), so it is queued
//! in the same transaction as the event that caused it and gets the delivery retries, dead
//! letters and replay. `paper` is embedded: it answers at once and feeds its own order events
//! back through the store as if a venue had sent them (source `paper`), so the whole loop runs
//! offline. `http` POSTs the intent to a REST endpoint signed the seed 001 way (`X-API-Key`,
//! `X-Timestamp`, `X-Signature` = hex HMAC-SHA256 of timestamp + `POST` + path + body).

pub mod paper;

use serde::{Deserialize, Serialize};

/// The source name under which the paper broker's own order events are stored and processed.
pub const PAPER_SOURCE: &str = "paper";

/// `[broker]`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// `paper` or `http`; absent: intents are recorded (`unsent`) but go nowhere.
    pub kind: Option<BrokerKind>,
    /// REST endpoint that takes intents (`http`).
    pub url: Option<String>,
    /// `X-API-Key` (`http`).
    pub api_key: Option<String>,
    /// Secret that signs requests (`http`); never logged.
    pub secret: Option<String>,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("kind", &self.kind)
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .field("api_key", &self.api_key)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// The embedded simulated broker.
    Paper,
    /// A REST endpoint.
    Http,
}

impl BrokerConfig {
    /// The delivery target intents are queued for, if a broker is configured.
    pub fn target(&self) -> Option<&'static str> {
        match self.kind? {
            BrokerKind::Paper => Some("broker:paper"),
            BrokerKind::Http => Some("broker:http"),
        }
    }

    /// Checks the keys `http` needs; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.kind != Some(BrokerKind::Http) {
            return Ok(());
        }
        let url = self.url.as_deref().unwrap_or_default();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(("broker.url", "an http(s) URL is needed for kind = \"http\"".into()));
        }
        if self.api_key.as_deref().unwrap_or_default().is_empty() {
            return Err(("broker.api_key", "needed for kind = \"http\"".into()));
        }
        if self.secret.as_deref().unwrap_or_default().is_empty() {
            return Err(("broker.secret", "needed for kind = \"http\"".into()));
        }
        Ok(())
    }
}

/// The seed 001 request-signing headers for a POST of `body` to `path` at `timestamp`.
pub fn signed_headers(
    api_key: &str,
    secret: &str,
    path: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let timestamp = timestamp.to_string();
    let signature = crate::api::signing::sign(secret, &timestamp, "POST", path, body);
    vec![
        ("X-API-Key".into(), api_key.to_owned()),
        ("X-Timestamp".into(), timestamp),
        ("X-Signature".into(), signature),
    ]
}
