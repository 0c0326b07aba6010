//! One client connection of a bench run: a keep-alive HTTP/1.1 connection that sends signed
//! events one after another and records how long each answer took.
//!
//! Closed loop by default (the next request leaves when the answer to the last arrives). With a
//! rate, each connection follows its own schedule and latency counts from the *scheduled* send
//! time, so a server that stalls is charged for the requests that queued behind the stall
//! (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, MissedTickBehavior};

use super::event::{unix_now, EventWriter};
use super::target::Target;
use crate::ingest::signature::{self, Scheme, SignContext};

/// How long one request may take before it counts as `"timeout"` and the connection is replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before reconnecting, so a server that is down is not hammered with connects.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// When a run stops issuing requests: at whichever limit comes first.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    /// No request is scheduled at or after this instant.
    pub deadline: Option<Instant>,
    /// This many requests in total, across connections.
    pub count: Option<u64>,
}

/// What every connection of a run shares (no `Debug`: it holds the secret).
pub struct Plan {
    /// Where to send.
    pub target: Target,
    /// Signing secret.
    pub secret: String,
    /// Signing scheme.
    pub scheme: Scheme,
    /// Random per run, part of every event id.
    pub nonce: String,
    /// Approximate body size in bytes.
    pub body_size: usize,
    /// When the run started.
    pub start: Instant,
    /// Requests scheduled from here on are measured; earlier ones are warmup.
    pub measure_from: Instant,
    /// When to stop.
    pub stop: Stop,
    /// Time between two requests of one connection, when the rate is capped.
    pub period: Option<Duration>,
    /// Number of connections, to stagger paced connections over one period.
    pub connections: usize,
    /// Requests issued so far, across connections (count mode takes its slots here).
    pub issued: AtomicU64,
    /// Requests finished so far, across connections, for the progress bar.
    pub finished: AtomicU64,
}

impl Plan {
    /// Claims the right to send one more request scheduled at `scheduled`.
    fn take_slot(&self, scheduled: Instant) -> bool {
        if self.stop.deadline.is_some_and(|deadline| scheduled >= deadline) {
            return false;
        }
        match self.stop.count {
            Some(count) => self.issued.fetch_add(1, Ordering::Relaxed) < count,
            None => true,
        }
    }
}

/// What one connection saw.
#[derive(Debug)]
pub struct Tally {
    /// Requests attempted.
    pub sent: u64,
    /// Ok answers, warmup included.
    pub ok: u64,
    /// Ok answers to requests scheduled after the warmup.
    pub ok_measured: u64,
    /// Failures by status or kind.
    pub errors: BTreeMap<String, u64>,
    /// Latency of measured ok answers, µs.
    pub measured: Histogram<u64>,
    /// Latency of warmup ok answers, µs; used only when a run ends inside its warmup.
    pub warmup: Histogram<u64>,
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Self {
        Tally {
            sent: 0,
            ok: 0,
            ok_measured: 0,
            errors: BTreeMap::new(),
            measured: latency_histogram(),
            warmup: latency_histogram(),
        }
    }

    /// Counts one failure of `kind`; allocates only the first time a kind is seen.
    fn error(&mut self, kind: &str) {
        match self.errors.get_mut(kind) {
            Some(count) => *count += 1,
            None => {
                self.errors.insert(kind.to_owned(), 1);
            }
        }
    }

    /// Adds `other` into this tally.
    pub fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.ok_measured += other.ok_measured;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        // Both histograms share bounds, so adding cannot fail; saturate rather than panic anyway.
        let _ = self.measured.add(&other.measured);
        let _ = self.warmup.add(&other.warmup);
    }
}

/// A histogram of 1 µs to 60 s at 3 significant figures.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

