//! One HTTP delivery attempt, and what its answer means.
//!
//! [`classify`] is the whole policy as a pure function: 2xx delivered; `410 Gone` disables the
//! subscription at once; `429`/`503` with `Retry-After` wait at least that long; anything else
//! (other statuses, redirects — never followed —, timeouts, connection errors) is a failure that
//! follows the retry schedule. [`DeliveryClient`] does the I/O: one pooled HTTP client with
//! redirects off, the SSRF guard in its resolver, and a per-attempt timeout.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::StatusCode;

use crate::config::DeliveryConfig;
use crate::delivery::guard::{check_url, PublicResolver};
use crate::delivery::sign::delivery_headers;
use crate::store::{now_ms, AttemptRecord};

/// Bytes of an answer body kept in the attempt log.
const RESPONSE_PREFIX: usize = 512;
/// Bytes of an answer body read at most (the rest is dropped with the connection).
const RESPONSE_READ_LIMIT: usize = 64 * 1024;

/// What an attempt's answer means for the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver took it.
    Delivered,
    /// `410 Gone`: the endpoint is gone; disable the subscription.
    Gone,
    /// Failed; if `not_before` is set the receiver asked to wait at least that long.
    Failed {
        /// Why, for the attempt log and the dead letter.
        error: String,
        /// `Retry-After` of a 429 or 503.
        not_before: Option<Duration>,
    },
}

/// The verdict on an HTTP answer with `status` and its `Retry-After` header, if any.
pub fn classify(status: StatusCode, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    if status.is_success() {
        return Verdict::Delivered;
    }
    if status == StatusCode::GONE {
        return Verdict::Gone;
    }
    let waits = matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE);
    let not_before = retry_after.filter(|_| waits).and_then(|value| parse_retry_after(value, now));
    let error = if status.is_redirection() {
        format!("answered {status} (redirects are not followed)")
    } else {
        format!("answered {status}")
    };
    Verdict::Failed { error, not_before }
}

/// `Retry-After` as delay-seconds or an HTTP date; `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The HTTP side of delivery, shared by the dispatcher and `POST /api/v1/webhooks/test`.
#[derive(Debug, Clone)]
pub struct DeliveryClient {
    client: reqwest::Client,
    allow_private: bool,
}

impl DeliveryClient {
    /// A client for the `[delivery]` settings.
    pub fn new(config: &DeliveryConfig) -> Result<Self, String> {
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself and bypass the SSRF guard's resolver.
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(config.concurrency)
            .user_agent(concat!("tradehook/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private_targets {
            builder = builder.dns_resolver(PublicResolver::shared());
        }
        let client = builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(DeliveryClient { client, allow_private: config.allow_private_targets })
    }

    /// POSTs `body` to `url`, signed with `secret` under message id `message_id`.
    pub async fn post(
        &self,
        url: &str,
        secret: &str,
        message_id: &str,
        body: Bytes,
    ) -> (AttemptRecord, Verdict) {
        let headers = delivery_headers(secret, message_id, now_ms().div_euclid(1000), &body);
        self.post_with_headers(url, headers, body).await
    }

    /// POSTs `body` to `url` with these extra headers (already signed).
    pub async fn post_with_headers(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> (AttemptRecord, Verdict) {
        let at = now_ms();
        let started = Instant::now();
        let mut record = AttemptRecord::unanswered(at, 0.0, None);
        let verdict = match self.send(url, headers, body, &mut record).await {
            Ok(verdict) => verdict,
            Err(error) => Verdict::Failed { error, not_before: None },
        };
        record.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Verdict::Failed { error, .. } = &verdict {
            record.error = Some(error.clone());
        } else if verdict == Verdict::Gone {
            record.error = Some("answered 410 Gone".into());
        }
        (record, verdict)
    }

    async fn send(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Bytes,
        record: &mut AttemptRecord,
    ) -> Result<Verdict, String> {
        let url = check_url(url, self.allow_private).map_err(|e| e.to_string())?;
        let mut request = self.client.post(url).header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = request.body(body).send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        record.status_code = Some(status.as_u16());
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut prefix = Vec::new();
        let mut read = 0usize;
        // Read the answer (to keep the connection reusable) but keep only its first bytes.
        while read < RESPONSE_READ_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    let room = RESPONSE_PREFIX.saturating_sub(prefix.len());
                    prefix.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(e) => {
                    record.error = Some(describe(&e));
                    break;
                }
            }
        }
        if !prefix.is_empty() {
            record.response = Some(crate::store::storable_text(&prefix));
        }
        Ok(classify(status, retry_after.as_deref(), SystemTime::now()))
    }
}

/// A reqwest error without its URL (which may carry a token) but with its causes.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_gone_and_failures_are_told_apart() {
        let now = SystemTime::now();
        assert_eq!(classify(StatusCode::OK, None, now), Verdict::Delivered);
        assert_eq!(classify(StatusCode::NO_CONTENT, None, now), Verdict::Delivered);
        assert_eq!(classify(StatusCode::GONE, None, now), Verdict::Gone);
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, Some("10"), now),
            Verdict::Failed { not_before: None, .. }
        ));
        let Verdict::Failed { error, .. } = classify(StatusCode::FOUND, None, now) else { panic!() };
        assert!(error.contains("redirects are not followed"), "{error}");
    }

    #[test]
    fn retry_after_counts_on_429_and_503_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, Some("7"), now),
            Verdict::Failed {
                error: "answered 429 Too Many Requests".into(),
                not_before: Some(Duration::from_secs(7))
            }
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        let Verdict::Failed { not_before, .. } = classify(StatusCode::SERVICE_UNAVAILABLE, Some(&later), now)
        else {
            panic!()
        };
        assert_eq!(not_before, Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("soon", now), None);
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }
}
