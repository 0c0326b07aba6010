//! `bracket_on_fill`: a stop-loss and a take-profit beside every filled entry order.
//!
//! The legs are sized to the entry's filled quantity and priced at the configured offsets from
//! its average fill price; a later fill amends both to the new total. The state remembers the
//! size the legs have, so a fill delivered again (same cumulative quantity) decides nothing, and
//! a fill that arrives before `order.created` is bracketed once the symbol and side are known.
//!
//! Not bracketed: reduce-only orders, liquidations, orders tradehook itself placed as legs,
//! closes or reductions (recognised by their client id prefix), signal entries that carry their
//! own legs, and orders whose fill moved the position against their side (a close sent without
//! `reduceOnly`). When the position goes flat — fills net to zero, a `position.closed`, or a
//! snapshot of size 0 — every live leg on it is cancelled.
//!
//! The legs follow the position down: when the fill-derived position holds less than the live
//! legs on it (a margin-guard reduction, a close without `reduceOnly`, a leg's partial fill),
//! they shrink to fit ([`fit_to_position`]), so filling a leg never flips the position.

use rust_decimal::Decimal;

use super::config::BracketConfig;
use super::intent::{client_order_id, ActionName, Decision, IntentOp, OrderIntent, OrderType, Refusal, Role};
use super::state::{BracketLegs, BracketSet, StrategyState};
use super::{Context, Decided};
use crate::trading::event::{EventKind, PositionPhase};
use crate::trading::order::{Order, OrderStatus, Side};
use crate::trading::position::{PositionKey, PositionSide};

const ACTION: ActionName = ActionName::BracketOnFill;

/// Runs `bracket_on_fill` on one event.
pub(super) fn decide(
    config: &BracketConfig,
    actions: &mut StrategyState,
    cx: &Context<'_>,
    out: &mut Decided,
) {
    match &cx.event.kind {
        EventKind::Order(event) => {
            let Some(order) = cx.trading.orders.get(&event.order_id) else { return };
            let Some(key) = order_position(order) else { return };
            if order.status == OrderStatus::Filled {
                cancel_sibling(actions, order, cx, out);
            }
            if position_is_flat(cx, &key) {
                cancel_on(actions, &key, cx, "the position went flat", out);
                forget_closed(actions, cx, out);
                return;
            }
            on_order(config, actions, order, &key, cx, out);
            fit_to_position(actions, &key, cx, out);
        }
        EventKind::Position(snapshot) => {
            let key = PositionKey { account: snapshot.account.clone(), symbol: snapshot.symbol.clone() };
            let newest = cx
                .trading
                .positions
                .get(&key)
                .and_then(|p| p.venue.as_ref())
                .is_some_and(|v| v.stamp == cx.event.stamp());
            let flat = snapshot.phase == PositionPhase::Closed
                || snapshot.side == Some(PositionSide::Flat)
                || snapshot.quantity.is_some_and(|q| q.is_zero());
            if newest && flat {
                cancel_on(actions, &key, cx, "the venue reports the position closed", out);
            }
        }
        _ => {}
    }
}

/// The position an order's fills go to, once its symbol is known.
fn order_position(order: &Order) -> Option<PositionKey> {
    let symbol = order.symbol.clone()?;
    Some(PositionKey { account: order.account.clone(), symbol })
}

/// Whether the fill-derived position is flat.
fn position_is_flat(cx: &Context<'_>, key: &PositionKey) -> bool {
    cx.trading.positions.get(key).is_none_or(|p| p.net_quantity.is_zero())
}

/// Whether an order is an entry that gets brackets.
fn is_entry(order: &Order) -> bool {
    let ours = order.client_order_id.as_deref().and_then(Role::of_client_id);
    let liquidation = order.origin.as_deref().is_some_and(|o| o.eq_ignore_ascii_case("liquidation"));
    !order.reduce_only && !liquidation && matches!(ours, None | Some(Role::Entry))
}

