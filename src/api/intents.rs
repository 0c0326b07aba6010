//! Order intents and the kill switch (TRADING.md strategy actions).
//!
//! `GET /api/v1/intents` lists what the strategy actions decided — placed, amended, cancelled or
//! refused, with the reason and the broker's answer. `GET|POST /api/v1/killswitch` reads and sets
//! the manual kill switch: while it is on, signals become refusals instead of orders (protective
//! orders — brackets, margin reductions — still go out).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::intents::IntentOutcome;
use crate::store::StoredIntent;
use crate::trading::actions::ActionName;

/// The intent and kill-switch routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(kill_switch, set_kill_switch))
}

/// Which intents.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IntentQuery {
    /// Only this action.
    action: Option<ActionName>,
    /// Only this outcome.
    outcome: Option<IntentOutcome>,
    /// Only intents older than this row id (paging).
    before: Option<i64>,
    /// At most this many, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "super::whole_number")]
    limit: Option<u32>,
}

/// Intents, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntentList {
    /// The intents.
    intents: Vec<StoredIntent>,
}

/// Order intents and refusals, newest first.
#[utoipa::path(
    get,
    path = "/intents",
    tag = "state",
    params(IntentQuery),
    responses((status = 200, description = "The intents", body = IntentList))
)]
async fn list(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<IntentQuery>,
) -> Result<Json<IntentList>, ApiError> {
    let query = super::query(query)?;
    let limit = super::limit(query.limit, 100, 1000)?;
    let action = query.action.map(|a| a.as_str().to_owned());
    let outcome = query.outcome.map(|o| o.as_str().to_owned());
    let intents = state.store.intents(query.before, action, outcome, limit).await?;
    Ok(Json(IntentList { intents }))
}

/// The kill switch: on = no new entry orders from signals (closes, legs and guard reductions still go).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KillSwitch {
    /// Whether it is on.
    on: bool,
}

/// Whether the manual kill switch is on.
#[utoipa::path(
    get,
    path = "/killswitch",
    tag = "state",
    responses((status = 200, description = "The kill switch", body = KillSwitch))
)]
async fn kill_switch(State(state): State<Arc<AppState>>) -> Result<Json<KillSwitch>, ApiError> {
    Ok(Json(KillSwitch { on: state.store.kill_switch().await? }))
}

/// Turns the manual kill switch on or off; durable across restarts.
#[utoipa::path(
    post,
    path = "/killswitch",
    tag = "state",
    request_body = KillSwitch,
    responses(
        (status = 200, description = "The kill switch as set", body = KillSwitch),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody)
    )
)]
async fn set_kill_switch(
    State(state): State<Arc<AppState>>,
    body: Result<Json<KillSwitch>, JsonRejection>,
) -> Result<Json<KillSwitch>, ApiError> {
    let Json(wanted) = body.map_err(super::body_rejection)?;
    state.store.set_kill_switch(wanted.on).await?;
    tracing::warn!(on = wanted.on, "kill switch set through the API");
    Ok(Json(KillSwitch { on: wanted.on }))
}
