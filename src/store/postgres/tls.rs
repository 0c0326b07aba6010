//! TLS to PostgreSQL, chosen with libpq's `sslmode` and `sslrootcert` URL parameters.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`, and no root certificates, so both
//! parameters are taken out of the URL here and become a rustls client configuration (ring, the
//! process's one provider) for every connection of the store: the pool, the migration, the
//! listener and the lease session.
//!
//! - `disable`: no TLS.
//! - `allow`, `prefer` (also when absent, as in libpq): TLS if the server offers it, without
//!   checking its certificate (this protects against eavesdropping, not against an impostor).
//!   Unlike libpq, a TLS handshake that fails is not retried in the clear (tokio-postgres does
//!   not): a server whose TLS cannot be spoken (no host name, only `hostaddr`; a P-521
//!   certificate, which ring cannot check) needs `sslmode=disable`.
//! - `require`: TLS or no connection; the certificate is not checked unless `sslrootcert` names
//!   a file, which makes it `verify-ca` (libpq does the same).
//! - `verify-ca`: TLS, with a certificate chain that leads to a root of `sslrootcert` (a PEM
//!   file, required), whatever host it names.
//! - `verify-full`: a chain that leads to a root of `sslrootcert` (a PEM file; `system` or
//!   absent: the system's roots), and the certificate must name the host connected to.

use std::path::Path;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// What `sslmode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The store's connection settings and the TLS connector every connection uses.
pub(super) fn connection(url: &str) -> Result<(tokio_postgres::Config, MakeRustlsConnect), StoreError> {
    let bad = StoreError::Internal;
    let (rest, mode, root) = take_tls_parameters(url).map_err(bad)?;
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e: tokio_postgres::Error| {
        // tokio-postgres says only "invalid connection string"; what is wrong is its source.
        let cause = std::error::Error::source(&e).map(|cause| format!(" ({cause})")).unwrap_or_default();
        StoreError::Internal(format!("not a PostgreSQL connection URL: {e}{cause}"))
    })?;
    // tokio-postgres has no default host (libpq's local socket): it would fail at connect time.
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(bad("no host: name the server, e.g. postgres://tradehook@db.example.com/tradehook \
             (or host=/var/run/postgresql for a local socket)"
            .to_owned()));
    }
    // As libpq: the system's roots only with the host name checked (any public certificate
    // leads to them), and a chain check needs a CA file to check against.
    let system = root.as_deref() == Some("system");
    if system && mode != Mode::VerifyFull {
        return Err(bad("sslrootcert=system needs sslmode=verify-full: the system's roots \
             accept any public certificate, so the host name must be checked too"
            .to_owned()));
    }
    if mode == Mode::VerifyCa && root.is_none() {
        return Err(bad("sslmode=verify-ca needs sslrootcert=<CA file>: against the system's roots \
             any public certificate would pass (use verify-full to check the host name)"
            .to_owned()));
    }
    // libpq: `require` with a root certificate file checks the chain, as `verify-ca`.
    let mode = match (mode, &root) {
        (Mode::Require, Some(_)) => Mode::VerifyCa,
        (mode, _) => mode,
    };
    config.ssl_mode(match mode {
        Mode::Disable => SslMode::Disable,
        Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
    });
    let provider = Arc::new(ring::default_provider());
    let chain = match mode {
        Mode::Disable | Mode::Prefer | Mode::Require => None,
        Mode::VerifyCa | Mode::VerifyFull => {
            let roots = roots(root.as_deref()).map_err(bad)?;
            let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| bad(format!("cannot check server certificates: {e}")))?;
            Some(chain)
        }
    };
    let verifier = Arc::new(Verifier { chain, check_name: mode == Mode::VerifyFull, provider: provider.clone() });
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((config, MakeRustlsConnect::new(tls)))
}

