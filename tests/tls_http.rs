//! HTTPS: `tradehook serve` with `[server.tls]` answers over HTTP/1.1 and HTTP/2, `tradehook send
//! --cacert` reaches it, and SIGHUP swaps the certificate for new connections while open ones go
//! on. Certificates are generated here (rcgen, self-signed); the server is a child process so the
//! real signal path is tested.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{order_event, ServerProcess, SECRET};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tradehook::ingest::signature::{self, Scheme, SignContext};

/// A self-signed certificate for localhost and 127.0.0.1, and its key.
struct Pair {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

fn new_pair() -> Pair {
    let pair =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    Pair {
        cert_pem: pair.cert.pem(),
        key_pem: pair.signing_key.serialize_pem(),
        der: pair.cert.der().to_vec(),
    }
}

/// A self-signed certificate marked CA:TRUE, as `openssl req -x509` (OpenSSL 3) makes them.
fn new_ca_pair() -> Pair {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Pair { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() }
}

/// `tradehook send order.created` to `url`, trusting `cacert` when given.
fn send(url: &str, cacert: Option<&Path>) -> std::process::Output {
    let client_dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(common::binary());
    command.current_dir(client_dir.path()).env("TRADEHOOK_SECRET", SECRET).args([
        "send",
        "order.created",
        "--url",
        url,
    ]);
    if let Some(cacert) = cacert {
        command.arg("--cacert").arg(cacert);
    }
    command.output().unwrap()
}

/// Writes `pair` as `dir/cert.pem` and `dir/key.pem`, each replaced whole (rename), as a
/// certificate renewal tool would.
fn install(dir: &Path, pair: &Pair) -> (PathBuf, PathBuf) {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        let fresh = dir.join(format!("{name}.new"));
        std::fs::write(&fresh, text).unwrap();
        std::fs::rename(&fresh, &path).unwrap();
        path
    };
    (write("key.pem", &pair.key_pem), write("cert.pem", &pair.cert_pem))
}

/// `tradehook serve` with TLS from `dir/cert.pem` and `dir/key.pem`.
fn start_tls(dir: &Path, extra: &[(&str, &str)]) -> ServerProcess {
    let cert = dir.join("cert.pem").display().to_string();
    let key = dir.join("key.pem").display().to_string();
    let mut env =
        vec![("TRADEHOOK_SERVER__TLS__CERT", cert.as_str()), ("TRADEHOOK_SERVER__TLS__KEY", key.as_str())];
    env.extend_from_slice(extra);
    ServerProcess::start_with_env(dir, &env)
}

/// A reqwest client that trusts only `pair`.
fn client_trusting(pair: &Pair, http1_only: bool) -> reqwest::Client {
    tradehook::tls::install_crypto_provider();
    let root = reqwest::Certificate::from_pem(pair.cert_pem.as_bytes()).unwrap();
    let builder = reqwest::Client::builder().no_proxy().tls_certs_only([root]);
    let builder = if http1_only { builder.http1_only() } else { builder };
    builder.build().unwrap()
}

