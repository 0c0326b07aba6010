//! `token`: a shared token for senders that cannot sign, above all TradingView alerts.
//!
//! The token arrives in the query (`?token=…`, percent-decoded) or in a top-level JSON string field
//! (default `passphrase`). A token is a password travelling with the payload, so it must not be
//! stored: when the body carries the field, verification hands back the body without it, with the
//! other keys in their original order, and with any copy of the token deeper in the body masked. Tokens are compared as SHA-256 digests in constant time,
//! which also hides their length.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::{Inbound, Scheme, SecretError, SignContext, SignatureError, Signed, Verified};

/// The query parameter that carries the token.
const QUERY_PARAMETER: &str = "token";
/// How errors name the token when neither place has it.
const MISSING: &str = "token (`token` query parameter or JSON field)";
/// How errors name a token field that is not a string.
const NOT_A_STRING: &str = "token field (expected a JSON string)";

/// The accepted tokens of one source, kept only as digests.
#[derive(Clone)]
pub(super) struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl Tokens {
    /// Digests the configured tokens.
    pub(super) fn new(secrets: &[String]) -> Self {
        Tokens { digests: secrets.iter().map(|secret| digest(secret.as_bytes())).collect() }
    }

    /// Whether `candidate` is one of the tokens; every digest is compared, in constant time.
    fn accepts(&self, candidate: &[u8]) -> bool {
        let candidate = digest(candidate);
        let found =
            self.digests.iter().fold(Choice::from(0), |found, digest| found | digest.ct_eq(&candidate));
        found.into()
    }

    /// Checks the token from the query or the body field `field`, and removes the field from the body.
    pub(super) fn verify(&self, request: &Inbound<'_>, field: &str) -> Result<Verified, SignatureError> {
        if let Some(token) = request.query.and_then(query_token) {
            // A wrong query token is not rescued by the body: two tokens that disagree mean a
            // misconfigured or probing sender, and guessing twice per request helps only the latter.
            if !self.accepts(&token) {
                return Err(SignatureError::TokenMismatch);
            }
            // The query is not stored, but a copy of the token in the body would be.
            let stripped = strip_field(request.body, field).map(|(object, _)| object);
            return without_copies(request.body, stripped, &token);
        }
        let (object, value) = strip_field(request.body, field).ok_or(SignatureError::Missing(MISSING))?;
        let Ok(token) = serde_json::from_str::<String>(value.get()) else {
            return Err(SignatureError::Malformed(NOT_A_STRING));
        };
        if !self.accepts(token.as_bytes()) {
            return Err(SignatureError::TokenMismatch);
        }
        without_copies(request.body, Some(object), token.as_bytes())
    }
}

/// What replaces a copy of the token found deeper in the body.
const REDACTED: &str = "[REDACTED]";

/// Tokens at least this long are masked inside longer strings and member names too; a shorter
/// one only where a string is the token (it could be part of a symbol or a word).
const MASKED_INSIDE: usize = 8;

/// The body to store: `stripped` (the body without the top-level token field, if it had one)
/// with every other copy of `token` replaced by [`REDACTED`] — a string value equal to the token
/// at any depth, such as `{"meta":{"passphrase":"…"}}` or `["…"]`, and for a token of
/// [`MASKED_INSIDE`] bytes or more also its text inside any string or member name
/// (`"message":"auth=…"`). Only those strings change. The body stays intact when nothing was
/// removed or replaced.
fn without_copies(
    body: &[u8],
    stripped: Option<RawObject>,
    token: &[u8],
) -> Result<Verified, SignatureError> {
    let removed = stripped.is_some();
    let object = match stripped {
        Some(object) => Some(object),
        // No top-level field: parse only a body that may hold a copy.
        None if may_hold(body, token) => serde_json::from_slice::<RawObject>(body).ok(),
        None => None,
    };
    let Some(RawObject(mut members)) = object else { return Ok(Verified::Intact) };
    let replaced = mask_members(&mut members, token);
    if removed || replaced {
        Ok(Verified::Redacted(serialize(&RawObject(members))?))
    } else {
        Ok(Verified::Intact)
    }
}

/// Whether JSON text can hold `token` in a string: its bytes appear, or an escape could hide them.
fn may_hold(text: &[u8], token: &[u8]) -> bool {
    !token.is_empty() && (contains(text, token) || text.contains(&b'\\'))
}

