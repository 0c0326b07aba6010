//! The `nats:<subject>` action: publish an event to NATS, through JetStream or core NATS.
//!
//! Guarantees and costs:
//! - Every message carries `Nats-Msg-Id = <msg id>`. With `jetstream = true` the server drops a
//!   second message with the same id inside the stream's duplicate window, so a retried publish
//!   (the delivery engine retries after a timeout whose ack was lost) is stored once; the
//!   [`Published::duplicate`] flag says when that happened. JetStream acknowledges before fsync
//!   unless the server runs with `sync_interval: always`: NATS is a sink, not the store of record.
//! - With `jetstream = false` a publish is core NATS: written and flushed to the server, with no
//!   acknowledgement that anyone received it.
//! - The connection is made on the first publish, not at start: a NATS server that is down does
//!   not stop tradehook. Once connected the client reconnects by itself; publishing while it is
//!   disconnected fails at once with a retriable error instead of queueing in memory.
//! - One publish returns within `[nats] timeout`, connecting included.

use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::{self, stream};
use async_nats::{Client, ServerAddr};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::SinkError;
use crate::config::units::humantime_serde_compat;

/// `[nats]`: where `nats:<subject>` actions publish.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// Server URL, or several separated by commas (`nats://` or `tls://`; credentials as
    /// `nats://user:password@host:4222`, never logged).
    pub url: String,
    /// Publish through JetStream and wait for its acknowledgement (de-duplicated by message id);
    /// false: core NATS, fire and forget after a flush.
    pub jetstream: bool,
    /// Longest one publish may take, connecting and acknowledgement included.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// A JetStream stream to create on the first connection when it does not exist.
    pub stream: Option<String>,
    /// Subjects of that stream (wildcards allowed, e.g. `tradehook.>`).
    pub stream_subjects: Vec<String>,
    /// How long the created stream remembers message ids to drop duplicates.
    #[serde(with = "humantime_serde_compat")]
    pub duplicate_window: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            jetstream: true,
            timeout: Duration::from_secs(5),
            stream: None,
            stream_subjects: Vec::new(),
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl NatsConfig {
    /// Checks what types cannot; the error names the key (`nats.url`, …) and the problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        servers(&self.url).map_err(|problem| ("nats.url", problem))?;
        if self.timeout.is_zero() {
            return Err(("nats.timeout", "must be more than 0".into()));
        }
        if self.duplicate_window.is_zero() {
            return Err(("nats.duplicate_window", "must be more than 0".into()));
        }
        match &self.stream {
            Some(name) if name.is_empty() || name.contains(['.', '*', '>', '/', '\\']) => Err((
                "nats.stream",
                format!("`{name}` must be a name without spaces, dots, wildcards or slashes"),
            )),
            Some(name) if name.chars().any(char::is_whitespace) => {
                Err(("nats.stream", format!("`{name}` must not contain spaces")))
            }
            Some(_) if self.stream_subjects.is_empty() => {
                Err(("nats.stream_subjects", "needs at least one subject when `stream` is set".into()))
            }
            None if !self.stream_subjects.is_empty() => {
                Err(("nats.stream", "is needed when `stream_subjects` is set".into()))
            }
            _ => {
                for subject in &self.stream_subjects {
                    check_subject(subject, true).map_err(|problem| ("nats.stream_subjects", problem))?;
                }
                Ok(())
            }
        }
    }
}

/// The parsed server list of `nats.url`.
fn servers(url: &str) -> Result<Vec<ServerAddr>, String> {
    let addrs = url
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let addr = part.parse::<ServerAddr>().map_err(|e| e.to_string())?;
            if addr.is_websocket() {
                return Err("websocket URLs are not supported; use nats:// or tls://".to_string());
            }
            Ok(addr)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err("needs a server URL like nats://127.0.0.1:4222".into());
    }
    Ok(addrs)
}

/// `host:port` of each server, for messages: the URL's credentials stay out of logs and DLQs.
fn describe(addrs: &[ServerAddr]) -> String {
    addrs.iter().map(|a| format!("{}:{}", a.host(), a.port())).collect::<Vec<_>>().join(",")
}

