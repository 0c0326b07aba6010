//! What the dashboard watches live: `GET /api/v1/live/ingest` (webhooks acknowledged and
//! refused per second, with ack latency, over the last ten minutes, and the gauges that are cheap
//! to read every few seconds: backlog, oldest pending event, DLQ size, processing lag) and
//! `GET /api/v1/live/events` (newly stored events and how their processing ends).
//!
//! The event feed is content-negotiated. With `Accept: text/event-stream` it is a stream of
//! Server-Sent Events that stays open: each `event: event` message carries one event's summary,
//! sent when it arrives and again when its status changes (pending → applied, retrying, dead);
//! a `: keep-alive` comment comes every 15 s; `event: gap` says how many events were skipped when
//! more arrived than a person can read (over 1000 between two looks); `event: error` reports a
//! store failure and the stream carries on. Any other `Accept` gets one JSON page of the same
//! summaries and the connection is done — which keeps generic HTTP clients (and API fuzzers)
//! from hanging on an endless body. The stream needs the same credentials as the rest of
//! `/api/v1`, so browsers read it with `fetch` (EventSource cannot send `Authorization`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::live::rate::{unix_second, RateSample, WINDOW_SECONDS};
use crate::server::AppState;
use crate::store::{now_ms, EventFilter, EventProgress, SharedStore};
use crate::worker::lag::LagSummary;

/// How often a live stream looks for new events and changed statuses.
const POLL: Duration = Duration::from_millis(500);
/// A comment this often keeps proxies and the browser from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events read per look.
const PAGE: u32 = 500;
/// Further behind than this, a stream jumps to the newest events (`event: gap`).
const MAX_BEHIND: i64 = 1000;
/// Pending events a stream keeps re-reading for their outcome.
const MAX_WATCHED: usize = 200;
/// Events shown when a feed starts without `after`.
const BACKFILL: i64 = 50;

/// The live routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(ingest)).routes(routes!(events))
}

/// Query of the ingest history.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct IngestQuery {
    /// How many of the newest seconds, 1–600 (default 600).
    #[param(minimum = 1, maximum = 600)]
    #[serde(default, deserialize_with = "super::whole_number")]
    seconds: Option<u32>,
}

/// Ingest second by second.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestHistory {
    /// The server's clock, unix seconds: the last second of the window.
    now: u64,
    /// Seconds the window covers.
    window_seconds: u64,
    /// The seconds that had traffic, oldest first; the others had none.
    samples: Vec<RateSample>,
    /// Events stored and not yet processed.
    backlog: u64,
    /// How long the next event to process has been waiting since it was received, replayed or
    /// due for its retry, seconds; absent when nothing is due.
    oldest_pending_age_seconds: Option<f64>,
    /// Entries in the dead-letter queue.
    dlq: u64,
    /// Processing lag of this process's worker since start.
    lag: LagSummary,
}

/// Webhooks acknowledged and refused per second, and ack latency, over the last minutes
/// (this process only; kept in memory); with backlog, DLQ size and lag, which unlike
/// `GET /status` cost no scan of the events however many are stored.
#[utoipa::path(
    get,
    path = "/live/ingest",
    tag = "live",
    params(IngestQuery),
    responses((status = 200, description = "Seconds with traffic, oldest first", body = IngestHistory))
)]
async fn ingest(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<IngestQuery>,
) -> Result<Json<IngestHistory>, ApiError> {
    let query = super::query(query)?;
    let seconds = super::limit(query.seconds, WINDOW_SECONDS as u32, WINDOW_SECONDS as u32)?;
    let now = unix_second();
    let samples = state.live.ingest.samples(now, u64::from(seconds));
    let oldest = state.store.oldest_pending().await?;
    Ok(Json(IngestHistory {
        now,
        window_seconds: u64::from(seconds),
        samples,
        backlog: state.store.backlog(),
        oldest_pending_age_seconds: oldest.map(|at| crate::store::seconds_since(at, now_ms())),
        dlq: state.store.dlq_size().await?,
        lag: state.lag.summary(),
    }))
}

/// Where the feed starts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FeedQuery {
    /// Only events after this `seq` (the last one seen); default: the newest 50.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Most events in the JSON page, 1–1000 (default 100). The stream is not limited.
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "super::whole_number")]
    limit: Option<u32>,
}

/// One event in the feed: enough to scan, with the id to open its payload.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedItem {
    /// `evt_…`: `GET /api/v1/events/{id}` shows the payload and headers (secrets removed).
    id: String,
    /// Arrival order.
    seq: i64,
    /// Source name.
    source: String,
    /// Payload `event` field.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Arrival time, RFC 3339.
    received_at: String,
    /// `pending` (stored, waiting), `retrying`, `applied`, `stored` (not a trading event), `dead`
    /// (in the dead-letter queue), or `processed` when the store keeps no outcome.
    status: String,
    /// Failed processing attempts so far.
    attempts: u32,
}

impl FeedItem {
    fn of(progress: EventProgress) -> Self {
        let status = match (progress.processed, progress.outcome) {
            (false, _) if progress.attempts > 0 => "retrying".to_string(),
            (false, _) => "pending".to_string(),
            (true, Some(outcome)) => outcome,
            (true, None) => "processed".to_string(),
        };
        FeedItem {
            id: format!("evt_{}", progress.seq),
            seq: progress.seq,
            source: progress.source,
            event_type: progress.event_type,
            received_at: progress.received_at,
            status,
            attempts: progress.attempts,
        }
    }

