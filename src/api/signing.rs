//! Seed 001's request signing for the management API, as a pure function: a client sends
//! `X-API-Key`, `X-Timestamp` (unix seconds) and `X-Signature`, the hex HMAC-SHA256 keyed with that
//! key's secret of `timestamp + METHOD + path + body` (concatenated with nothing between).
//!
//! The timestamp must be within [`TOLERANCE_SECS`] of the server's clock either way, which bounds
//! how long a captured request can be replayed. The path is the request path as sent
//! (`/api/v1/dlq/replay`); a signature over the path with its query string passes too, since
//! clients differ on that. Signatures are compared in constant time, and no error says more than
//! which check failed: never the expected signature, never a secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::ApiKey;

/// How far `X-Timestamp` may be from the server's clock, in seconds, past or future.
pub const TOLERANCE_SECS: i64 = 30;
/// The largest body a signed request may have (and any `/api/v1` request): 1 MiB.
pub const MAX_BODY: usize = 1 << 20;

/// The signing headers and what they cover, as one request presents them.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `X-API-Key`.
    pub key: &'a str,
    /// `X-Timestamp`, exactly as sent (it is signed as text).
    pub timestamp: &'a str,
    /// `X-Signature`, hex.
    pub signature: &'a str,
    /// The HTTP method, upper case.
    pub method: &'a str,
    /// The request path as sent.
    pub path: &'a str,
    /// The query string, when there is one.
    pub query: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

/// Why a signed request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// `X-API-Key` names no configured key.
    #[error("the API key in X-API-Key is not known; use a key from the server's [api] keys")]
    UnknownKey,
    /// `X-Timestamp` is not an integer.
    #[error("X-Timestamp must be unix seconds (an integer)")]
    InvalidTimestamp,
    /// `X-Timestamp` is too far from the server's clock.
    #[error(
        "X-Timestamp {sent} is {skew} s away from the server time {now}; it must be within {TOLERANCE_SECS} s \
         (check the client's clock)"
    )]
    StaleTimestamp {
        /// The timestamp sent.
        sent: i64,
        /// The server's clock, unix seconds.
        now: i64,
        /// How far apart they are, in seconds.
        skew: u64,
    },
    /// `X-Signature` does not match the request.
    #[error(
        "X-Signature does not match: sign timestamp + METHOD + path + body (hex HMAC-SHA256 with the key's secret)"
    )]
    BadSignature,
}

impl SigningError {
    /// The stable code of the 401 answer.
    pub fn code(&self) -> &'static str {
        match self {
            SigningError::UnknownKey => "unknown_api_key",
            SigningError::InvalidTimestamp => "invalid_timestamp",
            SigningError::StaleTimestamp { .. } => "stale_timestamp",
            SigningError::BadSignature => "invalid_signature",
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

/// The MAC of `timestamp + method + path + body` under `secret`.
fn mac(secret: &str, timestamp: &str, method: &str, path: &str, body: &[u8]) -> HmacSha256 {
    // Any key length is valid for HMAC.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(method.as_bytes());
    mac.update(path.as_bytes());
    mac.update(body);
    mac
}

/// The hex signature a client sends for this request (tests and the CLI use it).
pub fn sign(secret: &str, timestamp: &str, method: &str, path: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, method, path, body).finalize().into_bytes())
}

