//! How the state API shows orders, fills, positions, balances and signals (SPEC §10): seed 001's
//! camelCase names, decimals as JSON numbers with their exact digits, times as RFC 3339.

use rust_decimal::Decimal;
use serde::Serialize;

use crate::trading::state::SignalRecord;
use crate::trading::{Balance, Fill, LedgerEntry, Order, Position};

use crate::trading::decimal::{number, optional_number};

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An order as SPEC §10 shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// The venue's order id.
    order_id: String,
    /// The client's order id.
    client_order_id: Option<String>,
    /// Account, when the source has several.
    account: Option<String>,
    /// Instrument.
    symbol: Option<String>,
    /// Buy or sell.
    side: Option<crate::trading::Side>,
    /// Order type (`market`, `limit`, …).
    #[serde(rename = "type")]
    order_type: Option<String>,
    /// Ordered quantity.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    quantity: Option<Decimal>,
    /// Limit price.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    price: Option<Decimal>,
    /// Lifecycle status.
    status: crate::trading::OrderStatus,
    /// Filled so far.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    filled_quantity: Decimal,
    /// Average fill price.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    average_price: Option<Decimal>,
    /// Filled beyond the ordered quantity (an alert was raised).
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    overfill_quantity: Option<Decimal>,
    /// Only reduces a position.
    reduce_only: bool,
    /// What placed it (e.g. a strategy action).
    origin: Option<String>,
    /// Creation time, RFC 3339.
    created_at: Option<String>,
    /// Last change, RFC 3339.
    updated_at: String,
    /// Its fills (in `GET /orders/{orderId}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    fills: Option<Vec<FillView>>,
}

/// One fill of an order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FillView {
    /// `tradeId`, or the cumulative quantity that identified it.
    key: String,
    /// Quantity filled.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    quantity: Decimal,
    /// Price.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    price: Decimal,
    /// Commission paid.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    commission: Decimal,
    /// When, RFC 3339.
    at: String,
}

impl OrderView {
    /// The view of `order`, with its fills when asked.
    pub fn new(order: &Order, with_fills: bool) -> Self {
        let fills = with_fills.then(|| order.fills().iter().map(FillView::new).collect());
        OrderView {
            order_id: order.order_id.clone(),
            client_order_id: order.client_order_id.clone(),
            account: order.account.clone(),
            symbol: order.symbol.clone(),
            side: order.side,
            order_type: order.order_type.clone(),
            quantity: order.quantity,
            price: order.price,
            status: order.status,
            filled_quantity: order.filled_quantity,
            average_price: order.average_price,
            overfill_quantity: order.overfill_quantity,
            reduce_only: order.reduce_only,
            origin: order.origin.clone(),
            created_at: order.created_at.map(time),
            updated_at: time(order.updated_at),
            fills,
        }
    }
}

impl FillView {
    fn new(fill: &Fill) -> Self {
        FillView {
            key: fill.key.clone(),
            quantity: fill.quantity,
            price: fill.price,
            commission: fill.commission,
            at: time(fill.at),
        }
    }
}

/// A position as SPEC §10 shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PositionOut {
    /// Account, when the source has several.
    account: Option<String>,
    /// Instrument.
    symbol: String,
    /// `long`, `short` or `flat`.
    side: crate::trading::PositionSide,
    /// Absolute quantity.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    quantity: Decimal,
    /// Signed quantity (negative when short).
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    net_quantity: Decimal,
    /// Average entry price.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    average_price: Decimal,
    /// Realized profit and loss.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    realized_pnl: Decimal,
    /// Unrealized profit and loss at the mark price.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    unrealized_pnl: Option<Decimal>,
    /// Last mark price the venue sent.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    mark_price: Option<Decimal>,
    /// Margin ratio the venue sent.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    margin_ratio: Option<Decimal>,
    /// Liquidation price the venue sent.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    liquidation_price: Option<Decimal>,
    /// The signed quantity of the venue's newest position snapshot (negative when short; 0 once
    /// closed), beside `netQuantity` from fills: a source that reports positions but no fills
    /// shows its positions here. `null` when the venue sent none.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    venue_quantity: Option<Decimal>,
    /// How the venue's newest snapshot disagrees with the fills up to its time; `null` when they
    /// agree or cannot be compared (no snapshot quantity, no fills). Each new disagreement also
    /// raises a `position_mismatch` alert.
    mismatch: Option<MismatchOut>,
}

