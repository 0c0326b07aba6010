//! Every signature scheme's header parsing, on arbitrary headers, query and body: verification
//! never panics, and what `sign` produces always verifies — and stops verifying when one byte of
//! the signed body changes (for the schemes that cover the body). The `token` scheme never
//! stores the token it removed.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tradehook::ingest::signature::{sign, Inbound, Scheme, SignContext, Verified, Verifier, VerifyOptions};

const SHARED: &str = "fuzz-shared-secret";
/// The Standard Webhooks specification's example secret.
const WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const TOKEN: &str = "fuzz token&phrase";
const TOLERANCE: Duration = Duration::from_secs(300);

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    scheme: u8,
    headers: Vec<(&'a str, &'a [u8])>,
    query: Option<&'a str>,
    body: &'a [u8],
    now: i64,
    /// For the round trip: seconds between signing and verifying.
    skew: i16,
    /// For the round trip: which byte of the signed body to flip, if any.
    tamper: Option<u16>,
    /// For the round trip of `token`: in a JSON field (else in the query).
    token_in_body: bool,
    message_id: &'a str,
}

struct Keys {
    signing: String,
    public: String,
}

fn ed25519_keys() -> Keys {
    let seed = [7u8; 32];
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let b64 = base64::engine::general_purpose::STANDARD;
    Keys {
        signing: format!("whsk_{}", b64.encode(seed)),
        public: format!("whpk_{}", b64.encode(key.verifying_key().to_bytes())),
    }
}

fn secrets(scheme: Scheme, keys: &Keys) -> Vec<String> {
    match scheme {
        Scheme::StandardWebhooks => vec![WHSEC.to_owned(), keys.public.clone()],
        Scheme::Token => vec![TOKEN.to_owned()],
        Scheme::None => vec![],
        _ => vec!["an-old-secret".to_owned(), SHARED.to_owned()],
    }
}

fn verifier(scheme: Scheme, keys: &Keys) -> Verifier {
    let options = VerifyOptions { tolerance: TOLERANCE, token_field: "passphrase".into() };
    Verifier::new(scheme, &secrets(scheme, keys), options).expect("the fuzz secrets are valid")
}

fn header_map(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    map
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|input: Input<'_>| {
    let keys = ed25519_keys();
    let scheme = Scheme::ALL[usize::from(input.scheme) % Scheme::ALL.len()];
    let verifier = verifier(scheme, &keys);

    // 1. Arbitrary requests: never a panic, and a redacted body never keeps the token.
    let headers = header_map(&input.headers);
    let request = Inbound { headers: &headers, query: input.query, body: input.body };
    if let Ok(Verified::Redacted(stored)) = verifier.verify(&request, input.now) {
        assert!(!contains(&stored, TOKEN.as_bytes()) || contains(input.body, TOKEN.as_bytes()));
    }

    // 2. What `sign` produces verifies; a flipped body byte does not.
    // Senders sign with a unix time after 1970 (a negative one is malformed, and rightly so).
    let now = input.now.clamp(1_000_000, 4_000_000_000);
    let signer = match scheme {
        Scheme::StandardWebhooks if input.token_in_body => keys.signing.clone(),
        Scheme::StandardWebhooks => WHSEC.to_owned(),
        Scheme::Token => TOKEN.to_owned(),
        _ => SHARED.to_owned(),
    };
    let context = SignContext {
        timestamp: now.saturating_add(i64::from(input.skew)),
        // What a header can carry: visible ASCII (the verifier refuses other bytes as malformed),
        // without the blanks around it that HTTP drops (and the verifier trims).
        message_id: match input.message_id.trim_matches([' ', '\t']) {
            id if !id.is_empty() && id.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) => id.into(),
            _ => "msg_fuzz".into(),
        },
        token_field: (scheme == Scheme::Token && input.token_in_body).then(|| "passphrase".to_owned()),
    };
    let Ok(signed) = sign(scheme, &signer, input.body, &context) else {
        // Only the token-in-body form refuses bodies (not a JSON object); ids may be unusable.
        return;
    };
    let Ok(pairs) = signed
        .headers
        .iter()
        .map(|(n, v)| {
            Ok::<_, ()>((
                HeaderName::from_bytes(n.as_bytes()).map_err(|_| ())?,
                HeaderValue::from_str(v).map_err(|_| ())?,
            ))
        })
        .collect::<Result<Vec<_>, ()>>()
    else {
        // A message id that cannot be a header value (sign copies it as given).
        return;
    };
    let mut sent = HeaderMap::new();
    for (name, value) in pairs {
        sent.append(name, value);
    }
    let request = Inbound { headers: &sent, query: signed.query.as_deref(), body: &signed.body };
    let in_tolerance = u64::from(input.skew.unsigned_abs()) <= TOLERANCE.as_secs();
    let timed = matches!(scheme, Scheme::Stripe | Scheme::StandardWebhooks);
    let outcome = verifier.verify(&request, now);
    if timed && !in_tolerance {
        assert!(outcome.is_err(), "{scheme}: a timestamp {} s away passed", input.skew);
        return;
    }
    let verified = outcome.unwrap_or_else(|e| panic!("{scheme}: its own signature failed: {e}"));
    if let Verified::Redacted(stored) = &verified {
        assert!(!contains(stored, TOKEN.as_bytes()) || contains(input.body, TOKEN.as_bytes()));
        // `sign` put the token in the `passphrase` field; what is stored has no such field.
        if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(stored) {
            assert!(!fields.contains_key("passphrase"), "{scheme}: the token field was stored");
        }
    }
    let covers_body = !matches!(scheme, Scheme::Token | Scheme::None);
    if let (true, Some(at)) = (covers_body, input.tamper) {
        if signed.body.is_empty() {
            return;
        }
        let mut body = signed.body.clone();
        let at = usize::from(at) % body.len();
        body[at] ^= 0x01;
        let request = Inbound { headers: &sent, query: signed.query.as_deref(), body: &body };
        assert!(verifier.verify(&request, now).is_err(), "{scheme}: a changed body still verified");
    }
});
