//! TLS: the one crypto provider of the process (ring) and the listener's certificate.
//!
//! rustls needs a process-wide default provider when a crate is built without choosing one
//! (reqwest's `rustls-no-provider`). Installing ring here, once, keeps aws-lc-rs out of the build
//! and gives every outbound client (alerts, deliveries, NATS over TLS) the same provider.
//!
//! The listener's certificate chain and key come from the PEM files of `[server.tls]`. On SIGHUP
//! they are read again: new handshakes use the new certificate, connections already established
//! keep the one they negotiated, and a file that cannot be used leaves the old certificate in
//! place (with an error in the log).

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::config::TlsConfig;

/// Installs ring as rustls's default crypto provider; a no-op when one is already installed.
/// Call before building a `reqwest::Client`.
pub fn install_crypto_provider() {
    // Err means a provider is already installed (by an earlier call or a test): that is fine.
    let _ = ring::default_provider().install_default();
}

/// Why the certificate or key file of `[server.tls]` cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The certificate file cannot be read.
    #[error("cannot read the certificate file {path}: {source}")]
    CertUnreadable {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate, or a malformed one.
    #[error("{path} holds no valid PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate {
        /// The file.
        path: String,
    },
    /// The key file cannot be read.
    #[error("cannot read the key file {path}: {source}")]
    KeyUnreadable {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The key file holds no PEM private key.
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey {
        /// The file.
        path: String,
    },
    /// The key is of a kind ring cannot sign with, or does not match the certificate.
    #[error("the key in {key} cannot serve the certificate in {cert}: {reason}")]
    Unusable {
        /// The key file.
        key: String,
        /// The certificate file.
        cert: String,
        /// What rustls said.
        reason: rustls::Error,
    },
}

impl CertificateError {
    /// The configuration key to name in a start-up error.
    pub fn config_key(&self) -> &'static str {
        match self {
            CertificateError::CertUnreadable { .. } | CertificateError::NoCertificate { .. } => {
                "server.tls.cert"
            }
            _ => "server.tls.key",
        }
    }
}

/// The certificates of a PEM file, in file order; at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    let shown = || path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| CertificateError::CertUnreadable { path: shown(), source })?;
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|chain| !chain.is_empty())
        .ok_or_else(|| CertificateError::NoCertificate { path: shown() })
}

/// Reads and checks the chain and key of `files`.
fn load_certified_key(files: &TlsConfig) -> Result<CertifiedKey, CertificateError> {
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let chain = read_certificates(&files.cert)?;
    let key_pem = std::fs::read(&files.key)
        .map_err(|source| CertificateError::KeyUnreadable { path: key_path.clone(), source })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| CertificateError::NoKey { path: key_path.clone() })?;
    // Parses the key with ring, parses the leaf and checks that the key is the leaf's.
    let certified =
        CertifiedKey::from_der(chain, key, &ring::default_provider()).map_err(|reason| match reason {
            rustls::Error::InvalidCertificate(_) => {
                CertificateError::NoCertificate { path: cert_path.clone() }
            }
            reason => CertificateError::Unusable { key: key_path, cert: cert_path.clone(), reason },
        })?;
    Ok(certified)
}

/// The listener's current certificate and key; [`ServerCertificate::reload`] replaces them for
/// handshakes that start afterwards.
#[derive(Debug)]
pub struct ServerCertificate {
    /// Where the PEM files are.
    files: TlsConfig,
    /// What new handshakes present; swapped whole, so a handshake sees the old or the new pair.
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCertificate {
    /// Reads the files once.
    pub fn load(files: &TlsConfig) -> Result<ServerCertificate, CertificateError> {
        let key = load_certified_key(files)?;
        Ok(ServerCertificate { files: files.clone(), current: RwLock::new(Arc::new(key)) })
    }

    /// Reads the files again; on error the current certificate stays.
    pub fn reload(&self) -> Result<(), CertificateError> {
        let key = Arc::new(load_certified_key(&self.files)?);
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = key;
        Ok(())
    }

    /// What a handshake starting now presents.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The certificate file (for log lines).
    pub fn cert_path(&self) -> &Path {
        &self.files.cert
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls server configuration of the listener: TLS 1.2 and 1.3 on ring, no client
/// certificates, ALPN `h2` then `http/1.1`.
pub fn server_config(
    certificate: Arc<ServerCertificate>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Handles SIGHUP until `stop`: reloads `certificate` if the listener has one, and in any case
/// keeps serving (SIGHUP's default action would end the process without a drain). The handler is
/// in place when this returns.
pub fn reload_on_hangup(certificate: Option<Arc<ServerCertificate>>, stop: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    received = hangups.recv() => if received.is_none() { return },
                }
                let Some(certificate) = &certificate else {
                    tracing::info!("SIGHUP: nothing to reload without [server.tls]; still serving");
                    continue;
                };
                let cert = certificate.cert_path().display().to_string();
                match certificate.reload() {
                    Ok(()) => {
                        tracing::info!(%cert, "SIGHUP: reloaded the TLS certificate for new connections")
                    }
                    Err(error) => {
                        tracing::error!(%error, "SIGHUP: TLS certificate not reloaded; the previous one stays in use")
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (certificate, stop);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
        config: TlsConfig,
    }

    fn write_pair(dir: &Path) -> Vec<u8> {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.join("cert.pem"), pair.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), pair.signing_key.serialize_pem()).unwrap();
        pair.cert.der().to_vec()
    }

    fn files() -> (Files, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let der = write_pair(dir.path());
        let config = TlsConfig { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
        (Files { dir, config }, der)
    }

    fn leaf(certificate: &ServerCertificate) -> Vec<u8> {
        certificate.current().cert[0].to_vec()
    }

    #[test]
    fn reload_presents_the_new_certificate() {
        let (files, first) = files();
        let certificate = ServerCertificate::load(&files.config).unwrap();
        assert_eq!(leaf(&certificate), first);
        let second = write_pair(files.dir.path());
        certificate.reload().unwrap();
        assert_eq!(leaf(&certificate), second);
    }

    #[test]
    fn reload_with_a_bad_file_keeps_the_old_certificate() {
        let (files, first) = files();
        let certificate = ServerCertificate::load(&files.config).unwrap();
        std::fs::write(&files.config.cert, "not a certificate").unwrap();
        let error = certificate.reload().unwrap_err();
        assert_eq!(error.config_key(), "server.tls.cert");
        assert_eq!(leaf(&certificate), first);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (files, _) = files();
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&files.config.key, other.serialize_pem()).unwrap();
        let error = ServerCertificate::load(&files.config).unwrap_err();
        assert_eq!(error.config_key(), "server.tls.key");
        assert!(error.to_string().contains("key.pem"), "{error}");
    }

    #[test]
    fn server_config_offers_h2_then_http1() {
        let (files, _) = files();
        let config = server_config(Arc::new(ServerCertificate::load(&files.config).unwrap())).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }
}
