//! A real local HTTP receiver for delivery tests: records every request and answers by a script
//! the test can change while it runs.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// How the receiver answers the next requests.
#[derive(Debug, Clone)]
pub enum Script {
    /// 200 `{"status":"success"}`.
    Ok,
    /// This status for the next `n` requests, then 200.
    FailTimes(u16, usize),
    /// This status always.
    Always(u16),
    /// 429 with `Retry-After: <seconds>` once, then 200.
    RetryAfterOnce(u64),
    /// 302 to this URL always.
    Redirect(String),
    /// These answers in turn, starting at the index, over and over: (status, milliseconds to
    /// wait before answering — longer than `[delivery] timeout` makes the attempt time out).
    Cycle(Vec<(u16, u64)>, usize),
    /// This status with this raw body, always.
    Body(u16, Bytes),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
    /// What was answered.
    pub status: u16,
    /// How long the receiver waited before answering.
    pub slept: Duration,
}

#[derive(Default)]
struct Inner {
    script: Option<Script>,
    received: Vec<Received>,
}

/// The receiver; dropped with the test (its task ends with the runtime).
#[derive(Clone)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Starts one on 127.0.0.1 with `script`.
    pub async fn start(script: Script) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner { script: Some(script), received: Vec::new() }));
        let app = Router::new().fallback(answer).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, inner }
    }

    /// `http://addr/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Changes how it answers from now on.
    pub fn set(&self, script: Script) {
        self.inner.lock().unwrap().script = Some(script);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Requests answered 2xx so far.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.status)).collect()
    }
}

async fn answer(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: Bytes) -> Response {
    let (status, extra, slept, answer_body) = {
        let mut inner = inner.lock().unwrap();
        let script = inner.script.clone().unwrap_or(Script::Ok);
        let mut slept = Duration::ZERO;
        let mut answer_body = Bytes::from_static(br#"{"status":"success"}"#);
        let (status, next, extra): (u16, Option<Script>, Option<(&str, String)>) = match script {
            Script::Ok => (200, None, None),
            Script::Body(status, body) => {
                answer_body = body;
                (status, None, None)
            }
            Script::FailTimes(status, n) if n > 0 => (status, Some(Script::FailTimes(status, n - 1)), None),
            Script::FailTimes(..) => (200, None, None),
            Script::Always(status) => (status, None, None),
            Script::RetryAfterOnce(seconds) => {
                (429, Some(Script::Ok), Some(("retry-after", seconds.to_string())))
            }
            Script::Redirect(to) => (302, None, Some(("location", to))),
            Script::Cycle(steps, at) => {
                let (status, wait) = steps[at % steps.len()];
                slept = Duration::from_millis(wait);
                let next = (at + 1) % steps.len();
                (status, Some(Script::Cycle(steps, next)), None)
            }
        };
        if let Some(next) = next {
            inner.script = Some(next);
        }
        inner.received.push(Received { headers, body, at: Instant::now(), status, slept });
        (status, extra, slept, answer_body)
    };
    if !slept.is_zero() {
        tokio::time::sleep(slept).await;
    }
    let mut response = (StatusCode::from_u16(status).unwrap(), answer_body).into_response();
    if let Some((name, value)) = extra {
        response.headers_mut().insert(name, HeaderValue::from_str(&value).unwrap());
    }
    response
}
