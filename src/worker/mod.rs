//! The worker: turns stored events into trading state, in the background.
//!
//! Each round reads the due, unprocessed events in arrival order, applies them to the in-memory
//! [`TradingState`], and commits ONE [`ProcessedBatch`] — the changed entities, the alerts, the
//! "processed" marks, retries and dead letters — in one transaction. So a `kill -9` at any point
//! either keeps a whole round or none of it; on restart the state is loaded from the store and
//! the same events are applied again to the same state: nothing is lost, nothing applied twice.
//!
//! Ordering: state changes are applied one event at a time in arrival order, which is at least
//! the per-key order SPEC §2 asks for (the core makes the result independent of order anyway;
//! applying an event costs microseconds, so one thread keeps up with ingest). When an event fails
//! and waits for a retry, later events with the same ordering key are deferred behind it; other
//! keys go on. Schema errors are final and go straight to the dead-letter queue.

pub mod apply;
pub mod lag;
pub mod retry;
pub mod strategy;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::delivery::route::RouteTable;
use crate::delivery::subscription::SubscriptionSet;
use crate::store::{
    now_ms, Deferral, Lease, NewDeadLetter, NewDelivery, PendingEvent, ProcessedBatch, Retry, SharedStore,
    StoreError,
};
use crate::trading::TradingState;
use apply::{Parsed, SourceRules};
use lag::LagTracker;
use retry::{append_history, RetryPolicy};
use strategy::Strategy;

/// How long the worker waits after new events arrive before it reads them (batching).
const LINGER: Duration = Duration::from_millis(20);

/// How often a node on standby checks whether the processing lease is free.
const STANDBY_CHECK: Duration = Duration::from_millis(500);

/// The background processor of stored events.
pub struct Worker {
    store: SharedStore,
    rules: HashMap<String, SourceRules>,
    retry: RetryPolicy,
    state: TradingState,
    /// Ordering keys waiting for a failed event's retry → when that retry is due (unix ms).
    blocked: HashMap<String, i64>,
    lag: Arc<LagTracker>,
    /// Most events per round.
    batch_limit: u32,
    /// Configured routes to deliveries.
    routes: RouteTable,
    /// Subscriptions, for the event types they list.
    subscriptions: Arc<SubscriptionSet>,
    /// The strategy actions routes name, with their memory.
    strategy: Strategy,
    /// Another node holds the processing lease: look again now and then, not on every arrival.
    standby: bool,
    /// The last round failed: the in-memory state may be ahead of the store until reloaded.
    stale: bool,
    /// Test hook: events for which applying fails, to exercise retries and dead letters.
    #[cfg(test)]
    fail_when: Option<fn(&crate::trading::CanonicalEvent) -> bool>,
}

impl Worker {
    /// Loads the trading state and the keys waiting on retries from the store.
    pub async fn start(
        store: SharedStore,
        rules: HashMap<String, SourceRules>,
        retry: RetryPolicy,
        lag: Arc<LagTracker>,
        batch_limit: u32,
    ) -> Result<Worker, StoreError> {
        // Take (or learn of) the processing lease before loading: a holder then loads the state
        // as of its own lease, and its first round need not load it again.
        store.processing_lease().await?;
        let entities = store.all_entities().await?;
        let mut strategy =
            Strategy::load(entities.clone(), Default::default(), None).map_err(StoreError::Internal)?;
        strategy.namespace = store.order_id_namespace().await?;
        let state = apply::load_state(entities).map_err(StoreError::Internal)?;
        let blocked = store.retrying().await?.into_iter().collect();
        Ok(Worker {
            store,
            rules,
            retry,
            state,
            blocked,
            lag,
            batch_limit: batch_limit.max(1),
            routes: RouteTable::default(),
            subscriptions: Arc::new(SubscriptionSet::default()),
            strategy,
            standby: false,
            stale: false,
            #[cfg(test)]
            fail_when: None,
        })
    }

    /// Queues deliveries for processed events by these routes and subscriptions.
    pub fn with_delivery(mut self, routes: RouteTable, subscriptions: Arc<SubscriptionSet>) -> Self {
        self.routes = routes;
        self.subscriptions = subscriptions;
        self
    }