/// `value` with every string equal to `token` replaced by [`REDACTED`], or `None` when it holds
/// none. Containers that hold no copy keep their exact text; one that does is written compactly.
fn mask(value: &RawValue, token: &[u8]) -> Option<Box<RawValue>> {
    let text = value.get();
    if !may_hold(text.as_bytes(), token) {
        return None;
    }
    match text.trim_start().as_bytes().first()? {
        b'"' => {
            let string: String = serde_json::from_str(text).ok()?;
            masked_text(&string, token).and_then(|masked| serde_json::value::to_raw_value(&masked).ok())
        }
        b'{' => {
            let RawObject(mut members) = serde_json::from_str(text).ok()?;
            let replaced = mask_members(&mut members, token);
            replaced.then(|| serde_json::value::to_raw_value(&RawObject(members)).ok()).flatten()
        }
        b'[' => {
            let mut items: Vec<Box<RawValue>> = serde_json::from_str(text).ok()?;
            let replaced = mask_all(items.iter_mut(), token);
            replaced.then(|| serde_json::value::to_raw_value(&items).ok()).flatten()
        }
        _ => None,
    }
}

/// `text` with `token` masked, or `None` when it holds none: [`REDACTED`] when it is the token,
/// else each occurrence replaced when the token is long enough (see [`MASKED_INSIDE`]).
fn masked_text(text: &str, token: &[u8]) -> Option<String> {
    if text.as_bytes() == token {
        return Some(REDACTED.to_owned());
    }
    let token = std::str::from_utf8(token).ok().filter(|token| token.len() >= MASKED_INSIDE)?;
    text.contains(token).then(|| text.replace(token, REDACTED))
}

/// [`mask`] on an object's members, names included, in place; whether any changed.
fn mask_members(members: &mut [(String, Box<RawValue>)], token: &[u8]) -> bool {
    let mut replaced = mask_all(members.iter_mut().map(|(_, value)| value), token);
    for (name, _) in members.iter_mut() {
        if let Some(masked) = masked_text(name, token) {
            *name = masked;
            replaced = true;
        }
    }
    replaced
}

/// [`mask`] on each of `values`, in place; whether any changed.
fn mask_all<'a>(values: impl Iterator<Item = &'a mut Box<RawValue>>, token: &[u8]) -> bool {
    values.fold(false, |replaced, value| match mask(value, token) {
        Some(masked) => {
            *value = masked;
            true
        }
        None => replaced,
    })
}

