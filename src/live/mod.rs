//! What the dashboard watches live: the per-second ingest history ([`rate`]) and the signal
//! that ends live event streams when the gateway shuts down.
//!
//! A live stream (`GET /api/v1/live/events` as Server-Sent Events) never ends by itself, and a
//! graceful shutdown waits for every response to finish; so streams also watch
//! [`Live::closing`], which the serve loop cancels with the rest of the process.

pub mod rate;

use tokio_util::sync::CancellationToken;

pub use rate::{IngestRate, RateSample};

/// Shared by ingest (which records) and the live API (which reads).
#[derive(Default)]
pub struct Live {
    /// Acknowledged and refused webhooks per second, with ack latency.
    pub ingest: IngestRate,
    /// Cancelled at shutdown: live streams end so in-flight requests can drain.
    pub closing: CancellationToken,
}

impl Live {
    /// Ends live streams once `shutdown` is cancelled.
    pub fn close_on(&self, shutdown: CancellationToken) {
        let closing = self.closing.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            closing.cancel();
        });
    }
}
