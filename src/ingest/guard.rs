//! Guards that run before an event is stored: who is the client, may it send, is it sending too
//! fast, and is the body sane JSON.
//!
//! They are cheap and reject early, so a flood of bad requests costs little and never reaches the
//! store. Rate-limit state per client IP is bounded: idle entries are dropped periodically and the
//! whole table is reset if an address-spraying flood fills it.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

#[cfg(feature = "server")]
mod limit;
#[cfg(feature = "server")]
pub use limit::{IpLimiter, SourceLimiter};

/// TradingView's published webhook sender addresses (allow-list preset `tradingview`).
pub const TRADINGVIEW_IPS: [&str; 4] = ["52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"];

/// Deepest JSON nesting accepted (SPEC §1).
pub const MAX_JSON_DEPTH: usize = 64;

/// Parses an allow-list: CIDRs, bare addresses, or the preset `tradingview`.
pub fn parse_allow_list(entries: &[String]) -> Result<Vec<IpNet>, String> {
    let mut nets = Vec::new();
    for entry in entries {
        let entry = entry.trim();
        if entry.eq_ignore_ascii_case("tradingview") {
            nets.extend(TRADINGVIEW_IPS.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()).map(IpNet::from));
        } else if let Ok(net) = entry.parse::<IpNet>() {
            nets.push(net);
        } else if let Ok(ip) = entry.parse::<IpAddr>() {
            nets.push(IpNet::from(ip));
        } else {
            return Err(format!("`{entry}` is not a CIDR (like 10.0.0.0/8), an address, or `tradingview`"));
        }
    }
    Ok(nets)
}

/// Whether `nets` together admit every IPv4 or every IPv6 address (`0.0.0.0/0`, or halves such
/// as `0.0.0.0/1` + `128.0.0.0/1` that add up to it).
pub fn admits_every_address(nets: &[IpNet]) -> bool {
    IpNet::aggregate(&nets.to_vec()).iter().any(|net| net.prefix_len() == 0)
}

/// Whether `ip` is in any of `nets`; IPv4-mapped IPv6 addresses match their IPv4 form.
pub fn ip_in(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|net| net.contains(&ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client's address: the peer, or — only when the peer is a trusted proxy — the nearest
/// untrusted address in `X-Forwarded-For`, read from the right (entries on the left are
/// whatever the client chose to write).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if trusted_proxies.is_empty() || !ip_in(trusted_proxies, peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !ip_in(trusted_proxies, client) {
                    break;
                }
            }
            // A garbled entry ends the trustworthy part of the chain.
            Err(_) => break,
        }
    }
    client
}

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Objects/arrays nested deeper than [`MAX_JSON_DEPTH`].
    #[error("JSON nesting deeper than {MAX_JSON_DEPTH}")]
    TooDeep,
    /// Not JSON at all.
    #[error("body is not valid JSON: {0}")]
    Invalid(String),
    /// A string (or key) holds `\u0000`: PostgreSQL's text cannot hold it, so an event with one
    /// could never be stored or processed there; refused on every store alike.
    #[error("a JSON string holds a NUL character (\\u0000), which tradehook does not accept")]
    Nul,
}

/// Parses a body as JSON after checking its nesting depth without recursion, so a hostile
/// `[[[[…` cannot exhaust the stack, and after [`screen`]ing it.
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, JsonError> {
    check_depth(body)?;
    screen(body)?;
    serde_json::from_slice(body).map_err(|e| JsonError::Invalid(e.to_string()))
}

/// With serde_json's `raw_value` feature, an object whose first key is this is not read as an
/// object: its value, a string, is parsed again as the JSON it stands for (unchecked for depth).
/// No webhook has a reason to send it; it is refused wherever it stands.
pub const RESERVED_KEY: &str = "$serde_json::private::RawValue";

/// Markers of the two refusals [`Checked`] makes, found again in serde_json's error text.
const NUL_MARK: &str = "tradehook-nul-in-string";
const RESERVED_MARK: &str = "tradehook-reserved-key";

