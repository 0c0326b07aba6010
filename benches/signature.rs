//! Cost of verifying one request on the hot path: `hmac-sha256` (seed 001's default) and
//! Standard Webhooks `v1`, on a 300-byte body, with one configured secret.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use tradehook::ingest::signature::{sign, Inbound, Scheme, SignContext, Verifier, VerifyOptions};

const NOW: i64 = 1_700_000_000;

/// A 300-byte canonical order event.
fn body() -> Vec<u8> {
    let mut body =
        br#"{"type":"order.filled","orderId":"o-1","symbol":"BTCUSDT","side":"buy","quantity":0.5,"note":""#
            .to_vec();
    body.resize(298, b'x');
    body.extend_from_slice(b"\"}");
    body
}

/// A verifier for `scheme` and headers that it accepts for `body`.
fn setup(scheme: Scheme, secret: &str, body: &[u8]) -> (Verifier, HeaderMap) {
    let context = SignContext { timestamp: NOW, message_id: "msg_2bench".into(), token_field: None };
    let signed = sign(scheme, secret, body, &context).expect("bench secret is valid");
    let mut headers = HeaderMap::new();
    for (name, value) in signed.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("signed header name");
        headers.insert(name, HeaderValue::from_str(&value).expect("signed header value"));
    }
    let verifier =
        Verifier::new(scheme, &[secret.to_owned()], VerifyOptions::default()).expect("bench secret is valid");
    (verifier, headers)
}

fn verify(c: &mut Criterion) {
    let body = body();
    assert_eq!(body.len(), 300);
    let cases = [
        ("verify/hmac-sha256", Scheme::HmacSha256, "s3cret"),
        ("verify/standard-webhooks-v1", Scheme::StandardWebhooks, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
    ];
    for (name, scheme, secret) in cases {
        let (verifier, headers) = setup(scheme, secret, &body);
        let request = Inbound { headers: &headers, query: None, body: &body };
        assert!(verifier.verify(&request, NOW).is_ok());
        c.bench_function(name, |b| b.iter(|| verifier.verify(black_box(&request), black_box(NOW))));
    }
}

criterion_group!(benches, verify);
criterion_main!(benches);
