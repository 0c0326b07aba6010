//! The trading state API (SPEC §3, §10): orders, positions, balances, signals, alerts.
//!
//! Read from the store, so every node of a shared store answers the same. Lists page by entity
//! key (`after` = the previous page's `next`); the shapes are in `views.rs`.

mod views;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use views::{BalanceOut, FillView, LedgerOut, OrderView, PositionOut, SignalOut};

use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::{EntityKind, StoredAlert};
use crate::trading::{AlertKind, Balance, LedgerEntry, Order, OrderStatus, Position};

/// The state routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(orders))
        .routes(routes!(order))
        .routes(routes!(positions))
        .routes(routes!(balances))
        .routes(routes!(ledger))
        .routes(routes!(signals))
        .routes(routes!(alerts))
}

/// Paging and filters of a state list; each list takes the filters it documents.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OrderQuery {
    /// Entities after this key (the previous page's `next`).
    after: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// Only this instrument.
    symbol: Option<String>,
}

/// Paging and a symbol filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SymbolQuery {
    /// Entities after this key (the previous page's `next`).
    after: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only this instrument.
    symbol: Option<String>,
}

/// Paging only.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Entities after this key (the previous page's `next`).
    after: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Most stored documents one request reads to fill a filtered page. A filter that matches few of
/// many entities gets a short page with `next` (where to go on) instead of a request that reads
/// the whole table.
const SCAN_BUDGET: usize = 20_000;

/// Reads documents of `kind` in key order after `after` and keeps those `keep` accepts, until
/// `limit` are kept or the documents run out. `next` is set when more may follow: the key of the
/// last document kept on a full page, or of the last one read when [`SCAN_BUDGET`] ran out first.
async fn documents<T: serde::de::DeserializeOwned>(
    state: &AppState,
    kind: EntityKind,
    mut after: Option<String>,
    limit: Option<u32>,
    keep: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = super::limit(limit, 100, 1000)?;
    let mut kept = Vec::new();
    let mut read = 0;
    loop {
        let rows = state.store.entities(kind, after.clone(), limit).await?;
        let last_page = rows.len() < limit as usize;
        for (key, doc) in rows {
            read += 1;
            let document: T =
                serde_json::from_str(&doc).map_err(|e| ApiError::internal(format!("stored {key}: {e}")))?;
            if keep(&document) {
                kept.push(document);
            }
            after = Some(key);
            if kept.len() == limit as usize {
                return Ok((kept, after));
            }
        }
        if last_page {
            return Ok((kept, None));
        }
        if read >= SCAN_BUDGET {
            return Ok((kept, after));
        }
    }
}

/// A page of orders.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderPage {
    /// The orders of this page that match the filters.
    orders: Vec<OrderView>,
    /// Pass as `after` for the next page; absent on the last.
    next: Option<String>,
}

/// Orders, by order id.
#[utoipa::path(
    get,
    path = "/orders",
    tag = "state",
    params(OrderQuery),
    responses((status = 200, description = "A page of orders", body = OrderPage))
)]
async fn orders(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<OrderQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let query = super::query(query)?;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(OrderStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "`status` must be pending, open, partially_filled, filled, cancelled, rejected or expired",
            )
        })?),
    };
    let symbol = query.symbol;
    let (orders, next): (Vec<Order>, _) = documents(&state, EntityKind::Order, query.after, query.limit, |o: &Order| {
        status.is_none_or(|s| o.status == s) && symbol.as_ref().is_none_or(|s| o.symbol.as_ref() == Some(s))
    })
    .await?;
    let orders = orders.iter().map(|o| OrderView::new(o, false)).collect();
    Ok(Json(OrderPage { orders, next }))
}

/// One order with its fills.
#[utoipa::path(
    get,
    path = "/orders/{orderId}",
    tag = "state",
    params((
        "orderId" = String,
        Path,
        description = "The venue's order id",
        example = "12345678-1234-1234-1234-123456789012"
    )),
    responses(
        (status = 200, description = "The order and its fills", body = OrderView),
        (status = 404, description = "No such order", body = ErrorBody)
    )
)]
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

/// A page of positions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PositionPage {
    /// The positions of this page that match the filter.
    positions: Vec<PositionOut>,
    /// Pass as `after` for the next page; absent on the last.
    next: Option<String>,
}

