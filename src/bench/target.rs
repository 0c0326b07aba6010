//! The server under test: where to connect and what to put in the request line and `Host`.
//!
//! The URL is checked and resolved once, before any connection opens, so a typo fails the run at
//! once with one clear message instead of as thousands of connect errors.

use std::net::SocketAddr;

use http::{HeaderValue, Uri};

/// Why a bench URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not a URL at all.
    #[error("`{url}` is not a valid URL: {reason}")]
    Invalid {
        /// The URL as given.
        url: String,
        /// What the parser objected to.
        reason: String,
    },
    /// Only plain HTTP is benchmarked: TLS would measure the client's handshakes, not the server.
    #[error(
        "`{0}` is not an http:// URL (bench speaks plain HTTP/1.1; benchmark behind TLS with another tool)"
    )]
    NotHttp(String),
    /// The host name resolved to no address.
    #[error("cannot resolve `{host}`: {reason}")]
    Unresolved {
        /// Host and port that were looked up.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
}

/// A resolved bench target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address every connection dials.
    pub addr: SocketAddr,
    /// `host[:port]` for the `Host` header.
    pub authority: HeaderValue,
    /// Path and query of the URL, e.g. `/webhook`.
    path_and_query: String,
    /// `path_and_query` parsed once, for requests that add no query.
    uri: Uri,
}

impl Target {
    /// Parses `url` and resolves its host.
    pub async fn resolve(url: &str) -> Result<Self, TargetError> {
        let invalid = |reason: String| TargetError::Invalid { url: url.to_owned(), reason };
        let parsed: Uri = url.parse().map_err(|error: http::uri::InvalidUri| invalid(error.to_string()))?;
        if parsed.scheme_str() != Some("http") {
            return Err(TargetError::NotHttp(url.to_owned()));
        }
        let authority = parsed.authority().ok_or_else(|| invalid("no host".into()))?;
        let host_port = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
        let addr = tokio::net::lookup_host(&host_port)
            .await
            .map_err(|error| TargetError::Unresolved { host: host_port.clone(), reason: error.to_string() })?
            .next()
            .ok_or_else(|| TargetError::Unresolved {
                host: host_port.clone(),
                reason: "no address".into(),
            })?;
        let path_and_query = parsed.path_and_query().map_or("/", |pq| pq.as_str()).to_owned();
        let uri =
            path_and_query.parse().map_err(|error: http::uri::InvalidUri| invalid(error.to_string()))?;
        let authority =
            HeaderValue::from_str(authority.as_str()).map_err(|error| invalid(error.to_string()))?;
        Ok(Target { addr, authority, path_and_query, uri })
    }

    /// The request target, with `query` (from a signature scheme) appended when there is one.
    pub fn uri(&self, query: Option<&str>) -> Result<Uri, http::uri::InvalidUri> {
        match query {
            None => Ok(self.uri.clone()),
            Some(query) => {
                let joiner = if self.path_and_query.contains('?') { '&' } else { '?' };
                format!("{}{joiner}{query}", self.path_and_query).parse()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn http_url_resolves_with_path_and_host() {
        let target = Target::resolve("http://127.0.0.1:8080/webhook").await.unwrap();
        assert_eq!(target.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(target.authority, "127.0.0.1:8080");
        assert_eq!(target.uri(None).unwrap(), "/webhook");
        assert_eq!(target.uri(Some("token=x")).unwrap(), "/webhook?token=x");
    }

    #[tokio::test]
    async fn existing_query_is_kept_when_a_scheme_adds_one() {
        let target = Target::resolve("http://127.0.0.1/webhooks/tv?a=1").await.unwrap();
        assert_eq!(target.addr.port(), 80);
        assert_eq!(target.uri(Some("token=x")).unwrap(), "/webhooks/tv?a=1&token=x");
    }

    #[tokio::test]
    async fn https_is_refused_with_a_reason() {
        let error = Target::resolve("https://example.com/webhook").await.unwrap_err();
        assert!(matches!(error, TargetError::NotHttp(_)), "{error}");
    }
}
