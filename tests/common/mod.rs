//! Test support: boot the real gateway (in-process on port 0, or as a child process) and talk
//! HTTP to it.
#![allow(dead_code)]

pub mod receiver;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;
use tradehook::config::{Config, SourceConfig};
use tradehook::ingest::signature::{self, Scheme, SignContext};
use tradehook::server::{self, AppState, Setup};

/// The admin token every test server uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The secret of the test `default` source.
pub const SECRET: &str = "test-secret";

/// A gateway running inside the test process.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory (deleted on drop).
    pub dir: tempfile::TempDir,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The PostgreSQL server the integration suite runs against instead of SQLite, from
/// `TEST_POSTGRES_URL` (a URL without a database, e.g. `postgres://postgres@127.0.0.1`).
/// `.ci/run` runs the suite twice: without it (SQLite) and with it.
pub fn postgres() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty())
}

/// The store of the test gateway kept in `dir`: an SQLite file there, or on PostgreSQL a fresh
/// database of its own, named after `dir` and this test process (so a restarted server finds
/// its data again), created on first use.
pub fn store_url(dir: &Path) -> String {
    let Some(base) = postgres() else {
        return format!("sqlite://{}", dir.join("tradehook.db").display());
    };
    use sha2::Digest;
    let digest = sha2::Sha256::digest(dir.display().to_string().as_bytes());
    let name = format!("th_t_{}_{}", std::process::id(), &hex::encode(digest)[..12]);
    create_database(&base, &name);
    format!("{}/{name}", base.trim_end_matches('/'))
}

/// Creates database `name` unless it exists (on a thread of its own: callers may be inside a
/// runtime or not).
fn create_database(base: &str, name: &str) {
    let admin = format!("{}/postgres", base.trim_end_matches('/'));
    let name = name.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("TEST_POSTGRES_URL: cannot connect to {admin}: {e}"));
            tokio::spawn(connection);
            let exists = client
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .unwrap()
                .is_some();
            if !exists {
                if let Err(error) = client.batch_execute(&format!("CREATE DATABASE {name}")).await {
                    assert_eq!(
                        error.code(),
                        Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE),
                        "{error}"
                    );
                }
            }
        });
    })
    .join()
    .unwrap();
}

/// Opens the test store kept in `dir` directly (no server), SQLite or PostgreSQL as above.
pub async fn open_store(dir: &Path) -> tradehook::store::SharedStore {
    let mut config = Config::default();
    config.store.url = store_url(dir);
    config.store.max_batch = 64;
    config.store.queue_capacity = 1024;
    server::open_store(&config).await.unwrap()
}

/// A configuration for tests: the test store in `dir` (see [`store_url`]), one `default`
/// hmac-sha256 source.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.store.url = store_url(dir);
    config.server.listen = "127.0.0.1:0".into();
    config.api.admin_token = Some(ADMIN_TOKEN.into());
    config.sources = vec![SourceConfig::new("default", Scheme::HmacSha256, vec![SECRET.into()])];
    config
}

impl TestServer {
    /// Starts a server with the default test configuration.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` changes the test configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        adjust(&mut config);
        config.validate().unwrap();
        let setup = Setup::prepare(config).unwrap();
        let store = server::open_store(&setup.config).await.unwrap();
        let state = Arc::new(AppState::new(&setup, store).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server::run(listener, state, shutdown.clone()));
        TestServer { addr, dir, shutdown, task: Some(task) }
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops it gracefully and waits.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An HTTP answer with its JSON body (or `Null`).
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as JSON, `Null` when it is not JSON.
    pub json: serde_json::Value,
    /// Raw body.
    pub text: String,
}

/// Sends one request.
pub async fn request(method: Method, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = client.request(builder.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer { status, headers, json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null), text }
}

/// GET with the admin token.
pub async fn admin_get(server: &TestServer, path: &str) -> Answer {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    request(Method::GET, &server.url(path), &[("authorization", &auth)], Vec::new()).await
}

/// POSTs `body` to `path`, signed with `scheme` and `secret`.
pub async fn post_signed(
    url: &str,
    scheme: Scheme,
    secret: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Answer {
    let context = SignContext {
        timestamp: chrono::Utc::now().timestamp(),
        message_id: format!("msg_{}", ulid::Ulid::new()),
        token_field: None,
    };
    let signed = signature::sign(scheme, secret, body, &context).unwrap();
    let url = match &signed.query {
        Some(query) => format!("{url}?{query}"),
        None => url.to_string(),
    };
    let mut headers: Vec<(&str, &str)> =
        signed.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    headers.push(("content-type", "application/json"));
    headers.extend_from_slice(extra);
    request(Method::POST, &url, &headers, signed.body.clone()).await
}

/// POSTs to the default source with the test secret.
pub async fn post_event(server: &TestServer, body: &str) -> Answer {
    post_signed(&server.url("/webhook"), Scheme::HmacSha256, SECRET, body.as_bytes(), &[]).await
}

/// A seed-001 style event with this id.
pub fn order_event(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","event":"order.updated","timestamp":"2024-01-15T10:30:01Z","data":{{"orderId":"o-{id}","status":"filled","filledQuantity":0.1,"averagePrice":49850.25}}}}"#
    )
}

/// The `tradehook` binary of this build.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tradehook"))
}

