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
use super::signal_order::pending_reduction;
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
    let guard = actions.guards.entry(gkey.clone()).or_insert(GuardEpisode {
        tripped: false,
        episodes: 0,
        last_at: cx.event.at,
    });
    let before = guard.clone();
    guard.last_at = cx.event.at;
    if net.is_zero() || ratio < config.rearm_below {
        guard.tripped = false;
    } else if ratio >= config.threshold && !guard.tripped {
        guard.tripped = true;
        guard.episodes += 1;
        let wanted = (net.abs().saturating_mul(config.reduce_fraction)).normalize();
        let mut intent = reduction(&key, net, wanted, ratio, guard.episodes, cx);
        // Closes and reductions already on their way take off part of the position: this one
        // takes at most what they leave, so together they never flip it.
        let others: Vec<Placement> = actions
            .placements
            .iter()
            .filter(|p| p.client_order_id != intent.client_order_id)
            .cloned()
            .collect();
        let pending = pending_reduction(cx, &others, &key.symbol, net);
        intent.quantity = wanted.min(net.abs().saturating_sub(pending)).normalize();
        if intent.quantity > Decimal::ZERO {
            if intent.quantity < wanted {
                intent.reason = format!(
                    "{} ({} already on its way in closes and reductions)",
                    intent.reason.replacen(&wanted.to_string(), &intent.quantity.to_string(), 1),
                    pending.normalize()
                );
            }
            if !actions.placements.iter().any(|p| p.client_order_id == intent.client_order_id) {
                let signed = if intent.side == Side::Buy { intent.quantity } else { -intent.quantity };
                actions.placements.push(Placement {
                    at: cx.now,
                    client_order_id: intent.client_order_id.clone(),
                    symbol: Some(key.symbol.clone()),
                    quantity: Some(signed),
                    reduce: true,
                    protective: true,
                });
                out.touched.placements = true;
            }
            out.decisions.push(Decision::Intent(intent));
        }
    }
    if *guard != before {
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

/// The reduce-only market order of one episode.
fn reduction(
    key: &PositionKey,
    net: Decimal,
    quantity: Decimal,
    ratio: Decimal,
    episode: u32,
    cx: &Context<'_>,
) -> OrderIntent {
    // Episodes count from 1 in every store: the namespace keeps two stores' ids apart.
    let subject = super::namespaced(cx.namespace, &format!("margin:{}", guard_key(key)));
    let side = if net > Decimal::ZERO { Side::Sell } else { Side::Buy };
    OrderIntent {
        client_order_id: client_order_id(&subject, ACTION, Role::Reduce, &episode.to_string()),
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
            "margin ratio {ratio} reached the threshold: reduce {quantity} of {} (episode {episode})",
            net.abs()
        ),
        created_at: cx.event.at,
    }
}

#[cfg(test)]
#[path = "margin_guard_tests.rs"]
mod tests;
