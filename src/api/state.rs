//! The trading state API (SPEC §3, §10): orders, positions, balances, signals, alerts.
//!
//! Read from the store, so every node of a shared store answers the same. Field names follow
//! seed 001 (camelCase); decimals are written as JSON numbers with their exact decimal digits.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;

use crate::error::ApiError;
use crate::server::AppState;
use crate::store::EntityKind;
use crate::trading::{Balance, Fill, Order, Position};

/// The state routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/orders", get(orders))
        .route("/orders/{order_id}", get(order))
        .route("/positions", get(positions))
        .route("/balances", get(balances))
        .route("/signals", get(signals))
        .route("/alerts", get(alerts))
}

/// Decimals as JSON numbers, digit for digit (no binary float in between).
fn number<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    let raw = serde_json::value::RawValue::from_string(value.normalize().to_string())
        .map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

fn optional_number<S: Serializer>(value: &Option<Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => number(value, serializer),
        None => serializer.serialize_none(),
    }
}

/// An order as SPEC §10 shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    order_id: String,
    client_order_id: Option<String>,
    account: Option<String>,
    symbol: Option<String>,
    side: Option<crate::trading::Side>,
    #[serde(rename = "type")]
    order_type: Option<String>,
    #[serde(serialize_with = "optional_number")]
    quantity: Option<Decimal>,
    #[serde(serialize_with = "optional_number")]
    price: Option<Decimal>,
    status: crate::trading::OrderStatus,
    #[serde(serialize_with = "number")]
    filled_quantity: Decimal,
    #[serde(serialize_with = "optional_number")]
    average_price: Option<Decimal>,
    #[serde(serialize_with = "optional_number")]
    overfill_quantity: Option<Decimal>,
    reduce_only: bool,
    origin: Option<String>,
    created_at: Option<String>,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fills: Option<Vec<FillView>>,
}

/// One fill of an order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FillView {
    key: String,
    #[serde(serialize_with = "number")]
    quantity: Decimal,
    #[serde(serialize_with = "number")]
    price: Decimal,
    #[serde(serialize_with = "number")]
    commission: Decimal,
    at: String,
}

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl OrderView {
    fn new(order: &Order, with_fills: bool) -> Self {
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
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionOut {
    account: Option<String>,
    symbol: String,
    side: crate::trading::PositionSide,
    #[serde(serialize_with = "number")]
    quantity: Decimal,
    #[serde(serialize_with = "number")]
    net_quantity: Decimal,
    #[serde(serialize_with = "number")]
    average_price: Decimal,
    #[serde(serialize_with = "number")]
    realized_pnl: Decimal,
    #[serde(serialize_with = "optional_number")]
    unrealized_pnl: Option<Decimal>,
    #[serde(serialize_with = "optional_number")]
    mark_price: Option<Decimal>,
    #[serde(serialize_with = "optional_number")]
    margin_ratio: Option<Decimal>,
    #[serde(serialize_with = "optional_number")]
    liquidation_price: Option<Decimal>,
}

impl PositionOut {
    fn new(position: &Position) -> Self {
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
        }
    }
}

/// A balance as SPEC §10 shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceOut {
    account: Option<String>,
    asset: String,
    #[serde(serialize_with = "number")]
    available: Decimal,
    #[serde(serialize_with = "number")]
    locked: Decimal,
    #[serde(serialize_with = "number")]
    total: Decimal,
    updated_at: String,
}

/// Paging of a state list: entities after this key, at most `limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    after: Option<String>,
    limit: Option<u32>,
    status: Option<String>,
    symbol: Option<String>,
}

type PageQuery = super::QueryResult<Page>;

/// The page asked for, its size checked and defaulted (100, at most 1000).
fn page(query: PageQuery) -> Result<Page, ApiError> {
    let mut page = super::query(query)?;
    page.limit = Some(super::limit(page.limit, 100, 1000)?);
    Ok(page)
}

/// Reads one page of documents of `kind` and decodes them.
async fn documents<T: serde::de::DeserializeOwned>(
    state: &AppState,
    kind: EntityKind,
    page: &Page,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = page.limit.unwrap_or(100);
    let rows = state.store.entities(kind, page.after.clone(), limit).await?;
    let next = (rows.len() == limit as usize).then(|| rows.last().map(|(key, _)| key.clone())).flatten();
    let decoded = rows
        .into_iter()
        .map(|(key, doc)| {
            serde_json::from_str(&doc).map_err(|e| ApiError::internal(format!("stored {key}: {e}")))
        })
        .collect::<Result<Vec<T>, _>>()?;
    Ok((decoded, next))
}

