//! The accept loop: plain HTTP or TLS, HTTP/1.1 and HTTP/2, with bounded connections and header
//! deadlines, and a graceful drain.
//!
//! What it guarantees:
//! - At most `server.max_connections` connections are open at once. Beyond that, new connections
//!   are not accepted: they wait in the kernel's listen backlog (and the kernel refuses them when
//!   that is full) until a connection closes. Waiting rather than closing means a burst slows
//!   senders down instead of failing their webhooks.
//! - A new connection must finish its TLS handshake and send its first request's headers within
//!   `server.header_timeout`, else it is closed; on HTTP/1.1 every later request's headers, and
//!   the idle time before them, have the same limit (hyper's header read timeout). Silent or
//!   slow clients (slowloris) therefore hold a slot for a bounded time.
//! - TLS offers ALPN `h2` and `http/1.1`; plain connections speak HTTP/1.1 or HTTP/2 with prior
//!   knowledge. Every request carries `ConnectInfo<SocketAddr>` for the ingest guards.
//! - On shutdown nothing new is accepted, in-flight requests finish, idle connections close, and
//!   [`serve`] returns once the last connection has ended.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::ServerConfig;
use crate::tls::ServerCertificate;

/// Serves `app` on `listener` until `shutdown`, then drains. With `[server.tls]` the connections
/// are TLS and SIGHUP reloads the certificate; without, SIGHUP changes nothing.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ServerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let certificate = match &config.tls {
        Some(files) => Some(Arc::new(
            ServerCertificate::load(files).map_err(|e| anyhow::anyhow!("`{}`: {e}", e.config_key()))?,
        )),
        None => None,
    };
    crate::tls::reload_on_hangup(certificate.clone(), shutdown.clone())
        .map_err(|e| anyhow::anyhow!("cannot handle SIGHUP: {e}"))?;
    let tls = match certificate {
        Some(certificate) => Some(TlsAcceptor::from(crate::tls::server_config(certificate)?)),
        None => None,
    };
    let slots = u32::try_from(config.max_connections)
        .map_err(|_| anyhow::anyhow!("`server.max_connections`: too large"))?;
    let connections = Arc::new(Semaphore::new(slots as usize));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(config.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let connection =
        Connection { builder, app, header_timeout: config.header_timeout, stop: shutdown.clone() };
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = connections.clone().acquire_owned() => slot?,
        };
        let (tcp, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = accept(&listener) => accepted,
        };
        let connection = connection.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            connection.run(tcp, remote, tls).await;
        });
    }
    drop(listener);
    // Every open connection holds a slot: all slots free means all connections have ended.
    let _drained = connections.acquire_many(slots).await?;
    Ok(())
}

/// The next connection; errors of one connection are skipped, others (out of file descriptors)
/// are logged and retried after a pause.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((tcp, remote)) => {
                // Answers are small and written once: do not let Nagle hold one back for the client's ACK.
                let _ = tcp.set_nodelay(true);
                return (tcp, remote);
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(error) => {
                tracing::error!(%error, "cannot accept connections; retrying in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// What every connection task needs.
#[derive(Clone)]
struct Connection {
    /// HTTP/1.1 and HTTP/2 settings, with the header read timeout.
    builder: auto::Builder<TokioExecutor>,
    /// The router.
    app: Router,
    /// Deadline for the handshake and the first request's headers.
    header_timeout: std::time::Duration,
    /// Cancelled at shutdown: finish the current request, then close.
    stop: CancellationToken,
}

impl Connection {
    /// Handshakes (TLS) and serves one connection until it ends.
    async fn run(self, tcp: TcpStream, remote: SocketAddr, tls: Option<TlsAcceptor>) {
        let first_request_by = Instant::now() + self.header_timeout;
        match tls {
            None => self.serve(TokioIo::new(tcp), remote, first_request_by).await,
            Some(acceptor) => match tokio::time::timeout_at(first_request_by, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => self.serve(TokioIo::new(stream), remote, first_request_by).await,
                Ok(Err(error)) => tracing::debug!(%remote, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake not finished within server.header_timeout"),
            },
        }
    }

    /// Serves HTTP on an established stream; closes it when no request arrived by
    /// `first_request_by`, drains it gracefully on shutdown.
    async fn serve<I>(self, io: TokioIo<I>, remote: SocketAddr, first_request_by: Instant)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let requested = Arc::new(AtomicBool::new(false));
        let service = RequestService { app: self.app, remote, requested: requested.clone() };
        let connection = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(connection);
        // HTTP/2 and the wait for the protocol preface are not covered by hyper's HTTP/1.1
        // header timeout: this deadline is.
        let silent = async {
            tokio::time::sleep_until(first_request_by).await;
            if requested.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(silent);
        let mut draining = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%remote, %error, "connection ended with an error");
                    }
                    return;
                }
                () = &mut silent => {
                    tracing::debug!(%remote, "closed a connection that sent no request within server.header_timeout");
                    return;
                }
                () = self.stop.cancelled(), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The router as hyper's service for one connection: adds the client address, marks that a
/// request arrived.
#[derive(Clone)]
struct RequestService {
    /// The router.
    app: Router,
    /// The client of this connection.
    remote: SocketAddr,
    /// Set by the first request.
    requested: Arc<AtomicBool>,
}

impl hyper::service::Service<http::Request<Incoming>> for RequestService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = tower::util::Oneshot<Router, http::Request<Body>>;

    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        self.requested.store(true, Ordering::Relaxed);
        request.extensions_mut().insert(ConnectInfo(self.remote));
        self.app.clone().oneshot(request.map(Body::new))
    }
}