/// Positions, by account and symbol.
#[utoipa::path(
    get,
    path = "/positions",
    tag = "state",
    params(SymbolQuery),
    responses((status = 200, description = "A page of positions", body = PositionPage))
)]
async fn positions(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<SymbolQuery>,
) -> Result<Json<PositionPage>, ApiError> {
    let query = super::query(query)?;
    let symbol = query.symbol;
    let (positions, next): (Vec<Position>, _) =
        documents(&state, EntityKind::Position, query.after, query.limit, |p: &Position| {
            symbol.as_ref().is_none_or(|s| &p.symbol == s)
        })
        .await?;
    let positions = positions.iter().map(PositionOut::new).collect();
    Ok(Json(PositionPage { positions, next }))
}

/// A page of balances.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BalancePage {
    /// The balances of this page.
    balances: Vec<BalanceOut>,
    /// Pass as `after` for the next page; absent on the last.
    next: Option<String>,
}

/// Balances, by account and asset.
#[utoipa::path(
    get,
    path = "/balances",
    tag = "state",
    params(PageQuery),
    responses((status = 200, description = "A page of balances", body = BalancePage))
)]
async fn balances(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<PageQuery>,
) -> Result<Json<BalancePage>, ApiError> {
    let query = super::query(query)?;
    let (balances, next): (Vec<Balance>, _) =
        documents(&state, EntityKind::Balance, query.after, query.limit, |_: &Balance| true).await?;
    Ok(Json(BalancePage { balances: balances.into_iter().map(BalanceOut::new).collect(), next }))
}

/// A page of deposits and withdrawals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LedgerPage {
    /// The entries of this page, by transaction id.
    entries: Vec<LedgerOut>,
    /// Pass as `after` for the next page; absent on the last.
    next: Option<String>,
}

/// Deposits and withdrawals (`account.deposit_received`, `account.withdrawal_processed`), one
/// entry per transaction id.
#[utoipa::path(
    get,
    path = "/ledger",
    tag = "state",
    params(PageQuery),
    responses((status = 200, description = "A page of ledger entries", body = LedgerPage))
)]
async fn ledger(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<PageQuery>,
) -> Result<Json<LedgerPage>, ApiError> {
    let query = super::query(query)?;
    let (entries, next): (Vec<LedgerEntry>, _) =
        documents(&state, EntityKind::Ledger, query.after, query.limit, |_: &LedgerEntry| true).await?;
    Ok(Json(LedgerPage { entries: entries.into_iter().map(LedgerOut::new).collect(), next }))
}

/// A page of signals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignalPage {
    /// The signals of this page that match the filter.
    signals: Vec<SignalOut>,
    /// Pass as `after` for the next page; absent on the last.
    next: Option<String>,
}

/// Trading signals received (seed 001 `signal.generated`, TradingView alerts).
#[utoipa::path(
    get,
    path = "/signals",
    tag = "state",
    params(SymbolQuery),
    responses((status = 200, description = "A page of signals", body = SignalPage))
)]
async fn signals(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<SymbolQuery>,
) -> Result<Json<SignalPage>, ApiError> {
    let query = super::query(query)?;
    let symbol = query.symbol;
    let (records, next) = documents(
        &state,
        EntityKind::Signal,
        query.after,
        query.limit,
        |r: &crate::trading::state::SignalRecord| symbol.as_ref().is_none_or(|s| &r.signal.symbol == s),
    )
    .await?;
    let signals = records.into_iter().map(SignalOut::new).collect();
    Ok(Json(SignalPage { signals, next }))
}

/// Paging and a kind filter of the alerts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AlertQuery {
    /// Alerts older than this id (the previous page's `next`).
    before: Option<i64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only this kind.
    kind: Option<AlertKind>,
}

/// A page of alerts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertPage {
    /// Newest first.
    alerts: Vec<StoredAlert>,
    /// Pass as `before` for the next page; absent on the last.
    next: Option<i64>,
}

/// Data-quality, margin and system alerts, newest first.
#[utoipa::path(
    get,
    path = "/alerts",
    tag = "state",
    params(AlertQuery),
    responses((status = 200, description = "A page of alerts", body = AlertPage))
)]
async fn alerts(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<AlertQuery>,
) -> Result<Json<AlertPage>, ApiError> {
    let query = super::query(query)?;
    let limit = super::limit(query.limit, 100, 1000)?;
    let kind = query.kind.map(|k| k.as_str().to_owned());
    let alerts = state.store.alerts(query.before, limit, kind).await?;
    let next = (alerts.len() == limit as usize).then(|| alerts.last().map(|a| a.id)).flatten();
    Ok(Json(AlertPage { alerts, next }))
}