/// How one exchange ended.
enum Outcome {
    /// 2xx and the body says accepted or duplicate.
    Ok,
    /// Anything else the server answered, by name.
    Rejected(&'static str),
    /// Non-2xx status, by code.
    Status(http::StatusCode),
    /// The connection failed or timed out: replace it.
    Broken(&'static str),
}

/// The part of an ingest answer that says whether the event was taken.
#[derive(serde::Deserialize)]
struct Ack<'a> {
    /// `accepted` or `duplicate` on success.
    #[serde(borrow)]
    status: &'a str,
}

/// Sends requests on connection number `index` until the plan says stop.
pub async fn drive(plan: Arc<Plan>, index: usize) -> Tally {
    let mut tally = Tally::new();
    let mut events = EventWriter::new(&plan.nonce, index, plan.body_size);
    let mut names = HeaderNames::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut pacer = plan.period.map(|period| {
        // Stagger connections over one period so paced requests do not leave in bursts.
        let offset = period.mul_f64(index as f64 / plan.connections.max(1) as f64);
        let mut pacer = tokio::time::interval_at(plan.start + offset, period);
        // Catch up after a stall: the requests were due, and their latency says how late.
        pacer.set_missed_tick_behavior(MissedTickBehavior::Burst);
        pacer
    });
    let mut n: u64 = 0;
    loop {
        let scheduled = match pacer.as_mut() {
            Some(pacer) => pacer.tick().await,
            None => Instant::now(),
        };
        if !plan.take_slot(scheduled) {
            break;
        }
        tally.sent += 1;
        let ready = match sender.as_mut() {
            Some(ready) => ready,
            None => match connect(&plan.target).await {
                Ok(fresh) => sender.insert(fresh),
                Err(_) => {
                    tally.error("connect");
                    plan.finished.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        let request = match build_request(&plan, &mut events, &mut names, n) {
            Some(request) => request,
            None => {
                tally.error("sign");
                plan.finished.fetch_add(1, Ordering::Relaxed);
                n += 1;
                continue;
            }
        };
        n += 1;
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, exchange(ready, request)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Broken("timeout"),
        };
        let answered = Instant::now();
        plan.finished.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Ok => {
                tally.ok += 1;
                let micros = answered.saturating_duration_since(scheduled).as_micros() as u64;
                if scheduled >= plan.measure_from {
                    tally.ok_measured += 1;
                    tally.measured.saturating_record(micros.max(1));
                } else {
                    tally.warmup.saturating_record(micros.max(1));
                }
            }
            Outcome::Rejected(kind) => tally.error(kind),
            Outcome::Status(status) => tally.error(status.as_str()),
            Outcome::Broken(kind) => {
                tally.error(kind);
                // A half-finished exchange leaves the connection unusable; start a new one.
                sender = None;
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
    tally
}

/// Opens one keep-alive HTTP/1.1 connection; its driver runs as a task on the current runtime.
async fn connect(target: &Target) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(target.addr).await?;
    // Requests are small and sent whole; Nagle would delay each behind the previous ACK.
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; errors surface on the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Writes, signs and wraps event `n`; `None` when the scheme cannot sign with this secret.
fn build_request(
    plan: &Plan,
    events: &mut EventWriter,
    names: &mut HeaderNames,
    n: u64,
) -> Option<Request<Full<Bytes>>> {
    let now = unix_now();
    let context = SignContext { timestamp: now, message_id: events.event_id(n), token_field: None };
    let signed = signature::sign(plan.scheme, &plan.secret, events.write(n, now), &context).ok()?;
    let mut request = Request::new(Full::new(Bytes::from(signed.body)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = plan.target.uri(signed.query.as_deref()).ok()?;
    let headers = request.headers_mut();
    headers.insert(HOST, plan.target.authority.clone());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in signed.headers {
        headers.insert(names.get(&name)?, HeaderValue::try_from(value).ok()?);
    }
    Some(request)
}

/// Sends one request and reads the whole answer.
async fn exchange(sender: &mut SendRequest<Full<Bytes>>, request: Request<Full<Bytes>>) -> Outcome {
    if sender.ready().await.is_err() {
        return Outcome::Broken("io");
    }
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(_) => return Outcome::Broken("io"),
    };
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Outcome::Broken("io"),
    };
    if !status.is_success() {
        return Outcome::Status(status);
    }
    match serde_json::from_slice::<Ack<'_>>(&body) {
        Ok(ack) if ack.status == "accepted" || ack.status == "duplicate" => Outcome::Ok,
        _ => Outcome::Rejected("unexpected-body"),
    }
}

/// Header names a scheme signs with, parsed once per connection instead of once per request.
#[derive(Debug, Default)]
struct HeaderNames {
    /// Names seen so far, as the scheme spelled them and parsed.
    known: Vec<(String, HeaderName)>,
}

impl HeaderNames {
    /// The parsed form of `name`; `None` if it is not a valid header name.
    fn get(&mut self, name: &str) -> Option<HeaderName> {
        if let Some((_, parsed)) = self.known.iter().find(|(known, _)| known == name) {
            return Some(parsed.clone());
        }
        let parsed = HeaderName::from_bytes(name.as_bytes()).ok()?;
        self.known.push((name.to_owned(), parsed.clone()));
        Some(parsed)
    }
}
