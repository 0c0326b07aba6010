//! Which node processes events: a lease in the database, with fencing.
//!
//! The trading state is one fold over every event (a fill moves an order and a position; a
//! signal reads the positions), kept in the processing node's memory. So events are processed by
//! ONE node at a time — the holder of the `processing` lease — while every node ingests, serves
//! the API and delivers. That keeps per-key order and exactly-once state across nodes without
//! splitting the state, and applying costs microseconds per event, so one node keeps up.
//!
//! - **Liveness**: the holder also holds a session advisory lock on a connection of its own
//!   (`locked` in the row says so). PostgreSQL releases it the moment that session ends, so when
//!   the holder dies (`kill -9`, a crash, a lost connection) the next node to get the lock — or
//!   the same one restarted — takes over at once.
//! - **Expiry**: a holder that is alive but stalled (paused, overloaded) keeps its session and
//!   its lock; it is replaced when it lets the lease run out (`expires_at`, by the database's
//!   clock) without renewing it, by a node without the lock. Once fenced off (below), the stalled
//!   node gives the lock up; a node that then gets the lock does not take the lease from a live
//!   holder without it (`locked` false) — only from one that had the lock, or an expired lease.
//! - **Taking it** increments the lease's `epoch`; the new holder loads the committed state
//!   before it processes anything.
//! - **Fencing**: every processing commit first renews the lease row *in its own transaction*,
//!   checking holder and epoch. A node that lost the lease fails that check and its commit rolls
//!   back; it gives up its advisory lock, reloads and stands by. Commits and take-overs serialize
//!   on the lease row, so two nodes never both commit work decided from different states. A node
//!   that stalls mid-commit holds that row: its session is ended by PostgreSQL after a lease's
//!   length idle in the transaction (`idle_in_transaction_session_timeout`, set for that
//!   transaction only), its commit is lost with the session, and the take-over goes on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{pg_error, StoreError};
use crate::store::Lease;

/// tradehook's advisory-lock key for the processing lease ("th-proc").
const PROCESSING_LOCK: i64 = 0x0074_682d_7072_6f63;

/// The processing lease of one node.
pub(super) struct ProcessingLease {
    holder: String,
    ttl: Duration,
    /// Epoch held and when it was last renewed.
    held: Mutex<Option<(i64, Instant)>>,
    /// For the session that holds the advisory lock.
    config: tokio_postgres::Config,
    /// TLS for that session, as for the store's other connections.
    tls: MakeRustlsConnect,
    /// That session, and whether it holds the lock.
    session: tokio::sync::Mutex<Option<(tokio_postgres::Client, bool)>>,
}

impl ProcessingLease {
    /// A node's lease handle; `holder` is unique per process.
    pub fn new(holder: String, ttl: Duration, config: tokio_postgres::Config, tls: MakeRustlsConnect) -> Self {
        ProcessingLease {
            holder,
            ttl,
            tls,
            held: Mutex::new(None),
            config,
            session: tokio::sync::Mutex::new(None),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<(i64, Instant)>> {
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the advisory lock if it is free; `(holds it now, just took it)`.
    async fn lock(&self) -> Result<(bool, bool), StoreError> {
        let mut session = self.session.lock().await;
        if session.as_ref().is_some_and(|(client, _)| client.is_closed()) {
            *session = None;
        }
        if session.is_none() {
            let (client, connection) = super::connect(&self.config, self.tls.clone()).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            *session = Some((client, false));
        }
        let Some((client, locked)) = session.as_mut() else { return Ok((false, false)) };
        if *locked {
            return Ok((true, false));
        }
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&PROCESSING_LOCK])
            .await
            .map_err(pg_error)?;
        *locked = row.get(0);
        Ok((*locked, *locked))
    }

    /// Gives the advisory lock up (another node holds the lease now).
    async fn unlock(&self) {
        let mut session = self.session.lock().await;
        if let Some((client, locked)) = session.as_mut() {
            if *locked {
                *locked = false;
                if client.execute("SELECT pg_advisory_unlock($1)", &[&PROCESSING_LOCK]).await.is_err() {
                    // Unsure whether it let go: end the session, which certainly does.
                    *session = None;
                }
            }
        }
    }

    /// Takes or renews the lease; renewal is skipped while the last one is recent.
    pub async fn acquire(&self, client: &impl GenericClient) -> Result<Lease, StoreError> {
        if let Some((_, renewed)) = *self.held() {
            if renewed.elapsed() < self.ttl / 4 {
                return Ok(Lease::Held { fresh: false });
            }
        }
        let started = Instant::now();
        let (locked, just_locked) = self.lock().await?;
        // Just took the lock: a holder that had it is gone, take the lease whatever its expiry.
        // Otherwise: renew what is ours, or take a lease that ran out.
        let condition = if just_locked {
            "l.holder = excluded.holder OR l.expires_at < now() OR l.locked"
        } else {
            "l.holder = excluded.holder OR l.expires_at < now()"
        };
        let sql = format!(
            "INSERT INTO leases AS l (name, holder, epoch, expires_at, locked)
             VALUES ('processing', $1, 1, now() + make_interval(secs => $2), $3)
             ON CONFLICT (name) DO UPDATE SET
                 holder = excluded.holder,
                 epoch = CASE WHEN l.holder = excluded.holder THEN l.epoch ELSE l.epoch + 1 END,
                 expires_at = excluded.expires_at,
                 locked = excluded.locked
             WHERE {condition}
             RETURNING epoch"
        );
        let row = client
            .query_opt(&sql, &[&self.holder, &self.ttl.as_secs_f64(), &locked])
            .await
            .map_err(pg_error)?;
        let lease = {
            let mut held = self.held();
            match row {
                Some(row) => {
                    let epoch: i64 = row.get(0);
                    let fresh = held.map(|(had, _)| had) != Some(epoch);
                    if fresh {
                        tracing::info!(holder = %self.holder, epoch, "this node now processes events");
                    }
                    *held = Some((epoch, started));
                    Lease::Held { fresh }
                }
                None => {
                    if held.take().is_some() {
                        tracing::warn!(holder = %self.holder, "another node took over processing");
                    }
                    Lease::Standby
                }
            }
        };
        if lease == Lease::Standby && locked {
            self.unlock().await;
        }
        Ok(lease)
    }

    /// Renews the lease inside a processing commit, or fails it if another node holds it now.
    pub async fn fence(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let Some((epoch, _)) = *self.held() else {
            return Err(StoreError::Unavailable("this node does not hold the processing lease".into()));
        };
        let started = Instant::now();
        // This transaction locks the lease row until it ends. If the node stalls before it
        // commits (SIGSTOP, a VM pause, a partition), PostgreSQL ends the session once it has
        // sat idle for a lease's length, so the row is free for the next holder: a take-over
        // would otherwise wait on that lock for as long as the stall lasts.
        tx.batch_execute(&format!("SET LOCAL idle_in_transaction_session_timeout = {}", self.ttl.as_millis()))
            .await
            .map_err(pg_error)?;
        let renewed = tx
            .execute(
                "UPDATE leases SET expires_at = now() + make_interval(secs => $3)
                 WHERE name = 'processing' AND holder = $1 AND epoch = $2",
                &[&self.holder, &epoch, &self.ttl.as_secs_f64()],
            )
            .await
            .map_err(pg_error)?;
        if renewed == 1 {
            *self.held() = Some((epoch, started));
            return Ok(());
        }
        *self.held() = None;
        self.unlock().await;
        Err(StoreError::Unavailable("another node took over processing; this commit is void".into()))
    }
}
