//! Secrets never reach the logs: a full run of `tradehook serve` at trace level — good and bad
//! signatures, a token-scheme source with its passphrase in the body and in the query, the admin
//! token and request signing on the API, a subscription created and its secret read back — and
//! then every configured or generated secret is searched for in everything the process printed.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use http::Method;
use serde_json::json;
use tradehook::ingest::signature::Scheme;

const SOURCE_SECRET: &str = "src-secret-5f1e9a7c3b";
const PASSPHRASE: &str = "tv-passphrase-8d2c4e6a";
const KEY_SECRET: &str = "api-key-secret-0b9d7f3e";
const ADMIN: &str = "admin-token-4a6c8e0f2b4d6f81";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_the_logs_of_a_full_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "{store}"
[api]
admin_token = "{ADMIN}"
keys = [{{ key = "ak_test", secret = "{KEY_SECRET}" }}]
[[source]]
name = "default"
signature = "hmac-sha256"
secrets = ["{SOURCE_SECRET}"]
[[source]]
name = "tv"
format = "tradingview"
signature = "token"
secrets = ["{PASSPHRASE}"]
[delivery]
allow_private_targets = true
"#,
        store = store_url(dir.path())
    );
    std::fs::write(dir.path().join("tradehook.toml"), config).unwrap();
    let log = dir.path().join("all-output.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(binary())
        .current_dir(dir.path())
        .args(["serve", "--config", "tradehook.toml"])
        .env_remove("TRADEHOOK_SECRET")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let addr = eventually(20, "the banner", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next()?.parse::<std::net::SocketAddr>().ok())
    })
    .await;
    let base = format!("http://{addr}");

    // Ingest: signed right and wrong; the token scheme in the body and in the query, right and wrong.
    let body = order_event("secret-1");
    assert_eq!(
        post_signed(&format!("{base}/webhook"), Scheme::HmacSha256, SOURCE_SECRET, body.as_bytes(), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        post_signed(&format!("{base}/webhook"), Scheme::HmacSha256, "wrong", body.as_bytes(), &[])
            .await
            .status,
        401
    );
    let alert =
        json!({"passphrase": PASSPHRASE, "ticker": "BTCUSD", "action": "buy", "contracts": 1}).to_string();
    assert_eq!(
        request(Method::POST, &format!("{base}/webhooks/tv"), &[], alert.into_bytes()).await.status,
        200
    );
    let wrong = json!({"passphrase": "nope", "ticker": "BTCUSD", "action": "buy"}).to_string();
    assert_eq!(
        request(Method::POST, &format!("{base}/webhooks/tv"), &[], wrong.into_bytes()).await.status,
        401
    );
    let query = format!("{base}/webhooks/tv?token={PASSPHRASE}");
    let answer =
        request(Method::POST, &query, &[], br#"{"ticker":"ETHUSD","action":"sell","contracts":2}"#.to_vec())
            .await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    // The API: the admin token, a wrong one, request signing, and a subscription's secret.
    let auth = format!("Bearer {ADMIN}");
    assert_eq!(
        request(Method::GET, &format!("{base}/api/v1/events"), &[("authorization", &auth)], vec![])
            .await
            .status,
        200
    );
    assert_eq!(
        request(
            Method::GET,
            &format!("{base}/api/v1/events"),
            &[("authorization", "Bearer nope-nope-nope-nope")],
            vec![]
        )
        .await
        .status,
        401
    );
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = tradehook::api::signing::sign(KEY_SECRET, &timestamp, "GET", "/api/v1/status", b"");
    let signed =
        [("x-api-key", "ak_test"), ("x-timestamp", timestamp.as_str()), ("x-signature", signature.as_str())];
    assert_eq!(request(Method::GET, &format!("{base}/api/v1/status"), &signed, vec![]).await.status, 200);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let created = request(
        Method::POST,
        &format!("{base}/api/v1/webhooks"),
        &headers,
        json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}).to_string().into_bytes(),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let secret = request(Method::GET, &format!("{base}/api/v1/webhooks/{id}/secret"), &headers, vec![]).await;
    let subscription_secret = secret.json["secret"].as_str().unwrap().to_owned();
    // A refused body carrying every credential (pasted by mistake): the audit log masks them all.
    let pasted =
        format!(r#"{{"admin":"{ADMIN}","key":"{KEY_SECRET}","tv":"{PASSPHRASE}","src":"{SOURCE_SECRET}"}}"#);
    assert_eq!(
        post_signed(&format!("{base}/webhook"), Scheme::HmacSha256, "wrong", pasted.as_bytes(), &[])
            .await
            .status,
        401
    );
    let audit = request(Method::GET, &format!("{base}/api/v1/audit"), &headers, vec![]).await;
    assert!(audit.text.contains(r#"{\"admin\":\"<redacted>\""#), "{}", audit.text);
    for secret in [ADMIN, KEY_SECRET, PASSPHRASE, SOURCE_SECRET, "nope"] {
        assert!(!audit.text.contains(secret), "`{secret}` in the audit log: {}", audit.text);
    }
    // Let the worker process and attempt deliveries (to a closed port), so their logs are in.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 10, "a debug-level run logs plenty: {text}");
    for secret in [SOURCE_SECRET, PASSPHRASE, KEY_SECRET, ADMIN, subscription_secret.as_str()] {
        assert!(!text.contains(secret), "`{secret}` appears in the logs:\n{text}");
    }
    // The subscription secret without its `whsec_` prefix too (its base64 key).
    let key = subscription_secret.trim_start_matches("whsec_");
    assert!(!text.contains(key), "the subscription key appears in the logs");
}