/// An order event on a position that is not flat: place, resize or drop the entry's legs.
fn on_order(
    config: &BracketConfig,
    actions: &mut StrategyState,
    order: &Order,
    key: &PositionKey,
    cx: &Context<'_>,
    out: &mut Decided,
) {
    let id = &order.order_id;
    if !is_entry(order) {
        // What made it ineligible may have arrived after its legs were placed (an
        // `order.created` with `reduceOnly` or `origin` after the first fill).
        if actions.brackets.get(id).is_some_and(|b| b.legs.is_some()) {
            if let Some(set) = actions.brackets.get_mut(id) {
                cancel_legs(id, set, cx, "the entry turned out reduce-only or a liquidation", out);
            }
            actions.brackets.remove(id);
            out.touched.brackets.insert(id.clone());
        }
        return;
    }
    let (Some(side), Some(average)) = (order.side, order.average_price) else { return };
    let base = actions.brackets.get(id).map_or(Decimal::ZERO, |b| b.base);
    let target = order.filled_quantity.saturating_sub(base).normalize();
    if target <= Decimal::ZERO || actions.brackets.get(id).is_some_and(|b| b.sized >= target) {
        return;
    }
    let net = cx.trading.positions.get(key).map_or(Decimal::ZERO, |p| p.net_quantity);
    if (side == Side::Buy) != (net > Decimal::ZERO) {
        return;
    }
    let Some((stop, take)) = leg_prices(config, side, average) else {
        let reason = format!(
            "stop-loss {} or take-profit {} from average fill {average} is not a positive price; \
             no brackets for order {id}",
            config.stop_loss, config.take_profit
        );
        out.decisions.push(Decision::Refused(Refusal {
            action: ACTION,
            trigger: cx.trigger.clone(),
            symbol: key.symbol.clone(),
            reason,
        }));
        return;
    };
    let set = actions.brackets.entry(id.clone()).or_insert_with(|| BracketSet {
        account: key.account.clone(),
        symbol: key.symbol.clone(),
        entry_side: side,
        sized: Decimal::ZERO,
        base,
        revision: 0,
        legs: None,
        updated_at: cx.event.at,
    });
    let subject = format!("order:{id}");
    let (op, legs, revision) = match &set.legs {
        None => {
            let revision = format!("place@{}", set.base);
            let legs = BracketLegs {
                stop_loss: client_order_id(&subject, ACTION, Role::StopLoss, &revision),
                take_profit: client_order_id(&subject, ACTION, Role::TakeProfit, &revision),
            };
            (IntentOp::Place, legs, revision)
        }
        Some(legs) => (IntentOp::Amend, legs.clone(), format!("amend@{}+{target}", set.base)),
    };
    let verb = if op == IntentOp::Place { "protects" } else { "resized to" };
    for (role, target_id, order_type, price, stop_price) in [
        (Role::StopLoss, &legs.stop_loss, OrderType::Stop, None, Some(stop)),
        (Role::TakeProfit, &legs.take_profit, OrderType::Limit, Some(take), None),
    ] {
        let reason = format!("{role:?} {verb} {target} filled of order {id} at average {average}");
        let leg = (role, target_id.clone(), order_type);
        out.decisions.push(Decision::Intent(OrderIntent {
            price,
            stop_price,
            ..leg_intent(id, set, cx, leg, op, &revision, target, reason)
        }));
    }
    set.sized = target;
    set.bump(cx.event.at);
    set.legs = Some(legs);
    out.touched.brackets.insert(id.clone());
}

