//! `tradehook config check`: validate the configuration and summarise it without secrets.

use std::path::Path;

use crate::config::Config;

/// Loads and validates; prints a summary on success.
pub fn run(path: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let origin = path.map(|p| p.display().to_string()).unwrap_or_else(|| "built-in defaults".into());
    println!("configuration ok ({origin})");
    println!("  listen      {}", config.server.listen);
    println!("  store       {}", crate::config::printable_store_url(&config.store.url));
    match &config.server.tls {
        Some(tls) => println!("  tls         cert {} key {}", tls.cert.display(), tls.key.display()),
        None => println!("  tls         off (plain HTTP)"),
    }
    if config.sources.is_empty() {
        println!("  sources     default (zero-config, hmac-sha256)");
    }
    for source in &config.sources {
        println!(
            "  source      {} format={} signature={} secrets={} allow_ips={}",
            source.name,
            source.format,
            source.signature,
            source.secrets.len(),
            source.allow_ips.len()
        );
    }
    println!("  api keys    {}", config.api.keys.len());
    match &config.alerts.url {
        Some(url) => println!(
            "  alerts      {} (throttle {})",
            crate::config::redacted_url(url),
            humantime::format_duration(config.alerts.throttle)
        ),
        None => println!("  alerts      log only (no [alerts] url)"),
    }
    Ok(())
}
