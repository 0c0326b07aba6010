//! The OpenAPI document lists every route the server has, and bad input to any route answers
//! 4xx with the JSON error body — never 5xx, never plain text or an empty body.

mod common;

use std::collections::BTreeSet;

use common::*;
use http::{Method, StatusCode};

/// Every (method, path) the server routes. A new route belongs here and in the document.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/webhook"),
    ("post", "/webhooks/{source}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/openapi.json"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/events/{id}"),
    ("post", "/api/v1/events/{id}/replay"),
    ("get", "/api/v1/status"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/orders"),
    ("get", "/api/v1/orders/{orderId}"),
    ("get", "/api/v1/positions"),
    ("get", "/api/v1/balances"),
    ("get", "/api/v1/ledger"),
    ("get", "/api/v1/signals"),
    ("get", "/api/v1/alerts"),
    ("get", "/api/v1/dlq"),
    ("get", "/api/v1/dlq/{id}"),
    ("delete", "/api/v1/dlq/{id}"),
    ("post", "/api/v1/dlq/{id}/replay"),
    ("post", "/api/v1/dlq/replay"),
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks/test"),
    ("get", "/api/v1/webhooks/{id}"),
    ("put", "/api/v1/webhooks/{id}"),
    ("delete", "/api/v1/webhooks/{id}"),
    ("get", "/api/v1/webhooks/{id}/secret"),
    ("get", "/api/v1/webhooks/{id}/deliveries"),
    ("get", "/api/v1/intents"),
    ("get", "/api/v1/killswitch"),
    ("post", "/api/v1/killswitch"),
    ("get", "/api/v1/live/ingest"),
    ("get", "/api/v1/live/events"),
    ("get", "/ui"),
    ("get", "/ui/{file}"),
];

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn document(server: &TestServer) -> serde_json::Value {
    let answer = request(Method::GET, &server.url("/api/openapi.json"), &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(
        answer.headers["content-type"].to_str().unwrap().starts_with("application/json"),
        "{:?}",
        answer.headers
    );
    assert!(answer.json.is_object(), "not JSON: {}", answer.text);
    answer.json
}

fn operations(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS.iter().filter(|m| item.get(**m).is_some()).map(move |m| (m.to_string(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn document_is_openapi_3_and_lists_exactly_the_routes_the_server_has() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "openapi {version}");
    let expected: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let documented = operations(&doc);
    let missing: Vec<_> = expected.difference(&documented).collect();
    assert!(missing.is_empty(), "routes missing from the document: {missing:?}");
    let unknown: Vec<_> = documented.difference(&expected).collect();
    assert!(unknown.is_empty(), "documented but not in this test's list (add them): {unknown:?}");
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    for (method, path) in operations(&doc) {
        let concrete = path.replace("{source}", "nosuch").replace("{id}", "x1").replace("{orderId}", "o1");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let answer =
            request(method.clone(), &server.url(&concrete), &[("authorization", &auth)], Vec::new()).await;
        assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {}", answer.text);
        assert_ne!(answer.json["reason"], "no such route", "{method} {path} is documented but not routed");
    }
}

#[tokio::test]
async fn api_v1_operations_declare_both_security_schemes_and_json_errors() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    assert_eq!(schemes["adminToken"]["scheme"], "bearer");
    let headers: BTreeSet<&str> = schemes.values().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(headers, BTreeSet::from(["X-API-Key", "X-Timestamp", "X-Signature"]));
    for (method, path) in operations(&doc) {
        let operation = &doc["paths"][&path][&method];
        let responses = operation["responses"].as_object().unwrap();
        for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('4') || s.starts_with('5')) {
            let schema = &response["content"]["application/json"]["schema"];
            let is_error_body = schema["$ref"].as_str().is_some_and(|r| r.ends_with("/ErrorBody"));
            assert!(is_error_body || path == "/readyz", "{method} {path} {status}: {response}");
        }
        if path.starts_with("/api/v1/") {
            let security = operation["security"].as_array().expect("security");
            assert_eq!(security.len(), 2, "{method} {path}");
            assert!(responses.contains_key("401"), "{method} {path}");
        } else {
            assert!(operation.get("security").is_none(), "{method} {path} needs no credentials");
        }
    }
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// axum cannot list its routes, so the guard against a route missing from the document is this:
/// no code registers a route except through `OpenApiRouter::routes(routes!(…))`.
#[test]
fn no_route_is_registered_around_the_document() {
    let mut files = Vec::new();
    rust_files(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let bypasses = [
        ".route(",
        ".route_service(",
        ".nest_service(",
        "routing::get",
        "routing::post",
        "routing::put",
        "routing::delete",
    ];
    let mut offenders = Vec::new();
    // Test modules (`tests.rs`, `*_tests.rs`) start receivers of their own; they are not the server.
    let is_test = |file: &std::path::Path| {
        file.file_stem().and_then(|s| s.to_str()).is_some_and(|s| s == "tests" || s.ends_with("_tests"))
    };
    for file in files.into_iter().filter(|f| !is_test(f)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if bypasses.iter().any(|b| code.contains(b)) {
                offenders.push(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes registered outside routes!() are served but missing from /api/openapi.json \
         (see src/api/openapi.rs):\n{}",
        offenders.join("\n")
    );
}

/// Sends a request and checks the answer is `status` with the JSON error body.
async fn expect_json_error(method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>, status: u16) {
    let server_url = path.to_string();
    let answer = request(method.clone(), &server_url, headers, body).await;
    assert_eq!(answer.status.as_u16(), status, "{method} {path}: {}", answer.text);
    assert!(
        answer.json["error"].is_string() && answer.json["reason"].is_string(),
        "{method} {path}: not the JSON error body: {:?}",
        answer.text
    );
}

#[tokio::test]
async fn extractor_rejections_answer_4xx_json() {
    let server = TestServer::start().await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let auth = [("authorization", auth.as_str())];
    let json = [auth[0], ("content-type", "application/json")];
    // Query: wrong type, unknown parameter, out of range.
    expect_json_error(Method::GET, &server.url("/api/v1/events?limit=abc"), &auth, vec![], 400).await;
    expect_json_error(Method::GET, &server.url("/api/v1/orders?bogus=1"), &auth, vec![], 400).await;
    expect_json_error(Method::GET, &server.url("/api/v1/audit?limit=0"), &auth, vec![], 400).await;
    // Path: not UTF-8 once decoded.
    expect_json_error(Method::GET, &server.url("/api/v1/events/%FF"), &auth, vec![], 400).await;
    expect_json_error(Method::POST, &server.url("/webhooks/%FF%FE"), &[], b"{}".to_vec(), 400).await;
    // JSON body: no content type, not JSON, wrong shape, too large.
    let url = server.url("/api/v1/dlq/replay");
    expect_json_error(Method::POST, &url, &auth, b"{}".to_vec(), 415).await;
    // What `curl -d '{…}'` sends without -H (seed 001's example): the answer says what to add.
    let form = [auth[0], ("content-type", "application/x-www-form-urlencoded")];
    let answer = request(Method::POST, &url, &form, br#"{"ids":[]}"#.to_vec()).await;
    assert_eq!(answer.status.as_u16(), 415, "{}", answer.text);
    assert!(
        answer.json["reason"].as_str().unwrap().contains("-H 'Content-Type: application/json'"),
        "{}",
        answer.text
    );
    expect_json_error(Method::POST, &url, &json, b"{not json".to_vec(), 400).await;
    expect_json_error(Method::POST, &url, &json, br#"{"ids":"dlq_1"}"#.to_vec(), 400).await;
    expect_json_error(Method::POST, &url, &json, vec![b' '; (1 << 20) + 10], 413).await;
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_json() {
    let server = TestServer::start().await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let auth = [("authorization", auth.as_str())];
    expect_json_error(Method::GET, &server.url("/api/v1/nothing-here"), &auth, vec![], 404).await;
    expect_json_error(Method::GET, &server.url("/api/v2/events"), &[], vec![], 404).await;
    expect_json_error(Method::GET, &server.url("/nothing"), &[], vec![], 404).await;
    expect_json_error(Method::DELETE, &server.url("/api/v1/events"), &auth, vec![], 405).await;
    expect_json_error(Method::PUT, &server.url("/api/v1/dlq/replay"), &auth, vec![], 405).await;
    expect_json_error(Method::POST, &server.url("/healthz"), &[], vec![], 405).await;
    expect_json_error(Method::POST, &server.url("/api/openapi.json"), &[], vec![], 405).await;
    expect_json_error(Method::GET, &server.url("/webhook"), &[], vec![], 405).await;
    let answer = request(Method::DELETE, &server.url("/api/v1/events"), &auth, Vec::new()).await;
    assert!(answer.headers.contains_key("allow"), "405 keeps Allow: {:?}", answer.headers);
}

/// The management API is unusable without credentials: every documented `/api/v1` operation,
/// with a plausible body, answers 401 with the JSON error body when the credentials are missing,
/// a wrong bearer token, or a bearer token that is a prefix of the right one — and the writes it
/// refused changed nothing.
#[tokio::test]
async fn every_api_v1_operation_refuses_requests_without_valid_credentials() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let prefix = format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]);
    let wrong: [&[(&str, &str)]; 4] = [
        &[("content-type", "application/json")],
        &[("content-type", "application/json"), ("authorization", "Bearer not-the-token")],
        &[("content-type", "application/json"), ("authorization", prefix.as_str())],
        &[("content-type", "application/json"), ("authorization", ADMIN_TOKEN)],
    ];
    let bodies: &[(&str, &str)] = &[
        ("/api/v1/webhooks", r#"{"url":"https://example.com/hook","events":["*"]}"#),
        ("/api/v1/killswitch", r#"{"on":true}"#),
        ("/api/v1/dlq/replay", r#"{"ids":["dlq_1"]}"#),
    ];
    let mut checked = 0;
    for (method, path) in operations(&doc).into_iter().filter(|(_, p)| p.starts_with("/api/v1/")) {
        let concrete = path.replace("{id}", "x1").replace("{orderId}", "o1");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let body = bodies.iter().find(|(p, _)| *p == path).map(|(_, b)| b.as_bytes().to_vec());
        for headers in wrong {
            let answer =
                request(method.clone(), &server.url(&concrete), headers, body.clone().unwrap_or_default())
                    .await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {headers:?}: {}",
                answer.text
            );
            assert!(answer.json["error"].is_string(), "{method} {path}: {}", answer.text);
            assert!(!answer.text.contains(ADMIN_TOKEN), "{method} {path} echoes the token");
            checked += 1;
        }
    }
    assert!(checked >= 4 * 25, "only {checked} refusals checked: is the document complete?");
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let auth = [("authorization", auth.as_str())];
    let hooks = request(Method::GET, &server.url("/api/v1/webhooks"), &auth, Vec::new()).await;
    assert_eq!(hooks.status, StatusCode::OK, "{}", hooks.text);
    assert_eq!(
        hooks.json["webhooks"].as_array().map(Vec::len),
        Some(0),
        "a refused POST created one: {}",
        hooks.text
    );
    let switch = request(Method::GET, &server.url("/api/v1/killswitch"), &auth, Vec::new()).await;
    assert_eq!(switch.json["on"], false, "a refused POST engaged the kill switch: {}", switch.text);
}

/// A NUL (`%00`) in any path or query parameter of a read is never a 5xx: PostgreSQL's text
/// refuses NUL, so a store query quoting it must be answered as "not found" or 400, not fail.
/// (With `TEST_POSTGRES_URL` this runs against PostgreSQL.)
#[tokio::test]
async fn a_nul_in_any_parameter_of_a_read_is_never_a_server_error() {
    let server = TestServer::start().await;
    post_event(&server, &order_event("nul-params")).await;
    let doc = document(&server).await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let auth = [("authorization", auth.as_str())];
    let mut checked = 0;
    for (method, path) in operations(&doc).into_iter().filter(|(m, _)| m == "get") {
        let parameters = doc["paths"][&path]["get"]["parameters"].as_array().cloned().unwrap_or_default();
        let query: Vec<String> = parameters
            .iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .map(|name| format!("{name}=a%00b"))
            .collect();
        let concrete =
            path.replace("{id}", "x%00y").replace("{orderId}", "o%00p").replace("{source}", "s%00");
        let mut urls = vec![server.url(&concrete)];
        urls.extend(query.iter().map(|q| format!("{}?{q}", server.url(&path.replace("{id}", "x1")))));
        for url in urls {
            let answer = request(Method::GET, &url, &auth, Vec::new()).await;
            assert!(answer.status.as_u16() < 500, "{method} {url}: {} {}", answer.status, answer.text);
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} requests: is the document complete?");
    let replay =
        api_post(server.addr, "/dlq/replay", serde_json::json!({"filter": {"reason": "a\u{0}"}})).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.text);
    let ids = api_post(server.addr, "/dlq/replay", serde_json::json!({"ids": ["dlq_\u{0}"]})).await;
    assert_eq!(ids.status, StatusCode::BAD_REQUEST, "{}", ids.text);
    // The document says so: free-form strings of parameters and bodies carry a no-NUL pattern.
    let text = doc.to_string();
    assert!(text.contains(r#""pattern":"^[^\\u0000]*$""#), "no NUL pattern in the document");
}

#[tokio::test]
async fn both_ingest_routes_document_every_answer_they_give() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    for path in ["/webhook", "/webhooks/{source}"] {
        let responses = doc["paths"][path]["post"]["responses"].as_object().expect(path);
        let statuses: Vec<&str> = responses.keys().map(String::as_str).collect();
        assert_eq!(
            statuses,
            ["200", "400", "401", "403", "404", "408", "413", "415", "429", "503"],
            "{path}"
        );
        let ack = &responses["200"]["content"]["application/json"]["schema"]["$ref"];
        assert!(ack.as_str().is_some_and(|r| r.ends_with("/Acknowledgement")), "{path}: {ack}");
        assert!(responses["415"]["description"].as_str().unwrap().contains("Content-Encoding"), "{path}");
    }
}

/// Every `$ref` in `value`, however deep.
fn refs<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(target) = map.get("$ref").and_then(|r| r.as_str()) {
                found.push(target);
            }
            map.values().for_each(|v| refs(v, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[tokio::test]
async fn every_reference_in_the_document_resolves() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 20, "{found:?}");
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let broken: BTreeSet<&str> = found
        .into_iter()
        .filter(|r| r.strip_prefix("#/components/schemas/").is_none_or(|name| !schemas.contains_key(name)))
        .collect();
    assert!(broken.is_empty(), "references to nothing: {broken:?}");
}
