//! The seed-001 envelope parser: `{"id"?, "event", "timestamp", "data"}` → `CanonicalEvent`.
//!
//! Strict where a mistake would corrupt state (ids, quantities, prices, statuses, times): those
//! fail with a `SchemaError` naming the field. Lenient elsewhere: unknown extra fields are
//! ignored, `null` and empty strings count as absent.

use chrono::DateTime;
use rust_decimal::Decimal;
use serde_json::Value;

use super::decimal::Sign;
use super::event::{
    BalanceEvent, CanonicalEvent, EventKind, LedgerEvent, LedgerKind, MaintenanceWindow, MarginCallEvent,
    OrderAction, OrderEvent, PositionEvent, PositionPhase, SchemaError, SystemAlertEvent, TradeReport,
    KNOWN_EVENTS, TIME_FALLBACKS,
};
use super::fields::Fields;
use super::order::{OrderStatus, Side};
use super::position::PositionSide;
use super::signal::parse_signal;

/// Parses a seed-001 envelope into a canonical event.
pub fn parse_event(json: &Value) -> Result<CanonicalEvent, SchemaError> {
    let envelope = Fields::new(json, "")?;
    let event_type = envelope.req_str("event")?;
    if !KNOWN_EVENTS.split(", ").any(|known| known == event_type) {
        return Err(SchemaError::UnknownEvent(event_type));
    }
    let data_value = envelope.raw("data").ok_or_else(|| SchemaError::Missing { field: "data".into() })?;
    let data = Fields::new(data_value, "data")?;
    let at = match envelope.time("timestamp")? {
        Some(at) => at,
        None => match data.first_time(TIME_FALLBACKS)? {
            Some(at) => at,
            // Seed 001's own curl test event has no time; a `test` changes nothing, so any will do.
            None if event_type == "test" => DateTime::UNIX_EPOCH,
            None => return Err(SchemaError::NoTimestamp),
        },
    };
    let kind = match event_type.as_str() {
        "order.created" => EventKind::Order(parse_order(&data, OrderAction::Created)?),
        "order.updated" => EventKind::Order(parse_order(&data, OrderAction::Updated)?),
        "order.cancelled" => EventKind::Order(parse_order(&data, OrderAction::Cancelled)?),
        "position.opened" => EventKind::Position(parse_position(&data, PositionPhase::Opened)?),
        "position.updated" => EventKind::Position(parse_position(&data, PositionPhase::Updated)?),
        "position.closed" => EventKind::Position(parse_position(&data, PositionPhase::Closed)?),
        "account.balance_updated" => EventKind::Balance(parse_balance(&data)?),
        "account.deposit_received" => EventKind::Ledger(parse_ledger(&data, LedgerKind::Deposit)?),
        "account.withdrawal_processed" => EventKind::Ledger(parse_ledger(&data, LedgerKind::Withdrawal)?),
        "account.margin_call" => EventKind::MarginCall(parse_margin_call(&data)?),
        "signal.generated" => EventKind::Signal(parse_signal(&data, data_value)?),
        "system.maintenance" => EventKind::Maintenance(parse_maintenance(&data)?),
        "system.alert" => EventKind::SystemAlert(parse_system_alert(&data)?),
        _ => EventKind::Test,
    };
    Ok(CanonicalEvent { id: envelope.str("id")?, at, kind })
}

/// `order.*` data.
fn parse_order(data: &Fields, action: OrderAction) -> Result<OrderEvent, SchemaError> {
    let status = match data.str("status")? {
        Some(raw) => Some(OrderStatus::parse(&raw).ok_or_else(|| SchemaError::UnknownValue {
            field: data.path("status"),
            value: raw,
            expected:
                "pending, open (new), partially_filled, filled, cancelled (canceled), rejected, expired",
        })?),
        None if action == OrderAction::Cancelled => Some(OrderStatus::Cancelled),
        None if action == OrderAction::Created => Some(OrderStatus::Pending),
        None => None,
    };
    let side = match data.str("side")? {
        Some(raw) => Some(Side::parse(&raw).ok_or_else(|| SchemaError::UnknownValue {
            field: data.path("side"),
            value: raw,
            expected: "buy, sell",
        })?),
        None => None,
    };
    let trade = parse_trade(data)?;
    let commission = if trade.is_none() { data.decimal("commission", Sign::Any)? } else { None };
    let filled_quantity = data.decimal("filledQuantity", Sign::NonNegative)?;
    let average_price = data.decimal("averagePrice", Sign::NonNegative)?;
    exact_value(data, ("filledQuantity", filled_quantity), ("averagePrice", average_price))?;
    Ok(OrderEvent {
        action,
        order_id: data.req_str("orderId")?,
        client_order_id: data.str("clientOrderId")?,
        account: data.str("account")?,
        symbol: data.str("symbol")?,
        side,
        order_type: data.str("type")?,
        quantity: data.decimal("quantity", Sign::NonNegative)?,
        price: data.decimal("price", Sign::NonNegative)?,
        status,
        filled_quantity,
        average_price,
        trade,
        commission,
        sequence: data.u64("sequence")?,
        reduce_only: data.bool("reduceOnly")?,
        origin: data.str("origin")?,
        reason: data.str("reason")?,
        created_at: data.time("createdAt")?,
    })
}

