//! The NATS sink against the real local server (JetStream on 127.0.0.1:4222; `.ci/run` starts
//! it), plus configuration and subject checks that need no server.

use std::time::Instant;

use futures::StreamExt as _;

use super::*;

const LOCAL: &str = "nats://127.0.0.1:4222";

fn unique() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

async fn raw_client() -> Client {
    async_nats::connect(LOCAL).await.expect("a NATS server with JetStream on 127.0.0.1:4222 (see .ci/run)")
}

#[tokio::test]
async fn same_msg_id_twice_is_stored_once_and_the_second_ack_is_a_duplicate() {
    let id = unique();
    let stream = format!("TH_TEST_{}", id.to_uppercase());
    let subject = format!("th.test.{id}.orders");
    let sink = NatsSink::new(NatsConfig {
        url: LOCAL.into(),
        stream: Some(stream.clone()),
        stream_subjects: vec![format!("th.test.{id}.>")],
        ..NatsConfig::default()
    });
    let payload = Bytes::from_static(br#"{"event":"order.filled"}"#);
    let first = sink.publish(&subject, "evt_1", payload.clone()).await.unwrap();
    let second = sink.publish(&subject, "evt_1", payload).await.unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate, "{second:?}");
    assert_eq!(first.stream.as_deref(), Some(stream.as_str()));
    assert_eq!(first.sequence, second.sequence);

    let context = jetstream::new(raw_client().await);
    let info = context.get_stream(&stream).await.unwrap().get_info().await.unwrap();
    assert_eq!(info.state.messages, 1);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    context.delete_stream(&stream).await.unwrap();
}

#[tokio::test]
async fn core_publish_reaches_a_subscriber_with_the_msg_id_header() {
    let subject = format!("th.test.{}.core", unique());
    let client = raw_client().await;
    let mut subscriber = client.subscribe(subject.clone()).await.unwrap();
    client.flush().await.unwrap();
    let sink = NatsSink::new(NatsConfig { url: LOCAL.into(), jetstream: false, ..NatsConfig::default() });
    let published = sink.publish(&subject, "evt_42", Bytes::from_static(b"{\"a\":1}")).await.unwrap();
    assert_eq!(published, Published { stream: None, sequence: None, duplicate: false });
    let message = tokio::time::timeout(Duration::from_secs(5), subscriber.next()).await.unwrap().unwrap();
    assert_eq!(&message.payload[..], b"{\"a\":1}");
    let headers = message.headers.unwrap();
    assert_eq!(headers.get(async_nats::header::NATS_MESSAGE_ID).unwrap().as_str(), "evt_42");
}

#[tokio::test]
async fn jetstream_publish_without_a_stream_for_the_subject_is_retriable() {
    let sink = NatsSink::new(NatsConfig { url: LOCAL.into(), ..NatsConfig::default() });
    let error = sink.publish(&format!("th.nostream.{}", unique()), "e", Bytes::new()).await.unwrap_err();
    assert!(error.retriable, "{error:?}");
}

#[tokio::test]
async fn unreachable_server_is_retriable_and_fails_fast() {
    let sink = NatsSink::new(NatsConfig {
        url: "nats://127.0.0.1:1".into(),
        timeout: Duration::from_secs(1),
        ..NatsConfig::default()
    });
    let started = Instant::now();
    let error = sink.publish("th.test.x", "e", Bytes::new()).await.unwrap_err();
    assert!(error.retriable, "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert!(sink.ready().await.unwrap_err().retriable);
}

#[tokio::test]
async fn silent_server_does_not_hang_past_the_timeout() {
    // Accepts TCP connections and never says a word (no NATS INFO).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = NatsSink::new(NatsConfig {
        url: format!("nats://{addr}"),
        timeout: Duration::from_millis(500),
        ..NatsConfig::default()
    });
    let started = Instant::now();
    let error = sink.publish("th.test.x", "e", Bytes::new()).await.unwrap_err();
    assert!(error.retriable, "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    drop(listener);
}

#[tokio::test]
async fn credentials_in_the_url_stay_out_of_errors() {
    let sink = NatsSink::new(NatsConfig {
        url: "nats://trader:hunter2@127.0.0.1:1".into(),
        timeout: Duration::from_secs(1),
        ..NatsConfig::default()
    });
    let error = sink.publish("th.test.x", "e", Bytes::new()).await.unwrap_err();
    assert!(!error.message.contains("hunter2"), "{}", error.message);
    assert!(error.message.contains("127.0.0.1:1"), "{}", error.message);
}

