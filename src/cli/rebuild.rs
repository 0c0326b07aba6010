//! `tradehook rebuild-state`: recompute all trading state from the stored raw events.
//!
//! Run it with the gateway stopped: the store's lock file enforces that for SQLite, and on
//! PostgreSQL it takes the processing lease first and refuses while a live node holds it. It applies
//! every event that was processed as `applied`, in arrival order, to an empty state, compares
//! the result with the stored state, and (unless `--check`) replaces the stored state with it.

use crate::config::{Config, SourceConfig};
use crate::ingest::signature::Scheme;
use crate::ingest::DEFAULT_SOURCE;
use crate::server;
use crate::worker::{self, apply::SourceRules};

/// Arguments of `rebuild-state`.
#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    /// Only compare: report whether the stored state equals the recomputed one; change nothing.
    #[arg(long)]
    pub check: bool,
}

/// Rebuilds (or checks) and prints what it found.
pub async fn run(args: RebuildArgs, mut config: Config) -> anyhow::Result<()> {
    // Only how events are read matters here, not secrets: nothing is created in the data
    // directory (a refused run must leave it as it was).
    if config.sources.is_empty() {
        config.sources.push(SourceConfig::new(DEFAULT_SOURCE, Scheme::HmacSha256, Vec::new()));
    }
    if let Ok(crate::config::StoreLocation::Sqlite(path)) = config.store_location() {
        // Opening would create an empty store and find it "equal" to nothing.
        if !path.exists() {
            anyhow::bail!(
                "no store at {}: run rebuild-state where the gateway keeps its data, or give its --config",
                path.display()
            );
        }
    }
    let store = server::open_store(&config).await?;
    if !args.check && store.processing_lease().await? == crate::store::Lease::Standby {
        // PostgreSQL: a live node processes. Its state, in memory, would go on from where it
        // is, and what it commits meanwhile would be overwritten by a state computed without it.
        store.close().await;
        anyhow::bail!(
            "another gateway node is processing events on this store (it holds the processing lease): \
             stop every node, then run rebuild-state (--check compares without changing anything)"
        );
    }
    let rules = SourceRules::from_config(&config.sources);
    let stored = worker::apply::load_state(store.all_entities().await?).map_err(anyhow::Error::msg)?;
    let worker::Recomputed { state: rebuilt, unreadable } = if args.check {
        worker::recompute_state(&store, &rules).await?
    } else {
        worker::rebuild_state(&store, &rules).await?
    };
    if !unreadable.is_empty() {
        // Applied once, unreadable now: say which, so a difference below is explained.
        println!("{} applied events cannot be read now and were left out:", unreadable.len());
        for (id, reason) in unreadable.iter().take(20) {
            println!("  {id}: {reason}");
        }
        if unreadable.len() > 20 {
            println!("  … and {} more", unreadable.len() - 20);
        }
    }
    let same = worker::apply::all_documents(&stored)? == worker::apply::all_documents(&rebuilt)?;
    println!(
        "{} orders, {} positions, {} balances, {} ledger entries recomputed from the stored events",
        rebuilt.orders.len(),
        rebuilt.positions.len(),
        rebuilt.balances.len(),
        rebuilt.ledger.len()
    );
    println!("stored state {} the recomputed state", if same { "equals" } else { "DIFFERED from" });
    if !args.check && !same {
        println!("stored state replaced");
    }
    store.close().await;
    if args.check && !same {
        anyhow::bail!("stored state differs from the state recomputed from events");
    }
    Ok(())
}
