//! End-to-end tests of the bench client against the in-process limit server.

use super::*;

/// Starts the limit server on a free loopback port; returns its webhook URL and task.
async fn limit_server(secret: &str) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let server = tokio::spawn(limit::serve_limit(listener, secret.to_owned()));
    (url, server)
}

fn options(url: String, secret: &str, count: u64) -> BenchOptions {
    BenchOptions {
        url,
        secret: secret.into(),
        connections: 4,
        count: Some(count),
        progress: false,
        ..BenchOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_counted_request_is_accepted_by_the_limit_server() {
    let (url, server) = limit_server("bench-secret").await;
    let report = run(options(url, "bench-secret", 2000)).await.unwrap();
    server.abort();
    assert_eq!(report.sent, 2000);
    assert_eq!(report.ok, 2000, "{}", report.render());
    assert!(report.errors_by_status.is_empty(), "{:?}", report.errors_by_status);
    assert!(report.throughput > 0.0);
    assert!(report.p50_us > 0 && report.p50_us <= report.p99_us && report.p99_us <= report.max_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_counted_as_401() {
    let (url, server) = limit_server("bench-secret").await;
    let report = run(options(url, "not-the-secret", 500)).await.unwrap();
    server.abort();
    assert_eq!(report.ok, 0);
    assert_eq!(report.errors_by_status.get("401"), Some(&500), "{:?}", report.errors_by_status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_is_counted_as_connect_errors_and_the_run_ends() {
    // Bind then drop, so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut options = options(format!("http://127.0.0.1:{port}/webhook"), "s", 8);
    options.connections = 2;
    let report = run(options).await.unwrap();
    assert_eq!(report.ok, 0);
    assert_eq!(report.errors_by_status.get("connect"), Some(&8), "{:?}", report.errors_by_status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_caps_the_throughput() {
    let (url, server) = limit_server("bench-secret").await;
    let options = BenchOptions {
        duration: Some(Duration::from_millis(1000)),
        count: None,
        rate: Some(400),
        warmup: Duration::from_millis(200),
        ..options(url, "bench-secret", 0)
    };
    let report = run(options).await.unwrap();
    server.abort();
    assert!(report.errors_by_status.is_empty(), "{:?}", report.errors_by_status);
    assert!((300.0..=500.0).contains(&report.throughput), "throughput {}", report.throughput);
    assert!((400..=560).contains(&report.sent), "sent {}", report.sent);
}

#[tokio::test]
async fn unsupported_url_fails_before_sending() {
    let error = run(options("ftp://127.0.0.1/webhook".into(), "s", 1)).await.unwrap_err();
    assert!(error.to_string().contains("not an http:// URL"), "{error}");
}

/// Load against an already running server: `BENCH_URL=http://127.0.0.1:9090/webhook cargo test
/// --release -- --ignored --nocapture bench_against_running_server`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running server and BENCH_URL"]
async fn bench_against_running_server() {
    let env = |name: &str| std::env::var(name).ok();
    let options = BenchOptions {
        url: env("BENCH_URL").unwrap_or_else(|| "http://127.0.0.1:9090/webhook".into()),
        secret: env("BENCH_SECRET").unwrap_or_else(|| "bench-secret".into()),
        connections: env("BENCH_CONNECTIONS").map_or(32, |c| c.parse().unwrap()),
        duration: Some(Duration::from_secs(env("BENCH_SECS").map_or(10, |s| s.parse().unwrap()))),
        progress: false,
        ..BenchOptions::default()
    };
    let report = run(options).await.unwrap();
    println!("{}", report.render());
    println!("{}", report.to_json());
}

#[tokio::test]
async fn limit_server_answers_healthz() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (url, server) = limit_server("s").await;
    let addr = url.trim_start_matches("http://").trim_end_matches("/webhook").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    server.abort();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
