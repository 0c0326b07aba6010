//! The audit log of rejected requests: who sent what that was refused, and why.
//!
//! Bounded (oldest dropped first) so a flood of bad requests cannot grow memory, and it never
//! holds secrets: only the client address, source, status, reason, time and a short body prefix.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Mutex;

use serde::Serialize;

/// Bytes of the body kept per rejection.
pub const BODY_PREFIX_LEN: usize = 256;

/// One refused request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// When, RFC 3339.
    pub at: String,
    /// Client address.
    pub client_ip: String,
    /// Source name as requested.
    pub source: String,
    /// HTTP status answered.
    pub status: u16,
    /// Why.
    pub reason: String,
    /// First bytes of the body (lossy UTF-8).
    pub body_prefix: String,
}

/// A bounded, newest-last list of rejections.
pub struct AuditLog {
    capacity: usize,
    entries: Mutex<VecDeque<Rejection>>,
    /// Secrets masked in every body, whatever the source: the admin token, API key secrets and
    /// every source's secrets (a body sent to one source may carry another's, or a credential).
    /// Longest first, so a secret that contains another is masked whole.
    masked: Vec<String>,
}

/// What a masked secret reads as.
const REDACTED: &str = "<redacted>";

/// Where the value of every `"field": …` is in `text`: a string up to its closing quote (or the
/// end of the text, when the window cut it), anything else up to the next `,` or `}`.
fn field_values(text: &str, field: &str) -> Vec<Range<usize>> {
    let name = format!("\"{field}\"");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(&name) {
        from += at + name.len();
        let rest = &text[from..];
        let Some(value) = rest.trim_start().strip_prefix(':') else { continue };
        let value = value.trim_start();
        let start = from + rest.len() - value.len();
        let len = match value.strip_prefix('"') {
            Some(string) => {
                let mut escaped = false;
                let close = string.char_indices().find(|&(_, c)| {
                    let closes = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes
                });
                close.map_or(value.len(), |(i, _)| i + 2)
            }
            None => value.find([',', '}']).unwrap_or(value.len()),
        };
        found.push(start..start + len);
        from = start + len;
    }
    found
}

/// The first `max` bytes of `text` with each of `masked` (sorted, not overlapping) that starts
/// among them replaced whole by [`REDACTED`]: positions are those of the text as received, so a
/// masked secret that is shorter than the secret never pulls later bytes into the prefix.
fn masked_prefix(text: &str, masked: &[Range<usize>], max: usize) -> String {
    let mut out = String::with_capacity(max.min(text.len()) + REDACTED.len());
    let mut kept = 0;
    for range in masked.iter().take_while(|r| r.start < max) {
        out.push_str(&text[kept..range.start]);
        out.push_str(REDACTED);
        kept = range.end;
    }
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if kept < end {
        out.push_str(&text[kept..end]);
    }
    cut(out, max)
}

