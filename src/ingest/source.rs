//! A source at run time: its configuration compiled into what the request path needs — the
//! verifier with decoded secrets, the parsed allow-list and its rate limiter.

use ipnet::IpNet;

use super::guard::{self, SourceLimiter};
use super::signature::{Scheme, SecretError, Verifier, VerifyOptions};
use crate::config::{Format, SourceConfig};

/// One configured sender of webhooks, ready to check requests.
pub struct Source {
    /// Name, as in `POST /webhooks/{name}`.
    pub name: String,
    /// Payload format.
    pub format: Format,
    /// Signature check with decoded secrets.
    pub verifier: Verifier,
    /// Allowed client networks; empty = any.
    pub allow_ips: Vec<IpNet>,
    /// Rate limit for the whole source.
    pub limiter: Option<SourceLimiter>,
    /// Largest body accepted.
    pub max_body: u64,
    /// JSON pointers tried for the event id.
    pub id_fields: Vec<String>,
    /// Whether the id headers give the event id (`id_headers`).
    pub id_headers: bool,
    /// Every credential the gateway knows (this source's secrets, other sources', the admin
    /// token, API key and broker secrets), kept only to keep them out of stored request data.
    pub credentials: Vec<String>,
    /// The body field a `token` source reads its token from: its value is masked wherever request
    /// data is recorded, whether or not it is a configured secret (an old, rotated one, say).
    pub token_field: Option<String>,
    /// Metric handles of the success path, resolved once instead of per request.
    pub metrics: SourceMetrics,
}

/// Pre-registered metrics of one source's success path.
pub struct SourceMetrics {
    /// `tradehook_requests_total{source, status="200"}`.
    pub ok: metrics::Counter,
    /// `tradehook_ack_seconds{source}`: arrival to durable answer.
    pub ack_seconds: metrics::Histogram,
}

impl SourceMetrics {
    fn new(source: &str) -> Self {
        SourceMetrics {
            ok: metrics::counter!("tradehook_requests_total", "source" => source.to_owned(), "status" => "200"),
            ack_seconds: metrics::histogram!("tradehook_ack_seconds", "source" => source.to_owned()),
        }
    }
}

impl Source {
    /// Compiles a source from configuration (already validated, so errors here are unexpected).
    pub fn from_config(config: &SourceConfig, credentials: &[String]) -> Result<Source, String> {
        let options = VerifyOptions { tolerance: config.tolerance, token_field: config.token_field.clone() };
        let verifier = Verifier::new(config.signature, &config.secrets, options)
            .map_err(|e: SecretError| format!("source `{}`: {e}", config.name))?;
        Ok(Source {
            name: config.name.clone(),
            format: config.format,
            verifier,
            allow_ips: guard::parse_allow_list(&config.allow_ips)?,
            limiter: config.rate_limit.map(SourceLimiter::new),
            max_body: config.max_body,
            id_fields: config.id_fields.clone(),
            id_headers: config.id_headers,
            credentials: config
                .secrets
                .iter()
                .chain(credentials)
                .filter(|c| !c.is_empty())
                .cloned()
                .collect(),
            token_field: (config.signature == Scheme::Token).then(|| config.token_field.clone()),
            metrics: SourceMetrics::new(&config.name),
        })
    }
}

/// Headers never stored: a name with one of these words in it (between `-` or `_`) carries a
/// credential, not information about the event (`authorization`, `set-cookie`, `x-api-key`,
/// `x-auth-token`, `x-gitlab-token`, `x-webhook-secret`, `x-session-id` …; not `x-author` or
/// `x-bypass-cache`). Names are lower case.
const CREDENTIAL_WORDS: [&str; 11] = [
    "auth",
    "authorization",
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "cookie",
    "session",
    "apikey",
    "credential",
];

