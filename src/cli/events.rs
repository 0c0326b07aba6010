//! `tradehook events list|show|tail` and `tradehook replay`: stored events through the API of a
//! running gateway.

use std::time::Duration;

use http::Method;

use super::client::{pretty, ApiArgs, ApiClient, Refused};
use crate::config::Config;
use crate::ingest::signature::percent_encode as encode;

/// `events …`.
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// The newest stored events.
    List {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only this event type.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One event with its payload and headers.
    Show {
        /// The id the ingest answer gave (`evt_…`).
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print events as they arrive, until interrupted.
    Tail {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// One line per event: id, arrival, source, type, processing state (`pending`, or how it ended:
/// `applied`, `stored`, `dead` …).
fn line(event: &serde_json::Value) -> String {
    let processed = match (event["processedAt"].is_null(), event["outcome"].as_str()) {
        (true, _) => "pending",
        (false, Some(outcome)) => outcome,
        (false, None) => "processed",
    };
    format!(
        "{:<12} {}  {:<10} {:<28} {}",
        event["id"].as_str().unwrap_or("?"),
        event["receivedAt"].as_str().unwrap_or("?"),
        event["source"].as_str().unwrap_or("?"),
        event["eventType"].as_str().unwrap_or("-"),
        processed
    )
}

/// `?name=value&…` of the pairs that have a value, values percent-encoded.
pub(super) fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Runs an `events` command.
pub async fn run(command: EventsCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        EventsCommand::List { source, event_type, limit, json, api } => {
            let client = ApiClient::new(&api, config)?;
            let path = format!(
                "/events{}",
                query(&[("source", source), ("type", event_type), ("limit", Some(limit.to_string()))])
            );
            if json {
                /// The page with its events as the gateway wrote them.
                #[derive(serde::Deserialize)]
                struct Page {
                    events: Box<serde_json::value::RawValue>,
                }
                let page: Page = serde_json::from_slice(&client.call_raw(Method::GET, &path, None).await?)?;
                println!("{}", pretty(page.events.get().as_bytes())?);
            } else {
                let answer = client.call(Method::GET, &path, None).await?;
                for event in answer["events"].as_array().into_iter().flatten() {
                    println!("{}", line(event));
                }
            }
        }
        EventsCommand::Show { id, api } => {
            let client = ApiClient::new(&api, config)?;
            let answer = client.call_raw(Method::GET, &format!("/events/{}", encode(&id)), None).await?;
            println!("{}", pretty(&answer)?);
        }
        EventsCommand::Tail { source, api } => {
            let client = ApiClient::new(&api, config)?;
            let newest = client
                .call(
                    Method::GET,
                    &format!("/events{}", query(&[("source", source.clone()), ("limit", Some("1".into()))])),
                    None,
                )
                .await?;
            let mut after = newest["events"][0]["seq"].as_i64().unwrap_or(0);
            let mut failing = false;
            loop {
                let path = format!(
                    "/events{}",
                    query(&[
                        ("source", source.clone()),
                        ("after", Some(after.to_string())),
                        ("limit", Some("1000".into()))
                    ])
                );
                // A gateway restarting, or a moment without network, does not end the tail: it
                // says so once and goes on from the last event it printed.
                match client.call(Method::GET, &path, None).await {
                    Ok(page) => {
                        if failing {
                            eprintln!("events tail: the gateway answers again");
                            failing = false;
                        }
                        for event in page["events"].as_array().into_iter().flatten() {
                            println!("{}", line(event));
                            after = after.max(event["seq"].as_i64().unwrap_or(after));
                        }
                    }
                    // A refusal that asking again will not change (a rotated token): stop and say.
                    Err(error)
                        if error.downcast_ref::<Refused>().is_some_and(|r| !r.is_transient()) =>
                    {
                        return Err(error);
                    }
                    Err(error) if !failing => {
                        eprintln!("events tail: {error}; trying again every 0.5 s");
                        failing = true;
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Ok(())
}

/// `tradehook replay <id>`: put one stored event back in the processing queue.
pub async fn replay(id: String, api: ApiArgs, config: &Config) -> anyhow::Result<()> {
    let client = ApiClient::new(&api, config)?;
    let answer = client
        .call(Method::POST, &format!("/events/{}/replay", encode(&id)), Some(serde_json::json!({})))
        .await?;
    println!("{id} requeued: {}", answer["requeued"]);
    Ok(())
}
