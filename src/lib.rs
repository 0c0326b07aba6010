//! tradehook: a resilient webhook gateway for trading systems.
//!
//! `ingest` (HTTP, guards, signature schemes) → `store` (append + group commit) → `trading`
//! (pure state machine: orders, fills, positions, balances), `delivery` (outbound webhooks,
//! routes) and `api` (management, status, health). `bench` is the load generator behind `tradehook bench`. The binary in `main.rs` is a
//! thin shell over `cli`.

pub mod api;
pub mod audit;
pub mod bench;
pub mod broker;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod error;
pub mod ingest;
pub mod listener;
pub mod live;
pub mod metrics;
pub mod notify;
pub mod server;
pub mod sinks;
pub mod store;
pub mod tls;
pub mod trading;
pub mod ui;
pub mod worker;