async fn orders(
    State(state): State<Arc<AppState>>,
    query: PageQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = page(query)?;
    let status = match page.status.as_deref() {
        None => None,
        Some(text) => Some(crate::trading::OrderStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "`status` must be pending, open, partially_filled, filled, cancelled, rejected or expired",
            )
        })?),
    };
    let (orders, next): (Vec<Order>, _) = documents(&state, EntityKind::Order, &page).await?;
    let views: Vec<OrderView> = orders
        .iter()
        .filter(|o| status.is_none_or(|s| o.status == s))
        .filter(|o| page.symbol.as_ref().is_none_or(|s| o.symbol.as_ref() == Some(s)))
        .map(|o| OrderView::new(o, false))
        .collect();
    Ok(Json(json!({ "orders": views, "next": next })))
}

async fn order(
    State(state): State<Arc<AppState>>,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let doc = state
        .store
        .entity(EntityKind::Order, &order_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order `{order_id}`")))?;
    let prefix = crate::worker::apply::fact_prefix(&order_id);
    let facts = state.store.entities_with_prefix(EntityKind::OrderFact, &prefix).await?;
    let order = crate::worker::apply::assemble_order(&doc, &facts).map_err(ApiError::internal)?;
    Ok(Json(OrderView::new(&order, true)))
}

async fn positions(
    State(state): State<Arc<AppState>>,
    query: PageQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = page(query)?;
    let (positions, next): (Vec<Position>, _) = documents(&state, EntityKind::Position, &page).await?;
    let views: Vec<PositionOut> = positions
        .iter()
        .filter(|p| page.symbol.as_ref().is_none_or(|s| &p.symbol == s))
        .map(PositionOut::new)
        .collect();
    Ok(Json(json!({ "positions": views, "next": next })))
}

async fn balances(
    State(state): State<Arc<AppState>>,
    query: PageQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = page(query)?;
    let (balances, next): (Vec<Balance>, _) = documents(&state, EntityKind::Balance, &page).await?;
    let views: Vec<BalanceOut> = balances
        .into_iter()
        .map(|b| BalanceOut {
            account: b.account,
            asset: b.asset,
            available: b.available,
            locked: b.locked,
            total: b.total,
            updated_at: time(b.stamp.at),
        })
        .collect();
    Ok(Json(json!({ "balances": views, "next": next })))
}

/// A signal as the API shows it: when, which event, and what it asks for.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalOut {
    at: String,
    event_id: Option<String>,
    source: crate::trading::signal::SignalSource,
    symbol: String,
    action: crate::trading::SignalAction,
    #[serde(serialize_with = "optional_number")]
    quantity: Option<Decimal>,
    #[serde(serialize_with = "optional_number")]
    price: Option<Decimal>,
    #[serde(serialize_with = "optional_number")]
    stop_loss_percent: Option<Decimal>,
    #[serde(serialize_with = "optional_number")]
    take_profit_percent: Option<Decimal>,
    #[serde(serialize_with = "optional_number")]
    leverage: Option<Decimal>,
    strategy: Option<String>,
    #[serde(serialize_with = "optional_number")]
    confidence: Option<Decimal>,
    raw: serde_json::Value,
}

async fn signals(
    State(state): State<Arc<AppState>>,
    query: PageQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = page(query)?;
    let (records, next): (Vec<crate::trading::state::SignalRecord>, _) =
        documents(&state, EntityKind::Signal, &page).await?;
    let signals: Vec<SignalOut> = records
        .into_iter()
        .filter(|r| page.symbol.as_ref().is_none_or(|s| &r.signal.symbol == s))
        .map(|r| SignalOut {
            at: time(r.stamp.at),
            event_id: r.stamp.event_id,
            source: r.signal.source,
            symbol: r.signal.symbol,
            action: r.signal.action,
            quantity: r.signal.quantity,
            price: r.signal.price,
            stop_loss_percent: r.signal.stop_loss_percent,
            take_profit_percent: r.signal.take_profit_percent,
            leverage: r.signal.leverage,
            strategy: r.signal.strategy,
            confidence: r.signal.confidence,
            raw: r.signal.raw,
        })
        .collect();
    Ok(Json(json!({ "signals": signals, "next": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertQuery {
    before: Option<i64>,
    limit: Option<u32>,
    kind: Option<String>,
}

async fn alerts(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<AlertQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = super::query(query)?;
    let limit = super::limit(query.limit, 100, 1000)?;
    let mut alerts = state.store.alerts(query.before, limit).await?;
    let next = (alerts.len() == limit as usize).then(|| alerts.last().map(|a| a.id)).flatten();
    if let Some(kind) = &query.kind {
        alerts.retain(|a| &a.kind == kind);
    }
    Ok(Json(json!({ "alerts": alerts, "next": next })))
}