/// `text` with its JSON string escapes (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`,
/// `\uXXXX` with surrogate pairs) decoded; `None` when it has no backslash. Anything that is not
/// a valid escape is kept as written (the body may not be JSON at all: it was refused).
fn json_unescaped(text: &str) -> Option<String> {
    if !text.contains('\\') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let simple = match rest.as_bytes().get(1) {
            Some(b'"') => Some('"'),
            Some(b'\\') => Some('\\'),
            Some(b'/') => Some('/'),
            Some(b'b') => Some('\u{8}'),
            Some(b'f') => Some('\u{c}'),
            Some(b'n') => Some('\n'),
            Some(b'r') => Some('\r'),
            Some(b't') => Some('\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            rest = &rest[2..];
            continue;
        }
        let unit = |s: &str| s.get(2..6).and_then(|hex| u16::from_str_radix(hex, 16).ok()).filter(|_| s.starts_with("\\u"));
        match unit(rest) {
            Some(high @ 0xD800..=0xDBFF) => match rest.get(6..).and_then(unit) {
                Some(low @ 0xDC00..=0xDFFF) => {
                    let c = 0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                    rest = &rest[12..];
                }
                _ => {
                    out.push_str(&rest[..6]);
                    rest = &rest[6..];
                }
            },
            Some(unit) => {
                out.push(char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER));
                rest = &rest[6..];
            }
            None => {
                out.push('\\');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// `ranges` sorted, overlapping ones joined.
fn merged(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match out.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => out.push(range),
        }
    }
    out
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

impl AuditLog {
    /// An empty log keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        AuditLog { capacity: capacity.max(1), entries: Mutex::new(VecDeque::new()), masked: Vec::new() }
    }

    /// The same log, also masking each of `secrets` in every body it records.
    pub fn masking(mut self, secrets: impl IntoIterator<Item = String>) -> Self {
        self.masked.extend(secrets.into_iter().filter(|s| !s.is_empty()));
        self.masked.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.masked.dedup();
        self
    }

    /// Records a rejection, dropping the oldest when full. Any masked secret in the body (a
    /// TradingView passphrase in a body that failed for another reason) and the value of
    /// `token_field` (a token that failed, maybe an old one) are masked before the prefix is cut,
    /// so a secret across the cut leaves no part of itself behind.
    pub fn record(
        &self,
        client_ip: String,
        source: &str,
        status: u16,
        reason: &str,
        body: &[u8],
        token_field: Option<&str>,
    ) {
        let longest = self.masked.first().map_or(0, String::len);
        // Up to 6 bytes a character when the sender escaped it (`\u0063`).
        let window = &body[..body.len().min(BODY_PREFIX_LEN + 6 * longest)];
        let mut raw = String::from_utf8_lossy(window).into_owned();
        // The token field's value first, found in the text as sent (an escaped `\"` in it must
        // not end it early), whole.
        if let Some(field) = token_field {
            raw = masked_prefix(&raw, &merged(field_values(&raw, field)), usize::MAX);
        }
        // A secret written with JSON escapes is still the secret: when unescaping reveals one,
        // the prefix shows the unescaped text, masked.
        let text = match json_unescaped(&raw) {
            Some(plain) if self.masked.iter().any(|s| plain.matches(s.as_str()).count() > raw.matches(s.as_str()).count()) => {
                std::borrow::Cow::Owned(plain)
            }
            _ => std::borrow::Cow::Borrowed(raw.as_str()),
        };
        let mut masked: Vec<Range<usize>> = Vec::new();
        for secret in &self.masked {
            for (at, _) in text.match_indices(secret.as_str()) {
                let range = at..at + secret.len();
                if !masked.iter().any(|m| m.start < range.end && range.start < m.end) {
                    masked.push(range);
                }
            }
        }
        let body_prefix = masked_prefix(&text, &merged(masked), BODY_PREFIX_LEN);
        let entry = Rejection {
            at: crate::store::rfc3339(crate::store::now_ms()),
            client_ip,
            source: source.chars().take(64).collect(),
            status,
            reason: reason.to_string(),
            body_prefix,
        };
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The newest `limit` entries, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Rejection> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.iter().rev().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_entries() {
        let log = AuditLog::new(3);
        for i in 0..10 {
            log.record("127.0.0.1".into(), "default", 401, &format!("r{i}"), b"{}", None);
        }
        let recent = log.recent(10);
        assert_eq!(recent.len(), 3);
        assert_eq!(recent[0].reason, "r9");
        assert_eq!(recent[2].reason, "r7");
    }

    #[test]
    fn body_prefix_is_bounded() {
        let log = AuditLog::new(3);
        log.record("127.0.0.1".into(), "default", 413, "too big", &vec![b'a'; 10_000], None);
        assert_eq!(log.recent(1)[0].body_prefix.len(), BODY_PREFIX_LEN);
    }

    #[test]
    fn configured_secrets_are_masked_in_the_body_prefix() {
        let log = AuditLog::new(3).masking(["tv-pass-123".to_string()]);
        let body = br#"{"passphrase":"tv-pass-123","ticker":"BTCUSD""#;
        log.record("127.0.0.1".into(), "tv", 400, "not JSON", body, None);
        let prefix = &log.recent(1)[0].body_prefix;
        assert!(!prefix.contains("tv-pass-123") && prefix.contains("<redacted>"), "{prefix}");
    }

    /// A secret written with JSON escapes (`\u0063` for `c`, `\/`) in a refused body is masked
    /// too: before, only its literal form was, and the escaped one was served by the audit API.
    #[test]
    fn a_secret_written_with_json_escapes_is_masked() {
        let log = AuditLog::new(5).masking(["s3cret-current".to_string(), "a/b-secret-😀".to_string()]);
        for body in [
            r#"{"a":"s3cret-\u0063urrent", broken"#,
            r#"{"a":"s3cret-current","b":"s3cret-\u0063urrent" broken"#,
            r#"{"a":"a\/b-secret-\ud83d\ude00"}"#,
        ] {
            log.record("1.2.3.4".into(), "vibe", 400, "invalid_json", body.as_bytes(), None);
            let prefix = log.recent(1)[0].body_prefix.clone();
            assert!(!prefix.contains("urrent") && !prefix.contains("secret-") && prefix.contains("<redacted>"), "{body} → {prefix}");
        }
        // A token field's value is masked whole, an escaped quote in it included, also when an
        // escaped secret elsewhere makes the prefix show the unescaped text.
        log.record(
            "1.2.3.4".into(),
            "tv",
            401,
            "token_mismatch",
            br#"{"passphrase":"old\"tok-x-12345","b":"s3cret-\u0063urrent"}"#,
            Some("passphrase"),
        );
        let prefix = log.recent(1)[0].body_prefix.clone();
        assert_eq!(prefix, r#"{"passphrase":<redacted>,"b":"<redacted>"}"#);
        // Escapes that hide no secret stay as written.
        log.record("1.2.3.4".into(), "vibe", 400, "invalid_json", br#"{"a":"line\nbreak \u00e9"#, None);
        assert_eq!(log.recent(1)[0].body_prefix, r#"{"a":"line\nbreak \u00e9"#);
    }

    #[test]
    fn credentials_of_the_gateway_are_masked_in_any_source_body() {
        let gateway = ["admin-token-0123456789", "api-secret", "tv-pass"];
        let log = AuditLog::new(3).masking(gateway.map(String::from));
        let body = br#"{"note":"admin-token-0123456789 and api-secret","passphrase":"tv-pass"}"#;
        log.record("127.0.0.1".into(), "default", 400, "bad", body, None);
        let prefix = &log.recent(1)[0].body_prefix;
        assert_eq!(prefix, r#"{"note":"<redacted> and <redacted>","passphrase":"<redacted>"}"#);
    }

    #[test]
    fn a_secret_inside_another_does_not_unmask_the_rest_of_it() {
        // In the order a configuration lists them: shortest first.
        let log = AuditLog::new(3).masking(["s3cret", "previous-s3cret", "s3cret-admin-token-xyz"].map(String::from));
        let body = br#"{"a":"previous-s3cret","b":"s3cret-admin-token-xyz","c":"s3cret"}"#;
        log.record("127.0.0.1".into(), "default", 401, "bad", body, None);
        let prefix = &log.recent(1)[0].body_prefix;
        assert_eq!(prefix, r#"{"a":"<redacted>","b":"<redacted>","c":"<redacted>"}"#);
    }

    #[test]
    fn masking_never_pulls_a_cut_secret_into_the_prefix() {
        // Masking the first shortens the text; the second, past the cut, must not move into it.
        let token = "ADMINTOKEN0123456789abcdefghijklmnopqrstuvwxyz";
        let log = AuditLog::new(3).masking([token.to_string()]);
        let mut body = token.as_bytes().to_vec();
        body.resize(BODY_PREFIX_LEN + 5, b'x');
        body.extend_from_slice(token.as_bytes());
        log.record("127.0.0.1".into(), "default", 401, "bad", &body, None);
        let prefix = &log.recent(1)[0].body_prefix;
        assert!(prefix.starts_with("<redacted>xxx"), "{prefix}");
        assert!(!prefix.contains("ADMIN"), "{prefix}");
        assert_eq!(prefix.len(), REDACTED.len() + BODY_PREFIX_LEN - token.len(), "only what was received before the cut");
    }

    #[test]
    fn a_secret_across_the_cut_leaves_no_part_of_itself() {
        let log = AuditLog::new(3).masking(["tv-pass-123".to_string()]);
        let mut body = vec![b' '; BODY_PREFIX_LEN - 5];
        body.extend_from_slice(b"tv-pass-123\"}");
        log.record("127.0.0.1".into(), "tv", 400, "not JSON", &body, None);
        let prefix = &log.recent(1)[0].body_prefix;
        assert!(prefix.len() <= BODY_PREFIX_LEN);
        assert!(!prefix.contains("tv-pa"), "{prefix:?}");
    }

    #[test]
    fn the_token_field_is_masked_whatever_it_holds() {
        let log = AuditLog::new(5).masking(["new-pass".to_string()]);
        // A rotated-out passphrase, with escapes, spaces and a key after it.
        let body = br#"{"ticker":"BTCUSD", "passphrase" : "old-\"pass", "price":1}"#;
        log.record("127.0.0.1".into(), "tv", 401, "bad token", body, Some("passphrase"));
        let prefix = &log.recent(1)[0].body_prefix;
        assert_eq!(prefix, r#"{"ticker":"BTCUSD", "passphrase" : <redacted>, "price":1}"#);
        // Not a string, twice, and a value the cut ends inside.
        let mut body = br#"{"passphrase":12345,"x":{"passphrase":true},"passphrase":""#.to_vec();
        body.extend(std::iter::repeat_n(b'z', 400));
        log.record("127.0.0.1".into(), "tv", 401, "bad token", &body, Some("passphrase"));
        let prefix = &log.recent(1)[0].body_prefix;
        assert_eq!(prefix, r#"{"passphrase":<redacted>,"x":{"passphrase":<redacted>},"passphrase":<redacted>"#);
    }
}
