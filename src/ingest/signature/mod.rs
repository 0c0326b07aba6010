//! Signature schemes: how a source proves that a webhook came from it.
//!
//! Every scheme verifies over the **raw** request body, compares in constant time, and accepts any
//! one of several secrets so keys can be rotated. Schemes that carry a timestamp reject it outside
//! a tolerance (past and future) to stop replays. This module does no I/O: it takes headers, the
//! query string and the body, and says yes or why not.
//!
//! This file holds the public interface and the pieces every scheme shares (header lookup,
//! timestamp tolerance, pre-keyed HMACs); each scheme lives in its own file. Secrets are decoded
//! and HMAC keys absorbed once in [`Verifier::new`], so a request only pays for hashing its own
//! content.

mod github;
mod hmac;
mod standard;
mod stripe;
mod token;

#[cfg(feature = "server")]
pub(crate) use token::{percent_encode, RawObject};

#[cfg(test)]
mod tests;

use std::time::Duration;

use ::hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName};
use sha2::Sha256;
use subtle::ConstantTimeEq;

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
    /// Every scheme.
    pub const ALL: [Scheme; 6] = [
        Scheme::HmacSha256,
        Scheme::Github,
        Scheme::Stripe,
        Scheme::StandardWebhooks,
        Scheme::Token,
        Scheme::None,
    ];

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
        Scheme::ALL
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

/// Most signatures one header may carry. A sender rotating keys sends two or three; every
/// Ed25519 (`v1a`) signature costs about 50 µs to check against each public key, so a header of
/// thousands would let anyone spend the server's CPU before the request is refused.
pub const MAX_SIGNATURES: usize = 16;

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
    /// More signatures in the header than any sender needs (checking each costs the server).
    #[error("{0} holds more than {MAX_SIGNATURES} signatures")]
    TooMany(&'static str),
    /// Parsed fine, but no configured secret produces it.
    #[error("signature does not match")]
    Mismatch,
    /// A `token` source's token is none of the configured ones.
    #[error("token does not match")]
    TokenMismatch,
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
    /// The body cannot carry what the scheme must add to it (`sign` only).
    #[error("cannot sign this body with {scheme}: {reason}")]
    Body {
        /// Which scheme.
        scheme: Scheme,
        /// What is wrong with the body.
        reason: &'static str,
    },
}

/// Checks requests for one source: a scheme and its secrets, decoded once at start-up.
#[derive(Clone)]
pub struct Verifier {
    scheme: Scheme,
    keys: Keys,
    secret_count: usize,
    options: VerifyOptions,
}

/// The secrets of one source in the form its scheme verifies with.
#[derive(Clone)]
enum Keys {
    /// `hmac-sha256`: one pre-keyed HMAC per secret.
    HmacSha256(Vec<HmacSha256>),
    /// `github`: one pre-keyed HMAC per secret.
    Github(Vec<HmacSha256>),
    /// `stripe`: one pre-keyed HMAC per secret (the whole `whsec_…` string is the key).
    Stripe(Vec<HmacSha256>),
    /// `standard-webhooks`: HMAC keys (`whsec_`) and Ed25519 public keys (`whpk_`), mixed.
    StandardWebhooks(Vec<standard::Key>),
    /// `token`: digests of the accepted tokens.
    Token(token::Tokens),
    /// `none`: nothing to check.
    None,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, nor anything derived from them.
        f.debug_struct("Verifier")
            .field("scheme", &self.scheme)
            .field("secrets", &self.secret_count)
            .field("options", &self.options)
            .finish()
    }
}

impl Verifier {
    /// Builds a verifier, decoding each secret as its scheme requires.
    pub fn new(scheme: Scheme, secrets: &[String], options: VerifyOptions) -> Result<Self, SecretError> {
        if scheme != Scheme::None {
            if secrets.is_empty() {
                return Err(SecretError::NoSecret(scheme));
            }
            // An empty (or blank) secret would let anyone sign; it is always a configuration mistake.
            if let Some(index) = secrets.iter().position(|s| s.trim().is_empty()) {
                return Err(invalid(scheme, index + 1, "the secret is empty"));
            }
        }
        let shared = || secrets.iter().map(|s| keyed(s.as_bytes())).collect::<Vec<_>>();
        let keys = match scheme {
            Scheme::HmacSha256 => Keys::HmacSha256(shared()),
            Scheme::Github => Keys::Github(shared()),
            Scheme::Stripe => Keys::Stripe(shared()),
            Scheme::StandardWebhooks => Keys::StandardWebhooks(standard::decode_keys(secrets)?),
            Scheme::Token => Keys::Token(token::Tokens::new(secrets)),
            Scheme::None => Keys::None,
        };
        Ok(Verifier { scheme, keys, secret_count: secrets.len(), options })
    }

