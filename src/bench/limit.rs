//! The limit server: the least work any webhook receiver must do, and so the most requests per
//! second any receiver could answer on this machine.
//!
//! It speaks bare hyper HTTP/1.1 (keep-alive), reads the whole body, checks the seed-001
//! `X-Webhook-Signature` (hex HMAC-SHA256 of the raw body, constant-time) and answers with a
//! counter id; `GET /healthz` answers 200, like tradehook's. It stores nothing: `bench/run.sh`
//! divides tradehook's figures by this server's to show what durability and processing cost.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::net::TcpListener;

/// The signature header of seed 001.
const SIGNATURE_HEADER: &str = "x-webhook-signature";

/// State shared by every connection of one limit server.
struct Limit {
    /// The HMAC keyed once with the secret; cloning it per request skips the key schedule.
    keyed: Hmac<Sha256>,
    /// Source of the ids handed back in accepted answers.
    next_id: AtomicU64,
}

/// Accepts connections on `listener` forever, answering webhooks signed with `secret`.
///
/// Returns only if accepting fails for good; the caller ends it by dropping the future (the
/// binary does so on SIGINT/SIGTERM, tests by aborting the task).
pub async fn serve_limit(listener: TcpListener, secret: String) -> std::io::Result<()> {
    let keyed = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| std::io::Error::other("HMAC rejected the secret"))?;
    let limit = Arc::new(Limit { keyed, next_id: AtomicU64::new(1) });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) if is_transient_accept_error(&error) => {
                // Out of file descriptors or a client that reset before accept: pause, not die.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        // Answers are tiny; Nagle would hold each one back waiting for the client's ACK.
        let _ = stream.set_nodelay(true);
        let limit = Arc::clone(&limit);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let limit = Arc::clone(&limit);
                async move { Ok::<_, Infallible>(limit.answer(request).await) }
            });
            // A client that disconnects mid-request is normal under load; nothing to report.
            let _ =
                http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

impl Limit {
    /// Answers one request: 200 with an id when the signature matches, else 401.
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        // Same liveness probe as tradehook, so scripts can wait for either server the same way.
        if request.method() == Method::GET && request.uri().path() == "/healthz" {
            return json(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}"));
        }
        if request.method() != Method::POST {
            return json(StatusCode::METHOD_NOT_ALLOWED, Bytes::from_static(b"{\"error\":\"use POST\"}"));
        }
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    Bytes::from_static(b"{\"error\":\"body not received\"}"),
                )
            }
        };
        if !self.signature_matches(parts.headers.get(SIGNATURE_HEADER), &body) {
            return json(StatusCode::UNAUTHORIZED, Bytes::from_static(b"{\"error\":\"invalid signature\"}"));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        json(StatusCode::OK, Bytes::from(format!("{{\"status\":\"accepted\",\"id\":\"{id}\"}}")))
    }

    /// Whether `header` is the hex HMAC-SHA256 of `body` (a `sha256=` prefix is allowed).
    fn signature_matches(&self, header: Option<&http::HeaderValue>, body: &[u8]) -> bool {
        let Some(value) = header else { return false };
        let value = value.as_bytes();
        let hex_sig = value.strip_prefix(b"sha256=").unwrap_or(value);
        let mut expected = [0u8; 32];
        if hex::decode_to_slice(hex_sig, &mut expected).is_err() {
            return false;
        }
        let mut mac = self.keyed.clone();
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    }
}

/// A JSON response with `status` and `body`.
fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

/// Accept errors that concern one connection or a passing shortage, not the listener.
fn is_transient_accept_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(error.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock)
        || error.raw_os_error() == Some(24) // EMFILE: too many open files
        || error.raw_os_error() == Some(23) // ENFILE
}