    /// Whether its status can still change.
    fn is_waiting(&self) -> bool {
        self.status == "pending" || self.status == "retrying"
    }
}

/// A page of the feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedPage {
    /// Oldest first.
    events: Vec<FeedItem>,
    /// The newest `seq` seen: pass it as `after` to continue.
    next: i64,
}

/// The `seq` of the newest stored event (0 when there is none).
async fn newest_seq(store: &SharedStore) -> Result<i64, ApiError> {
    let filter = EventFilter { limit: 1, ..EventFilter::default() };
    Ok(store.events(filter).await?.first().map_or(0, |e| e.seq))
}

/// Newly stored events and their processing status: Server-Sent Events with
/// `Accept: text/event-stream`, else one JSON page.
#[utoipa::path(
    get,
    path = "/live/events",
    tag = "live",
    params(FeedQuery),
    responses((
        status = 200,
        description = "A JSON page of events after `after`; with `Accept: text/event-stream`, a \
            stream of `event: event` messages whose data is a FeedItem",
        content(
            (FeedPage = "application/json"),
            (String = "text/event-stream")
        )
    ))
)]
async fn events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: super::QueryResult<FeedQuery>,
) -> Result<Response, ApiError> {
    let query = super::query(query)?;
    let limit = super::limit(query.limit, 100, 1000)?;
    let after = match query.after {
        Some(after) if after < 0 => {
            return Err(ApiError::bad_request("invalid_query", "`after` must be 0 or more"));
        }
        Some(after) => after,
        None => (newest_seq(&state.store).await? - BACKFILL).max(0),
    };
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        let events: Vec<FeedItem> =
            state.store.progress(after, limit).await?.into_iter().map(FeedItem::of).collect();
        let next = events.last().map_or(after, |e| e.seq);
        return Ok(Json(FeedPage { events, next }).into_response());
    }
    let tail = Tail {
        store: state.store.clone(),
        closing: state.live.closing.clone(),
        last: after,
        watched: BTreeMap::new(),
        quiet_since: tokio::time::Instant::now(),
    };
    let stream = futures::stream::unfold(tail, |mut tail| async move {
        let chunk = tail.next_chunk().await?;
        Some((Ok::<Bytes, Infallible>(chunk), tail))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One live stream's position: the newest event sent and the sent ones still waiting for an
/// outcome.
struct Tail {
    /// Where events are read.
    store: SharedStore,
    /// Cancelled at shutdown: the stream ends.
    closing: CancellationToken,
    /// The newest `seq` sent.
    last: i64,
    /// Sent events whose status may still change, by `seq`.
    watched: BTreeMap<i64, FeedItem>,
    /// When the stream last sent anything (for keep-alives).
    quiet_since: tokio::time::Instant,
}

/// One SSE message.
fn message(kind: &str, data: &impl Serialize) -> String {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_string());
    format!("event: {kind}\ndata: {json}\n\n")
}

impl Tail {
    /// Waits until there is something to send; `None` when the stream should end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            let text = match self.look().await {
                Ok(text) => text,
                Err(error) => message("error", &serde_json::json!({"reason": error.reason})),
            };
            if !text.is_empty() {
                self.quiet_since = tokio::time::Instant::now();
                return Some(Bytes::from(text));
            }
            if self.quiet_since.elapsed() >= KEEP_ALIVE {
                self.quiet_since = tokio::time::Instant::now();
                return Some(Bytes::from_static(b": keep-alive\n\n"));
            }
            tokio::select! {
                _ = self.closing.cancelled() => return None,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Reads new events and the watched ones' progress; returns the messages to send.
    async fn look(&mut self) -> Result<String, ApiError> {
        if self.closing.is_cancelled() {
            return Ok(String::new());
        }
        let mut out = String::new();
        let newest = newest_seq(&self.store).await?;
        // A position past the newest event (a client that saw another store) starts from now.
        self.last = self.last.min(newest);
        if newest - self.last > MAX_BEHIND {
            let skipped = newest - BACKFILL - self.last;
            out.push_str(&message("gap", &serde_json::json!({ "skipped": skipped })));
            self.last = newest - BACKFILL;
        }
        // Outcomes of events too far behind are no longer followed (the page would not reach them).
        self.watched.retain(|seq, _| *seq > self.last - i64::from(PAGE) / 2);
        while self.watched.len() > MAX_WATCHED {
            self.watched.pop_first();
        }
        let from = self.watched.keys().next().map_or(self.last, |first| (first - 1).min(self.last));
        for progress in self.store.progress(from, PAGE).await? {
            let item = FeedItem::of(progress);
            let seq = item.seq;
            if seq > self.last {
                self.last = seq;
                out.push_str(&message("event", &item));
                if item.is_waiting() {
                    self.watched.insert(seq, item);
                }
            } else if let Some(before) = self.watched.get(&seq) {
                if *before != item {
                    out.push_str(&message("event", &item));
                }
                if item.is_waiting() {
                    self.watched.insert(seq, item);
                } else {
                    self.watched.remove(&seq);
                }
            }
        }
        Ok(out)
    }
}