    /// Runs the strategy actions routes name with `config`, queueing intents for `broker`.
    pub fn with_actions(
        mut self,
        config: crate::trading::ActionsConfig,
        broker: Option<&'static str>,
    ) -> Self {
        let state = std::mem::take(&mut self.strategy.state);
        let namespace = std::mem::take(&mut self.strategy.namespace);
        self.strategy = Strategy::load(std::iter::empty(), config, broker).unwrap_or_default();
        self.strategy.state = state;
        self.strategy.namespace = namespace;
        self
    }

    /// Processes until `shutdown`; finishes the round in progress first.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let arrivals = self.store.arrivals();
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            match self.round().await {
                Ok(handled) if handled >= self.batch_limit as usize => continue,
                Ok(_) if self.standby => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(STANDBY_CHECK) => {}
                    }
                }
                Ok(_) => {
                    failures = 0;
                    // Sleep until new events arrive, or a retry may be due.
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = arrivals.notified() => {
                            // Let a few more arrive: one round per LINGER under load writes each
                            // busy order once instead of once per event, at a small cost in lag.
                            tokio::time::sleep(LINGER).await;
                        }
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let pause = Duration::from_millis(100 * u64::from(failures.min(50)));
                    tracing::warn!(%error, ?pause, "processing round failed; retrying from the stored state");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// Replaces the in-memory state with the committed one.
    async fn reload(&mut self) -> Result<(), StoreError> {
        let entities = self.store.all_entities().await?;
        self.strategy.state =
            crate::trading::StrategyState::from_documents(entities.clone()).map_err(StoreError::Internal)?;
        self.state = apply::load_state(entities).map_err(StoreError::Internal)?;
        self.strategy.forget_triggers();
        self.blocked = self.store.retrying().await?.into_iter().collect();
        Ok(())
    }

    /// One round: read due events, apply, commit. Returns how many events it handled.
    ///
    /// After a failed round the in-memory state may hold changes the store rolled back (the
    /// commit was cut), so nothing is processed again until the committed state is reloaded.
    pub async fn round(&mut self) -> Result<usize, StoreError> {
        if self.stale {
            self.reload().await?;
            self.stale = false;
        }
        let outcome = self.round_on_current_state().await;
        self.stale = outcome.is_err();
        outcome
    }

    async fn round_on_current_state(&mut self) -> Result<usize, StoreError> {
        match self.store.processing_lease().await? {
            Lease::Standby => {
                self.standby = true;
                return Ok(0);
            }
            // Another node may have processed since this one last did: start from its state.
            Lease::Held { fresh: true } => self.reload().await?,
            Lease::Held { fresh: false } => {}
        }
        self.standby = false;
        if self.routes.has_strategy_actions() {
            let on = self.store.kill_switch().await?;
            let documents =
                self.strategy.follow_kill_switch(on).map_err(|e| StoreError::Internal(e.to_string()))?;
            if !documents.is_empty() {
                let batch = ProcessedBatch { entities: documents, ..ProcessedBatch::default() };
                self.store.commit_processed(batch).await?;
            }
        }
        let events = self.store.pending(self.batch_limit).await?;
        if events.is_empty() {
            return Ok(0);
        }
        // Only a round with events decides anything: idle rounds skip the read.
        if self.routes.has_strategy_actions() && self.strategy.places_signal_orders() {
            let awaiting = self.store.entries_awaiting_broker().await?;
            self.strategy.follow_awaiting_broker(awaiting);
        }
        if self.routes.has_strategy_actions() {
            let reductions = self.strategy.state.reduction_ids();
            if !reductions.is_empty() {
                let outcomes = self.store.intent_outcomes(reductions).await?;
                self.strategy.state.follow_failed(outcomes);
            }
        }
        // After reading the events: a subscription change committed before any of them was
        // stored is seen by them, whichever node made it.
        self.subscriptions.follow(&self.store).await?;
        let outcome = self.process(&events);
        let (batch, unblocked, poisoned) = match outcome {
            Ok(done) => done,
            Err(internal) => return Err(StoreError::Internal(internal)),
        };
        let done = self.store.commit_processed(batch).await;
        match done {
            Ok(_) => {
                for key in unblocked {
                    self.blocked.remove(&key);
                }
                let now = now_ms();
                for event in &events {
                    self.lag.record(now - event.due_at);
                }
                if poisoned {
                    // A panic may have left the in-memory state half-changed: start from the store.
                    self.reload().await?;
                }
                Ok(events.len())
            }
            Err(error) => Err(error),
        }
    }

    /// Applies `events` to the state and decides what to commit. `Err` only for a state that
    /// cannot be serialized (a bug). The flag says the state must be reloaded after the commit.
    fn process(&mut self, events: &[PendingEvent]) -> Result<(ProcessedBatch, Vec<String>, bool), String> {
        let mut batch = ProcessedBatch::default();
        let mut unblocked = Vec::new();
        let mut documents = BTreeMap::new();
        let subscriptions = self.subscriptions.snapshot();
        let routing = !self.routes.is_idle(&subscriptions);
        for event in events {
            let rules = self.rules.get(&event.source);
            let (parsed, mut facts) = match apply::read(rules, event, routing) {
                Ok(read) => read,
                Err(reason) => {
                    batch.dead.push(dead_letter(event, reason, None));
                    continue;
                }
            };
            if routing && facts.symbol.is_none() {
                facts.symbol = known_symbol(&self.state, &parsed);
            }
            let key = match &parsed {
                Parsed::Trading(_, key) | Parsed::Passive(key) => key.clone(),
            };
            if let Some(until) = key.as_ref().and_then(|k| self.blocked.get(k)) {
                if event.attempts == 0 {
                    let ordering_key = key.clone().unwrap_or_default();
                    batch.deferred.push(Deferral { seq: event.seq, ordering_key, until: *until });
                    continue;
                }
            }
            if routing {
                let payload = apply::delivery_payload(rules, &parsed);
                let targets = self.routes.targets(&facts, &subscriptions);
                batch.deliveries.extend(targets.into_iter().map(|t| NewDelivery {
                    seq: event.seq,
                    target: t.target,
                    webhook_id: t.webhook_id,
                    held: t.held,
                    payload: payload.clone(),
                }));
            }
            let Parsed::Trading(canonical, _) = parsed else {
                batch.processed.push((event.seq, "stored"));
                continue;
            };
            let names = if routing { self.routes.strategy_actions(&facts) } else { Vec::new() };
            let state = &mut self.state;
            let strategy = &mut self.strategy;
            #[cfg(test)]
            let fail = self.fail_when.is_some_and(|fail| fail(&canonical));
            #[cfg(not(test))]
            let fail = false;
            let applied = std::panic::catch_unwind(AssertUnwindSafe(|| {
                assert!(!fail, "injected failure");
                let applied = state.apply(&canonical);
                let decided = strategy.decide(&names, state, &canonical, event.seq);
                (applied, decided)
            }));
            match applied {
                Ok((applied, decided)) => {
                    if let Some(decided) = decided {
                        batch.deliveries.extend(self.strategy.paper_fills(&decided, &self.state, event.seq));
                        let intents = self
                            .strategy
                            .rows(decided, &self.state, event.seq, &mut documents)
                            .map_err(|e| e.to_string())?;
                        batch.intents.extend(intents);
                    }
                    for change in apply::changes(&mut self.state, &applied).map_err(|e| e.to_string())? {
                        documents.insert((change.kind, change.key.clone()), change);
                    }
                    batch.alerts.extend(apply::alerts(&applied, event.seq));
                    batch.processed.push((event.seq, "applied"));
                    if event.attempts > 0 {
                        unblocked.extend(key);
                    }
                }
                Err(panic) => {
                    let message = panic_message(panic.as_ref());
                    tracing::error!(seq = event.seq, %message, "applying an event panicked");
                    // Commit only this event's failure; everything else of the round is read
                    // and applied again after the state is reloaded.
                    let failure = self.failure(event, key, message);
                    return Ok((failure, Vec::new(), true));
                }
            }
        }
        batch.entities = documents.into_values().collect();
        Ok((batch, unblocked, false))
    }

    /// The batch that records one failed attempt: a retry, or a dead letter when they ran out.
    fn failure(&mut self, event: &PendingEvent, key: Option<String>, error: String) -> ProcessedBatch {
        let attempts = event.attempts.saturating_add(1);
        let history = append_history(&event.history, now_ms(), &error);
        let mut batch = ProcessedBatch::default();
        match self.retry.next_delay(attempts) {
            Some(delay) => {
                let next_attempt_at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                if let Some(key) = &key {
                    self.blocked.insert(key.clone(), next_attempt_at);
                }
                batch.retries.push(Retry {
                    seq: event.seq,
                    attempts,
                    next_attempt_at,
                    ordering_key: key,
                    history,
                });
            }
            None => {
                if let Some(key) = &key {
                    self.blocked.remove(key);
                }
                let reason = format!("failed {attempts} times: {error}");
                batch.dead.push(NewDeadLetter {
                    seq: event.seq,
                    reason,
                    attempts,
                    last_error: error,
                    history,
                    ordering_key: key,
                });
            }
        }
        batch
    }

    /// The current in-memory state (for tests and rebuild comparisons).
    pub fn state(&self) -> &TradingState {
        &self.state
    }
}

