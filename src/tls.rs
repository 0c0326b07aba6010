//! TLS set-up shared by every outbound client (reqwest, async-nats): one crypto provider, ring.

/// Installs ring as the process-wide rustls crypto provider; later calls do nothing.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