/// The execution fields of an order event; Binance's `tradeId: -1` and a zero `lastQuantity`
/// mean "no execution in this update".
fn parse_trade(data: &Fields) -> Result<Option<TradeReport>, SchemaError> {
    let Some(trade_id) = data.str("tradeId")?.filter(|id| id != "-1") else {
        return Ok(None);
    };
    let quantity = data
        .decimal("lastQuantity", Sign::NonNegative)?
        .ok_or_else(|| SchemaError::Missing { field: data.path("lastQuantity") })?;
    if quantity.is_zero() {
        return Ok(None);
    }
    let price = data
        .decimal("lastPrice", Sign::NonNegative)?
        .ok_or_else(|| SchemaError::Missing { field: data.path("lastPrice") })?;
    let commission = data.decimal("commission", Sign::Any)?.unwrap_or_default();
    exact_value(data, ("lastQuantity", Some(quantity)), ("lastPrice", Some(price)))?;
    Ok(Some(TradeReport { trade_id, quantity, price, commission }))
}

/// Refuses a fill whose value (quantity × price) leaves the decimal range: fill prices, averages
/// and PnL are computed from such values, and clamped ones would be made-up numbers (on-chain
/// prices in wei reach it: 2e9 × 3.1e21).
fn exact_value(
    data: &Fields,
    (quantity_field, quantity): (&str, Option<Decimal>),
    (price_field, price): (&str, Option<Decimal>),
) -> Result<(), SchemaError> {
    match (quantity, price) {
        (Some(quantity), Some(price)) if quantity.checked_mul(price).is_none() => {
            Err(SchemaError::OutOfRange {
                field: format!("{} × {}", data.path(quantity_field), data.path(price_field)),
                value: format!("{quantity} × {price}"),
            })
        }
        _ => Ok(()),
    }
}

/// `position.*` data.
fn parse_position(data: &Fields, phase: PositionPhase) -> Result<PositionEvent, SchemaError> {
    let side = match data.str("side")? {
        Some(raw) => Some(PositionSide::parse(&raw).ok_or_else(|| SchemaError::UnknownValue {
            field: data.path("side"),
            value: raw,
            expected: "long, short, flat",
        })?),
        None => None,
    };
    Ok(PositionEvent {
        phase,
        account: data.str("account")?,
        symbol: data.req_str("symbol")?,
        side,
        quantity: data.decimal("quantity", Sign::NonNegative)?,
        average_price: data.decimal("averagePrice", Sign::NonNegative)?,
        mark_price: data.decimal("markPrice", Sign::NonNegative)?,
        unrealized_pnl: data.decimal("unrealizedPnl", Sign::Any)?,
        margin_ratio: data.decimal("marginRatio", Sign::NonNegative)?,
        liquidation_price: data.decimal("liquidationPrice", Sign::NonNegative)?,
        margin_used: data.decimal("marginUsed", Sign::NonNegative)?,
        realized_pnl: data.decimal("realizedPnl", Sign::Any)?,
    })
}

/// `account.balance_updated` data. Balances may be negative (margin accounts borrow).
fn parse_balance(data: &Fields) -> Result<BalanceEvent, SchemaError> {
    Ok(BalanceEvent {
        account: data.str("account")?,
        asset: data.req_str("asset")?,
        available: data.decimal("available", Sign::Any)?,
        locked: data.decimal("locked", Sign::Any)?,
        total: data.decimal("total", Sign::Any)?,
        change: data.decimal("change", Sign::Any)?,
        reason: data.str("reason")?,
    })
}

/// Deposit and withdrawal data.
fn parse_ledger(data: &Fields, kind: LedgerKind) -> Result<LedgerEvent, SchemaError> {
    Ok(LedgerEvent {
        kind,
        asset: data.req_str("asset")?,
        transaction_id: data.req_str("transactionId")?,
        account: data.str("account")?,
        amount: data
            .decimal("amount", Sign::NonNegative)?
            .ok_or_else(|| SchemaError::Missing { field: data.path("amount") })?,
        method: data.str("method")?,
        status: data.str("status")?,
    })
}

/// `account.margin_call` data.
fn parse_margin_call(data: &Fields) -> Result<MarginCallEvent, SchemaError> {
    Ok(MarginCallEvent {
        account: data.str("account")?,
        symbol: data.req_str("symbol")?,
        margin_ratio: data.decimal("marginRatio", Sign::NonNegative)?,
        maintenance_margin: data.decimal("maintenanceMargin", Sign::NonNegative)?,
        mark_price: data.decimal("markPrice", Sign::NonNegative)?,
        liquidation_price: data.decimal("liquidationPrice", Sign::NonNegative)?,
    })
}

/// `system.maintenance` data.
fn parse_maintenance(data: &Fields) -> Result<MaintenanceWindow, SchemaError> {
    let start_time =
        data.time("startTime")?.ok_or_else(|| SchemaError::Missing { field: data.path("startTime") })?;
    let end_time =
        data.time("endTime")?.ok_or_else(|| SchemaError::Missing { field: data.path("endTime") })?;
    if end_time < start_time {
        return Err(SchemaError::BadTimestamp {
            field: data.path("endTime"),
            value: format!("{} is before startTime {}", end_time.to_rfc3339(), start_time.to_rfc3339()),
        });
    }
    Ok(MaintenanceWindow {
        start_time,
        end_time,
        description: data.str("description")?,
        affected_services: data.str_list("affectedServices")?,
    })
}

/// `system.alert` data.
fn parse_system_alert(data: &Fields) -> Result<SystemAlertEvent, SchemaError> {
    Ok(SystemAlertEvent {
        level: data.str("level")?,
        title: data.str("title")?,
        message: data.str("message")?,
        affected_symbols: data.str_list("affectedSymbols")?,
        recommendation: data.str("recommendation")?,
    })
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
