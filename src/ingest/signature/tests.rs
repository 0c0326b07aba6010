//! Tests that hold for every scheme: sign-then-verify round trips, secrets kept out of messages and
//! debug output, and no panic on arbitrary input. Helpers shared by the per-scheme tests live here.

use http::{HeaderMap, HeaderName, HeaderValue};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{
    sign, Inbound, Scheme, SecretError, SignContext, SignatureError, Verified, Verifier, VerifyOptions,
};

const ALL: [Scheme; 6] = Scheme::ALL;

/// A header map from (name, value) pairs.
pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
    map
}

/// A verifier with default options.
pub(super) fn verifier(scheme: Scheme, secrets: &[&str]) -> Verifier {
    let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
    Verifier::new(scheme, &secrets, VerifyOptions::default()).unwrap()
}

/// Verifies one request made of parts.
pub(super) fn check(
    verifier: &Verifier,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Verified, SignatureError> {
    verifier.verify(&Inbound { headers, query, body }, now)
}

/// A secret each scheme accepts.
fn secret_for(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::StandardWebhooks => "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        Scheme::Stripe => "whsec_stripe_endpoint_secret",
        _ => "s3cret",
    }
}

fn headers_of(pairs: &[(String, String)]) -> HeaderMap {
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    headers(&borrowed)
}

#[test]
fn sign_then_verify_round_trips_for_every_scheme() {
    const NOW: i64 = 1_700_000_000;
    let body = br#"{"type":"order.filled","orderId":"o-1","quantity":0.5}"#;
    for scheme in ALL {
        for token_field in [None, Some("passphrase".to_owned())] {
            let context = SignContext { timestamp: NOW, message_id: "msg_1".into(), token_field };
            let secret = secret_for(scheme);
            let signed = sign(scheme, secret, body, &context).unwrap();
            let v = verifier(scheme, &[secret]);
            let result =
                check(&v, &headers_of(&signed.headers), signed.query.as_deref(), &signed.body, NOW + 5);
            let expected =
                if signed.body == body { Verified::Intact } else { Verified::Redacted(body.to_vec()) };
            assert_eq!(result, Ok(expected), "{scheme} with token field {:?}", context.token_field);
        }
    }
}

#[test]
fn signing_a_token_into_a_non_object_body_is_refused() {
    let context =
        SignContext { timestamp: 0, message_id: String::new(), token_field: Some("passphrase".into()) };
    assert_eq!(
        sign(Scheme::Token, "s3cret", b"[1,2]", &context),
        Err(SecretError::Body { scheme: Scheme::Token, reason: "the body is not a JSON object" })
    );
}

#[test]
fn every_scheme_but_none_needs_a_non_empty_secret() {
    for scheme in ALL {
        let none = Verifier::new(scheme, &[], VerifyOptions::default());
        let empty = Verifier::new(scheme, &[String::new()], VerifyOptions::default());
        if scheme == Scheme::None {
            assert!(none.is_ok() && empty.is_ok());
        } else {
            assert_eq!(none.unwrap_err(), SecretError::NoSecret(scheme));
            assert!(matches!(empty.unwrap_err(), SecretError::Invalid { index: 1, .. }));
        }
    }
}

#[test]
fn none_scheme_always_passes() {
    let v = verifier(Scheme::None, &[]);
    assert_eq!(check(&v, &headers(&[]), None, b"anything", 0), Ok(Verified::Intact));
}

#[test]
fn debug_of_verifier_does_not_print_secrets() {
    for scheme in ALL {
        let secret = match scheme {
            Scheme::StandardWebhooks => "whsec_c3VwZXItc2VjcmV0LXZhbHVl",
            _ => "super-secret-value",
        };
        let shown = format!("{:?}", verifier(scheme, &[secret]));
        assert!(!shown.contains("super") && !shown.contains("c3VwZXI"), "{shown}");
        assert!(shown.contains("secrets: 1"), "{shown}");
    }
}

#[test]
fn error_messages_never_contain_the_expected_signature() {
    let body = b"{}";
    let v = verifier(Scheme::HmacSha256, &["s3cret"]);
    let expected = super::hex_tag("s3cret", &[b"{\"tampered\":1}"]);
    let h = headers(&[("X-Webhook-Signature", &super::hex_tag("other", &[body]))]);
    let error = check(&v, &h, None, body, 0).unwrap_err();
    assert!(!error.to_string().contains(&expected[..8]));
    assert_eq!(error.to_string(), "signature does not match");
}

#[test]
fn scheme_names_round_trip_through_from_str_and_serde() {
    for scheme in ALL {
        assert_eq!(scheme.name().parse::<Scheme>(), Ok(scheme));
        assert_eq!(serde_json::to_string(&scheme).unwrap(), format!("\"{scheme}\""));
    }
    assert!("hmac".parse::<Scheme>().is_err());
}

/// A random header value: raw bytes half of the time (including ones `to_str` rejects), otherwise
/// pieces of real signature syntax so the parsers get past their first checks.
fn random_value(rng: &mut StdRng) -> HeaderValue {
    const PIECES: [&str; 16] = [
        "t=",
        "v1=",
        "v1,",
        "v1a,",
        "sha256=",
        ",",
        " ",
        "=",
        "1700000000",
        "abc",
        "0123456789abcdef",
        "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        "%",
        "\u{e9}",
        "-",
        "99999999999999999999",
    ];
    loop {
        let bytes: Vec<u8> = if rng.random_bool(0.5) {
            (0..rng.random_range(0..80)).map(|_| rng.random()).collect()
        } else {
            let count = rng.random_range(0..12);
            (0..count).flat_map(|_| PIECES[rng.random_range(0..PIECES.len())].bytes()).collect()
        };
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            return value;
        }
    }
}

fn random_text(rng: &mut StdRng) -> String {
    const CHARS: &[u8] = b"token=&%+aZ09{}\"passphrase:,\\u";
    (0..rng.random_range(0..40)).map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())])).collect()
}

#[test]
fn random_headers_and_bodies_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x7261_6e64);
    let verifiers: Vec<Verifier> =
        ALL.iter().map(|&scheme| verifier(scheme, &[secret_for(scheme)])).collect();
    let names = [
        "x-webhook-signature",
        "x-hub-signature-256",
        "stripe-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
    ];
    for round in 0..400 {
        let mut map = HeaderMap::new();
        for name in names {
            if rng.random_bool(0.8) {
                map.insert(HeaderName::from_static(name), random_value(&mut rng));
            }
        }
        let body: Vec<u8> = if round % 2 == 0 {
            (0..rng.random_range(0..200)).map(|_| rng.random()).collect()
        } else {
            random_text(&mut rng).into_bytes()
        };
        let query = random_text(&mut rng);
        let now = rng.random_range(i64::MIN..=i64::MAX);
        for v in &verifiers {
            let _ = check(v, &map, Some(&query), &body, now);
            let _ = check(v, &map, None, &body, 1_700_000_000);
        }
    }
}
