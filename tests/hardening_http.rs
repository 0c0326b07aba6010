//! Slow and greedy clients: connections that send nothing or trickle their headers are closed at
//! `server.header_timeout`, and connections beyond `server.max_connections` wait to be accepted.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes `tcp` (or 5 s pass); returns how long that took and what it sent.
async fn until_closed(tcp: &mut TcpStream) -> (Duration, String) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (started.elapsed(), String::from_utf8_lossy(&received).into()),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => {
                panic!("connection still open after 5 s; received {:?}", String::from_utf8_lossy(&received))
            }
        }
    }
}

#[tokio::test]
async fn connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let server = TestServer::start_with(|config| config.server.header_timeout = Duration::from_secs(1)).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let (elapsed, _) = until_closed(&mut tcp).await;
    assert!(elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn headers_trickled_slowly_are_cut_off_at_the_header_timeout() {
    let server = TestServer::start_with(|config| config.server.header_timeout = Duration::from_secs(1)).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = tcp.into_split();
    // A slowloris client: a header line every 200 ms, never the blank line that ends them.
    let trickle = tokio::spawn(async move {
        if writer.write_all(b"POST /webhook HTTP/1.1\r\nHost: tradehook\r\n").await.is_err() {
            return;
        }
        for i in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(format!("X-Slow-{i}: x\r\n").as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("slow headers still accepted after 5 s"),
        }
    }
    let elapsed = started.elapsed();
    trickle.abort();
    assert!(elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let server = TestServer::start_with(|config| config.server.max_connections = 1).await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The kernel completes the second connection, but the gateway does not take it yet.
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second.write_all(b"GET /healthz HTTP/1.1\r\nHost: tradehook\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buffer)).await;
    assert!(early.is_err(), "answered while the limit was reached: {early:?}");

    drop(first);
    let (_, answer) = until_closed(&mut second).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_at_the_header_timeout() {
    let server = TestServer::start_with(|config| config.server.header_timeout = Duration::from_secs(1)).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: tradehook\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 1024];
    let n = tcp.read(&mut buffer).await.unwrap();
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buffer[..n]));
    // After the answer the connection waits for the next request's headers, for 1 s at most.
    let (elapsed, _) = until_closed(&mut tcp).await;
    assert!(elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(3), "{elapsed:?}");
}
