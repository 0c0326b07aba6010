//! The ingest payload reader on arbitrary bytes: never a panic, never accepts what is not JSON or
//! is nested deeper than the limit, and its one-pass fast path (borrowed fields, no tree) gives
//! exactly what the general path over `serde_json::Value` gives.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tradehook::ingest::event_id::body_field_id;
use tradehook::ingest::guard::{self, JsonError};
use tradehook::ingest::payload::{self, truncate, Payload};

fn default_rule() -> Vec<String> {
    vec!["/id".to_owned(), "/eventId".to_owned()]
}

/// What the payload reader must answer, computed the slow way.
fn expected(body: &[u8], id_fields: &[String]) -> Result<Payload, JsonError> {
    let json = guard::parse_json(body)?;
    let event_type = ["event", "type"]
        .iter()
        .find_map(|key| json.get(key).and_then(|v| v.as_str()))
        .map(|s| truncate(s, 100).to_string());
    Ok(Payload { event_type, body_id: body_field_id(&json, id_fields) })
}

fuzz_target!(|body: &[u8]| {
    let fast = payload::read(body, &default_rule());
    let slow = expected(body, &default_rule());
    match (&fast, &slow) {
        (Ok(fast), Ok(slow)) => assert_eq!(fast, slow, "fast and general paths disagree"),
        (Err(_), Err(_)) => {}
        _ => panic!("one path accepted and the other refused: fast {fast:?}, general {slow:?}"),
    }
    // What ingest accepts, the worker can read (it parses stored bodies as `Value`).
    if fast.is_ok() {
        assert!(serde_json::from_slice::<serde_json::Value>(body).is_ok());
    }
    // Configured pointers always take the general path: it accepts what the fast path accepts.
    let pointers = vec!["/data/id".to_owned(), "/0".to_owned(), "/id".to_owned()];
    assert_eq!(payload::read(body, &pointers).is_ok(), fast.is_ok());
});
