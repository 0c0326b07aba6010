//! Sample events of each seed 001 type (plus `account.margin_call`), for `tradehook send`.
//!
//! Each call gets a fresh `id` and timestamp, so repeated sends are distinct events; pass the
//! same `--id` to see de-duplication.

use serde_json::{json, Value};

/// Every event type `send` has a sample for.
pub const EVENT_TYPES: [&str; 15] = [
    "order.created",
    "order.updated",
    "order.cancelled",
    "position.opened",
    "position.updated",
    "position.closed",
    "account.balance_updated",
    "account.deposit_received",
    "account.withdrawal_processed",
    "account.margin_call",
    "signal.generated",
    "system.maintenance",
    "system.alert",
    "test",
    "tradingview",
];

/// The seed 001 envelope around `data` for `event_type`, or `None` for an unknown type.
pub fn sample(event_type: &str, id: &str, now: &str) -> Option<Value> {
    let order_id = "12345678-1234-1234-1234-123456789012";
    let data = match event_type {
        "order.created" => json!({
            "orderId": order_id, "clientOrderId": "unique_order_id", "symbol": "BTC/USD", "side": "buy",
            "type": "market", "quantity": 0.1, "price": 0, "status": "pending", "createdAt": now
        }),
        "order.updated" => json!({
            "orderId": order_id, "status": "filled", "filledQuantity": 0.1, "averagePrice": 49850.25, "updatedAt": now
        }),
        "order.cancelled" => json!({
            "orderId": order_id, "status": "cancelled", "cancelledAt": now, "reason": "user_cancelled"
        }),
        "position.opened" => json!({
            "symbol": "BTC/USD", "side": "long", "quantity": 0.1, "averagePrice": 49850.25,
            "unrealizedPnl": 0, "marginUsed": 4985.03, "createdAt": now
        }),
        "position.updated" => json!({
            "symbol": "BTC/USD", "quantity": 0.1, "unrealizedPnl": 150.75, "unrealizedPnlPercent": 0.3,
            "markPrice": 50000.0, "marginRatio": 0.1, "updatedAt": now
        }),
        "position.closed" => json!({
            "symbol": "BTC/USD", "quantity": 0.1, "averagePrice": 49850.25, "closePrice": 50000.0,
            "realizedPnl": 149.75, "closedAt": now
        }),
        "account.balance_updated" => json!({
            "asset": "USD", "available": 9500.0, "locked": 500.0, "total": 10000.0, "change": -500.0,
            "reason": "order_execution"
        }),
        "account.deposit_received" => json!({
            "transactionId": format!("tx_{id}"), "asset": "USD", "amount": 1000.0, "method": "bank_transfer",
            "status": "completed", "receivedAt": now
        }),
        "account.withdrawal_processed" => json!({
            "transactionId": format!("tx_{id}"), "asset": "USD", "amount": 500.0, "method": "bank_transfer",
            "status": "completed", "processedAt": now
        }),
        "account.margin_call" => json!({
            "symbol": "BTC/USD", "marginRatio": 0.85, "maintenanceMargin": 2500.0, "markPrice": 47000.0,
            "liquidationPrice": 45200.0
        }),
        "signal.generated" => json!({
            "symbol": "BTC/USD", "recommendation": "buy", "confidence": 87, "timeHorizon": "short_term",
            "riskLevel": "medium", "reasoning": ["Strong bullish momentum detected", "High volume confirmation"],
            "technicalAnalysis": {"rsi": 35.2, "macd": "bullish", "support": 48500.0, "resistance": 50200.0}
        }),
        "system.maintenance" => json!({
            "startTime": now, "endTime": now, "description": "Scheduled maintenance for system updates",
            "affectedServices": ["trading", "api", "webhooks"]
        }),
        "system.alert" => json!({
            "level": "warning", "title": "High Market Volatility",
            "message": "BTC/USD experiencing unusually high volatility", "affectedSymbols": ["BTC/USD", "ETH/USD"],
            "recommendation": "Consider reducing position sizes"
        }),
        "test" => json!({ "message": "webhook test" }),
        // A TradingView alert body as a strategy's alert message template would produce it.
        "tradingview" => {
            return Some(json!({
                "ticker": "BTCUSD", "action": "buy", "contracts": 0.1, "price": 49850.25, "time": now,
                "strategy": "Sentinel", "alertId": id
            }))
        }
        _ => return None,
    };
    Some(json!({ "id": id, "event": event_type, "timestamp": now, "data": data }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_has_a_sample() {
        for kind in EVENT_TYPES {
            let event = sample(kind, "x1", "2024-01-15T10:30:00Z").unwrap();
            if kind != "tradingview" {
                assert_eq!(event["event"], kind);
                assert_eq!(event["id"], "x1");
            }
        }
        assert!(sample("nope", "x", "t").is_none());
    }
}
