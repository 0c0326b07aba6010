//! Ingest: receiving webhooks, checking them, and handing them to the store.
//!
//! The request path is: find the source (404) → client address and allow-list (403) → rate
//! limits (429) → read the body within its size (413) and time (408) → signature (401) → JSON
//! (400) → event id → durable append (200 accepted/duplicate, or 503). Every refusal is counted
//! and recorded in the audit log; nothing is answered 2xx before the store has committed it.
//!
//! The checks themselves (`signature`, `guard`, `payload`, `event_id`) do no I/O and build
//! without the `server` feature, as the fuzz targets use them; the HTTP half is `handler`.

pub mod event_id;
pub mod guard;
pub mod payload;
#[cfg(feature = "server")]
pub mod schema;
pub mod signature;
#[cfg(feature = "server")]
pub mod source;

#[cfg(feature = "server")]
mod handler;
#[cfg(feature = "server")]
pub use handler::*;

/// Name of the source served on `POST /webhook`.
pub const DEFAULT_SOURCE: &str = "default";