/// Shrinks the live legs on a position that holds less than they cover.
///
/// Rule: the legs of entries on the position's side share its size `|net|`, in entry order id
/// order, each keeping at most what it covers; legs of entries on the other side get nothing.
/// A pair left with less is amended down to it (each leg's own fills added back, so a partially
/// filled leg keeps what it has done), a pair left with nothing is cancelled. The part given up
/// counts as closed out (added to the entry's `base`), so a fill of the entry delivered again
/// does not grow the legs back; only new fills of the entry do.
fn fit_to_position(actions: &mut StrategyState, key: &PositionKey, cx: &Context<'_>, out: &mut Decided) {
    let net = cx.trading.positions.get(key).map_or(Decimal::ZERO, |p| p.net_quantity);
    let on_key =
        |set: &BracketSet| set.legs.is_some() && set.symbol == key.symbol && set.account == key.account;
    let long = net > Decimal::ZERO;
    let covered = actions.brackets.values().filter(|s| on_key(s)).try_fold(Decimal::ZERO, |sum, s| {
        ((s.entry_side == Side::Buy) == long).then(|| sum.saturating_add(s.sized))
    });
    if covered.is_some_and(|c| c <= net.abs()) {
        return;
    }
    let mut left = net.abs();
    for (id, set) in actions.brackets.iter_mut().filter(|(_, s)| on_key(s)) {
        let allotted =
            if (set.entry_side == Side::Buy) == long { set.sized.min(left) } else { Decimal::ZERO };
        left = left.saturating_sub(allotted);
        if allotted >= set.sized {
            continue;
        }
        set.base = set.base.saturating_add(set.sized.saturating_sub(allotted)).normalize();
        if allotted.is_zero() {
            cancel_legs(id, set, cx, "the position no longer holds what they protect", out);
        } else {
            let Some(legs) = set.legs.clone() else { continue };
            let revision = format!("fit@{}+{allotted}", set.base);
            for (role, target, order_type) in [
                (Role::StopLoss, legs.stop_loss, OrderType::Stop),
                (Role::TakeProfit, legs.take_profit, OrderType::Limit),
            ] {
                let (known, own_fills) = leg_order(cx, &target);
                let quantity = allotted.saturating_add(own_fills).normalize();
                if known == Some(quantity) {
                    continue;
                }
                let reason =
                    format!("{role:?} of order {id} resized to {allotted}: the position holds {net}");
                let leg = (role, target, order_type);
                out.decisions.push(Decision::Intent(leg_intent(
                    id,
                    set,
                    cx,
                    leg,
                    IntentOp::Amend,
                    &revision,
                    quantity,
                    reason,
                )));
            }
            set.sized = allotted;
            set.bump(cx.event.at);
        }
        out.touched.brackets.insert(id.clone());
    }
}

/// The quantity and the own fills of the leg with client order id `leg`, as the venue's events
/// reported them (`None`, 0 when none has yet).
fn leg_order(cx: &Context<'_>, leg: &str) -> (Option<Decimal>, Decimal) {
    let mut orders = cx.trading.orders.values();
    orders
        .find(|o| o.client_order_id.as_deref() == Some(leg))
        .map_or((None, Decimal::ZERO), |o| (o.quantity, o.filled_quantity))
}

/// Stop-loss and take-profit prices for an entry on `side` filled at `average`; `None` when
/// the stop-loss would not be a positive price (a take-profit below zero is clamped out too).
fn leg_prices(config: &BracketConfig, side: Side, average: Decimal) -> Option<(Decimal, Decimal)> {
    let sl = config.stop_loss.distance(average);
    let tp = config.take_profit.distance(average);
    let (stop, take) = match side {
        Side::Buy => (average.saturating_sub(sl), average.saturating_add(tp)),
        Side::Sell => (average.saturating_add(sl), average.saturating_sub(tp)),
    };
    (stop > Decimal::ZERO && take > Decimal::ZERO).then(|| (stop.normalize(), take.normalize()))
}

/// The other side.
pub(super) fn opposite(side: Side) -> Side {
    match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
    }
}

/// How long a closed-out entry is remembered, so a fill of it delivered again late (its
/// position since reopened by other orders) does not bracket it a second time.
const RETENTION_DAYS: i64 = 7;

/// Forgets entries without live legs whose order is over and that changed more than
/// `RETENTION_DAYS` ago (by `now`). Runs when a position goes flat, a natural sweep point.
fn forget_closed(actions: &mut StrategyState, cx: &Context<'_>, out: &mut Decided) {
    let cutoff = cx.now.checked_sub_signed(chrono::Duration::days(RETENTION_DAYS)).unwrap_or(cx.now);
    let trading = cx.trading;
    actions.brackets.retain(|id, set| {
        let over = trading.orders.get(id).is_none_or(|o| o.status.is_terminal());
        let keep = set.legs.is_some() || set.updated_at >= cutoff || !over;
        if !keep {
            out.touched.brackets.insert(id.clone());
        }
        keep
    });
}

