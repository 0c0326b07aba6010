//! Wake-ups across nodes: commits that store events or queue deliveries `NOTIFY`, and every node
//! `LISTEN`s on a connection of its own, so the processing node hears of events another node
//! stored, and every dispatcher of deliveries another node queued, without polling.
//!
//! Notifications are only wake-ups: the worker and the dispatcher also look on a timer, so a
//! lost connection costs latency, never an event. After reconnecting, both are woken once in case
//! something was missed meanwhile.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

/// Listens until `stop`, reconnecting after errors.
pub(super) async fn run(
    config: tokio_postgres::Config,
    arrivals: Arc<Notify>,
    deliveries: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listen = client.batch_execute("LISTEN tradehook_events; LISTEN tradehook_deliveries");
                tokio::pin!(listen);
                let mut listening = false;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        result = &mut listen, if !listening => match result {
                            Ok(()) => {
                                listening = true;
                                arrivals.notify_one();
                                deliveries.notify_one();
                            }
                            Err(error) => {
                                tracing::warn!(%error, "cannot LISTEN for wake-ups");
                                break;
                            }
                        },
                        message = messages.next() => match message {
                            Some(Ok(AsyncMessage::Notification(note))) => match note.channel() {
                                "tradehook_events" => arrivals.notify_one(),
                                _ => deliveries.notify_one(),
                            },
                            Some(Ok(_)) => {}
                            Some(Err(error)) => {
                                tracing::warn!(%error, "wake-up connection lost; reconnecting");
                                break;
                            }
                            None => break,
                        },
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "cannot connect for wake-ups; retrying"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
