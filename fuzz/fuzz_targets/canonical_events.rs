//! Canonical events from arbitrary JSON, one document per line: the seed 001 catalogue and
//! TradingView alerts are parsed, every event that parses is applied to one trading state and
//! handed to every strategy action, and the actions' state is stored and read back as the worker
//! does. Never a panic (checked arithmetic included), and the stored strategy state reads back
//! to what was stored.

#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tradehook::trading::actions::{decide, ActionsConfig, StrategyState};
use tradehook::trading::{parse_event, parse_tradingview, TradingState, TradingViewMapping};

/// Every action on, with limits loose enough that events reach their arithmetic.
fn actions() -> ActionsConfig {
    serde_json::from_value(serde_json::json!({
        "bracket_on_fill": {"stop_loss": "2%", "take_profit": "250"},
        "signal_to_order": {"max_position": "1000000", "max_order": "100000",
                            "max_orders_per_minute": 1000, "max_signal_age": "3650d",
                            "equity": "100000", "default_quantity": "1"},
        "margin_guard": {"threshold": "0.8", "rearm_below": "0.5", "reduce_fraction": "0.5",
                         "max_alert_age": "3650d"}
    }))
    .expect("the fuzz actions config is valid")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let config = actions();
    let mapping = TradingViewMapping::default();
    let received: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).expect("a valid time");
    let mut trading = TradingState::new();
    let mut strategy = StrategyState::new();
    for (line, document) in text.lines().take(64).enumerate() {
        let Ok(json) = serde_json::from_str::<Value>(document) else { continue };
        let parsed = [parse_event(&json), parse_tradingview(&json, &mapping, received)];
        for event in parsed.into_iter().flatten() {
            let _ = event.event_type();
            let _ = event.ordering_key();
            trading.apply(&event);
            // Both kinds of store: without a namespace (older ones) and with one.
            let namespace = if line % 2 == 0 { "" } else { "0a1b2c3d" };
            let key = format!("fuzz:{line}");
            let decided = decide(&config, &mut strategy, &trading, &event, &key, namespace, received);
            let documents = strategy.documents(&decided.touched).expect("strategy state serializes");
            let rows =
                documents.into_iter().filter_map(|d| Some((d.kind.as_str().to_owned(), d.key, d.doc?)));
            StrategyState::from_documents(rows).expect("stored strategy state reads back");
        }
    }
});