/// Reads the whole document once without building it, checking what `serde_json::Value` would
/// check (syntax, UTF-8, escapes, numbers in range) plus what tradehook refuses: a NUL in any
/// string or key, and the [`RESERVED_KEY`].
pub fn screen(body: &[u8]) -> Result<(), JsonError> {
    serde_json::from_slice::<Checked>(body).map(drop).map_err(json_error)
}

/// The refusal a serde_json error stands for.
fn json_error(error: serde_json::Error) -> JsonError {
    let message = error.to_string();
    if message.contains(NUL_MARK) {
        JsonError::Nul
    } else if message.contains(RESERVED_MARK) {
        JsonError::Invalid(format!("the key `{RESERVED_KEY}` is reserved"))
    } else {
        JsonError::Invalid(message)
    }
}

/// Fails a deserializer on a string holding a NUL.
pub fn refuse_nul<E: serde::de::Error>(text: &str) -> Result<(), E> {
    if text.contains('\0') {
        return Err(E::custom(NUL_MARK));
    }
    Ok(())
}

/// Fails a deserializer on an object key that is NUL-bearing or the [`RESERVED_KEY`].
pub fn refuse_key<E: serde::de::Error>(key: &str) -> Result<(), E> {
    refuse_nul(key)?;
    if key == RESERVED_KEY {
        return Err(E::custom(RESERVED_MARK));
    }
    Ok(())
}

/// Any JSON value, checked as [`screen`] says and dropped. (`IgnoredAny` would skip numbers and
/// the strings of a byte slice without checking them: found by fuzz/payload.)
pub struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

/// The visitor behind [`Checked`]; other visitors hand it the arrays and objects they skip.
pub struct CheckedVisitor;

impl<'de> serde::de::Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Checked, E> {
        refuse_nul(text)?;
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<CheckedKey, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// An object key, checked by [`refuse_key`] and dropped.
struct CheckedKey;

impl<'de> serde::Deserialize<'de> for CheckedKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CheckedKeyVisitor)
    }
}

struct CheckedKeyVisitor;

impl serde::de::Visitor<'_> for CheckedKeyVisitor {
    type Value = CheckedKey;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<CheckedKey, E> {
        refuse_key(key)?;
        Ok(CheckedKey)
    }
}

/// Refuses nesting deeper than [`MAX_JSON_DEPTH`], found without recursion; run it before any
/// parser sees the body.
pub fn check_depth(body: &[u8]) -> Result<(), JsonError> {
    if nesting_depth(body) > MAX_JSON_DEPTH {
        return Err(JsonError::TooDeep);
    }
    Ok(())
}

