//! `margin_guard`: one reduce-only market order per episode when a position's margin ratio
//! reaches the threshold (higher is riskier), re-armed only once the ratio falls under
//! `rearm_below`; while tripped, `signal_to_order` refuses new entries on the symbol.
//!
//! Readings come from `position.*` snapshots and `account.margin_call`. A reading older than
//! `max_alert_age` (event time vs `now`), or older than the newest reading already taken for the
//! position, is ignored. A reading about a flat position orders nothing and ends the episode:
//! there is nothing left to protect. The reduction's client id is derived from the position and
//! the episode number, so every alert of one episode maps to the same order.

use rust_decimal::Decimal;

use super::config::MarginGuardConfig;
use super::intent::{client_order_id, ActionName, Decision, IntentOp, OrderIntent, OrderType, Role};
use super::signal_order::{pending_reduction, prune_placements};
use super::state::{guard_key, GuardEpisode, Placement, StrategyState};
use super::{Context, Decided};
use crate::trading::event::EventKind;
use crate::trading::order::Side;
use crate::trading::position::{snapshot_net, PositionKey};

const ACTION: ActionName = ActionName::MarginGuard;

/// Whether a tripped guard blocks entries on `symbol` (in any account).
pub(super) fn blocks(actions: &StrategyState, symbol: &str) -> bool {
    actions.guards.iter().any(|(key, g)| g.tripped && key.rsplit_once('|').is_some_and(|(_, s)| s == symbol))
}

/// Runs `margin_guard` on one event.
pub(super) fn decide(
    config: &MarginGuardConfig,
    actions: &mut StrategyState,
    cx: &Context<'_>,
    out: &mut Decided,
) {
    let (key, ratio, reported) = match &cx.event.kind {
        EventKind::Position(p) => {
            let key = PositionKey { account: p.account.clone(), symbol: p.symbol.clone() };
            // Seed 001's `position.updated` has no side: the newest snapshot that named one says.
            let known_side =
                cx.trading.positions.get(&key).and_then(|pos| pos.venue_side.as_ref()).map(|s| s.1);
            let reported = snapshot_net(p, known_side);
            (key, p.margin_ratio, reported)
        }
        EventKind::MarginCall(m) => {
            (PositionKey { account: m.account.clone(), symbol: m.symbol.clone() }, m.margin_ratio, None)
        }
        _ => return,
    };
    let Some(ratio) = ratio else { return };
    let age = cx.now.signed_duration_since(cx.event.at);
    if age.to_std().is_ok_and(|age| age > config.max_alert_age) {
        return;
    }
    let gkey = guard_key(&key);
    if actions.guards.get(&gkey).is_some_and(|g| g.last_at > cx.event.at) {
        return;
    }
    let net = net_position(cx, &key, reported);
    let count = actions.placements.len();
    prune_placements(actions, cx);
    out.touched.placements |= actions.placements.len() != count;
    let before = actions.guards.get(&gkey).cloned();
    let mut guard =
        before.clone().unwrap_or(GuardEpisode { tripped: false, episodes: 0, last_at: cx.event.at });
    guard.last_at = cx.event.at;
    if net.is_zero() || ratio < config.rearm_below {
        guard.tripped = false;
    } else if ratio >= config.threshold && !guard.tripped {
        let episode = guard.episodes + 1;
        let id = reduction_id(&key, episode, cx);
        // Closes and reductions already on their way take off part of the position: this one
        // takes at most what they leave, so together they never flip it. When they take it all,
        // the guard stays armed: should they fail, the next reading still reduces.
        let pending =
            pending_reduction((cx.trading, cx.now), actions, &id, Some(&key.account), &key.symbol, net);
        let wanted = (net.abs().saturating_mul(config.reduce_fraction)).normalize();
        let quantity = wanted.min(net.abs().saturating_sub(pending)).normalize();
        if quantity > Decimal::ZERO {
            guard.tripped = true;
            guard.episodes = episode;
            let intent = reduction(&key, net, (quantity, pending), ratio, (id, episode), cx);
            if !actions.placements.iter().any(|p| p.client_order_id == intent.client_order_id) {
                actions.placements.push(Placement {
                    at: cx.now,
                    client_order_id: intent.client_order_id.clone(),
                    symbol: Some(key.symbol.clone()),
                    account: key.account.clone(),
                    quantity: Some(intent.side.signed(quantity)),
                    reduce: true,
                    protective: true,
                });
                out.touched.placements = true;
            }
            out.decisions.push(Decision::Intent(intent));
        }
    }
    if before.as_ref() != Some(&guard) {
        actions.guards.insert(gkey.clone(), guard);
        out.touched.guards.insert(gkey);
    }
}

/// The position to reduce: from fills when the position has any, else what the venue reports
/// (this event's snapshot, else the newest stored one).
fn net_position(cx: &Context<'_>, key: &PositionKey, reported: Option<Decimal>) -> Decimal {
    let position = cx.trading.positions.get(key);
    if let Some(p) = position.filter(|p| !p.fills().is_empty()) {
        return p.net_quantity;
    }
    reported.or_else(|| position.and_then(|p| p.venue_net())).unwrap_or(Decimal::ZERO)
}

/// The client order id of an episode's reduction. Episodes count from 1 in every store: the
/// namespace keeps two stores' ids apart.
fn reduction_id(key: &PositionKey, episode: u32, cx: &Context<'_>) -> String {
    let subject = super::namespaced(cx.namespace, &format!("margin:{}", guard_key(key)));
    client_order_id(&subject, ACTION, Role::Reduce, &episode.to_string())
}

/// The reduce-only market order `id` of one episode, for `quantity` (less than the fraction asks
/// when `pending` closes and reductions are already on their way).
fn reduction(
    key: &PositionKey,
    net: Decimal,
    (quantity, pending): (Decimal, Decimal),
    ratio: Decimal,
    (id, episode): (String, u32),
    cx: &Context<'_>,
) -> OrderIntent {
    let side = if net > Decimal::ZERO { Side::Sell } else { Side::Buy };
    let on_their_way = if pending > Decimal::ZERO {
        format!(" ({} already on its way in closes and reductions)", pending.normalize())
    } else {
        String::new()
    };
    OrderIntent {
        client_order_id: id,
        target_client_order_id: None,
        parent_client_order_id: None,
        action: ACTION,
        role: Role::Reduce,
        op: IntentOp::Place,
        symbol: key.symbol.clone(),
        side,
        order_type: OrderType::Market,
        quantity,
        price: None,
        stop_price: None,
        reduce_only: true,
        leverage: None,
        account: key.account.clone(),
        trigger: cx.trigger.clone(),
        reason: format!(
            "margin ratio {ratio} reached the threshold: reduce {quantity} of {}{on_their_way} (episode {episode})",
            net.abs()
        ),
        created_at: cx.event.at,
    }
}

#[cfg(test)]
#[path = "margin_guard_tests.rs"]
mod tests;