/// A disagreement between the venue's position and the fills.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MismatchOut {
    /// The venue's quantity (signed when its snapshot names a side, else absolute).
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    venue: Decimal,
    /// What the fills held at the snapshot's time, compared the same way.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    held: Decimal,
}

impl PositionOut {
    /// The view of `position`.
    pub fn new(position: &Position) -> Self {
        let view = position.view();
        PositionOut {
            account: view.account,
            symbol: view.symbol,
            side: view.side,
            quantity: view.quantity,
            net_quantity: view.net_quantity,
            average_price: view.average_price,
            realized_pnl: view.realized_pnl,
            unrealized_pnl: view.unrealized_pnl,
            mark_price: view.mark_price,
            margin_ratio: view.margin_ratio,
            liquidation_price: view.liquidation_price,
            venue_quantity: position.venue_net(),
            mismatch: position.mismatch.as_ref().map(|m| MismatchOut { venue: m.venue, held: m.held }),
        }
    }
}

/// A balance as SPEC §10 shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceOut {
    /// Account, when the source has several.
    account: Option<String>,
    /// Asset.
    asset: String,
    /// Free balance.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    available: Decimal,
    /// Held by orders or margin.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    locked: Decimal,
    /// Total.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    total: Decimal,
    /// Time of the snapshot, RFC 3339.
    updated_at: String,
}

impl BalanceOut {
    /// The view of `balance`.
    pub fn new(balance: Balance) -> Self {
        BalanceOut {
            account: balance.account,
            asset: balance.asset,
            available: balance.available,
            locked: balance.locked,
            total: balance.total,
            updated_at: time(balance.stamp.at),
        }
    }
}

/// A deposit or withdrawal as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerOut {
    /// The venue's transaction id (one entry per id, however often it was reported).
    transaction_id: String,
    /// `deposit` or `withdrawal`.
    kind: crate::trading::event::LedgerKind,
    /// Account, when the source has several.
    account: Option<String>,
    /// Asset.
    asset: String,
    /// Amount moved.
    #[serde(serialize_with = "number")]
    #[schema(value_type = f64)]
    amount: Decimal,
    /// `bank_transfer`, … as sent.
    method: Option<String>,
    /// `completed`, … as first sent.
    status: Option<String>,
    /// When it was first reported, RFC 3339.
    at: String,
}

impl LedgerOut {
    /// The view of `entry`.
    pub fn new(entry: LedgerEntry) -> Self {
        LedgerOut {
            transaction_id: entry.transaction_id,
            kind: entry.kind,
            account: entry.account,
            asset: entry.asset,
            amount: entry.amount,
            method: entry.method,
            status: entry.status,
            at: time(entry.at),
        }
    }
}

/// A signal as the API shows it: when, which event, and what it asks for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalOut {
    /// When, RFC 3339.
    at: String,
    /// The event that carried it.
    event_id: Option<String>,
    /// Where it came from.
    source: crate::trading::signal::SignalSource,
    /// Instrument.
    symbol: String,
    /// What it recommends.
    action: crate::trading::SignalAction,
    /// Quantity.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    quantity: Option<Decimal>,
    /// Price.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    price: Option<Decimal>,
    /// Stop loss, percent from entry.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    stop_loss_percent: Option<Decimal>,
    /// Take profit, percent from entry.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    take_profit_percent: Option<Decimal>,
    /// Leverage.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    leverage: Option<Decimal>,
    /// Strategy name.
    strategy: Option<String>,
    /// Confidence, 0–1.
    #[serde(serialize_with = "optional_number")]
    #[schema(value_type = Option<f64>)]
    confidence: Option<Decimal>,
    /// The signal as received.
    raw: serde_json::Value,
}

impl SignalOut {
    /// The view of a stored signal.
    pub fn new(record: SignalRecord) -> Self {
        let signal = record.signal;
        SignalOut {
            at: time(record.stamp.at),
            event_id: record.stamp.event_id,
            source: signal.source,
            symbol: signal.symbol,
            action: signal.action,
            quantity: signal.quantity,
            price: signal.price,
            stop_loss_percent: signal.stop_loss_percent,
            take_profit_percent: signal.take_profit_percent,
            leverage: signal.leverage,
            strategy: signal.strategy,
            confidence: signal.confidence,
            raw: signal.raw,
        }
    }
}
