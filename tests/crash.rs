//! Crash safety: concurrent senders, `kill -9` of the server process mid-load, restart — every
//! event that got `200 accepted` is there, and its de-duplication survived the crash.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tradehook::ingest::signature::Scheme;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_event_survives_kill_9_mid_load() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    for cycle in 0..3 {
        let mut server = ServerProcess::start(dir.path());
        let url = format!("http://{}/webhook", server.addr);
        let stop = Arc::new(AtomicBool::new(false));
        let acked_here = acked.clone();
        let seen = Arc::new(move |(key, answer): LoadAnswer| {
            // Refused or cut off by the kill: not acknowledged, so no promise made.
            if let Some((200, json)) = answer.filter(|(_, json)| json["status"] == "accepted") {
                acked_here.lock().unwrap().push((key, json["id"].as_str().unwrap().to_string()));
            }
        });
        let senders = send_until_stopped(&url, 16, &format!("c{cycle}"), &stop, seen);
        tokio::time::sleep(Duration::from_millis(800)).await;
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for sender in senders {
            sender.await.unwrap();
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "too little load to prove anything: {}", acked.len());

    let server = ServerProcess::start(dir.path());
    let stored = stored_events(server.addr).await;
    let missing: Vec<_> = acked.iter().filter(|(key, id)| stored.get(id) != Some(key)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acked events lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..1]
    );
    let keys: HashSet<_> = stored.values().collect();
    assert_eq!(keys.len(), stored.len(), "an event key was stored twice");

    // De-duplication survived the crashes: resending an acked event answers with its first id.
    let url = format!("http://{}/webhook", server.addr);
    for (key, id) in acked.iter().step_by(acked.len() / 20 + 1) {
        let (status, json) =
            try_post(&url, Scheme::HmacSha256, SECRET, order_event(key).as_bytes()).await.unwrap();
        assert_eq!((status, json["status"].as_str().unwrap()), (200, "duplicate"));
        assert_eq!(json["id"].as_str().unwrap(), id);
    }
    eprintln!(
        "acked {} events over 3 kill -9 cycles; all {} present after restart",
        acked.len(),
        acked.len()
    );
}
