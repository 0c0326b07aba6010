//! The audit log of rejected requests: who sent what that was refused, and why.
//!
//! Bounded (oldest dropped first) so a flood of bad requests cannot grow memory, and it never
//! holds secrets: only the client address, source, status, reason, time and a short body prefix.

use std::collections::VecDeque;
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
}

impl AuditLog {
    /// An empty log keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        AuditLog { capacity: capacity.max(1), entries: Mutex::new(VecDeque::new()) }
    }

    /// Records a rejection, dropping the oldest when full. Any of `secrets` found in the body
    /// prefix (a TradingView passphrase in a body that failed for another reason) is masked.
    pub fn record(
        &self,
        client_ip: String,
        source: &str,
        status: u16,
        reason: &str,
        body: &[u8],
        secrets: &[String],
    ) {
        let prefix = &body[..body.len().min(BODY_PREFIX_LEN)];
        let mut body_prefix = String::from_utf8_lossy(prefix).into_owned();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            body_prefix = body_prefix.replace(secret.as_str(), "<redacted>");
        }
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
            log.record("127.0.0.1".into(), "default", 401, &format!("r{i}"), b"{}", &[]);
        }
        let recent = log.recent(10);
        assert_eq!(recent.len(), 3);
        assert_eq!(recent[0].reason, "r9");
        assert_eq!(recent[2].reason, "r7");
    }

    #[test]
    fn body_prefix_is_bounded() {
        let log = AuditLog::new(3);
        log.record("127.0.0.1".into(), "default", 413, "too big", &vec![b'a'; 10_000], &[]);
        assert_eq!(log.recent(1)[0].body_prefix.len(), BODY_PREFIX_LEN);
    }

    #[test]
    fn configured_secrets_are_masked_in_the_body_prefix() {
        let log = AuditLog::new(3);
        let body = br#"{"passphrase":"tv-pass-123","ticker":"BTCUSD""#;
        log.record("127.0.0.1".into(), "tv", 400, "not JSON", body, &["tv-pass-123".into()]);
        let prefix = &log.recent(1)[0].body_prefix;
        assert!(!prefix.contains("tv-pass-123") && prefix.contains("<redacted>"), "{prefix}");
    }
}