/// The deepest nesting of `{`/`[` outside strings. Strings, most of a webhook's bytes, are
/// skipped with `memchr` to their closing quote instead of byte by byte.
fn nesting_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while let Some(&byte) = body.get(at) {
        at += 1;
        match byte {
            b'"' => at = past_string(body, at),
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Where scanning resumes after the string whose contents start at `at`: just past its closing
/// quote, or the end of `body` if it has none. A backslash escapes the byte after it.
fn past_string(body: &[u8], mut at: usize) -> usize {
    while let Some(rest) = body.get(at..) {
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(offset) if rest[offset] == b'"' => return at + offset + 1,
            Some(offset) => at += offset + 2,
            None => break,
        }
    }
    body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("x-forwarded-for", xff.parse().unwrap());
        map
    }

    #[test]
    fn an_allow_list_admits_every_address_when_its_networks_add_up_to_them() {
        let every = |entries: &[&str]| {
            admits_every_address(
                &parse_allow_list(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap(),
            )
        };
        assert!(every(&["0.0.0.0/0"]));
        assert!(every(&["::/0"]));
        assert!(every(&["0.0.0.0/1", "128.0.0.0/1"]));
        assert!(every(&["10.0.0.0/8", "::/1", "8000::/1"]));
        assert!(every(&["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/1"]));
        assert!(!every(&["0.0.0.0/1", "192.0.0.0/2"]), "128.0.0.0/2 is missing");
        assert!(!every(&["10.0.0.0/8", "::1", "tradingview"]));
    }

    #[test]
    fn allow_list_accepts_cidrs_addresses_and_the_tradingview_preset() {
        let nets =
            parse_allow_list(&["10.0.0.0/8".into(), "192.0.2.7".into(), "tradingview".into()]).unwrap();
        assert!(ip_in(&nets, "10.1.2.3".parse().unwrap()));
        assert!(ip_in(&nets, "192.0.2.7".parse().unwrap()));
        assert!(ip_in(&nets, "52.89.214.238".parse().unwrap()));
        assert!(!ip_in(&nets, "192.0.2.8".parse().unwrap()));
    }

    #[test]
    fn allow_list_rejects_garbage() {
        assert!(parse_allow_list(&["10.0.0.0/40".into()]).is_err());
        assert!(parse_allow_list(&["example.com".into()]).is_err());
    }

    #[test]
    fn ipv4_mapped_ipv6_matches_ipv4_rules() {
        let nets = parse_allow_list(&["127.0.0.0/8".into()]).unwrap();
        assert!(ip_in(&nets, "::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn forwarded_for_ignored_from_untrusted_peer() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let trusted = parse_allow_list(&["10.0.0.0/8".into()]).unwrap();
        assert_eq!(client_ip(peer, &headers("1.2.3.4"), &trusted), peer);
        assert_eq!(client_ip(peer, &headers("1.2.3.4"), &[]), peer);
    }

    #[test]
    fn forwarded_for_believed_from_trusted_proxy_rightmost_untrusted_wins() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = parse_allow_list(&["10.0.0.0/8".into()]).unwrap();
        let ip = client_ip(peer, &headers("6.6.6.6, 198.51.100.4, 10.0.0.1"), &trusted);
        assert_eq!(ip, "198.51.100.4".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbled_forwarded_for_stops_at_last_good_hop() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = parse_allow_list(&["10.0.0.0/8".into()]).unwrap();
        assert_eq!(client_ip(peer, &headers("nonsense"), &trusted), peer);
    }

    #[test]
    fn depth_limit_rejects_deep_nesting_without_recursion() {
        let deep = "[".repeat(100_000);
        assert_eq!(parse_json(deep.as_bytes()), Err(JsonError::TooDeep));
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse_json(ok.as_bytes()).is_ok());
        let over = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(parse_json(over.as_bytes()), Err(JsonError::TooDeep));
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let body = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(parse_json(body.as_bytes()).is_ok());
    }

    /// The bytes of `body` outside its strings (quotes included), read one byte at a time.
    fn outside_strings_bytewise(body: &[u8]) -> Vec<u8> {
        let (mut outside, mut in_string, mut escaped) = (Vec::new(), false, false);
        for &byte in body {
            match (in_string, byte) {
                (true, _) if escaped => escaped = false,
                (true, b'\\') => escaped = true,
                (true, b'"') => in_string = false,
                (true, _) => {}
                (false, b'"') => in_string = true,
                (false, _) => outside.push(byte),
            }
        }
        outside
    }

    #[test]
    fn escapes_and_unclosed_strings_are_scanned_like_json() {
        for (body, depth) in [
            (&br#"{"a":"\\"}"#[..], 1), // an escaped backslash does not escape the quote
            (br#"{"a":"\"[[["}"#, 1),   // an escaped quote does not end the string
            (br#"[["\"#, 2),            // a backslash as the last byte
            (br#"[["[[[["#, 2),         // a string that never closes hides the rest
            (br#"[""[[]]]"#, 3),        // an empty string
        ] {
            assert_eq!(nesting_depth(body), depth, "{}", String::from_utf8_lossy(body));
        }
    }

    proptest::proptest! {
        /// Over bodies made mostly of the bytes that matter (quotes, backslashes, brackets), the
        /// depth is that of the brackets left once the strings are removed by reading every byte.
        #[test]
        fn skipping_strings_finds_the_same_depth_as_reading_every_byte(
            body in proptest::collection::vec(proptest::sample::select(b"\"\\{}[]a:,".to_vec()), 0..200)
        ) {
            proptest::prop_assert_eq!(nesting_depth(&body), nesting_depth(&outside_strings_bytewise(&body)));
        }
    }

    #[test]
    fn invalid_json_is_reported() {
        assert!(matches!(parse_json(b"{nope"), Err(JsonError::Invalid(_))));
        assert!(matches!(parse_json(b""), Err(JsonError::Invalid(_))));
    }
}
