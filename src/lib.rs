//! tradehook: a resilient webhook gateway for trading systems.

pub mod bench;
pub mod ingest;