/// POSTs a signed order event to `url`; returns the HTTP version, status and JSON answer.
async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    id: &str,
) -> (http::Version, u16, serde_json::Value) {
    let body = order_event(id);
    let context =
        SignContext { timestamp: chrono::Utc::now().timestamp(), message_id: id.into(), token_field: None };
    let signed = signature::sign(Scheme::HmacSha256, SECRET, body.as_bytes(), &context).unwrap();
    let mut request = client.post(url).header("content-type", "application/json").body(signed.body.clone());
    for (name, value) in &signed.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.unwrap();
    let version = response.version();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (version, status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// A rustls client configuration trusting the given certificates, offering `alpn`.
fn rustls_client(trusted: &[&Pair], alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for pair in trusted {
        roots.add(rustls::pki_types::CertificateDer::from(pair.der.clone())).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// A new TLS connection to `addr`.
async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.unwrap()
}

/// The leaf certificate a new handshake with `addr` presents.
async fn presented(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let stream = connect(addr, config).await;
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// Sends SIGHUP to the server.
fn hangup(server: &ServerProcess) {
    let status = std::process::Command::new("kill").arg("-HUP").arg(server.child.id().to_string()).status();
    assert!(status.unwrap().success());
}

/// GET `/healthz` over an HTTP/1.1 connection opened earlier.
async fn healthz(sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>) -> u16 {
    sender.ready().await.unwrap();
    let request =
        http::Request::get("/healthz").header("host", "localhost").body(Full::new(Bytes::new())).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn https_accepts_signed_webhooks_over_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let pair = new_pair();
    install(dir.path(), &pair);
    let server = start_tls(dir.path(), &[]);
    let url = format!("https://127.0.0.1:{}/webhook", server.addr.port());

    let (version, status, answer) = post_signed(&client_trusting(&pair, true), &url, "tls-h1").await;
    assert_eq!((version, status), (http::Version::HTTP_11, 200), "{answer}");
    assert_eq!(answer["status"], "accepted");

    // ALPN offers h2 first: a client that speaks it gets HTTP/2.
    let (version, status, answer) = post_signed(&client_trusting(&pair, false), &url, "tls-h2").await;
    assert_eq!((version, status), (http::Version::HTTP_2, 200), "{answer}");
    assert_eq!(answer["status"], "accepted");
}

#[test]
fn tradehook_send_with_cacert_reaches_an_https_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let pair = new_pair();
    let (_, cert) = install(dir.path(), &pair);
    let server = start_tls(dir.path(), &[]);
    let url = format!("https://127.0.0.1:{}/webhook", server.addr.port());

    let output = send(&url, Some(&cert));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("\"accepted\""), "{stdout}");

    // Without it: one line saying what is wrong and what to do, not a rustls debug struct.
    let untrusted = send(&url, None);
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("the server's certificate is not trusted: it is not signed"), "{stderr}");
    assert!(stderr.contains("pass --cacert <file>") && !stderr.contains('{'), "{stderr}");

    // A certificate the gateway does not present: the chain is checked as before, and refused.
    let other = dir.path().join("other.pem");
    std::fs::write(&other, new_ca_pair().cert_pem).unwrap();
    let refused = send(&url, Some(&other));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("other.pem holds neither it nor the CA that signed it"), "{stderr}");
}

/// OpenSSL 3's `req -x509` marks a self-signed certificate CA:TRUE, which webpki refuses as a
/// server's own (`CaUsedAsEndEntity`); given with `--cacert`, it is trusted as that very
/// certificate, as curl does.
#[test]
fn tradehook_send_with_cacert_trusts_a_self_signed_certificate_marked_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert) = install(dir.path(), &new_ca_pair());
    let server = start_tls(dir.path(), &[]);
    let url = format!("https://127.0.0.1:{}/webhook", server.addr.port());
    let output = send(&url, Some(&cert));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("200 OK") && stdout.contains("\"accepted\""), "{stdout}");
}

#[tokio::test]
async fn sighup_reloads_the_certificate_for_new_connections_and_keeps_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (new_pair(), new_pair());
    install(dir.path(), &old);
    let mut server = start_tls(dir.path(), &[]);
    let addr = server.addr;
    let either = rustls_client(&[&old, &new], b"http/1.1");

    // A connection opened before the reload.
    let stream = connect(addr, rustls_client(&[&old], b"http/1.1")).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(healthz(&mut sender).await, 200);

    // A file that is not a certificate: logged, the old certificate stays, the server runs on.
    std::fs::write(dir.path().join("cert.pem"), "renewal in progress").unwrap();
    hangup(&server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.child.try_wait().unwrap().is_none(), "SIGHUP must not stop the server");
    assert_eq!(presented(addr, either.clone()).await, old.der);

    install(dir.path(), &new);
    hangup(&server);
    let deadline = Instant::now() + Duration::from_secs(5);
    while presented(addr, either.clone()).await != new.der {
        assert!(Instant::now() < deadline, "new handshakes still present the old certificate after 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A client that trusts only the new certificate now connects and is served.
    let url = format!("https://127.0.0.1:{}/webhook", addr.port());
    let (_, status, answer) = post_signed(&client_trusting(&new, true), &url, "after-reload").await;
    assert_eq!(status, 200, "{answer}");

    // The connection from before the reload was not dropped.
    assert_eq!(healthz(&mut sender).await, 200);
    assert!(server.terminate().success());
}

#[tokio::test]
async fn silent_client_is_disconnected_before_the_tls_handshake_completes() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &new_pair());
    let server = start_tls(dir.path(), &[("TRADEHOOK_SERVER__HEADER_TIMEOUT", "1s")]);
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buffer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "connection still open: {read:?}");
    assert!(started.elapsed() >= Duration::from_millis(800), "closed too early: {:?}", started.elapsed());
}
