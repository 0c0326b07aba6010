//! Ingest: receiving webhooks, checking them, and handing them to the store.

pub mod signature;