/// SHA-256 of a token.
fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Parses `body` as a JSON object and takes `field` out of it (every copy; the value of the last
/// one is returned, as a JSON reader would see it). The other members keep their order and their
/// exact text: `1.50` stays `1.50`, a decimal keeps every digit. `None` when the body is not a
/// JSON object or has no such field.
fn strip_field(body: &[u8], field: &str) -> Option<(RawObject, Box<RawValue>)> {
    // Most bodies never mention the field; skip parsing them. A backslash could hide the name
    // behind a JSON escape, so such bodies are always parsed.
    if !contains(body, field.as_bytes()) && !body.contains(&b'\\') {
        return None;
    }
    let RawObject(members) = serde_json::from_slice(body).ok()?;
    let (taken, kept): (Vec<_>, Vec<_>) = members.into_iter().partition(|(name, _)| name == field);
    let value = taken.into_iter().last()?.1;
    Some((RawObject(kept), value))
}

/// A JSON object as its members in order (duplicates too), each value as its own text.
pub(crate) struct RawObject(pub Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = RawObject;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(RawObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|window| window == needle)
}

/// Serializes the redacted body.
fn serialize(object: &RawObject) -> Result<Vec<u8>, SignatureError> {
    // A map of strings to values always serializes; the error arm only avoids a panic path.
    serde_json::to_vec(object).map_err(|_| SignatureError::Malformed("JSON body"))
}

/// The percent-decoded value of the first `token` parameter of a query string.
fn query_token(query: &str) -> Option<Vec<u8>> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(name) == QUERY_PARAMETER.as_bytes()).then(|| percent_decode(value))
    })
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte; a `%` not
/// followed by two hex digits is kept as it is, as browsers do.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = match byte {
            b'%' => bytes.get(i + 1..i + 3).and_then(|hex| {
                let mut decoded = [0u8; 1];
                hex::decode_to_slice(hex, &mut decoded).ok().map(|()| decoded[0])
            }),
            _ => None,
        };
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(if byte == b'+' { b' ' } else { byte });
                i += 1;
            }
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Adds the token to the query, or to the JSON object body when `context.token_field` is set.
pub(super) fn sign(secret: &str, body: &[u8], context: &SignContext) -> Result<Signed, SecretError> {
    let Some(field) = &context.token_field else {
        let query = format!("{QUERY_PARAMETER}={}", percent_encode(secret));
        return Ok(Signed { headers: vec![], query: Some(query), body: body.to_vec() });
    };
    let not_an_object = SecretError::Body { scheme: Scheme::Token, reason: "the body is not a JSON object" };
    let RawObject(mut members) = serde_json::from_slice(body).map_err(|_| not_an_object.clone())?;
    members.retain(|(name, _)| name != field);
    let token = serde_json::value::to_raw_value(secret).map_err(|_| not_an_object.clone())?;
    members.push((field.clone(), token));
    let body = serde_json::to_vec(&RawObject(members)).map_err(|_| not_an_object)?;
    Ok(Signed { headers: vec![], query: None, body })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, headers, verifier};
    use super::super::{Scheme, SignatureError, Verified, Verifier, VerifyOptions};
    use super::{percent_decode, percent_encode};

    const TOKEN: &str = "my pass&phrase";

    fn redacted(text: &str) -> Result<Verified, SignatureError> {
        Ok(Verified::Redacted(text.as_bytes().to_vec()))
    }

    #[test]
    fn token_in_query_passes_and_body_stays_intact() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        let body = br#"{"ticker":"BTCUSDT","action":"buy"}"#;
        let query = Some("source=tv&token=my+pass%26phrase");
        assert_eq!(check(&v, &headers(&[]), query, body, 0), Ok(Verified::Intact));
    }

    #[test]
    fn token_in_query_passes_for_a_plain_text_body() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        let query = Some("token=my%20pass%26phrase");
        assert_eq!(check(&v, &headers(&[]), query, b"BTCUSDT crossed 70000", 0), Ok(Verified::Intact));
    }

    #[test]
    fn token_in_json_field_is_removed_and_key_order_kept() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        let body = br#"{"zeta":1,"passphrase":"my pass&phrase","alpha":{"b":2,"a":1},"mid":[3,"x"]}"#;
        assert_eq!(
            check(&v, &headers(&[]), None, body, 0),
            redacted(r#"{"zeta":1,"alpha":{"b":2,"a":1},"mid":[3,"x"]}"#)
        );
    }

    #[test]
    fn token_in_query_also_removes_the_field_from_the_body() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        let body = br#"{"b":1,"passphrase":"my pass&phrase","a":2}"#;
        let query = Some("token=my+pass%26phrase");
        assert_eq!(check(&v, &headers(&[]), query, body, 0), redacted(r#"{"b":1,"a":2}"#));
    }

    #[test]
    fn the_other_members_keep_their_exact_text() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        let body = br#"{"passphrase":"my pass&phrase","price":1.50,"qty":0.123456789012345678901,"n":{"a": [1.0, 2e3]}}"#;
        let kept = r#"{"price":1.50,"qty":0.123456789012345678901,"n":{"a": [1.0, 2e3]}}"#;
        assert_eq!(check(&v, &headers(&[]), None, body, 0), redacted(kept));
    }

    #[test]
    fn copies_of_the_token_deeper_in_the_body_are_redacted() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        let body = br#"{"passphrase":"my pass&phrase","meta":{"passphrase":"my pass&phrase","price":1.50},"list":["x","my pass\u0026phrase"],"kept":{"a": 1.0},"note":"my pass&phrase!"}"#;
        let stored = r#"{"meta":{"passphrase":"[REDACTED]","price":1.50},"list":["x","[REDACTED]"],"kept":{"a": 1.0},"note":"[REDACTED]!"}"#;
        assert_eq!(check(&v, &headers(&[]), None, body, 0), redacted(stored));
        // With the token in the query, a body without the top-level field loses its copies too.
        let query = Some("token=my+pass%26phrase");
        let body = br#"{"alert":{"token":"my pass&phrase"},"ticker":"BTCUSDT"}"#;
        let stored = r#"{"alert":{"token":"[REDACTED]"},"ticker":"BTCUSDT"}"#;
        assert_eq!(check(&v, &headers(&[]), query, body, 0), redacted(stored));
        // Nothing to remove: the body stays byte for byte.
        let body = br#"{"ticker": "BTCUSDT", "note": "my pass"}"#;
        assert_eq!(check(&v, &headers(&[]), query, body, 0), Ok(Verified::Intact));
    }

    #[test]
    fn a_token_inside_a_longer_string_or_a_member_name_is_masked_when_it_is_long_enough() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        let body = br#"{"passphrase":"my pass&phrase","message":"auth=my pass&phrase; again my pass&phrase","my pass&phrase":true,"deep":[{"x my pass&phrase":"y"}]}"#;
        let stored = r#"{"message":"auth=[REDACTED]; again [REDACTED]","[REDACTED]":true,"deep":[{"x [REDACTED]":"y"}]}"#;
        assert_eq!(check(&v, &headers(&[]), None, body, 0), redacted(stored));
        // A short token could be part of a symbol: only a string that is the token is masked.
        let v = verifier(Scheme::Token, &["BTC"]);
        let body = br#"{"passphrase":"BTC","ticker":"BTCUSDT","copy":"BTC"}"#;
        assert_eq!(
            check(&v, &headers(&[]), None, body, 0),
            redacted(r#"{"ticker":"BTCUSDT","copy":"[REDACTED]"}"#)
        );
    }

    #[test]
    fn every_copy_of_the_field_is_removed_and_the_last_is_the_token() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        let body = br#"{"passphrase":"an old one","a":1,"passphrase":"my pass&phrase"}"#;
        assert_eq!(check(&v, &headers(&[]), None, body, 0), redacted(r#"{"a":1}"#));
    }

    #[test]
    fn configured_token_field_is_used() {
        let options = VerifyOptions { token_field: "secret".into(), ..VerifyOptions::default() };
        let v = Verifier::new(Scheme::Token, &[TOKEN.to_owned()], options).unwrap();
        let body = br#"{"secret":"my pass&phrase","passphrase":"kept"}"#;
        assert_eq!(check(&v, &headers(&[]), None, body, 0), redacted(r#"{"passphrase":"kept"}"#));
    }

    #[test]
    fn escaped_field_name_is_still_found_and_removed() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        let body = br#"{"a":1,"pass\u0070hrase":"my pass&phrase"}"#;
        assert_eq!(check(&v, &headers(&[]), None, body, 0), redacted(r#"{"a":1}"#));
    }

    #[test]
    fn wrong_token_fails() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        assert_eq!(
            check(&v, &headers(&[]), Some("token=guess"), b"{}", 0),
            Err(SignatureError::TokenMismatch)
        );
        let body = br#"{"passphrase":"my pass&phrase "}"#;
        assert_eq!(check(&v, &headers(&[]), None, body, 0), Err(SignatureError::TokenMismatch));
    }

    #[test]
    fn second_token_passes_during_rotation() {
        let v = verifier(Scheme::Token, &["new-token", TOKEN]);
        assert_eq!(check(&v, &headers(&[]), Some("token=my+pass%26phrase"), b"{}", 0), Ok(Verified::Intact));
    }

    #[test]
    fn no_token_anywhere_is_missing() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        let missing = Err(SignatureError::Missing("token (`token` query parameter or JSON field)"));
        assert_eq!(check(&v, &headers(&[]), Some("tok=x"), br#"{"a":1}"#, 0), missing);
        assert_eq!(check(&v, &headers(&[]), None, b"passphrase: not json", 0), missing);
        assert_eq!(check(&v, &headers(&[]), None, br#"["passphrase"]"#, 0), missing);
    }

    #[test]
    fn non_string_token_field_is_malformed() {
        let v = verifier(Scheme::Token, &[TOKEN]);
        assert_eq!(
            check(&v, &headers(&[]), None, br#"{"passphrase":42}"#, 0),
            Err(SignatureError::Malformed("token field (expected a JSON string)"))
        );
    }

    #[test]
    fn percent_decoding_keeps_broken_escapes() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), b"a/b%zz%4");
        assert_eq!(percent_decode("%E2%82%AC+x"), "€ x".as_bytes());
    }

    #[test]
    fn percent_encoding_round_trips() {
        let text = "a b&c=d/é~_.-%+";
        assert_eq!(percent_decode(&percent_encode(text)), text.as_bytes());
    }
}
