//! tradehook: a resilient webhook gateway for trading systems.
//!
//! `ingest` (HTTP, guards, signature schemes) → `store` (append + group commit) → `trading`
//! (pure state machine: orders, fills, positions, balances), `delivery` (outbound webhooks,
//! routes) and `api` (management, status, health). `bench` is the load generator behind `tradehook bench`. The binary in `main.rs` is a
//! thin shell over `cli`.
//!
//! Without the default `server` feature only the pure parts build — signature schemes, the
//! ingest checks and payload reading, and the trading state — which is what the fuzz targets
//! (`fuzz/`) need: an instrumented build of the whole gateway took most of the CI fuzz phase.

pub mod ingest;
pub mod trading;

/// Marks every item in it as needing the `server` feature (as tokio's `cfg_*!` macros do).
macro_rules! cfg_server {
    ($($item:item)*) => { $( #[cfg(feature = "server")] $item )* };
}

cfg_server! {
    pub mod api;
    pub mod audit;
    pub mod bench;
    pub mod broker;
    pub mod cli;
    pub mod config;
    pub mod delivery;
    pub mod error;
    pub mod listener;
    pub mod live;
    pub mod log_throttle;
    pub mod metrics;
    pub mod notify;
    pub mod server;
    pub mod sinks;
    pub mod store;
    pub mod tls;
    pub mod ui;
    pub mod worker;
}