/// Splits `sslmode` and `sslrootcert` off the URL's query; the rest is for tokio-postgres.
fn take_tls_parameters(url: &str) -> Result<(String, Mode, Option<String>), String> {
    // Where tokio-postgres looks for the query: after the credentials (up to the first `@`,
    // so a `?` in a password is not taken for it).
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let host = url[after_scheme..].find('@').map_or(after_scheme, |at| after_scheme + at + 1);
    let (base, query) = match url[host..].find('?') {
        Some(at) => (&url[..host + at], &url[host + at + 1..]),
        None => (url, ""),
    };
    let mut mode = Mode::Prefer;
    let mut root = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || percent_decode_str(value).decode_utf8_lossy().into_owned();
        match key {
            "sslmode" => {
                mode = match decoded().as_str() {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                        ))
                    }
                }
            }
            "sslrootcert" => root = Some(decoded()).filter(|path| !path.is_empty()),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, mode, root))
}

/// The roots to check a server's chain against: the certificates of the `sslrootcert` file, or
/// the system's (`system` or none given).
fn roots(file: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match file {
        Some(path) if path != "system" => {
            let certificates =
                crate::tls::read_certificates(Path::new(path)).map_err(|e| format!("sslrootcert: {e}"))?;
            let (_, unusable) = roots.add_parsable_certificates(certificates);
            if unusable > 0 || roots.is_empty() {
                return Err(format!("sslrootcert: {path} holds a certificate that cannot be a root"));
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("no system root certificates found: name a PEM file with sslrootcert".to_owned());
            }
        }
    }
    Ok(roots)
}

/// Checks a server's certificate as the mode asks: not at all (`chain` none: `prefer`, and
/// `require` without a root), its chain (`verify-ca`), or its chain and host name
/// (`verify-full`). The handshake's signatures are always checked (the server holds the key of
/// the certificate it sent).
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_leave_the_url_and_the_rest_stays_as_written() {
        let (rest, mode, root) = take_tls_parameters(
            "postgres://u:p%40ss@db.example.com:6432/app?sslmode=verify-full&options=-c%20x%3D1&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p%40ss@db.example.com:6432/app?options=-c%20x%3D1");
        assert_eq!((mode, root.as_deref()), (Mode::VerifyFull, Some("/etc/ca.pem")));
        assert_eq!(take_tls_parameters("postgres://h/db").unwrap(), ("postgres://h/db".into(), Mode::Prefer, None));
        assert_eq!(
            take_tls_parameters("postgres://h/db?sslmode=disable").unwrap(),
            ("postgres://h/db".into(), Mode::Disable, None)
        );
        // A `?` in the password is not the query (tokio-postgres reads credentials up to `@`).
        let (rest, mode, _) = take_tls_parameters("postgres://u:a?b@h/db?sslmode=require").unwrap();
        assert_eq!((rest.as_str(), mode), ("postgres://u:a?b@h/db", Mode::Require));
        let error = take_tls_parameters("postgres://h/db?sslmode=verify").unwrap_err();
        assert!(error.contains("sslmode=verify is not one of"), "{error}");
    }

    #[test]
    fn the_system_roots_are_trusted_only_with_the_host_name_checked() {
        for url in [
            "postgres://h/db?sslmode=verify-ca",
            "postgres://h/db?sslmode=verify-ca&sslrootcert=system",
            "postgres://h/db?sslmode=require&sslrootcert=system",
        ] {
            let error = connection(url).err().unwrap().to_string();
            assert!(error.contains("any public certificate"), "{url}: {error}");
        }
        assert!(connection("postgres://h/db?sslmode=verify-full&sslrootcert=system").is_ok());
    }

    #[test]
    fn a_root_file_that_is_missing_or_holds_no_certificate_is_named() {
        let error = connection("postgres://h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem").err().unwrap();
        assert!(error.to_string().contains("sslrootcert: cannot read the certificate file /nonexistent/ca.pem"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate").unwrap();
        let error =
            connection(&format!("postgres://h/db?sslmode=require&sslrootcert={}", file.display())).err().unwrap();
        assert!(error.to_string().contains("holds no valid PEM certificate"), "{error}");
    }
}