/// One leg filled completely: the other is cancelled (one-cancels-other), so it cannot close
/// exposure that other entries opened since.
fn cancel_sibling(actions: &mut StrategyState, leg: &Order, cx: &Context<'_>, out: &mut Decided) {
    let Some(leg_id) = leg.client_order_id.as_deref() else { return };
    let role = match Role::of_client_id(leg_id) {
        Some(Role::StopLoss) => Role::TakeProfit,
        Some(Role::TakeProfit) => Role::StopLoss,
        _ => return,
    };
    let owner = actions
        .brackets
        .iter_mut()
        .find(|(_, set)| set.legs.as_ref().is_some_and(|l| l.stop_loss == leg_id || l.take_profit == leg_id));
    let Some((id, set)) = owner else { return };
    let Some(legs) = set.legs.take() else { return };
    let sibling = if role == Role::StopLoss { legs.stop_loss } else { legs.take_profit };
    let order_type = if role == Role::StopLoss { OrderType::Stop } else { OrderType::Limit };
    let reason = format!("{role:?} of order {id} cancelled: its other leg {leg_id} filled");
    out.decisions.push(Decision::Intent(cancel_intent(id, set, cx, (role, sibling, order_type), reason)));
    let filled = cx.trading.orders.get(id).map_or(Decimal::ZERO, |o| o.filled_quantity);
    set.base = set.base.max(filled);
    set.sized = Decimal::ZERO;
    set.bump(cx.event.at);
    out.touched.brackets.insert(id.clone());
}

/// Cancels every live leg on a position; the entries keep what was closed out as their base.
fn cancel_on(actions: &mut StrategyState, key: &PositionKey, cx: &Context<'_>, why: &str, out: &mut Decided) {
    for (id, set) in actions.brackets.iter_mut() {
        if set.legs.is_none() || set.symbol != key.symbol || set.account != key.account {
            continue;
        }
        cancel_legs(id, set, cx, why, out);
        let filled = cx.trading.orders.get(id).map_or(Decimal::ZERO, |o| o.filled_quantity);
        set.base = set.base.max(filled);
        out.touched.brackets.insert(id.clone());
    }
}

/// Cancel intents for both legs of one entry; the legs are forgotten.
fn cancel_legs(id: &str, set: &mut BracketSet, cx: &Context<'_>, why: &str, out: &mut Decided) {
    let Some(legs) = set.legs.take() else { return };
    for leg in [
        (Role::StopLoss, legs.stop_loss, OrderType::Stop),
        (Role::TakeProfit, legs.take_profit, OrderType::Limit),
    ] {
        let reason = format!("{:?} of order {id} cancelled: {why}", leg.0);
        out.decisions.push(Decision::Intent(cancel_intent(id, set, cx, leg, reason)));
    }
    set.sized = Decimal::ZERO;
    set.bump(cx.event.at);
}

#[cfg(test)]
#[path = "bracket_tests.rs"]
mod tests;

/// An intent on one leg (`role`, its client order id, its type) of entry `id`: reduce-only, on
/// the side opposite the entry, without prices. A placement is the leg itself; an amend or a
/// cancel is a request of its own (keyed by `revision`) that targets the leg.
#[allow(clippy::too_many_arguments)]
fn leg_intent(
    id: &str,
    set: &BracketSet,
    cx: &Context<'_>,
    (role, leg, order_type): (Role, String, OrderType),
    op: IntentOp,
    revision: &str,
    quantity: Decimal,
    reason: String,
) -> OrderIntent {
    let (client_order_id, target_client_order_id) = match op {
        IntentOp::Place => (leg, None),
        _ => (client_order_id(&format!("order:{id}"), ACTION, role, revision), Some(leg)),
    };
    OrderIntent {
        client_order_id,
        target_client_order_id,
        parent_client_order_id: None,
        action: ACTION,
        role,
        op,
        symbol: set.symbol.clone(),
        side: opposite(set.entry_side),
        order_type,
        quantity,
        price: None,
        stop_price: None,
        reduce_only: true,
        leverage: None,
        account: set.account.clone(),
        trigger: cx.trigger.clone(),
        reason,
        created_at: cx.event.at,
    }
}

/// The intent that cancels one leg of entry `id`.
fn cancel_intent(
    id: &str,
    set: &BracketSet,
    cx: &Context<'_>,
    leg: (Role, String, OrderType),
    reason: String,
) -> OrderIntent {
    let revision = format!("cancel@{}+{}", set.base, set.sized);
    leg_intent(id, set, cx, leg, IntentOp::Cancel, &revision, set.sized, reason)
}
