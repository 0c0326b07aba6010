//! `tradehook dlq list|show|replay|discard`: the dead-letter queue through the API of a running
//! gateway.

use http::Method;
use serde_json::json;

use super::client::{pretty, ApiArgs, ApiClient};
use super::events::query;
use crate::config::Config;
use crate::ingest::signature::percent_encode as encode;

/// `dlq …`.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// Dead letters, newest first.
    List {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only `event` or `delivery`.
        #[arg(long)]
        kind: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only entries older than this one (`dlq_…`): the next page.
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One dead letter with its attempt history.
    Show {
        /// `dlq_…`.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Put dead letters back in the queue: one id, or every entry matching the filters.
    Replay {
        /// `dlq_…`; omit and use filters (or --all) to replay many.
        id: Option<String>,
        /// Replay every entry (up to 10000).
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// Only entries of this source.
        #[arg(long, conflicts_with = "id")]
        source: Option<String>,
        /// Only entries whose reason contains this text.
        #[arg(long, conflicts_with = "id")]
        reason: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove a dead letter for good.
    Discard {
        /// `dlq_…`.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Runs a `dlq` command.
pub async fn run(command: DlqCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { source, kind, limit, before, api } => {
            let client = ApiClient::new(&api, config)?;
            let path = format!(
                "/dlq{}",
                query(&[("limit", Some(limit.to_string())), ("source", source), ("kind", kind), ("before", before)])
            );
            let answer = client.call(Method::GET, &path, None).await?;
            for entry in answer["deadLetters"].as_array().into_iter().flatten() {
                println!(
                    "{:<10} {:<12} {:<8} attempts {:<2} {}  {}",
                    entry["id"].as_str().unwrap_or("?"),
                    entry["eventId"].as_str().unwrap_or("?"),
                    entry["kind"].as_str().unwrap_or("?"),
                    entry["attempts"],
                    entry["deadAt"].as_str().unwrap_or("?"),
                    entry["reason"].as_str().unwrap_or("")
                );
            }
            if let Some(next) = answer["next"].as_str() {
                println!("more: add --before {next}");
            }
        }
        DlqCommand::Show { id, api } => {
            let client = ApiClient::new(&api, config)?;
            let answer = client.call_raw(Method::GET, &format!("/dlq/{}", encode(&id)), None).await?;
            println!("{}", pretty(&answer)?);
        }
        DlqCommand::Replay { id, all, source, reason, api } => {
            let client = ApiClient::new(&api, config)?;
            let answer = match id {
                Some(id) => {
                    client
                        .call(Method::POST, &format!("/dlq/{}/replay", encode(&id)), Some(json!({})))
                        .await?
                }
                None if all || source.is_some() || reason.is_some() => {
                    let filter = json!({ "source": source, "reason": reason, "limit": 10000 });
                    client.call(Method::POST, "/dlq/replay", Some(json!({ "filter": filter }))).await?
                }
                None => anyhow::bail!("give a dlq_… id, --all, --source or --reason"),
            };
            println!("replayed {}", answer["replayed"]);
        }
        DlqCommand::Discard { id, api } => {
            let client = ApiClient::new(&api, config)?;
            client.call(Method::DELETE, &format!("/dlq/{}", encode(&id)), None).await?;
            println!("discarded {id}");
        }
    }
    Ok(())
}