/// The symbol of an order event that does not name one (seed 001's `order.updated` carries only
/// the order id and fill figures): the order's, from its earlier events. Routes filtered by
/// symbol then see every event of the order, not only its first.
fn known_symbol(state: &TradingState, parsed: &Parsed) -> Option<String> {
    let Parsed::Trading(canonical, _) = parsed else { return None };
    let crate::trading::EventKind::Order(order) = &canonical.kind else { return None };
    order.symbol.clone().or_else(|| state.orders.get(&order.order_id).and_then(|known| known.symbol.clone()))
}

/// A dead letter for an event that can never be processed (schema error).
fn dead_letter(event: &PendingEvent, reason: String, key: Option<String>) -> NewDeadLetter {
    NewDeadLetter {
        seq: event.seq,
        history: append_history(&event.history, now_ms(), &reason),
        attempts: event.attempts.saturating_add(1),
        last_error: reason.clone(),
        reason,
        ordering_key: key,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Recomputes the trading state from every event processed as `applied`, in arrival order, and
/// replaces the stored state with it (`tradehook rebuild-state`). Returns the rebuilt state.
pub async fn rebuild_state(
    store: &SharedStore,
    rules: &HashMap<String, SourceRules>,
) -> Result<Recomputed, StoreError> {
    let recomputed = recompute_state(store, rules).await?;
    let documents = apply::all_documents(&recomputed.state).map_err(|e| StoreError::Internal(e.to_string()))?;
    store.replace_state(documents).await?;
    Ok(recomputed)
}

/// A state recomputed from the stored events, and the applied events it left out.
pub struct Recomputed {
    /// The state.
    pub state: TradingState,
    /// Events processed as `applied` that cannot be read now (`evt_…`, why): the source's rules
    /// changed since (format, a removed source), or a check added since refuses them.
    pub unreadable: Vec<(String, String)>,
}

/// The trading state recomputed from every event processed as `applied`, in arrival order.
pub async fn recompute_state(
    store: &SharedStore,
    rules: &HashMap<String, SourceRules>,
) -> Result<Recomputed, StoreError> {
    let mut state = TradingState::new();
    let mut unreadable = Vec::new();
    let mut after = 0i64;
    loop {
        let events = store.applied_events(after, 5000).await?;
        let Some(last) = events.last() else { break };
        after = last.seq;
        for event in &events {
            match apply::parse(rules.get(&event.source), event) {
                Ok(Parsed::Trading(canonical, _)) => {
                    state.apply(&canonical);
                }
                Ok(Parsed::Passive(_)) => {}
                Err(reason) => unreadable.push((crate::store::event_id(event.seq), reason)),
            }
        }
    }
    Ok(Recomputed { state, unreadable })
}
