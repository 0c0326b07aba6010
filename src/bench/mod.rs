//! `tradehook bench`: a load generator of unique, signed webhook events, and the limit server it
//! is compared with.
//!
//! Every request carries a new event id, so a de-duplicating receiver stores each one and the
//! figures are those of real ingest, not of the duplicate fast path. Latency goes into HDR
//! histograms (1 µs to 60 s, 3 significant figures), one per connection, merged at the end.
//!
//! The client usually shares the machine with the server under test, so it is built to cost
//! little: one reused body buffer per connection, the timestamp rendered once a second, header
//! names parsed once, and connections grouped on one single-threaded runtime per core, so a
//! request, its connection driver and its answer never change thread.
//!
//! Measured against the limit server on a 2-core machine (32 connections, 10 s): one client
//! thread per core and the caller's multi-thread runtime gave the same throughput within noise
//! (about 71k/s); a single client thread gave about 8% less, because the client then saturates its
//! one core. Dedicated threads are kept so the result does not depend on how the caller built its
//! runtime (a current-thread `main` would otherwise make the client single-threaded).

mod connection;
pub mod deliveries;
pub mod event;
pub mod limit;
pub mod plot;
mod report;
pub mod target;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::time::Instant;

pub use report::BenchReport;

use connection::{Plan, Stop, Tally};
use target::Target;

use crate::ingest::signature::{self, Scheme, SignContext};

/// How long a run lasts when neither a duration nor a count is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Environment variable that overrides how many client threads drive the connections; `0` runs
/// them as tasks on the caller's runtime instead.
pub const CLIENT_THREADS_ENV: &str = "TRADEHOOK_BENCH_CLIENT_THREADS";

/// What to send, how hard and for how long.
#[derive(Clone)]
pub struct BenchOptions {
    /// Where to send, e.g. `http://127.0.0.1:8080/webhook` (plain HTTP only).
    pub url: String,
    /// The signing secret.
    pub secret: String,
    /// How to sign each request.
    pub scheme: Scheme,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Run this long after the warmup …
    pub duration: Option<Duration>,
    /// … or until this many requests are sent (warmup included); the first limit reached wins.
    pub count: Option<u64>,
    /// Cap on total requests per second, paced per connection (open loop).
    pub rate: Option<u64>,
    /// Requests scheduled in this first period are sent but not measured.
    pub warmup: Duration,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Approximate body size in bytes (events are padded up to it).
    pub body_size: usize,
}

impl std::fmt::Debug for BenchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Options end up in logs and panic messages; the secret must not.
        f.debug_struct("BenchOptions")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("scheme", &self.scheme)
            .field("connections", &self.connections)
            .field("duration", &self.duration)
            .field("count", &self.count)
            .field("rate", &self.rate)
            .field("warmup", &self.warmup)
            .field("progress", &self.progress)
            .field("body_size", &self.body_size)
            .finish()
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            url: "http://127.0.0.1:8080/webhook".into(),
            secret: String::new(),
            scheme: Scheme::HmacSha256,
            connections: 32,
            duration: None,
            count: None,
            rate: None,
            warmup: Duration::from_secs(1),
            progress: true,
            body_size: 300,
        }
    }
}

/// Runs one benchmark and reports what it measured.
///
/// With a duration the run lasts `warmup + duration`; with a count it ends after `count`
/// requests, warmup included. Ok responses and errors are counted over the whole run; throughput
/// and latency only after the warmup (or over the whole run if it ended inside the warmup).
pub async fn run(options: BenchOptions) -> anyhow::Result<BenchReport> {
    let plan = Arc::new(plan(&options).await?);
    let progress = options.progress.then(|| progress::show(Arc::clone(&plan), options.count));

    let tally = drive_all(Arc::clone(&plan), options.connections).await?;
    let end = Instant::now();
    if let Some(progress) = progress {
        progress.finish().await;
    }

    let elapsed = end.duration_since(plan.start);
    let window = end.saturating_duration_since(plan.measure_from);
    let (throughput, latency) = if tally.ok_measured > 0 && !window.is_zero() {
        (tally.ok_measured as f64 / window.as_secs_f64(), &tally.measured)
    } else {
        // The run ended inside its warmup (a small count): measure what there is.
        (tally.ok as f64 / elapsed.as_secs_f64().max(f64::EPSILON), &tally.warmup)
    };
    Ok(BenchReport::new(tally.sent, tally.ok, tally.errors.clone(), elapsed, throughput, latency))
}

