//! `[alerts]`: where operational alerts go (SPEC §6) and the limits that raise them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::units::humantime_serde_compat;

/// `[alerts]`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// URL (http or https) that receives alert POSTs; absent = alerts only in the log.
    pub url: Option<String>,
    /// Name of this gateway in alerts (`node`), for operators running several.
    pub node: Option<String>,
    /// At most one alert per kind and subject in this window; repeats are counted and reported
    /// with the next one.
    #[serde(with = "humantime_serde_compat")]
    pub throttle: Duration,
    /// How often the monitor checks the DLQ, backlog, lag and signature failures.
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    /// Unprocessed events above which `backlog` is raised.
    pub backlog: u64,
    /// Processing lag (99th percentile over one interval) above which `lag` is raised.
    #[serde(with = "humantime_serde_compat")]
    pub lag: Duration,
    /// Signature failures (401 answers) per minute above which `signature_failures` is raised.
    pub signature_failures: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            url: None,
            node: None,
            throttle: Duration::from_secs(300),
            interval: Duration::from_secs(5),
            backlog: 10_000,
            lag: Duration::from_secs(30),
            signature_failures: 20,
        }
    }
}

/// The URL may carry a token (in its path or query): show only where it points.
impl std::fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsConfig")
            .field("url", &self.url.as_deref().map(redacted_url))
            .field("node", &self.node)
            .field("throttle", &self.throttle)
            .field("interval", &self.interval)
            .field("backlog", &self.backlog)
            .field("lag", &self.lag)
            .field("signature_failures", &self.signature_failures)
            .finish()
    }
}

/// `scheme://host:port/…` of a URL, without credentials, path or query.
pub fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/…", parsed.scheme(), parsed.host_str().unwrap_or(""))
        }
        Err(_) => "<invalid url>".into(),
    }
}

impl AlertsConfig {
    /// Checks what types cannot; the error names the key (`alerts.url`, …) and the problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(url) = &self.url {
            let parsed = reqwest::Url::parse(url).map_err(|e| ("alerts.url", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
                return Err(("alerts.url", "must be an http:// or https:// URL with a host".into()));
            }
        }
        if self.node.as_deref().is_some_and(|node| node.trim().is_empty() || node.len() > 128) {
            return Err(("alerts.node", "must be 1 to 128 characters".into()));
        }
        if self.interval < Duration::from_millis(100) || self.interval > Duration::from_secs(3600) {
            return Err(("alerts.interval", "must be between 100ms and 1h".into()));
        }
        if self.backlog == 0 {
            return Err(("alerts.backlog", "must be at least 1".into()));
        }
        if self.lag.is_zero() {
            return Err(("alerts.lag", "must be more than 0".into()));
        }
        if self.signature_failures == 0 {
            return Err(("alerts.signature_failures", "must be at least 1 per minute".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        AlertsConfig::default().validate().unwrap();
        let with_url = AlertsConfig { url: Some("https://ops.example/hooks".into()), ..Default::default() };
        with_url.validate().unwrap();
    }

    #[test]
    fn url_must_be_http_or_https() {
        for bad in ["ftp://ops.example/x", "ops.example/hooks", "http://", "file:///tmp/x"] {
            let config = AlertsConfig { url: Some(bad.into()), ..Default::default() };
            assert_eq!(config.validate().unwrap_err().0, "alerts.url", "{bad}");
        }
    }

    #[test]
    fn limits_are_named_when_wrong() {
        let cases = [
            (AlertsConfig { interval: Duration::ZERO, ..Default::default() }, "alerts.interval"),
            (AlertsConfig { backlog: 0, ..Default::default() }, "alerts.backlog"),
            (AlertsConfig { lag: Duration::ZERO, ..Default::default() }, "alerts.lag"),
            (AlertsConfig { signature_failures: 0, ..Default::default() }, "alerts.signature_failures"),
            (AlertsConfig { node: Some(" ".into()), ..Default::default() }, "alerts.node"),
        ];
        for (config, key) in cases {
            assert_eq!(config.validate().unwrap_err().0, key);
        }
    }

    #[test]
    fn debug_output_hides_the_url_token() {
        let config = AlertsConfig {
            url: Some("https://u:p@ops.example:8443/hook/s3cret?token=x".into()),
            ..Default::default()
        };
        let text = format!("{config:?}");
        assert!(text.contains("https://ops.example:8443/…"), "{text}");
        assert!(!text.contains("s3cret") && !text.contains("token") && !text.contains("u:p"), "{text}");
    }
}
