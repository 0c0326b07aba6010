//! What `--cacert <file>` trusts, and why a server's certificate was refused, in words.
//!
//! The certificates of the file are the roots of the server's chain (a private CA), and each is
//! also trusted as the server's own certificate when the server presents exactly that one (a
//! self-signed certificate, pinned by its DER bytes). The second is needed because webpki, which
//! checks chains for rustls, refuses a certificate marked CA:TRUE as a server's own
//! (`CaUsedAsEndEntity`), and `openssl req -x509` (OpenSSL 3) marks every self-signed
//! certificate so; curl accepts it when it is given with `--cacert`. A pinned certificate is
//! still checked for its validity period and for the URL's host name, and the server must still
//! sign the handshake with its key, so nothing but that certificate is trusted this way.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use x509_cert::der::Decode;

/// A TLS client configuration that trusts the certificates of `path` (see the module), with
/// ALPN `h2` then `http/1.1`, as reqwest offers them.
pub fn client_config(path: &Path) -> anyhow::Result<ClientConfig> {
    let certificates = crate::tls::read_certificates(path).context("--cacert")?;
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(certificates.iter().cloned());
    if roots.is_empty() {
        anyhow::bail!("--cacert: {} holds no certificate that can be trusted", path.display());
    }
    let provider = Arc::new(ring::default_provider());
    let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("--cacert: cannot check server certificates")?;
    let verifier = Arc::new(CacertVerifier { chain, pinned: certificates, provider: provider.clone() });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts a chain that leads to one of the file's certificates, or one of the file's
/// certificates itself. The handshake's signatures are always checked with the provider's
/// algorithms (the server holds the key of the certificate it sent).
#[derive(Debug)]
struct CacertVerifier {
    /// The chain check against the file's certificates as roots.
    chain: Arc<WebPkiServerVerifier>,
    /// The file's certificates, trusted as they are when the server presents one of them.
    pinned: Vec<CertificateDer<'static>>,
    /// ring, for the handshake's signatures.
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CacertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = match self.chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(verified) => return Ok(verified),
            Err(refused) => refused,
        };
        if !self.pinned.iter().any(|pinned| pinned.as_ref() == end_entity.as_ref()) {
            return Err(refused);
        }
        check_pinned(end_entity, server_name, now)?;
        Ok(ServerCertVerified::assertion())
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

/// What a pinned certificate is still checked for: its validity period and the host name.
fn check_pinned(cert: &CertificateDer<'_>, server_name: &ServerName<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let bad = |_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let validity = x509_cert::Certificate::from_der(cert.as_ref()).map_err(bad)?.tbs_certificate.validity;
    let not_before = UnixTime::since_unix_epoch(validity.not_before.to_unix_duration());
    let not_after = UnixTime::since_unix_epoch(validity.not_after.to_unix_duration());
    if now.as_secs() < not_before.as_secs() {
        return Err(CertificateError::NotValidYetContext { time: now, not_before }.into());
    }
    if now.as_secs() > not_after.as_secs() {
        return Err(CertificateError::ExpiredContext { time: now, not_after }.into());
    }
    rustls::client::verify_server_name(&ParsedCertificate::try_from(cert)?, server_name)
}

/// Why the server's certificate was refused, in words, when somewhere in `error`'s causes the
/// TLS handshake refused it; `None` for any other failure. rustls prints most reasons as debug
/// structs (`UnsupportedSignatureAlgorithmForPublicKeyContext { … }`).
pub fn refusal(error: &(dyn std::error::Error + 'static), cacert: Option<&Path>) -> Option<String> {
    let refused = causes(error).find_map(|cause| match cause.downcast_ref::<rustls::Error>() {
        Some(rustls::Error::InvalidCertificate(refused)) => Some(refused),
        _ => None,
    })?;
    use CertificateError as E;
    #[allow(deprecated)] // UnsupportedSignatureAlgorithm: older webpki versions still return it.
    let reason = match refused {
        E::UnknownIssuer
        | E::BadSignature
        | E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext { .. }
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            let hint = match cacert {
                Some(path) => format!("{} holds neither it nor the CA that signed it", path.display()),
                None => "pass --cacert <file> with the CA or the self-signed certificate to trust".to_owned(),
            };
            format!("it is not signed by a certificate authority this client trusts ({hint})")
        }
        E::Expired => "it has expired".to_owned(),
        E::NotValidYet => "it is not valid yet".to_owned(),
        E::NotValidForName => "it is not valid for the host name of the URL".to_owned(),
        E::Revoked => "it has been revoked".to_owned(),
        E::InvalidPurpose => "it is not meant for a TLS server".to_owned(),
        E::BadEncoding => "it cannot be parsed".to_owned(),
        E::Other(other) if matches!(other.0.downcast_ref(), Some(webpki::Error::CaUsedAsEndEntity)) => {
            match cacert {
                Some(path) => format!("it is marked as a CA certificate and is not the one {} holds", path.display()),
                None => "it is marked as a CA certificate (as `openssl req -x509` makes them), which is trusted as \
                     a server's own only when given with --cacert <file>"
                    .to_owned(),
            }
        }
        // The context variants say it in words already.
        other => other.to_string(),
    };
    Some(format!("the server's certificate is not trusted: {reason}"))
}

/// `error` and its causes, in order. An `io::Error` (what the TLS stream fails with) wraps its
/// cause as its inner error, which its `source()` skips: that inner error is the next cause.
fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |cause| match cause.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
        None => cause.source(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(error: CertificateError) -> std::io::Error {
        std::io::Error::other(rustls::Error::InvalidCertificate(error))
    }

    #[test]
    fn a_refused_certificate_is_told_in_words_with_what_to_do() {
        let struct_like = CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
            signature_algorithm_id: vec![1, 2],
            public_key_algorithm_id: vec![3],
        };
        let text = refusal(&wrapped(struct_like), None).unwrap();
        assert!(text.starts_with("the server's certificate is not trusted: it is not signed"), "{text}");
        assert!(text.contains("pass --cacert <file>") && !text.contains('{'), "{text}");
        let text = refusal(&wrapped(CertificateError::UnknownIssuer), Some(Path::new("ca.pem"))).unwrap();
        assert!(text.contains("ca.pem holds neither it nor the CA that signed it"), "{text}");
        let ca = CertificateError::Other(rustls::OtherError(Arc::new(webpki::Error::CaUsedAsEndEntity)));
        let text = refusal(&wrapped(ca), None).unwrap();
        assert!(text.contains("it is marked as a CA certificate") && text.contains("--cacert <file>"), "{text}");
        // However deep the TLS stream's io::Error sits among the causes.
        let nested = std::io::Error::other(wrapped(CertificateError::Expired));
        let text = refusal(&nested, None).unwrap();
        assert_eq!(text, "the server's certificate is not trusted: it has expired");
        // Not a certificate refusal: left as it is.
        assert_eq!(refusal(&std::io::Error::other("connection refused"), None), None);
        assert_eq!(refusal(&std::io::Error::other(rustls::Error::HandshakeNotComplete), None), None);
    }

    #[test]
    fn a_pinned_certificate_is_still_checked_for_expiry_and_host_name() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        let localhost = ServerName::try_from("localhost").unwrap();
        let during = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_600_000_000)); // 2020-09
        let after = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000)); // 2023-11
        let before = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_500_000_000)); // 2017-07
        assert_eq!(check_pinned(&der, &localhost, during), Ok(()));
        let expired = check_pinned(&der, &localhost, after).unwrap_err();
        assert!(matches!(expired, rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })));
        let early = check_pinned(&der, &localhost, before).unwrap_err();
        assert!(matches!(early, rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { .. })));
        let elsewhere = ServerName::try_from("example.com").unwrap();
        assert!(check_pinned(&der, &elsewhere, during).is_err());
    }
}