/// A `tradehook serve` child process on a port the OS picks.
pub struct ServerProcess {
    /// The child.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `tradehook serve` with its store in `dir` and waits for its banner.
    pub fn start(dir: &Path) -> ServerProcess {
        Self::start_with_env(dir, &[])
    }

    /// The same, with extra environment variables (e.g. `TRADEHOOK_WORKER__ENABLED=false`).
    pub fn start_with_env(dir: &Path, env: &[(&str, &str)]) -> ServerProcess {
        use std::io::BufRead;
        let mut child = Command::new(binary())
            .envs(env.iter().copied())
            .arg("serve")
            .env("TRADEHOOK_STORE__URL", store_url(dir))
            .env("TRADEHOOK_SERVER__LISTEN", "127.0.0.1:0")
            .env("TRADEHOOK_SECRET", SECRET)
            .env("TRADEHOOK_API__ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reader = std::io::BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        // Keep draining so the server never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let addr = first
            .split("://")
            .nth(1)
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in banner: {first:?}"));
        ServerProcess { child, addr }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill9();
        panic!("server did not stop within 10 s of SIGTERM");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the worker has processed everything stored (backlog 0), at most 20 s.
pub async fn wait_processed(addr: SocketAddr) -> serde_json::Value {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    for _ in 0..400 {
        let url = format!("http://{addr}/api/v1/status");
        let status = request(Method::GET, &url, &[("authorization", &auth)], Vec::new()).await;
        if status.json["backlog"] == 0 {
            return status.json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("backlog did not drain within 20 s");
}

/// GET `/api/v1{path}` with the admin token on a server at `addr`.
pub async fn api_get(addr: SocketAddr, path: &str) -> Answer {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    request(Method::GET, &format!("http://{addr}/api/v1{path}"), &[("authorization", &auth)], Vec::new())
        .await
}

/// POST JSON to `/api/v1{path}` with the admin token.
pub async fn api_post(addr: SocketAddr, path: &str, body: serde_json::Value) -> Answer {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    request(Method::POST, &format!("http://{addr}/api/v1{path}"), &headers, body.to_string().into_bytes())
        .await
}

/// DELETE `/api/v1{path}` with the admin token.
pub async fn api_delete(addr: SocketAddr, path: &str) -> Answer {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    request(Method::DELETE, &format!("http://{addr}/api/v1{path}"), &[("authorization", &auth)], Vec::new())
        .await
}

/// PUT JSON to `/api/v1{path}` with the admin token.
pub async fn api_put(addr: SocketAddr, path: &str, body: serde_json::Value) -> Answer {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    request(Method::PUT, &format!("http://{addr}/api/v1{path}"), &headers, body.to_string().into_bytes())
        .await
}

/// Polls `check` every 25 ms until it gives `Some`, at most `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {seconds} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// POST that reports connection failures as `None` instead of panicking.
pub async fn try_post(
    url: &str,
    scheme: Scheme,
    secret: &str,
    body: &[u8],
) -> Option<(u16, serde_json::Value)> {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    let context = tradehook::ingest::signature::SignContext {
        timestamp: chrono::Utc::now().timestamp(),
        message_id: String::new(),
        token_field: None,
    };
    let signed = tradehook::ingest::signature::sign(scheme, secret, body, &context).ok()?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = http::Request::post(url).header("content-type", "application/json");
    for (name, value) in &signed.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = client.request(request.body(Full::new(Bytes::from(signed.body))).ok()?).await.ok()?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, serde_json::from_slice(&bytes).unwrap_or_default()))
}

/// Every stored public id with its event key, paged through `/api/v1/events`.
pub async fn stored_events(addr: SocketAddr) -> std::collections::HashMap<String, String> {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let mut all = std::collections::HashMap::new();
    let mut after = 0i64;
    loop {
        let url = format!("http://{addr}/api/v1/events?limit=1000&after={after}");
        let page = request(Method::GET, &url, &[("authorization", &auth)], Vec::new()).await;
        let events = page.json["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            return all;
        }
        for event in &events {
            all.insert(
                event["id"].as_str().unwrap().to_string(),
                event["eventKey"].as_str().unwrap().to_string(),
            );
            after = after.max(event["seq"].as_i64().unwrap());
        }
    }
}

/// One answer to an event sent under load: its key, and the status with the JSON body, or `None`
/// when the request failed or took over 5 s (e.g. cut off by a kill).
pub type LoadAnswer = (String, Option<(u16, serde_json::Value)>);

/// Starts `senders` tasks that send unique signed order events (keys `{prefix}-s{sender}-n{n}`)
/// to `url` until `stop`, each answer handed to `seen`; after an answer other than 200 a sender
/// pauses 5 ms. Await the handles after setting `stop` (a panic in `seen` fails there).
pub fn send_until_stopped(
    url: &str,
    senders: usize,
    prefix: &str,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<dyn Fn(LoadAnswer) + Send + Sync>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..senders)
        .map(|sender| {
            let (url, stop, seen, prefix) = (url.to_owned(), stop.clone(), seen.clone(), prefix.to_owned());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("{prefix}-s{sender}-n{n}");
                    n += 1;
                    let answer = tokio::time::timeout(
                        Duration::from_secs(5),
                        try_post(&url, Scheme::HmacSha256, SECRET, order_event(&key).as_bytes()),
                    )
                    .await
                    .ok()
                    .flatten();
                    let pause = !matches!(answer, Some((200, _)));
                    seen((key, answer));
                    if pause {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect()
}