    /// The scheme this verifier checks.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Verifies one request; `now` is the current unix time in seconds.
    pub fn verify(&self, request: &Inbound<'_>, now: i64) -> Result<Verified, SignatureError> {
        let tolerance = self.options.tolerance;
        match &self.keys {
            Keys::HmacSha256(keys) => hmac::verify(keys, request),
            Keys::Github(keys) => github::verify(keys, request),
            Keys::Stripe(keys) => stripe::verify(keys, request, now, tolerance),
            Keys::StandardWebhooks(keys) => standard::verify(keys, request, now, tolerance),
            Keys::Token(tokens) => tokens.verify(request, &self.options.token_field),
            Keys::None => Ok(Verified::Intact),
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
pub fn sign(scheme: Scheme, secret: &str, body: &[u8], context: &SignContext) -> Result<Signed, SecretError> {
    if scheme != Scheme::None && secret.is_empty() {
        return Err(invalid(scheme, 1, "the secret is empty"));
    }
    match scheme {
        Scheme::HmacSha256 => Ok(hmac::sign(secret, body)),
        Scheme::Github => Ok(github::sign(secret, body)),
        Scheme::Stripe => Ok(stripe::sign(secret, body, context.timestamp)),
        Scheme::StandardWebhooks => standard::sign(secret, body, context),
        Scheme::Token => token::sign(secret, body, context),
        Scheme::None => Ok(Signed { headers: vec![], query: None, body: body.to_vec() }),
    }
}

/// A [`SecretError::Invalid`] for the secret at `index` (1-based); `reason` must not quote it.
fn invalid(scheme: Scheme, index: usize, reason: &str) -> SecretError {
    SecretError::Invalid { scheme, index, reason: reason.to_owned() }
}

/// The trimmed value of the first of `names` present; `label` names it in errors.
fn header<'a>(
    headers: &'a HeaderMap,
    names: &[&HeaderName],
    label: &'static str,
) -> Result<&'a str, SignatureError> {
    let value = names.iter().find_map(|name| headers.get(*name)).ok_or(SignatureError::Missing(label))?;
    value.to_str().map(str::trim).map_err(|_| SignatureError::Malformed(label))
}

/// Parses a unix timestamp and rejects it when further than `tolerance` from `now` either way.
fn check_timestamp(
    raw: &str,
    now: i64,
    tolerance: Duration,
    label: &'static str,
) -> Result<(), SignatureError> {
    // Digits only: `i64::from_str` would also take a sign, which no sender writes.
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed(label));
    }
    let signed_at: i64 = raw.parse().map_err(|_| SignatureError::Malformed(label))?;
    let age_secs = signed_at.saturating_sub(now);
    let tolerance_secs = tolerance.as_secs();
    if age_secs.unsigned_abs() > tolerance_secs {
        return Err(SignatureError::Stale { age_secs, tolerance_secs });
    }
    Ok(())
}

/// An HMAC that has already absorbed `secret`; clone it per request instead of re-keying.
fn keyed(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// The HMAC-SHA256 tag of the concatenated `parts`.
fn tag(key: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = key.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether any key's HMAC of the concatenated `parts` equals `expected`, each compared in
/// constant time.
fn any_key_signed(keys: &[HmacSha256], parts: &[&[u8]], expected: &[u8; 32]) -> bool {
    keys.iter().any(|key| {
        let mut mac = key.clone();
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(expected).is_ok()
    })
}

/// Constant-time equality of two HMAC tags.
fn tags_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// Decodes a hex HMAC-SHA256 tag (either case) on the stack; any other length is malformed.
fn decode_hex_tag(hex_tag: &str, label: &'static str) -> Result<[u8; 32], SignatureError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_tag, &mut out).map_err(|_| SignatureError::Malformed(label))?;
    Ok(out)
}

/// The hex HMAC-SHA256 of the concatenated `parts`, keyed with `secret`'s UTF-8 bytes.
fn hex_tag(secret: &str, parts: &[&[u8]]) -> String {
    hex::encode(tag(&keyed(secret.as_bytes()), parts))
}