/// Whether a header named `name` carries a credential (see [`CREDENTIAL_WORDS`]; also `api-key`
/// and `api_key`).
fn is_credential_header(name: &str) -> bool {
    name.split(['-', '_']).any(|word| CREDENTIAL_WORDS.contains(&word))
        || name.contains("api-key")
        || name.contains("api_key")
}

/// Credentials shorter than this are not looked for in header values: a short source token
/// (`json`, `1234`) would drop `content-type` or `content-length` from every stored event.
const MASKED_IN_VALUES: usize = 8;

/// The request headers as a JSON object, minus credential headers and any header whose value
/// contains one of `credentials`. Written straight into one string: this runs on every request.
pub fn headers_for_storage(headers: &http::HeaderMap, credentials: &[String]) -> String {
    let mut out = String::with_capacity(256);
    let mut value = String::new();
    out.push('{');
    for name in headers.keys() {
        if is_credential_header(name.as_str()) {
            continue;
        }
        value.clear();
        for (i, part) in headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).enumerate() {
            if i > 0 {
                value.push_str(", ");
            }
            value.push_str(part);
        }
        if credentials
            .iter()
            .any(|c| c.len() >= MASKED_IN_VALUES && c.len() <= value.len() && value.contains(c.as_str()))
        {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        push_json_string(&mut out, name.as_str());
        out.push(':');
        push_json_string(&mut out, &value);
    }
    out.push('}');
    out
}

/// Appends `text` as a JSON string literal.
pub fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    if !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(text);
    } else {
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_headers_drop_credentials_and_secrets() {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("authorization", "Bearer abc".parse().unwrap());
        headers.insert("x-passphrase", "tv-secret".parse().unwrap());
        headers.insert("x-webhook-signature", "deadbeef".parse().unwrap());
        for name in
            ["x-auth-token", "x-gitlab-token", "x-webhook-secret", "x-api-key", "cookie", "x-password"]
        {
            headers.insert(name, "sender-credential".parse().unwrap());
        }
        // Words inside other words are not credentials; short secrets are not looked for.
        headers.insert("x-author", "ann".parse().unwrap());
        headers.insert("x-bypass-cache", "1".parse().unwrap());
        headers.insert("content-length", "12345".parse().unwrap());
        headers.insert("x-forwarded-by", "other-source-secret and more".parse().unwrap());
        headers.insert("stripe-signature", "t=1,v1=ab".parse().unwrap());
        headers.insert("x-hub-signature-256", "sha256=ab".parse().unwrap());
        let stored =
            headers_for_storage(&headers, &["tv-secret".into(), "other-source-secret".into(), "1234".into()]);
        let json: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(json["content-type"], "application/json");
        assert_eq!(json["x-webhook-signature"], "deadbeef");
        assert_eq!(json["stripe-signature"], "t=1,v1=ab");
        assert_eq!(json["x-hub-signature-256"], "sha256=ab");
        assert!(json.get("authorization").is_none());
        assert!(!stored.contains("tv-secret") && !stored.contains("other-source-secret"), "{stored}");
        assert!(!stored.contains("sender-credential"), "{stored}");
        assert_eq!(json["x-author"], "ann");
        assert_eq!(json["x-bypass-cache"], "1");
        assert_eq!(json["content-length"], "12345");
        assert_eq!(json.as_object().unwrap().len(), 7, "{stored}");
    }

    #[test]
    fn stored_headers_are_json_with_repeated_values_joined_and_text_escaped() {
        let mut headers = http::HeaderMap::new();
        headers.append("x-multi", "a".parse().unwrap());
        headers.append("x-multi", "b".parse().unwrap());
        headers.insert("x-quote", http::HeaderValue::from_bytes(b"say \"hi\"\\\there").unwrap());
        let stored = headers_for_storage(&headers, &[]);
        let json: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(json["x-multi"], "a, b");
        assert_eq!(json["x-quote"], "say \"hi\"\\\there");
        assert_eq!(headers_for_storage(&http::HeaderMap::new(), &[]), "{}");
    }
}
