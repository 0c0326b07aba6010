//! The paper broker: fills market orders at once at the intent's reference price (the last
//! price tradehook knew for the symbol), fills limit orders that are already crossed at that
//! price, and accepts the rest (stops, uncrossed limits) as resting `new` orders; amends and
//! cancels become `order.updated` and `order.cancelled`.
//!
//! Reduce-only, as a venue enforces it: such an order never increases or flips a position. The
//! intent carries `positionQuantity`, the signed net position of its account and symbol when the
//! worker decided it, less the reduce-only orders already on their way to this broker (see
//! `Strategy::reducible`); a reduce-only fill is capped at the opposite of it. What the cap leaves
//! over is cancelled (a resting order that fills in part) or the order is rejected (nothing to
//! reduce). An intent without `positionQuantity` (queued by an older version) is not capped.
//!
//! Pure: it turns one intent into the seed 001 order events a venue would send. The dispatcher
//! stores them under source `paper` with ids derived from the client order id, so a re-sent
//! intent produces duplicates that ingest de-duplication drops.

use rust_decimal::Decimal;
use serde_json::{json, Value};

/// The events the paper broker answers `intent` (JSON) with at `now` (RFC 3339): a list of
/// (event id, body). `Err` when the intent cannot be executed (no price known, bad fields).
pub fn execute(intent: &Value, now: &str) -> Result<Vec<(String, Value)>, String> {
    let text = |name: &str| intent.get(name).and_then(Value::as_str).map(str::to_owned);
    let number = |name: &str| match intent.get(name) {
        Some(Value::String(s)) => s.parse::<Decimal>().ok(),
        Some(Value::Number(n)) => n.to_string().parse::<Decimal>().ok(),
        _ => None,
    };
    let client_id = text("clientOrderId").ok_or("the intent has no clientOrderId")?;
    // Amends and cancels act on an earlier order (`targetClientOrderId`); their own id names
    // the events, so each amend is a new event and a re-sent one a duplicate.
    let order_client_id = text("targetClientOrderId").unwrap_or_else(|| client_id.clone());
    let order_id = format!("paper-{order_client_id}");
    let op = text("op").unwrap_or_else(|| "place".into());
    // The intent's account travels with its order events, so fills land on that account's
    // position (positions are per account).
    let account = text("account");
    let event = |step: &str, kind: &str, mut data: Value| {
        if let (Some(account), Some(fields)) = (&account, data.as_object_mut()) {
            fields.insert("account".into(), json!(account));
        }
        let body =
            json!({ "id": format!("{client_id}:{step}"), "event": kind, "timestamp": now, "data": data });
        (format!("{client_id}:{step}"), body)
    };
    match op.as_str() {
        "cancel" => {
            let data = json!({ "orderId": order_id, "clientOrderId": order_client_id, "status": "cancelled",
                "reason": text("reason").unwrap_or_else(|| "cancelled by tradehook".into()) });
            Ok(vec![event("cancel", "order.cancelled", data)])
        }
        "amend" => {
            let quantity = number("quantity").ok_or("an amend needs a quantity")?;
            let mut data = json!({ "orderId": order_id, "clientOrderId": order_client_id,
                "quantity": quantity.to_string(), "status": "new" });
            // The new limit or stop level too (a bracket leg moved to a new average fill), as in
            // `place`: a resting paper order fills at the level its latest event named.
            if let Some(price) = number("price").or(number("stopPrice")) {
                data["price"] = json!(price.to_string());
            }
            Ok(vec![event("amend", "order.updated", data)])
        }
        "fill" => {
            // A resting order the price reached (decided by the worker from the last price).
            let quantity = number("quantity").ok_or("a fill needs a quantity")?;
            let price = number("fillPrice").ok_or("a fill needs a fillPrice")?;
            let reduce_only = intent.get("reduceOnly").and_then(Value::as_bool).unwrap_or(false);
            let buy = text("side").is_some_and(|s| s.eq_ignore_ascii_case("buy"));
            let fillable = fillable(quantity, reduce_only, buy, number("positionQuantity"));
            if fillable.is_zero() {
                let data = json!({ "orderId": order_id, "clientOrderId": order_client_id, "status": "cancelled",
                    "reason": NOTHING_TO_REDUCE });
                return Ok(vec![event("fill", "order.cancelled", data)]);
            }
            let status = if fillable < quantity { "partially_filled" } else { "filled" };
            let data = json!({ "orderId": order_id, "clientOrderId": order_client_id,
                "symbol": text("symbol"), "side": text("side"), "status": status,
                "filledQuantity": fillable.to_string(), "averagePrice": price.to_string(),
                "tradeId": format!("{order_client_id}-fill"), "lastQuantity": fillable.to_string(),
                "lastPrice": price.to_string(), "reduceOnly": reduce_only });
            let mut events = vec![event("fill", "order.updated", data)];
            if fillable < quantity {
                events.push(event("fill-rest", "order.cancelled", rest_cancelled(&order_id, &order_client_id)));
            }
            Ok(events)
        }
        _ => place(intent, &client_id, &order_id, number, text, event),
    }
}