/// Checks a NATS subject: dot-separated non-empty tokens without whitespace; `*` and `>` only as
/// whole tokens (`>` last) and only when `wildcards` is allowed (stream subjects, not publishes).
pub fn check_subject(subject: &str, wildcards: bool) -> Result<(), String> {
    if subject.is_empty() {
        return Err("a NATS subject cannot be empty".into());
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("NATS subject `{}` contains whitespace", subject.escape_debug()));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(format!("NATS subject `{subject}` has an empty token (leading, trailing or `..`)"));
        }
        let wildcard = *token == "*" || (*token == ">" && i + 1 == tokens.len());
        if wildcard && !wildcards {
            return Err(format!("cannot publish to `{subject}`: wildcards `*` and `>` only match subjects"));
        }
        if *token == ">" && !wildcard {
            return Err(format!("NATS subject `{subject}` has `>` before its last token"));
        }
        if !wildcard && token.contains(['*', '>']) {
            return Err(format!("NATS subject `{subject}` uses `*` or `>` inside a token"));
        }
    }
    Ok(())
}

/// What a successful publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The stream that stored it (JetStream only).
    pub stream: Option<String>,
    /// Its sequence in that stream (JetStream only; for a duplicate, the sequence of the first).
    pub sequence: Option<u64>,
    /// The server had this message id already and dropped the copy (JetStream only).
    pub duplicate: bool,
}

/// A connected client and whether the configured stream is known to exist.
#[derive(Clone)]
struct Link {
    client: Client,
    jetstream: jetstream::Context,
    stream_ready: bool,
}

/// Publishes events to NATS. Cheap to share (`Arc`); connects on first use.
pub struct NatsSink {
    config: NatsConfig,
    /// `None` until the first successful connection; afterwards the client reconnects by itself.
    link: Mutex<Option<Link>>,
}

impl NatsSink {
    /// A sink for this configuration; nothing is connected yet.
    pub fn new(config: NatsConfig) -> Self {
        NatsSink { config, link: Mutex::new(None) }
    }

    /// The configuration it publishes with.
    pub fn config(&self) -> &NatsConfig {
        &self.config
    }

    /// Connects and ensures the configured stream now, within the timeout; callers may use it at
    /// start to log a warning early. Publishing does the same when needed.
    pub async fn ready(&self) -> Result<(), SinkError> {
        self.within_timeout("connect", self.link()).await.map(|_| ())
    }

    /// Publishes `payload` to `subject` with header `Nats-Msg-Id: msg_id`: one attempt, within
    /// `[nats] timeout`. With JetStream, returns after the server's acknowledgement.
    pub async fn publish(&self, subject: &str, msg_id: &str, payload: Bytes) -> Result<Published, SinkError> {
        check_subject(subject, false).map_err(SinkError::permanent)?;
        if msg_id.is_empty() || msg_id.chars().any(char::is_control) {
            return Err(SinkError::permanent(format!(
                "message id `{}` must be non-empty without control characters",
                msg_id.escape_debug()
            )));
        }
        self.within_timeout("publish", self.try_publish(subject, msg_id, payload)).await
    }

    async fn within_timeout<T>(
        &self,
        what: &str,
        attempt: impl std::future::Future<Output = Result<T, SinkError>>,
    ) -> Result<T, SinkError> {
        let timeout = self.config.timeout;
        tokio::time::timeout(timeout, attempt).await.unwrap_or_else(|_| {
            Err(SinkError::retriable(format!(
                "NATS {what} to {} did not finish within {timeout:?}",
                self.servers_text()
            )))
        })
    }

