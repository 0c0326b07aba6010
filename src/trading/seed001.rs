//! Seed 001 payloads, verbatim, for parser and state tests.

/// Seed 001 `order.created` payload.
pub(crate) const ORDER_CREATED: &str = r#"{
  "event": "order.created",
  "timestamp": "2024-01-15T10:30:00Z",
  "data": {
    "orderId": "12345678-1234-1234-1234-123456789012",
    "clientOrderId": "unique_order_id",
    "symbol": "BTC/USD",
    "side": "buy",
    "type": "market",
    "quantity": 0.1,
    "price": 0,
    "status": "pending",
    "createdAt": "2024-01-15T10:30:00Z"
  }
}"#;

/// Seed 001 `order.updated` payload.
pub(crate) const ORDER_UPDATED: &str = r#"{
  "event": "order.updated",
  "timestamp": "2024-01-15T10:30:01Z",
  "data": {
    "orderId": "12345678-1234-1234-1234-123456789012",
    "status": "filled",
    "filledQuantity": 0.1,
    "averagePrice": 49850.25,
    "updatedAt": "2024-01-15T10:30:01Z"
  }
}"#;

/// Seed 001 `order.cancelled` payload.
pub(crate) const ORDER_CANCELLED: &str = r#"{
  "event": "order.cancelled",
  "timestamp": "2024-01-15T10:35:00Z",
  "data": {
    "orderId": "12345678-1234-1234-1234-123456789012",
    "status": "cancelled",
    "cancelledAt": "2024-01-15T10:35:00Z",
    "reason": "user_cancelled"
  }
}"#;

/// Seed 001 `position.opened` payload.
pub(crate) const POSITION_OPENED: &str = r#"{
  "event": "position.opened",
  "timestamp": "2024-01-15T10:30:01Z",
  "data": {
    "symbol": "BTC/USD",
    "side": "long",
    "quantity": 0.1,
    "averagePrice": 49850.25,
    "unrealizedPnl": 0,
    "marginUsed": 4985.03,
    "createdAt": "2024-01-15T10:30:01Z"
  }
}"#;

/// Seed 001 `position.updated` payload.
pub(crate) const POSITION_UPDATED: &str = r#"{
  "event": "position.updated",
  "timestamp": "2024-01-15T11:00:00Z",
  "data": {
    "symbol": "BTC/USD",
    "quantity": 0.1,
    "unrealizedPnl": 150.75,
    "unrealizedPnlPercent": 0.3,
    "markPrice": 50000.0,
    "marginRatio": 0.1,
    "updatedAt": "2024-01-15T11:00:00Z"
  }
}"#;

/// Seed 001 `position.closed` payload.
pub(crate) const POSITION_CLOSED: &str = r#"{
  "event": "position.closed",
  "timestamp": "2024-01-15T11:30:00Z",
  "data": {
    "symbol": "BTC/USD",
    "quantity": 0.1,
    "averagePrice": 49850.25,
    "closePrice": 50000.0,
    "realizedPnl": 149.75,
    "closedAt": "2024-01-15T11:30:00Z"
  }
}"#;

/// Seed 001 `account.balance_updated` payload.
pub(crate) const ACCOUNT_BALANCE_UPDATED: &str = r#"{
  "event": "account.balance_updated",
  "timestamp": "2024-01-15T10:30:01Z",
  "data": {
    "asset": "USD",
    "available": 9500.0,
    "locked": 500.0,
    "total": 10000.0,
    "change": -500.0,
    "reason": "order_execution"
  }
}"#;

/// Seed 001 `account.deposit_received` payload.
pub(crate) const ACCOUNT_DEPOSIT_RECEIVED: &str = r#"{
  "event": "account.deposit_received",
  "timestamp": "2024-01-15T09:00:00Z",
  "data": {
    "transactionId": "tx_123456789",
    "asset": "USD",
    "amount": 1000.0,
    "method": "bank_transfer",
    "status": "completed",
    "receivedAt": "2024-01-15T09:00:00Z"
  }
}"#;

/// Seed 001 `account.withdrawal_processed` payload.
pub(crate) const ACCOUNT_WITHDRAWAL_PROCESSED: &str = r#"{
  "event": "account.withdrawal_processed",
  "timestamp": "2024-01-15T14:00:00Z",
  "data": {
    "transactionId": "tx_987654321",
    "asset": "USD",
    "amount": 500.0,
    "method": "bank_transfer",
    "status": "completed",
    "processedAt": "2024-01-15T14:00:00Z"
  }
}"#;

/// Seed 001 `signal.generated` payload.
pub(crate) const SIGNAL_GENERATED: &str = r#"{
  "event": "signal.generated",
  "timestamp": "2024-01-15T12:00:00Z",
  "data": {
    "symbol": "BTC/USD",
    "recommendation": "buy",
    "confidence": 87,
    "timeHorizon": "short_term",
    "riskLevel": "medium",
    "reasoning": [
      "Strong bullish momentum detected",
      "High volume confirmation",
      "Positive sentiment from social media"
    ],
    "technicalAnalysis": {
      "rsi": 35.2,
      "macd": "bullish",
      "support": 48500.0,
      "resistance": 50200.0
    }
  }
}"#;

/// Seed 001 `system.maintenance` payload.
pub(crate) const SYSTEM_MAINTENANCE: &str = r#"{
  "event": "system.maintenance",
  "timestamp": "2024-01-15T18:00:00Z",
  "data": {
    "startTime": "2024-01-15T20:00:00Z",
    "endTime": "2024-01-15T22:00:00Z",
    "description": "Scheduled maintenance for system updates",
    "affectedServices": ["trading", "api", "webhooks"]
  }
}"#;

/// Seed 001 `system.alert` payload.
pub(crate) const SYSTEM_ALERT: &str = r#"{
  "event": "system.alert",
  "timestamp": "2024-01-15T15:30:00Z",
  "data": {
    "level": "warning",
    "title": "High Market Volatility",
    "message": "BTC/USD experiencing unusually high volatility",
    "affectedSymbols": ["BTC/USD", "ETH/USD"],
    "recommendation": "Consider reducing position sizes"
  }
}"#;

/// Seed 001's test event from the testing tool (`testEvent`).
pub(crate) const TEST: &str = r#"{
      "event": "test",
      "timestamp": "2024-01-15T12:00:00Z",
      "data": {
        "message": "Webhook test successful"
      }
    }"#;

/// Seed 001's curl test event, which has no timestamp.
pub(crate) const TEST_WITHOUT_TIMESTAMP: &str = r#"{"event": "test", "data": {"message": "webhook test"}}"#;