/// A core-only `nats-server` of this test on `port`, killed on drop.
struct OwnServer(std::process::Child);

impl OwnServer {
    async fn start(port: u16) -> OwnServer {
        let server = OwnServer(
            std::process::Command::new("/usr/sbin/nats-server")
                .args(["-a", "127.0.0.1", "-p", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("/usr/sbin/nats-server"),
        );
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server on port {port} did not start");
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn publishing_while_the_server_is_down_is_retriable_and_resumes_after_it_returns() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sink = NatsSink::new(NatsConfig {
        url: format!("nats://127.0.0.1:{port}"),
        jetstream: false,
        timeout: Duration::from_secs(1),
        ..NatsConfig::default()
    });
    // Down at start: nothing fails but the publish.
    assert!(sink.publish("th.test.down", "e0", Bytes::new()).await.unwrap_err().retriable);
    let server = OwnServer::start(port).await;
    sink.publish("th.test.down", "e1", Bytes::new()).await.unwrap();
    drop(server);
    let started = Instant::now();
    let mut failed = None;
    for _ in 0..50 {
        match sink.publish("th.test.down", "e2", Bytes::new()).await {
            Err(error) => {
                failed = Some(error);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let error = failed.expect("publishing to a stopped server fails");
    assert!(error.retriable, "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    let _server = OwnServer::start(port).await;
    for _ in 0..100 {
        if sink.publish("th.test.down", "e3", Bytes::new()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sink did not reconnect within 10 s of the server's return");
}

#[tokio::test]
async fn bad_subjects_and_ids_are_permanent_errors_without_connecting() {
    let sink = NatsSink::new(NatsConfig { url: "nats://127.0.0.1:1".into(), ..NatsConfig::default() });
    for subject in ["", "a b", "orders.*", "orders.>", "a..b", ".a", "a.", "a*b", "tab\tbed"] {
        let error = sink.publish(subject, "e", Bytes::new()).await.unwrap_err();
        assert!(!error.retriable, "{subject:?}: {error:?}");
    }
    for id in ["", "a\r\nb"] {
        assert!(!sink.publish("ok.subject", id, Bytes::new()).await.unwrap_err().retriable, "{id:?}");
    }
}

#[test]
fn stream_subjects_may_use_wildcards_as_whole_tokens() {
    for good in ["orders", "orders.*", "tradehook.>", "a.*.c", "a-b_c.D1"] {
        check_subject(good, true).unwrap();
    }
    for bad in ["a.>.c", "a*", ">b", "a..b", ""] {
        assert!(check_subject(bad, true).is_err(), "{bad}");
    }
}

#[test]
fn default_config_is_valid() {
    NatsConfig::default().validate().unwrap();
    let several = NatsConfig { url: "nats://a:4222, tls://b:4223".into(), ..NatsConfig::default() };
    several.validate().unwrap();
}

#[test]
fn invalid_config_names_the_key() {
    let cases = [
        (NatsConfig { url: "http://x".into(), ..NatsConfig::default() }, "nats.url"),
        (NatsConfig { url: "ws://x:80".into(), ..NatsConfig::default() }, "nats.url"),
        (NatsConfig { url: " ".into(), ..NatsConfig::default() }, "nats.url"),
        (NatsConfig { timeout: Duration::ZERO, ..NatsConfig::default() }, "nats.timeout"),
        (NatsConfig { stream: Some("A.B".into()), ..NatsConfig::default() }, "nats.stream"),
        (NatsConfig { stream: Some("ORDERS".into()), ..NatsConfig::default() }, "nats.stream_subjects"),
        (NatsConfig { stream_subjects: vec!["a".into()], ..NatsConfig::default() }, "nats.stream"),
        (
            NatsConfig {
                stream: Some("ORDERS".into()),
                stream_subjects: vec!["a b".into()],
                ..NatsConfig::default()
            },
            "nats.stream_subjects",
        ),
    ];
    for (config, key) in cases {
        assert_eq!(config.validate().unwrap_err().0, key, "{config:?}");
    }
}