    async fn try_publish(&self, subject: &str, msg_id: &str, payload: Bytes) -> Result<Published, SinkError> {
        let link = self.link().await?;
        if link.client.connection_state() != State::Connected {
            // Publishing now would queue the message in memory until a reconnect.
            return Err(SinkError::retriable(format!(
                "not connected to NATS at {} (reconnecting)",
                self.servers_text()
            )));
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        if self.config.jetstream {
            let ack = link
                .jetstream
                .publish_with_headers(subject.to_string(), headers, payload)
                .await
                .map_err(jetstream_error)?
                .await
                .map_err(jetstream_error)?;
            Ok(Published { stream: Some(ack.stream), sequence: Some(ack.sequence), duplicate: ack.duplicate })
        } else {
            link.client.publish_with_headers(subject.to_string(), headers, payload).await.map_err(|e| {
                use async_nats::client::PublishErrorKind as Kind;
                let retriable = matches!(e.kind(), Kind::Send);
                SinkError { message: format!("NATS publish to `{subject}` failed: {e}"), retriable }
            })?;
            link.client
                .flush()
                .await
                .map_err(|e| SinkError::retriable(format!("NATS flush after publishing failed: {e}")))?;
            Ok(Published { stream: None, sequence: None, duplicate: false })
        }
    }

    /// The connection, made (and the stream ensured) when there is none yet. Only one caller
    /// connects at a time; the others wait for it (each within its own timeout).
    async fn link(&self) -> Result<Link, SinkError> {
        let mut slot = self.link.lock().await;
        let link = match slot.as_mut() {
            Some(link) => link,
            None => slot.insert(self.connect().await?),
        };
        if !link.stream_ready {
            self.ensure_stream(&link.jetstream).await?;
            link.stream_ready = true;
        }
        Ok(link.clone())
    }

    async fn connect(&self) -> Result<Link, SinkError> {
        crate::tls::install_crypto_provider();
        let addrs = servers(&self.config.url).map_err(SinkError::permanent)?;
        let client = async_nats::ConnectOptions::new()
            .name("tradehook")
            .connection_timeout(self.config.timeout)
            .request_timeout(Some(self.config.timeout))
            .max_reconnects(None)
            .connect(addrs)
            .await
            .map_err(|e| {
                SinkError::retriable(format!("cannot connect to NATS at {}: {e}", self.servers_text()))
            })?;
        tracing::info!(servers = %self.servers_text(), "connected to NATS");
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(self.config.timeout);
        Ok(Link { client, jetstream, stream_ready: self.config.stream.is_none() })
    }

    /// Creates the configured stream unless it exists. An existing stream is left as it is
    /// (its owner may have tuned it); a warning says when it does not cover a configured subject.
    async fn ensure_stream(&self, context: &jetstream::Context) -> Result<(), SinkError> {
        let Some(name) = &self.config.stream else { return Ok(()) };
        let wanted = stream::Config {
            name: name.clone(),
            subjects: self.config.stream_subjects.clone(),
            duplicate_window: self.config.duplicate_window,
            ..Default::default()
        };
        let stream = context.get_or_create_stream(wanted).await.map_err(|e| {
            SinkError::retriable(format!("cannot create or find JetStream stream `{name}`: {e}"))
        })?;
        let existing = &stream.cached_info().config.subjects;
        for subject in self.config.stream_subjects.iter().filter(|s| !existing.contains(s)) {
            tracing::warn!(stream = %name, %subject, "existing JetStream stream does not list this configured subject");
        }
        Ok(())
    }

    fn servers_text(&self) -> String {
        servers(&self.config.url).map(|addrs| describe(&addrs)).unwrap_or_else(|_| "<invalid url>".into())
    }
}

/// JetStream publish failures: all retriable but a message the server can never take.
fn jetstream_error(error: jetstream::context::PublishError) -> SinkError {
    use jetstream::context::PublishErrorKind as Kind;
    let message = match error.kind() {
        // No stream listens on the subject. Retriable: the stream may be created (or its leader
        // elected) before the retries run out, and the DLQ keeps the event otherwise.
        Kind::StreamNotFound => format!("no JetStream stream stores this subject: {error}"),
        Kind::TimedOut => format!("JetStream did not acknowledge in time: {error}"),
        _ => format!("JetStream publish failed: {error}"),
    };
    let retriable = !matches!(error.kind(), Kind::MaxPayloadExceeded);
    SinkError { message, retriable }
}

#[cfg(test)]
#[path = "nats_tests.rs"]
mod tests;