/// Checks a signed request against the configured keys at `now` (unix seconds).
pub fn verify(keys: &[ApiKey], request: &SignedRequest<'_>, now: i64) -> Result<(), SigningError> {
    let key = keys.iter().find(|k| k.key == request.key).ok_or(SigningError::UnknownKey)?;
    let sent: i64 = request.timestamp.trim().parse().map_err(|_| SigningError::InvalidTimestamp)?;
    let skew = sent.abs_diff(now);
    if skew > TOLERANCE_SECS.unsigned_abs() {
        return Err(SigningError::StaleTimestamp { sent, now, skew });
    }
    let signature = hex::decode(request.signature.trim()).map_err(|_| SigningError::BadSignature)?;
    let with_query = request.query.map(|q| format!("{}?{q}", request.path));
    let candidates = std::iter::once(request.path).chain(with_query.as_deref());
    let mut matched = false;
    for path in candidates {
        // `verify_slice` compares in constant time; try every form so timing shows nothing.
        let ok = mac(&key.secret, request.timestamp, request.method, path, request.body)
            .verify_slice(&signature)
            .is_ok();
        matched |= ok;
    }
    if matched {
        Ok(())
    } else {
        Err(SigningError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn keys() -> Vec<ApiKey> {
        vec![ApiKey { key: "ak_live_1".into(), secret: "api-secret".into() }]
    }

    fn request<'a>(timestamp: &'a str, signature: &'a str, body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest {
            key: "ak_live_1",
            timestamp,
            signature,
            method: "POST",
            path: "/api/v1/dlq/replay",
            query: None,
            body,
        }
    }

    #[test]
    fn signature_over_timestamp_method_path_body_passes() {
        let ts = NOW.to_string();
        let signature = sign("api-secret", &ts, "POST", "/api/v1/dlq/replay", b"{}");
        assert_eq!(verify(&keys(), &request(&ts, &signature, b"{}"), NOW), Ok(()));
        // Upper-case hex is the same signature.
        assert_eq!(verify(&keys(), &request(&ts, &signature.to_uppercase(), b"{}"), NOW), Ok(()));
    }

    #[test]
    fn known_vectors_match_openssl() {
        // echo -n '1700000000GET/api/v1/status' | openssl dgst -sha256 -hmac api-secret
        assert_eq!(
            sign("api-secret", "1700000000", "GET", "/api/v1/status", b""),
            "ed4d919c157ef0d4cc144d3889c07e2106667834b82e7b6a1b13b913dfe0fab2"
        );
        assert_eq!(
            sign("api-secret", "1700000000", "POST", "/api/v1/dlq/replay", br#"{"ids":[]}"#),
            "10a1ae9f860601310982d87e5401c54dad3ec0bb682f52a84659314a3290fbe4"
        );
    }

    #[test]
    fn path_with_query_string_is_accepted_too() {
        let ts = NOW.to_string();
        let signature = sign("api-secret", &ts, "GET", "/api/v1/events?limit=5", b"");
        let mut req = request(&ts, &signature, b"");
        req.method = "GET";
        req.path = "/api/v1/events";
        req.query = Some("limit=5");
        assert_eq!(verify(&keys(), &req, NOW), Ok(()));
        let plain = sign("api-secret", &ts, "GET", "/api/v1/events", b"");
        req.signature = &plain;
        assert_eq!(verify(&keys(), &req, NOW), Ok(()));
    }

    #[test]
    fn timestamp_within_thirty_seconds_either_way_passes_and_beyond_is_stale() {
        for offset in [-30, 30, 0] {
            let ts = (NOW + offset).to_string();
            let signature = sign("api-secret", &ts, "POST", "/api/v1/dlq/replay", b"");
            assert_eq!(verify(&keys(), &request(&ts, &signature, b""), NOW), Ok(()), "{offset}");
        }
        for offset in [-31, 31, -100_000] {
            let ts = (NOW + offset).to_string();
            let signature = sign("api-secret", &ts, "POST", "/api/v1/dlq/replay", b"");
            let result = verify(&keys(), &request(&ts, &signature, b""), NOW);
            assert!(matches!(result, Err(SigningError::StaleTimestamp { .. })), "{offset}: {result:?}");
        }
    }

    #[test]
    fn every_refusal_is_distinct_and_names_no_secret() {
        let ts = NOW.to_string();
        let good = sign("api-secret", &ts, "POST", "/api/v1/dlq/replay", b"{}");
        let tampered = verify(&keys(), &request(&ts, &good, b"{\"ids\":[]}"), NOW);
        assert_eq!(tampered, Err(SigningError::BadSignature));
        assert_eq!(verify(&keys(), &request(&ts, "zz-not-hex", b"{}"), NOW), Err(SigningError::BadSignature));
        assert_eq!(verify(&keys(), &request("soon", &good, b"{}"), NOW), Err(SigningError::InvalidTimestamp));
        let mut unknown = request(&ts, &good, b"{}");
        unknown.key = "ak_other";
        assert_eq!(verify(&keys(), &unknown, NOW), Err(SigningError::UnknownKey));
        let stale = verify(&keys(), &request("1", &good, b"{}"), NOW).unwrap_err();
        let codes: Vec<&str> = [SigningError::UnknownKey, SigningError::InvalidTimestamp, stale.clone()]
            .iter()
            .chain([SigningError::BadSignature].iter())
            .map(SigningError::code)
            .collect();
        assert_eq!(codes, ["unknown_api_key", "invalid_timestamp", "stale_timestamp", "invalid_signature"]);
        for error in [stale, SigningError::BadSignature, SigningError::UnknownKey] {
            let text = error.to_string();
            assert!(!text.contains("api-secret") && !text.contains(&good), "{text}");
        }
    }
}