/// Checks the options and fixes the schedule of a run.
async fn plan(options: &BenchOptions) -> anyhow::Result<Plan> {
    if options.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if options.rate == Some(0) {
        bail!("--rate must be at least 1 request per second");
    }
    let target = Target::resolve(&options.url).await?;
    // Fail once, clearly, rather than counting every request as a signing error.
    let probe =
        SignContext { timestamp: event::unix_now(), message_id: "bench-probe".into(), token_field: None };
    signature::sign(options.scheme, &options.secret, b"{}", &probe)
        .with_context(|| format!("cannot sign requests with the {} scheme", options.scheme))?;

    let start = Instant::now();
    let measure_from = start + options.warmup;
    let duration = match (options.duration, options.count) {
        (None, None) => Some(DEFAULT_DURATION),
        (duration, _) => duration,
    };
    let stop = Stop { deadline: duration.map(|duration| measure_from + duration), count: options.count };
    let period = options.rate.map(|rate| Duration::from_secs_f64(options.connections as f64 / rate as f64));
    Ok(Plan {
        target,
        secret: options.secret.clone(),
        scheme: options.scheme,
        nonce: event::run_nonce(),
        body_size: options.body_size,
        start,
        measure_from,
        stop,
        period,
        connections: options.connections,
        issued: AtomicU64::new(0),
        finished: AtomicU64::new(0),
    })
}

/// Runs every connection to the end and merges what they saw.
async fn drive_all(plan: Arc<Plan>, connections: usize) -> anyhow::Result<Tally> {
    let threads = client_threads().min(connections);
    if threads == 0 {
        return drive_here(plan, 0..connections).await;
    }
    let mut results = Vec::with_capacity(threads);
    for thread in 0..threads {
        let (done, result) = tokio::sync::oneshot::channel();
        let plan = Arc::clone(&plan);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a client runtime")?;
        std::thread::Builder::new()
            .name(format!("bench-client-{thread}"))
            .spawn(move || {
                let tally = runtime.block_on(drive_here(plan, (thread..connections).step_by(threads)));
                let _ = done.send(tally);
            })
            .context("cannot start a client thread")?;
        results.push(result);
    }
    let mut total = Tally::new();
    for result in results {
        total.merge(result.await.context("a client thread panicked")??);
    }
    Ok(total)
}

/// Runs connections `indices` as tasks on the current runtime.
async fn drive_here(plan: Arc<Plan>, indices: impl Iterator<Item = usize>) -> anyhow::Result<Tally> {
    let tasks: Vec<_> =
        indices.map(|index| tokio::spawn(connection::drive(Arc::clone(&plan), index))).collect();
    let mut total = Tally::new();
    for task in tasks {
        total.merge(task.await.context("a client connection panicked")?);
    }
    Ok(total)
}

/// The client threads to use: one per core unless [`CLIENT_THREADS_ENV`] says otherwise.
fn client_threads() -> usize {
    std::env::var(CLIENT_THREADS_ENV)
        .ok()
        .and_then(|threads| threads.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |cores| cores.get()))
}

mod progress {
    //! The progress bar: requests done and the current rate, redrawn a few times a second.

    use super::*;
    use indicatif::{ProgressBar, ProgressStyle};

    /// How often the bar is redrawn and the rate recomputed.
    const TICK: Duration = Duration::from_millis(250);

    /// A progress bar fed by a background task.
    pub struct Progress {
        /// The bar, finished at the end of the run.
        bar: ProgressBar,
        /// The task that updates it.
        task: tokio::task::JoinHandle<()>,
    }

    /// Starts a bar over `count` requests, or over the run's time when it has a deadline.
    pub fn show(plan: Arc<Plan>, count: Option<u64>) -> Progress {
        let deadline = plan.stop.deadline.filter(|_| count.is_none());
        let bar = match deadline {
            Some(deadline) => ProgressBar::new(deadline.duration_since(plan.start).as_millis() as u64),
            None => ProgressBar::new(count.unwrap_or(0)),
        };
        let template = if deadline.is_some() {
            "{elapsed_precise} [{bar:40}] {msg}"
        } else {
            "{elapsed_precise} [{bar:40}] {pos}/{len} {msg}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let task = tokio::spawn(update(bar.clone(), plan, deadline.is_some()));
        Progress { bar, task }
    }

    /// Redraws `bar` every tick with the requests done and the rate since the last tick.
    async fn update(bar: ProgressBar, plan: Arc<Plan>, timed: bool) {
        let mut ticker = tokio::time::interval(TICK);
        let mut last = (Instant::now(), 0u64);
        loop {
            ticker.tick().await;
            let now = Instant::now();
            let done = plan.finished.load(Ordering::Relaxed);
            let rate = done.saturating_sub(last.1) as f64
                / now.duration_since(last.0).as_secs_f64().max(f64::EPSILON);
            last = (now, done);
            let phase = if now < plan.measure_from { " (warmup)" } else { "" };
            if timed {
                bar.set_position(now.duration_since(plan.start).as_millis() as u64);
                bar.set_message(format!("{done} requests, {rate:.0}/s{phase}"));
            } else {
                bar.set_position(done);
                bar.set_message(format!("{rate:.0}/s{phase}"));
            }
        }
    }

    impl Progress {
        /// Stops updating and leaves the final state on screen.
        pub async fn finish(self) {
            self.task.abort();
            let _ = self.task.await;
            self.bar.finish();
        }
    }
}

#[cfg(test)]
mod tests;
