//! The one TLS crypto provider of the process: ring.
//!
//! rustls needs a process-wide default provider when a crate is built without choosing one
//! (reqwest's `rustls-no-provider`). Installing ring here, once, keeps aws-lc-rs out of the build
//! and gives every outbound client (alerts, deliveries, NATS over TLS) the same provider.

/// Installs ring as rustls's default crypto provider; a no-op when one is already installed.
/// Call before building a `reqwest::Client`.
pub fn install_crypto_provider() {
    // Err means a provider is already installed (by an earlier call or a test): that is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
