//! Every signature scheme of SPEC §1 end to end: a source per scheme, a request signed the way
//! its senders sign, and the refusals a receiver must make.

mod common;

use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use tradehook::config::SourceConfig;
use tradehook::ingest::signature::{sign, Scheme, SignContext};

const WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

async fn server_with_every_scheme() -> TestServer {
    TestServer::start_with(|config| {
        let mut add = |name: &str, scheme: Scheme, secret: &str| {
            config.sources.push(SourceConfig::new(name, scheme, vec![secret.to_string()]));
        };
        add("gh", Scheme::Github, "gh-secret");
        add("stripe", Scheme::Stripe, "whsec_stripe_secret");
        add("std", Scheme::StandardWebhooks, WHSEC);
        add("tv", Scheme::Token, "tv-passphrase");
        let mut open = SourceConfig::new("open", Scheme::None, vec![]);
        open.allow_unsigned = true;
        open.allow_ips = vec!["127.0.0.0/8".into()];
        config.sources.push(open);
    })
    .await
}

#[tokio::test]
async fn each_scheme_accepts_what_its_senders_sign() {
    let server = server_with_every_scheme().await;
    let other_whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let cases = [
        ("default", Scheme::HmacSha256, SECRET, Some("wrong")),
        ("gh", Scheme::Github, "gh-secret", Some("wrong")),
        ("stripe", Scheme::Stripe, "whsec_stripe_secret", Some("whsec_wrong")),
        ("std", Scheme::StandardWebhooks, WHSEC, Some(other_whsec)),
        ("tv", Scheme::Token, "tv-passphrase", Some("wrong")),
        ("open", Scheme::None, "", None),
    ];
    for (source, scheme, secret, wrong_secret) in cases {
        let url = server.url(&format!("/webhooks/{source}"));
        let body = order_event(&format!("ok-{source}"));
        let answer = post_signed(&url, scheme, secret, body.as_bytes(), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{source}: {}", answer.text);
        assert_eq!(answer.json["status"], "accepted", "{source}");
        if let Some(wrong_secret) = wrong_secret {
            let body = order_event(&format!("bad-{source}"));
            let wrong = post_signed(&url, scheme, wrong_secret, body.as_bytes(), &[]).await;
            assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{source}: {}", wrong.text);
        }
    }
}

#[tokio::test]
async fn standard_webhooks_id_header_is_the_event_id() {
    let server = server_with_every_scheme().await;
    let url = server.url("/webhooks/std");
    let now = chrono::Utc::now().timestamp();
    let context = SignContext { timestamp: now, message_id: "msg_same".into(), token_field: None };
    let mut ids = Vec::new();
    for body in [r#"{"a":1}"#, r#"{"a":2}"#] {
        let signed = sign(Scheme::StandardWebhooks, WHSEC, body.as_bytes(), &context).unwrap();
        let headers: Vec<(&str, &str)> =
            signed.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let answer = request(Method::POST, &url, &headers, signed.body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        ids.push((answer.json["status"].clone(), answer.json["id"].clone()));
    }
    assert_eq!(ids[0].0, "accepted");
    assert_eq!(ids[1].0, "duplicate");
    assert_eq!(ids[0].1, ids[1].1);
}

#[tokio::test]
async fn stale_timestamps_are_401_for_stripe_and_standard_webhooks() {
    let server = server_with_every_scheme().await;
    let old = chrono::Utc::now().timestamp() - 301;
    let future = chrono::Utc::now().timestamp() + 400;
    for (source, scheme, secret) in
        [("stripe", Scheme::Stripe, "whsec_stripe_secret"), ("std", Scheme::StandardWebhooks, WHSEC)]
    {
        for timestamp in [old, future] {
            let context =
                SignContext { timestamp, message_id: format!("msg_{timestamp}"), token_field: None };
            let signed = sign(scheme, secret, b"{}", &context).unwrap();
            let headers: Vec<(&str, &str)> =
                signed.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let answer =
                request(Method::POST, &server.url(&format!("/webhooks/{source}")), &headers, signed.body)
                    .await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{source} {timestamp}");
            assert!(answer.json["reason"].as_str().unwrap().contains("tolerance"), "{}", answer.text);
        }
    }
}

#[tokio::test]
async fn svix_header_spelling_is_accepted() {
    let server = server_with_every_scheme().await;
    let context = SignContext {
        timestamp: chrono::Utc::now().timestamp(),
        message_id: "msg_svix".into(),
        token_field: None,
    };
    let signed = sign(Scheme::StandardWebhooks, WHSEC, b"{\"x\":1}", &context).unwrap();
    let renamed: Vec<(String, String)> =
        signed.headers.iter().map(|(n, v)| (n.replace("webhook-", "svix-"), v.clone())).collect();
    let headers: Vec<(&str, &str)> = renamed.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let answer = request(Method::POST, &server.url("/webhooks/std"), &headers, signed.body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn token_in_a_json_field_is_removed_from_the_stored_payload() {
    let server = server_with_every_scheme().await;
    let body = r#"{"passphrase":"tv-passphrase","ticker":"BTCUSD","action":"buy","contracts":1}"#;
    let answer = request(Method::POST, &server.url("/webhooks/tv"), &[], body.as_bytes().to_vec()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let stored = admin_get(&server, &format!("/api/v1/events/{}", answer.json["id"].as_str().unwrap())).await;
    assert_eq!(stored.json["payload"]["ticker"], "BTCUSD");
    assert!(stored.json["payload"].get("passphrase").is_none());
    assert!(!stored.text.contains("tv-passphrase"));
    // TradingView resends byte for byte: the retry is a duplicate.
    let retry = request(Method::POST, &server.url("/webhooks/tv"), &[], body.as_bytes().to_vec()).await;
    assert_eq!(retry.json["status"], "duplicate");
}

#[tokio::test]
async fn a_body_token_in_a_body_that_is_not_json_is_a_400_not_a_missing_token() {
    let server = server_with_every_scheme().await;
    for body in [
        &br#"{"passphrase":"tv-passphrase","ticker":"BTCUSD",}"#[..],
        &b"\xef\xbb\xbf{\"passphrase\":\"tv-passphrase\",\"ticker\":\"BTCUSD\"}"[..],
    ] {
        let answer = request(Method::POST, &server.url("/webhooks/tv"), &[], body.to_vec()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
        assert_eq!(answer.json["error"], "invalid_json", "{}", answer.text);
    }
    // Valid JSON without the token is still a 401.
    let answer =
        request(Method::POST, &server.url("/webhooks/tv"), &[], br#"{"ticker":"BTCUSD"}"#.to_vec()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    let audit = admin_get(&server, "/api/v1/audit").await;
    assert!(!audit.text.contains("tv-passphrase"), "{}", audit.text);
}

#[tokio::test]
async fn token_in_the_query_is_accepted_and_a_wrong_one_refused() {
    let server = server_with_every_scheme().await;
    let ok =
        request(Method::POST, &server.url("/webhooks/tv?token=tv-passphrase"), &[], br#"{"t":1}"#.to_vec())
            .await;
    assert_eq!(ok.status, StatusCode::OK);
    let bad =
        request(Method::POST, &server.url("/webhooks/tv?token=guess"), &[], br#"{"t":2}"#.to_vec()).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let audit = admin_get(&server, "/api/v1/audit").await;
    assert!(!audit.text.contains("tv-passphrase"));
}

#[tokio::test]
async fn rejected_token_body_never_shows_the_passphrase_in_the_audit_log() {
    let server = server_with_every_scheme().await;
    // Right passphrase, broken JSON after it: 400, and the audit prefix must mask the secret.
    let body = r#"{"passphrase":"tv-passphrase","ticker":"BTCUSD", oops"#;
    let answer =
        request(Method::POST, &server.url("/webhooks/tv?token=tv-passphrase"), &[], body.as_bytes().to_vec())
            .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    let audit = admin_get(&server, "/api/v1/audit").await;
    assert!(audit.text.contains("BTCUSD"), "{}", audit.text);
    assert!(!audit.text.contains("tv-passphrase"), "{}", audit.text);
}

#[tokio::test]
async fn unsigned_source_still_enforces_its_allow_list() {
    let server = TestServer::start_with(|config| {
        let mut open = SourceConfig::new("open", Scheme::None, vec![]);
        open.allow_unsigned = true;
        open.allow_ips = vec!["192.0.2.0/24".into()];
        config.sources.push(open);
    })
    .await;
    let answer = request(Method::POST, &server.url("/webhooks/open"), &[], b"{}".to_vec()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(1)).await;
}
