//! Which node processes events: a lease in the database, with fencing.
//!
//! The trading state is one fold over every event (a fill moves an order and a position; a
//! signal reads the positions), kept in the processing node's memory. So events are processed by
//! ONE node at a time — the holder of the `processing` lease — while every node ingests, serves
//! the API and delivers. That keeps per-key order and exactly-once state across nodes without
//! splitting the state, and applying costs microseconds per event, so one node keeps up.
//!
//! - **Taking it**: a node takes the lease when nobody holds it or the holder let it run out
//!   (`expires_at` passed, by the database's clock), incrementing its `epoch`. The holder renews
//!   it while it works; a node that dies (`kill -9`, power, network) is replaced after the lease
//!   time. The new holder loads the committed state before it processes anything.
//! - **Fencing**: every processing commit first renews the lease row *in its own transaction*,
//!   checking holder and epoch. A node that lost the lease (paused past the lease time while
//!   another took over) fails that check and its commit rolls back; it reloads and stands by.
//!   Commits and take-overs serialize on the lease row, so two nodes never both commit work
//!   decided from different states.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::{GenericClient, Transaction};

use super::{pg_error, StoreError};
use crate::store::Lease;

/// The processing lease of one node.
pub(super) struct ProcessingLease {
    holder: String,
    ttl: Duration,
    held: Mutex<Option<(i64, Instant)>>,
}

impl ProcessingLease {
    /// A node's lease handle; `holder` is unique per process.
    pub fn new(holder: String, ttl: Duration) -> Self {
        ProcessingLease { holder, ttl, held: Mutex::new(None) }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<(i64, Instant)>> {
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes or renews the lease; renewal is skipped while the last one is recent.
    pub async fn acquire(&self, client: &impl GenericClient) -> Result<Lease, StoreError> {
        if let Some((_, renewed)) = *self.held() {
            if renewed.elapsed() < self.ttl / 4 {
                return Ok(Lease::Held { fresh: false });
            }
        }
        let started = Instant::now();
        let row = client
            .query_opt(
                "INSERT INTO leases AS l (name, holder, epoch, expires_at)
                 VALUES ('processing', $1, 1, now() + make_interval(secs => $2))
                 ON CONFLICT (name) DO UPDATE SET
                     holder = excluded.holder,
                     epoch = CASE WHEN l.holder = excluded.holder THEN l.epoch ELSE l.epoch + 1 END,
                     expires_at = excluded.expires_at
                 WHERE l.holder = excluded.holder OR l.expires_at < now()
                 RETURNING epoch",
                &[&self.holder, &self.ttl.as_secs_f64()],
            )
            .await
            .map_err(pg_error)?;
        let mut held = self.held();
        match row {
            Some(row) => {
                let epoch: i64 = row.get(0);
                let fresh = held.map(|(had, _)| had) != Some(epoch);
                if fresh {
                    tracing::info!(holder = %self.holder, epoch, "this node now processes events");
                }
                *held = Some((epoch, started));
                Ok(Lease::Held { fresh })
            }
            None => {
                if held.take().is_some() {
                    tracing::warn!(holder = %self.holder, "another node took over processing");
                }
                Ok(Lease::Standby)
            }
        }
    }

    /// Renews the lease inside a processing commit, or fails it if another node holds it now.
    pub async fn fence(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let Some((epoch, _)) = *self.held() else {
            return Err(StoreError::Unavailable("this node does not hold the processing lease".into()));
        };
        let started = Instant::now();
        let renewed = tx
            .execute(
                "UPDATE leases SET expires_at = now() + make_interval(secs => $3)
                 WHERE name = 'processing' AND holder = $1 AND epoch = $2",
                &[&self.holder, &epoch, &self.ttl.as_secs_f64()],
            )
            .await
            .map_err(pg_error)?;
        let mut held = self.held();
        if renewed == 1 {
            *held = Some((epoch, started));
            Ok(())
        } else {
            *held = None;
            Err(StoreError::Unavailable("another node took over processing; this commit is void".into()))
        }
    }
}
