//! The events `tradehook bench` sends: seed-001 `order.updated` payloads, each with its own id.
//!
//! A de-duplicating receiver stores every event exactly once, so the ids must never repeat, not
//! even across runs against the same store: an id is `bench-<run nonce>-<connection>-<n>`. The
//! orders fill in steps like a real block order, so a receiver that keeps trading state does
//! realistic work (one order per [`FILLS_PER_ORDER`] events, cumulative quantity rising).
//!
//! The writer reuses one buffer and renders the timestamp once per second: the client shares the
//! CPU with the server under test, and every cycle it spends is one the server does not get.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many `order.updated` events each order gets; the last one reports it `filled`.
pub const FILLS_PER_ORDER: u64 = 100;

/// Writes the bodies one connection sends.
#[derive(Debug)]
pub struct EventWriter {
    /// `bench-<nonce>-<connection>-`, the part of every id this writer shares.
    id_prefix: String,
    /// Spaces of a `memo` field that bring the body up to the requested size.
    padding: String,
    /// The body being written, reused from one event to the next.
    body: Vec<u8>,
    /// The unix second `timestamp` was rendered for.
    rendered_second: i64,
    /// RFC 3339 UTC of `rendered_second`.
    timestamp: String,
}

impl EventWriter {
    /// A writer for connection `connection` of the run `nonce`, aiming at `body_size` bytes.
    pub fn new(nonce: &str, connection: usize, body_size: usize) -> Self {
        let mut writer = EventWriter {
            id_prefix: format!("bench-{nonce}-{connection}-"),
            padding: String::new(),
            body: Vec::with_capacity(body_size + 64),
            rendered_second: i64::MIN,
            timestamp: String::new(),
        };
        // Size the padding on a typical event; ids grow by a few digits, hence "approximate".
        let unpadded = writer.write(1, 0).len();
        let memo_field = ",\"memo\":\"\"".len();
        writer.padding = " ".repeat(body_size.saturating_sub(unpadded + memo_field));
        writer
    }

    /// The id of event `n`, as [`EventWriter::write`] puts it in the body.
    pub fn event_id(&self, n: u64) -> String {
        format!("{}{n}", self.id_prefix)
    }

    /// Writes event `n` stamped with unix second `now` and returns its body.
    pub fn write(&mut self, n: u64, now: i64) -> &[u8] {
        if now != self.rendered_second {
            self.rendered_second = now;
            self.timestamp = rfc3339(now);
        }
        let order = n / FILLS_PER_ORDER;
        let fill = n % FILLS_PER_ORDER + 1;
        let status = if fill == FILLS_PER_ORDER { "filled" } else { "partially_filled" };
        let body = &mut self.body;
        body.clear();
        // Writing into a Vec cannot fail.
        let _ = write!(
            body,
            concat!(
                "{{\"id\":\"{prefix}{n}\",\"event\":\"order.updated\",\"timestamp\":\"{ts}\",",
                "\"data\":{{\"orderId\":\"{prefix}o{order}\",",
                "\"symbol\":\"BTC/USD\",",
                "\"status\":\"{status}\",\"filledQuantity\":0.{fill:03},\"averagePrice\":49850.25,",
                "\"updatedAt\":\"{ts}\"{memo}{padding}{end}"
            ),
            prefix = self.id_prefix,
            n = n,
            ts = self.timestamp,
            order = order,
            status = status,
            fill = fill,
            // The memo field exists only to pad, so an unpadded event carries none.
            memo = if self.padding.is_empty() { "" } else { ",\"memo\":\"" },
            padding = self.padding,
            end = if self.padding.is_empty() { "}}" } else { "\"}}" },
        );
        body
    }
}

/// A fresh random run nonce, so two runs against one store never share an event id.
pub fn run_nonce() -> String {
    format!("{:012x}", rand::random::<u64>() >> 16)
}

/// The current unix time in whole seconds.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// `secs` as RFC 3339 UTC with second precision, like seed 001's timestamps.
fn rfc3339(secs: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_event_has_a_unique_id_and_is_valid_json() {
        let nonce = run_nonce();
        let mut ids = HashSet::new();
        for connection in 0..4 {
            let mut writer = EventWriter::new(&nonce, connection, 300);
            for n in 0..500 {
                let body: serde_json::Value = serde_json::from_slice(writer.write(n, unix_now())).unwrap();
                let id = body["id"].as_str().unwrap().to_owned();
                assert_eq!(id, writer.event_id(n));
                assert!(ids.insert(id), "duplicate id");
            }
        }
        assert_eq!(ids.len(), 2000);
    }

    #[test]
    fn event_follows_seed_001_order_updated() {
        let mut writer = EventWriter::new("abc", 7, 300);
        let body: serde_json::Value = serde_json::from_slice(writer.write(199, 1_705_314_601)).unwrap();
        assert_eq!(body["event"], "order.updated");
        assert_eq!(body["timestamp"], "2024-01-15T10:30:01Z");
        assert_eq!(body["data"]["orderId"], "bench-abc-7-o1");
        assert_eq!(body["data"]["status"], "filled");
        assert_eq!(body["data"]["filledQuantity"], 0.1);
        assert_eq!(body["data"]["symbol"], "BTC/USD");
        let partial: serde_json::Value = serde_json::from_slice(writer.write(200, 1_705_314_601)).unwrap();
        assert_eq!(partial["data"]["status"], "partially_filled");
        assert_eq!(partial["data"]["filledQuantity"], 0.001);
    }

    #[test]
    fn body_is_about_the_requested_size() {
        let mut writer = EventWriter::new(&run_nonce(), 31, 300);
        let unpadded = EventWriter::new("x", 0, 0).write(0, 0).len();
        assert!(unpadded < 250, "an unpadded event is {unpadded} bytes");
        let len = writer.write(123_456, unix_now()).len();
        assert!((300..=310).contains(&len), "body is {len} bytes");
        let mut small = EventWriter::new("n", 0, 10);
        assert!(small.write(0, 0).len() > 10, "a size below one event adds no padding");
    }
}
