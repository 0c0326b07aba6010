//! `[server]` keys about connections: built-in TLS, the header deadline and the connection limit.
//!
//! TLS files are read and checked here, at start-up (and by `config check`), so a missing,
//! unreadable or mismatched certificate stops the process with one line naming the key instead
//! of failing on the first handshake.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[server.tls]`: the certificate chain and private key of the listener, PEM files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key of the leaf certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Most connections `server.max_connections` may allow (one semaphore permit each).
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

pub(super) fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}

pub(super) fn default_max_connections() -> usize {
    10_000
}

/// Checks the connection keys of `[server]`; on failure, the key and the problem.
pub(super) fn validate(
    tls: Option<&TlsConfig>,
    header_timeout: Duration,
    max_connections: usize,
) -> Result<(), (&'static str, String)> {
    if header_timeout < Duration::from_millis(100) || header_timeout > Duration::from_secs(3600) {
        return Err(("server.header_timeout", "must be between 100ms and 1h".into()));
    }
    if !(1..=MAX_CONNECTIONS_LIMIT).contains(&max_connections) {
        return Err(("server.max_connections", format!("must be between 1 and {MAX_CONNECTIONS_LIMIT}")));
    }
    if let Some(files) = tls {
        crate::tls::ServerCertificate::load(files).map_err(|e| (e.config_key(), e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigError};
    use std::time::Duration;

    fn load(dir: &std::path::Path, text: &str) -> Result<Config, ConfigError> {
        let path = dir.join("t.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path))
    }

    /// A self-signed pair in `dir`; returns the `[server.tls]` section naming it.
    fn tls_section(dir: &std::path::Path) -> String {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.join("cert.pem"), pair.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), pair.signing_key.serialize_pem()).unwrap();
        format!(
            "[server.tls]\ncert = {:?}\nkey = {:?}\n",
            dir.join("cert.pem").display().to_string(),
            dir.join("key.pem").display().to_string()
        )
    }

    fn error_line(error: ConfigError) -> String {
        let text = error.to_string();
        assert!(!text.contains('\n'), "{text}");
        text
    }

    #[test]
    fn defaults_bound_headers_and_connections_without_tls() {
        let config = Config::default();
        assert_eq!(config.server.tls, None);
        assert_eq!(config.server.header_timeout, Duration::from_secs(10));
        assert_eq!(config.server.max_connections, 10_000);
    }

    #[test]
    fn tls_section_with_valid_files_loads() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            format!("[server]\nheader_timeout = \"5s\"\nmax_connections = 50\n{}", tls_section(dir.path()));
        let config = load(dir.path(), &text).unwrap();
        let tls = config.server.tls.unwrap();
        assert_eq!(tls.cert, dir.path().join("cert.pem"));
        assert_eq!(config.server.header_timeout, Duration::from_secs(5));
        assert_eq!(config.server.max_connections, 50);
    }

    #[test]
    fn spec_inline_table_form_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        tls_section(dir.path());
        let text = format!(
            "[server]\ntls = {{ cert = {:?}, key = {:?} }}\n",
            dir.path().join("cert.pem").display().to_string(),
            dir.path().join("key.pem").display().to_string()
        );
        assert!(load(dir.path(), &text).unwrap().server.tls.is_some());
    }

    #[test]
    fn missing_certificate_file_names_the_cert_key() {
        let dir = tempfile::tempdir().unwrap();
        let text = tls_section(dir.path());
        std::fs::remove_file(dir.path().join("cert.pem")).unwrap();
        let error = error_line(load(dir.path(), &text).unwrap_err());
        assert!(error.contains("server.tls.cert") && error.contains("cert.pem"), "{error}");
    }

    #[test]
    fn garbage_certificate_names_the_cert_key() {
        let dir = tempfile::tempdir().unwrap();
        let text = tls_section(dir.path());
        std::fs::write(dir.path().join("cert.pem"), "hello").unwrap();
        let error = error_line(load(dir.path(), &text).unwrap_err());
        assert!(error.contains("server.tls.cert"), "{error}");
    }

    #[test]
    fn invalid_or_mismatched_key_names_the_key_key() {
        let dir = tempfile::tempdir().unwrap();
        let text = tls_section(dir.path());
        std::fs::write(
            dir.path().join("key.pem"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let error = error_line(load(dir.path(), &text).unwrap_err());
        assert!(error.contains("server.tls.key"), "{error}");
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("key.pem"), other.serialize_pem()).unwrap();
        let error = error_line(load(dir.path(), &text).unwrap_err());
        assert!(error.contains("server.tls.key"), "{error}");
    }

    #[test]
    fn tls_section_needs_both_files_and_no_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let error = error_line(load(dir.path(), "[server.tls]\ncert = \"c.pem\"\n").unwrap_err());
        assert!(error.contains("key"), "{error}");
        let error = error_line(
            load(dir.path(), "[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nca = \"x\"\n").unwrap_err(),
        );
        assert!(error.contains("ca"), "{error}");
    }

    #[test]
    fn header_timeout_and_max_connections_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let error = error_line(load(dir.path(), "[server]\nheader_timeout = \"0s\"\n").unwrap_err());
        assert!(error.contains("server.header_timeout"), "{error}");
        let error = error_line(load(dir.path(), "[server]\nheader_timeout = \"soon\"\n").unwrap_err());
        assert!(error.contains("server.header_timeout"), "{error}");
        let error = error_line(load(dir.path(), "[server]\nmax_connections = 0\n").unwrap_err());
        assert!(error.contains("server.max_connections"), "{error}");
        let error = error_line(load(dir.path(), "[server]\nmax_connections = 2000000\n").unwrap_err());
        assert!(error.contains("server.max_connections"), "{error}");
    }
}
