//! POSTing alerts to `[alerts] url`: one task, one alert at a time, in order, each retried a few
//! times with backoff. The URL may carry a token, so logs name only its scheme, host and port.

use std::time::Duration;

use tokio::sync::mpsc;

use super::OpsAlert;
use crate::config::redacted_url;

/// Longest one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the POSTing task and returns its queue; `None` (alerts only logged) when there is no
/// runtime or no HTTP client can be built.
pub(super) fn start(url: &str, capacity: usize, delays: Vec<Duration>) -> Option<mpsc::Sender<OpsAlert>> {
    let target = redacted_url(url);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(%target, "no async runtime: alerts are only logged");
        return None;
    };
    crate::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tradehook/", env!("CARGO_PKG_VERSION")))
        .build();
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%target, %error, "cannot build the HTTP client for alerts: alerts are only logged");
            return None;
        }
    };
    let (queue, alerts) = mpsc::channel(capacity);
    runtime.spawn(post_all(client, url.to_string(), alerts, delays));
    Some(queue)
}

/// Posts queued alerts until every sender is gone.
async fn post_all(
    client: reqwest::Client,
    url: String,
    mut alerts: mpsc::Receiver<OpsAlert>,
    delays: Vec<Duration>,
) {
    while let Some(alert) = alerts.recv().await {
        post_with_retries(&client, &url, &alert, &delays).await;
    }
}

/// What one POST attempt came to.
enum Attempt {
    /// The receiver took it (2xx).
    Delivered,
    /// Worth another try: connection problem, timeout, 408, 429 or 5xx.
    Retry(String),
    /// Will not pass (another 4xx, a redirect): give up.
    Refused(String),
}

async fn post_with_retries(client: &reqwest::Client, url: &str, alert: &OpsAlert, delays: &[Duration]) {
    let body = match serde_json::to_vec(alert) {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(%error, "alert not serialisable; dropped");
            return;
        }
    };
    let target = redacted_url(url);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let reason = match post_once(client, url, body.clone()).await {
            Attempt::Delivered => {
                metrics::counter!("tradehook_ops_alerts_total", "outcome" => "sent").increment(1);
                return;
            }
            Attempt::Refused(reason) => {
                metrics::counter!("tradehook_ops_alerts_total", "outcome" => "failed").increment(1);
                tracing::warn!(%target, kind = %alert.kind, %reason, "alert receiver refused the alert; not retried");
                return;
            }
            Attempt::Retry(reason) => reason,
        };
        let Some(delay) = delays.get(attempts - 1) else {
            metrics::counter!("tradehook_ops_alerts_total", "outcome" => "failed").increment(1);
            tracing::warn!(%target, kind = %alert.kind, attempts, %reason, "alert not delivered; given up");
            return;
        };
        tracing::debug!(%target, attempts, %reason, ?delay, "alert POST failed; will retry");
        tokio::time::sleep(*delay).await;
    }
}

async fn post_once(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Attempt {
    let sent =
        client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body).send().await;
    match sent {
        Ok(response) if response.status().is_success() => Attempt::Delivered,
        Ok(response) => {
            let status = response.status();
            let reason = format!("status {status}");
            if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                Attempt::Retry(reason)
            } else {
                Attempt::Refused(reason)
            }
        }
        // `without_url`: the URL may hold a token.
        Err(error) => Attempt::Retry(error.without_url().to_string()),
    }
}