/// Why a reduce-only order did not fill (at all).
const NOTHING_TO_REDUCE: &str = "reduce-only: no opposite position to reduce";

/// How much of `quantity` may fill: all of it, unless the order is reduce-only and the position
/// (signed net, when known) is smaller on the opposite side or not opposite at all.
fn fillable(quantity: Decimal, reduce_only: bool, buy: bool, position: Option<Decimal>) -> Decimal {
    match position.filter(|_| reduce_only) {
        None => quantity,
        // A buy reduces a short (negative net), a sell a long.
        Some(net) => quantity.min(if buy { -net } else { net }).max(Decimal::ZERO),
    }
}

/// The cancel of what a capped reduce-only fill left over.
fn rest_cancelled(order_id: &str, client_id: &str) -> Value {
    json!({ "orderId": order_id, "clientOrderId": client_id, "status": "cancelled",
        "reason": "reduce-only: the rest would have flipped the position" })
}

fn place(
    intent: &Value,
    client_id: &str,
    order_id: &str,
    number: impl Fn(&str) -> Option<Decimal>,
    text: impl Fn(&str) -> Option<String>,
    event: impl Fn(&str, &str, Value) -> (String, Value),
) -> Result<Vec<(String, Value)>, String> {
    let symbol = text("symbol").ok_or("the intent has no symbol")?;
    let side = text("side").ok_or("the intent has no side")?;
    let order_type = text("orderType").unwrap_or_else(|| "market".into());
    let quantity =
        number("quantity").filter(|q| *q > Decimal::ZERO).ok_or("the intent has no positive quantity")?;
    let limit = number("price");
    let reference = number("referencePrice");
    let reduce_only = intent.get("reduceOnly").and_then(Value::as_bool).unwrap_or(false);
    let buy = side.eq_ignore_ascii_case("buy");
    let fill_price = match order_type.as_str() {
        "market" => {
            Some(reference.ok_or_else(|| format!("no known price for {symbol} to fill a market order"))?)
        }
        "limit" => match (limit, reference) {
            (Some(limit), Some(reference)) if (buy && reference <= limit) || (!buy && reference >= limit) => {
                Some(reference)
            }
            (None, _) => return Err("a limit order needs a price".into()),
            _ => None,
        },
        _ => None,
    };
    let mut created = json!({ "orderId": order_id, "clientOrderId": client_id, "symbol": symbol, "side": side,
        "type": order_type, "quantity": quantity.to_string(), "status": "new", "reduceOnly": reduce_only });
    if let Some(price) = limit.or(number("stopPrice")) {
        created["price"] = json!(price.to_string());
    }
    let mut events = vec![event("new", "order.created", created)];
    let Some(price) = fill_price else { return Ok(events) };
    let fillable = fillable(quantity, reduce_only, buy, number("positionQuantity"));
    if fillable.is_zero() {
        let rejected = json!({ "orderId": order_id, "clientOrderId": client_id, "status": "rejected",
            "reason": NOTHING_TO_REDUCE });
        events.push(event("fill", "order.updated", rejected));
        return Ok(events);
    }
    let status = if fillable < quantity { "partially_filled" } else { "filled" };
    let filled = json!({ "orderId": order_id, "clientOrderId": client_id, "symbol": symbol, "side": side,
        "status": status, "filledQuantity": fillable.to_string(), "averagePrice": price.to_string(),
        "tradeId": format!("{client_id}-fill"), "lastQuantity": fillable.to_string(),
        "lastPrice": price.to_string(), "reduceOnly": reduce_only });
    events.push(event("fill", "order.updated", filled));
    if fillable < quantity {
        events.push(event("fill-rest", "order.cancelled", rest_cancelled(order_id, client_id)));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2024-01-15T10:30:00Z";

    #[test]
    fn market_orders_fill_at_the_reference_price() {
        let intent = json!({"clientOrderId": "th-1", "op": "place", "symbol": "BTC/USD", "side": "buy",
            "orderType": "market", "quantity": "0.5", "referencePrice": "100.5"});
        let events = execute(&intent, NOW).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].1["event"], "order.created");
        assert_eq!(events[1].1["data"]["status"], "filled");
        assert_eq!(events[1].1["data"]["averagePrice"], "100.5");
        assert_eq!(events[1].1["data"]["orderId"], "paper-th-1");
        assert_eq!(events[1].0, "th-1:fill", "ids derive from the client order id");
    }

    #[test]
    fn the_intents_account_is_on_every_order_event() {
        let place = json!({"clientOrderId": "th-a", "symbol": "BTC/USD", "side": "buy", "orderType": "market",
            "quantity": "1", "referencePrice": "100", "account": "A"});
        let fill = json!({"clientOrderId": "th-b", "op": "fill", "quantity": "1", "fillPrice": "90",
            "symbol": "BTC/USD", "side": "sell", "account": "A"});
        let cancel = json!({"clientOrderId": "th-c", "op": "cancel", "targetClientOrderId": "th-b", "account": "A"});
        for intent in [place, fill, cancel] {
            for (_, body) in execute(&intent, NOW).unwrap() {
                assert_eq!(body["data"]["account"], "A", "{body}");
            }
        }
        let without = json!({"clientOrderId": "th-d", "symbol": "X", "side": "buy", "orderType": "market",
            "quantity": "1", "referencePrice": "1"});
        assert!(execute(&without, NOW).unwrap().iter().all(|(_, body)| body["data"].get("account").is_none()));
    }

    #[test]
    fn crossed_limits_fill_and_others_rest() {
        let limit = |side: &str, price: &str| {
            json!({"clientOrderId": "th-2", "symbol": "X", "side": side, "orderType": "limit",
                "quantity": "1", "price": price, "referencePrice": "100"})
        };
        assert_eq!(execute(&limit("buy", "101"), NOW).unwrap().len(), 2);
        assert_eq!(execute(&limit("buy", "99"), NOW).unwrap().len(), 1);
        assert_eq!(execute(&limit("sell", "99"), NOW).unwrap().len(), 2);
        let stop = json!({"clientOrderId": "th-3", "symbol": "X", "side": "sell", "orderType": "stop",
            "quantity": "1", "stopPrice": "95", "referencePrice": "100"});
        let events = execute(&stop, NOW).unwrap();
        assert_eq!(events.len(), 1, "stops rest");
        assert_eq!(events[0].1["data"]["price"], "95");
    }

    #[test]
    fn market_orders_without_a_known_price_are_refused() {
        let intent = json!({"clientOrderId": "th-4", "symbol": "ETH/USD", "side": "sell", "orderType": "market",
            "quantity": "1"});
        assert!(execute(&intent, NOW).unwrap_err().contains("no known price for ETH/USD"));
    }

    #[test]
    fn cancels_and_amends_become_order_updates() {
        let cancel = json!({"clientOrderId": "th-7", "targetClientOrderId": "th-5", "op": "cancel"});
        let events = execute(&cancel, NOW).unwrap();
        assert_eq!(events[0].1["event"], "order.cancelled");
        assert_eq!(events[0].1["data"]["orderId"], "paper-th-5");
        let amend = json!({"clientOrderId": "th-6", "targetClientOrderId": "th-5", "op": "amend", "quantity": "2",
            "stopPrice": "95.5"});
        let events = execute(&amend, NOW).unwrap();
        assert_eq!(events[0].1["data"]["quantity"], "2");
        assert_eq!(events[0].1["data"]["price"], "95.5", "the new stop level");
        assert_eq!(events[0].1["data"]["orderId"], "paper-th-5", "the amend changes the earlier order");
        assert_eq!(events[0].0, "th-6:amend", "named by the amend's own id");
    }

    #[test]
    fn a_reduce_only_fill_is_capped_at_the_opposite_position_and_the_rest_cancelled() {
        // Failed before: the stop of a bracket sized 2 filled 2 on a long of 0.5 (short 1.5).
        let stop = json!({"op": "fill", "clientOrderId": "thsl-1", "symbol": "X", "side": "sell",
            "quantity": "2", "fillPrice": "9.5", "reduceOnly": true, "positionQuantity": "0.5"});
        let events = execute(&stop, NOW).unwrap();
        let data = &events[0].1["data"];
        assert_eq!((data["lastQuantity"].as_str(), data["status"].as_str()), (Some("0.5"), Some("partially_filled")));
        assert_eq!((events[1].0.as_str(), events[1].1["event"].as_str()), ("thsl-1:fill-rest", Some("order.cancelled")));
        // Flat, or on the same side: nothing fills.
        for position in ["0", "-1"] {
            let mut flat = stop.clone();
            flat["positionQuantity"] = json!(position);
            let events = execute(&flat, NOW).unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].1["event"], "order.cancelled", "{position}");
        }
        // A position at least as large fills the whole order; not reduce-only is never capped.
        let mut large = stop.clone();
        large["positionQuantity"] = json!("3");
        assert_eq!(execute(&large, NOW).unwrap()[0].1["data"]["lastQuantity"], "2");
        let mut plain = stop;
        plain["reduceOnly"] = json!(false);
        assert_eq!(execute(&plain, NOW).unwrap()[0].1["data"]["lastQuantity"], "2");
    }

    #[test]
    fn a_reduce_only_market_order_fills_at_most_the_opposite_position() {
        let reduce = |position: &str| {
            json!({"clientOrderId": "thmg-1", "symbol": "X", "side": "buy", "orderType": "market",
                "quantity": "1", "referencePrice": "10", "reduceOnly": true, "positionQuantity": position})
        };
        let events = execute(&reduce("-0.4"), NOW).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[1].1["data"]["lastQuantity"], "0.4");
        assert_eq!(events[2].1["event"], "order.cancelled");
        let events = execute(&reduce("0.4"), NOW).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].1["data"]["status"], "rejected", "a buy cannot reduce a long");
        assert_eq!(execute(&reduce("-5"), NOW).unwrap()[1].1["data"]["lastQuantity"], "1");
    }

    #[test]
    fn fills_of_resting_orders_complete_the_earlier_order() {
        let fill = json!({"op": "fill", "clientOrderId": "thsl-1", "symbol": "X", "side": "sell",
            "quantity": "0.25", "fillPrice": "48900", "reduceOnly": true});
        let events = execute(&fill, NOW).unwrap();
        assert_eq!(events[0].0, "thsl-1:fill", "the same id as an immediate fill: reported once");
        assert_eq!(events[0].1["data"]["orderId"], "paper-thsl-1");
        assert_eq!(events[0].1["data"]["averagePrice"], "48900");
        assert_eq!(events[0].1["data"]["status"], "filled");
    }
}
