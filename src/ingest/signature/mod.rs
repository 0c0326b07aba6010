//! Signature schemes: how a source proves that a webhook came from it.
//!
//! Every scheme verifies over the **raw** request body, compares in constant time, and accepts any
//! one of several secrets so keys can be rotated. Schemes that carry a timestamp reject it outside
//! a tolerance (past and future) to stop replays. This module does no I/O: it takes headers, the
//! query string and the body, and says yes or why not.

use std::time::Duration;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

/// HMAC-SHA256, the primitive behind every shared-secret scheme.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The signature schemes a source can require (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// `X-Webhook-Signature: <hex>` (or `sha256=<hex>`), HMAC-SHA256 of the body (seed 001).
    #[default]
    HmacSha256,
    /// `X-Hub-Signature-256: sha256=<hex>`.
    Github,
    /// `Stripe-Signature: t=<unix>,v1=<hex>`, signed content `"{t}.{body}"`.
    Stripe,
    /// standardwebhooks.com: `webhook-id`/`webhook-timestamp`/`webhook-signature` (v1 and v1a).
    StandardWebhooks,
    /// A shared token in `?token=` or a JSON field, for senders that cannot sign (TradingView).
    Token,
    /// No signature at all; only allowed together with an IP allow-list.
    None,
}

impl Scheme {
    /// The name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::HmacSha256 => "hmac-sha256",
            Scheme::Github => "github",
            Scheme::Stripe => "stripe",
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::Token => "token",
            Scheme::None => "none",
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Scheme::HmacSha256,
            Scheme::Github,
            Scheme::Stripe,
            Scheme::StandardWebhooks,
            Scheme::Token,
            Scheme::None,
        ]
        .into_iter()
        .find(|scheme| scheme.name() == s)
        .ok_or_else(|| {
            format!("unknown signature scheme `{s}` (expected hmac-sha256, github, stripe, standard-webhooks, token or none)")
        })
    }
}

/// Tunables of verification that are not secrets.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How far a signed timestamp may be from now, in the past or the future.
    pub tolerance: Duration,
    /// The JSON field that carries the token for the `token` scheme (default `passphrase`).
    pub token_field: String,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { tolerance: Duration::from_secs(300), token_field: "passphrase".into() }
    }
}

/// The parts of an inbound request that a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The raw query string, without the `?`.
    pub query: Option<&'a str>,
    /// The raw body bytes, exactly as received.
    pub body: &'a [u8],
}

/// A request that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Store the body as received.
    Intact,
    /// Store this body instead: the token field was removed from the JSON (`token` scheme).
    Redacted(Vec<u8>),
}

/// Why a request failed verification. Every variant answers 401; the message is safe to return
/// to the sender (it never contains a secret or an expected signature).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header or field the scheme needs is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The header is there but cannot be parsed.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Parsed fine, but no configured secret produces it.
    #[error("signature does not match")]
    Mismatch,
    /// The signed timestamp is further from now than the tolerance.
    #[error("timestamp outside the tolerance ({age_secs} s from now, tolerance {tolerance_secs} s)")]
    Stale {
        /// Signed timestamp minus now, in seconds (negative = in the past).
        age_secs: i64,
        /// The configured tolerance, in seconds.
        tolerance_secs: u64,
    },
}

/// A secret in configuration that cannot be used by its scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The scheme needs at least one secret.
    #[error("the {0} scheme needs at least one secret")]
    NoSecret(Scheme),
    /// The secret is not in the form the scheme expects.
    #[error("secret #{index} is invalid for {scheme}: {reason}")]
    Invalid {
        /// Which scheme.
        scheme: Scheme,
        /// Position of the secret in the list (1-based), never the secret itself.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Checks requests for one source: a scheme and its secrets, decoded once at start-up.
#[derive(Clone)]
pub struct Verifier {
    scheme: Scheme,
    secrets: Vec<Vec<u8>>,
    options: VerifyOptions,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Verifier")
            .field("scheme", &self.scheme)
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Verifier {
    /// Builds a verifier, decoding each secret as its scheme requires.
    pub fn new(scheme: Scheme, secrets: &[String], options: VerifyOptions) -> Result<Self, SecretError> {
        if scheme != Scheme::None && secrets.is_empty() {
            return Err(SecretError::NoSecret(scheme));
        }
        let secrets = secrets.iter().map(|s| s.as_bytes().to_vec()).collect();
        Ok(Verifier { scheme, secrets, options })
    }

    /// The scheme this verifier checks.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Verifies one request; `now` is the current unix time in seconds.
    pub fn verify(&self, request: &Inbound<'_>, _now: i64) -> Result<Verified, SignatureError> {
        match self.scheme {
            Scheme::None => Ok(Verified::Intact),
            Scheme::HmacSha256 => {
                let value = request
                    .headers
                    .get("x-webhook-signature")
                    .ok_or(SignatureError::Missing("X-Webhook-Signature header"))?;
                let value =
                    value.to_str().map_err(|_| SignatureError::Malformed("X-Webhook-Signature header"))?;
                let hex_sig = value.strip_prefix("sha256=").unwrap_or(value);
                let sig = hex::decode(hex_sig.trim())
                    .map_err(|_| SignatureError::Malformed("X-Webhook-Signature header"))?;
                for secret in &self.secrets {
                    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
                    mac.update(request.body);
                    if mac.verify_slice(&sig).is_ok() {
                        return Ok(Verified::Intact);
                    }
                }
                Err(SignatureError::Mismatch)
            }
            _ => Err(SignatureError::Mismatch),
        }
    }
}

/// What a sender needs to sign one request.
#[derive(Debug, Clone)]
pub struct SignContext {
    /// Unix seconds to put in the timestamp, for schemes that carry one.
    pub timestamp: i64,
    /// Message id for Standard Webhooks (`webhook-id`).
    pub message_id: String,
    /// JSON field for the `token` scheme when the token goes in the body.
    pub token_field: Option<String>,
}

/// How to send one signed request: extra headers, an optional query string, and the body to send
/// (the `token` scheme may add a field to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Headers to add, as (name, value).
    pub headers: Vec<(String, String)>,
    /// Query string to append, without the `?`.
    pub query: Option<String>,
    /// The body to send.
    pub body: Vec<u8>,
}

/// Signs a body the way `scheme` expects, for `tradehook send`, `sign` and `bench`.
pub fn sign(
    scheme: Scheme,
    secret: &str,
    body: &[u8],
    _context: &SignContext,
) -> Result<Signed, SecretError> {
    match scheme {
        Scheme::HmacSha256 => {
            let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
            mac.update(body);
            let sig = hex::encode(mac.finalize().into_bytes());
            Ok(Signed {
                headers: vec![("X-Webhook-Signature".into(), sig)],
                query: None,
                body: body.to_vec(),
            })
        }
        Scheme::None => Ok(Signed { headers: vec![], query: None, body: body.to_vec() }),
        other => Err(SecretError::Invalid { scheme: other, index: 1, reason: "not implemented yet".into() }),
    }
}
