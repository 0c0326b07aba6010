//! `signal_to_order`: a `signal.generated` (TradingView alerts included) becomes an order intent
//! once it passes the risk checks, in this order: symbol allow-list, signal age, kill switch
//! (manual, or `now` inside a known maintenance window; entries only, closes still go), a size,
//! the margin guard (for orders that grow the position), max order size, max position after the
//! order (counting working orders, and the entries decided here that no venue event has reported
//! yet, for 60 seconds or while the broker has not taken them: see [`working_quantity`]), then
//! max orders per 60 seconds. The first failed check refuses the signal with its reason. `hold`
//! decides nothing.
//!
//! Sizes: the signal's quantity; else `position_size: "10%"` in the raw alert, as percent of
//! equity times leverage, priced at the signal's price or the last known price; else the
//! configured default. `close_*` and `flat` are reduce-only and close the signal's quantity,
//! capped at (and defaulting to) the open position. Stop-loss/take-profit percents attach
//! reduce-only legs to the entry, priced from the signal's (or last known) price.
//!
//! Positions here are summed over accounts: signals carry no account. A close closes the one
//! account that holds the symbol (its intent names that account); with several, it is refused.

use std::collections::BTreeMap;

use chrono::Duration as ChronoDuration;
use rust_decimal::Decimal;

use super::config::SignalConfig;
use super::intent::{client_order_id, ActionName, Decision, IntentOp, OrderIntent, OrderType, Refusal, Role};
use super::margin_guard;
use super::state::{Placement, StrategyState};
use super::{Context, Decided};
use crate::trading::event::EventKind;
use crate::trading::order::Side;
use crate::trading::signal::{Signal, SignalAction};

const ACTION: ActionName = ActionName::SignalToOrder;

/// An order a signal asks for, before risk checks on size.
struct Plan {
    /// Buy or sell.
    side: Side,
    /// Quantity.
    quantity: Decimal,
    /// Whether it only closes.
    close: bool,
    /// The account of the position a close closes (signals name none: the one account that
    /// holds the symbol); `None` for entries.
    account: Option<String>,
}

/// Runs `signal_to_order` on one event.
pub(super) fn decide(
    config: &SignalConfig,
    actions: &mut StrategyState,
    cx: &Context<'_>,
    out: &mut Decided,
) {
    let EventKind::Signal(signal) = &cx.event.kind else { return };
    if signal.action == SignalAction::Hold {
        return;
    }
    let before = actions.placements.clone();
    match check(config, actions, signal, cx) {
        Ok(intents) => out.decisions.extend(intents.into_iter().map(Decision::Intent)),
        Err(reason) => out.decisions.push(Decision::Refused(Refusal {
            action: ACTION,
            trigger: cx.trigger.clone(),
            symbol: signal.symbol.clone(),
            reason,
        })),
    }
    prune_placements(actions, cx);
    if actions.placements != before {
        out.touched.placements = true;
    }
}

/// The risk checks, then the intents: the entry (or close) and its attached legs.
fn check(
    config: &SignalConfig,
    actions: &mut StrategyState,
    signal: &Signal,
    cx: &Context<'_>,
) -> Result<Vec<OrderIntent>, String> {
    let symbol = signal.symbol.as_str();
    if !config.symbols.is_empty() && !config.symbols.iter().any(|s| s == symbol) {
        return Err(format!("symbol {symbol} is not in signal_to_order.symbols"));
    }
    let age = cx.now.signed_duration_since(cx.event.at);
    if age.to_std().is_ok_and(|age| age > config.max_signal_age) {
        return Err(format!(
            "signal is {}s old, older than max_signal_age {}",
            age.num_seconds(),
            humantime::format_duration(config.max_signal_age)
        ));
    }
    // The kill switch stops new risk; a close still goes, as it does for queued intents.
    if !signal.action.closes() {
        if let Some(reason) = actions.kill_switch_reason(cx.trading, cx.now) {
            return Err(reason.to_owned());
        }
    }
    let net = net_position(cx, symbol);
    let entry_id = |plan: &Plan| client_order_id(&cx.trigger.key, ACTION, entry_role(signal, plan), "0");
    let plan = plan(config, actions, signal, net, cx, |plan| {
        pending_reduction((cx.trading, cx.now), actions, &entry_id(plan), Some(&plan.account), symbol, net)
    })?;
    let signed = plan.side.signed(plan.quantity);
    let after = net.saturating_add(signed);
    if !plan.close && after.abs() > net.abs() && margin_guard::blocks(actions, symbol) {
        return Err(format!("margin guard tripped on {symbol}: no new entries until the margin ratio falls"));
    }
    if plan.quantity > config.max_order {
        return Err(format!("quantity {} is above max_order {}", plan.quantity, config.max_order));
    }
    // A signal processed again (same trigger, same entry id) does not count its own placement.
    let entry = entry_id(&plan);
    let others: Vec<Placement> =
        actions.placements.iter().filter(|p| p.client_order_id != entry).cloned().collect();
    let waiting: Vec<(&str, Decimal)> = actions
        .awaiting_broker
        .iter()
        .filter(|(id, e)| **id != entry && e.symbol == symbol)
        .map(|(id, e)| (id.as_str(), e.quantity))
        .collect();
    let working = working_quantity(cx, &others, &waiting, symbol);
    let exposure = after.saturating_add(working).abs().normalize();
    if !plan.close && exposure > config.max_position && after.abs() > net.abs() {
        return Err(format!(
            "position after the order would be {exposure} (with {} working or sent and not yet reported), \
             above max_position {}",
            working.normalize(),
            config.max_position
        ));
    }
    let intents = intents(signal, &plan, actions, cx)?;
    let entry = &intents[0].client_order_id;
    if !actions.placements.iter().any(|p| &p.client_order_id == entry) {
        let recent = actions.placements.iter().filter(|p| !p.protective && within_minute(p, cx)).count();
        if recent >= config.max_orders_per_minute as usize {
            return Err(format!(
                "{recent} signal orders in the last minute, max_orders_per_minute is {}",
                config.max_orders_per_minute
            ));
        }
        actions.placements.push(Placement {
            at: cx.now,
            client_order_id: entry.clone(),
            symbol: Some(symbol.to_owned()),
            account: intents[0].account.clone(),
            quantity: Some(signed),
            reduce: plan.close,
            protective: false,
        });
    }
    Ok(intents)
}

/// Side, quantity and close-only of what the signal asks. A close sells (or buys back) at most
/// what the closes and reductions already on their way leave of the position (`pending`, given
/// the close's own plan so it does not count itself): two exits close together must not flip it.
fn plan(
    config: &SignalConfig,
    actions: &StrategyState,
    signal: &Signal,
    net: Decimal,
    cx: &Context<'_>,
    pending: impl FnOnce(&Plan) -> Decimal,
) -> Result<Plan, String> {
    use SignalAction::*;
    let (side, close) = match signal.action {
        Buy | Long | OpenLong => (Side::Buy, false),
        Sell | Short | OpenShort => (Side::Sell, false),
        CloseLong if net > Decimal::ZERO => (Side::Sell, true),
        CloseShort if net < Decimal::ZERO => (Side::Buy, true),
        Flat if !net.is_zero() => (if net > Decimal::ZERO { Side::Sell } else { Side::Buy }, true),
        CloseLong | CloseShort | Flat | Hold => {
            return Err(format!("no matching position on {} to close (net {net})", signal.symbol))
        }
    };
    // An explicit 0 (TradingView's `{{strategy.market_position_size}}` when flat) is no order,
    // not "the default size".
    if signal.quantity.is_some_and(|q| q <= Decimal::ZERO) {
        return Err("order quantity is zero".to_owned());
    }
    let (quantity, account) = if close {
        let mut holders = cx
            .trading
            .positions
            .iter()
            .filter(|(key, p)| key.symbol == signal.symbol && !p.net_quantity.is_zero());
        let account = holders.next().and_then(|(key, _)| key.account.clone());
        if holders.next().is_some() {
            return Err(format!(
                "positions on {} are held in several accounts: a signal names no account, so it cannot close them",
                signal.symbol
            ));
        }
        let mut plan = Plan { side, quantity: net.abs(), close, account };
        let pending = pending(&plan);
        let left = net.abs().saturating_sub(pending);
        if left <= Decimal::ZERO {
            return Err(format!(
                "the position on {} (net {net}) is already being closed: {} in closes and reductions \
                 decided in the last minute and not yet filled",
                signal.symbol,
                pending.normalize()
            ));
        }
        plan.quantity = signal.quantity.map_or(left, |q| q.min(left));
        (plan.quantity, plan.account)
    } else {
        (entry_quantity(config, actions, signal, cx)?, None)
    };
    if quantity <= Decimal::ZERO {
        return Err("order quantity is zero".to_owned());
    }
    Ok(Plan { side, quantity: quantity.normalize(), close, account })
}

/// The size of an entry: quantity, else percent of equity, else the configured default.
fn entry_quantity(
    config: &SignalConfig,
    actions: &StrategyState,
    signal: &Signal,
    cx: &Context<'_>,
) -> Result<Decimal, String> {
    if let Some(q) = signal.quantity {
        return Ok(q);
    }
    if let Some(pct) = percent_size(signal) {
        if pct.is_zero() {
            // `0%` is no order, as an explicit quantity 0 is.
            return Err("order quantity is zero".to_owned());
        }
        let equity = config.equity.or_else(|| {
            let balances = cx.trading.balances.values().filter(|b| b.asset == config.equity_asset);
            balances.map(|b| b.total).reduce(Decimal::saturating_add)
        });
        let Some(equity) = equity.filter(|e| *e > Decimal::ZERO) else {
            return Err(format!(
                "position_size {pct}% needs equity: set signal_to_order.equity or send {} balances",
                config.equity_asset
            ));
        };
        let Some(price) = reference_price(signal, actions) else {
            return Err(format!(
                "position_size {pct}% needs a price: the signal has none and none is known for {}",
                signal.symbol
            ));
        };
        let notional = (equity.saturating_mul(pct) / Decimal::ONE_HUNDRED)
            .saturating_mul(signal.leverage.unwrap_or(Decimal::ONE));
        return notional
            .checked_div(price)
            .map(|q| q.round_dp(8).normalize())
            .ok_or_else(|| "price is zero".to_owned());
    }
    config.default_quantity.ok_or_else(|| {
        "signal has no quantity or position_size and signal_to_order.default_quantity is not set".to_owned()
    })
}

/// `position_size` (or `positionSize`) written as a percent in the raw alert.
fn percent_size(signal: &Signal) -> Option<Decimal> {
    let raw = ["position_size", "positionSize"].iter().find_map(|k| signal.raw.get(*k))?;
    let text = raw.as_str()?.trim().strip_suffix('%')?;
    Decimal::from_str_exact(text.trim()).ok().filter(|p| *p >= Decimal::ZERO)
}

/// The signal's price, else the last known one.
fn reference_price(signal: &Signal, actions: &StrategyState) -> Option<Decimal> {
    signal.price.filter(|p| *p > Decimal::ZERO).or_else(|| actions.last_price(&signal.symbol))
}

/// Net position on a symbol, summed over accounts.
fn net_position(cx: &Context<'_>, symbol: &str) -> Decimal {
    let positions = cx.trading.positions.values().filter(|p| p.symbol == symbol);
    positions.map(|p| p.net_quantity).fold(Decimal::ZERO, Decimal::saturating_add)
}

/// Signed quantity that may still add to the position on a symbol: the unfilled part of working,
/// non-reduce-only orders, plus the entries this action decided that no venue event has reported
/// yet: those decided in the last 60 seconds (signals close together are decided before the
/// first order's events come back) and those the broker has not taken yet (`awaiting`: on
/// `symbol`, queued, retrying while the broker is down, or replayed from the dead-letter queue,
/// however old). An entry counts here until an order with its client order id is known, then as
/// that order (working, filled into the position, or rejected), never twice. One taken but never
/// reported stops counting a minute after it was decided, and so does one the broker never took.
fn working_quantity(
    cx: &Context<'_>,
    placements: &[Placement],
    awaiting: &[(&str, Decimal)],
    symbol: &str,
) -> Decimal {
    let mut unreported: BTreeMap<&str, Decimal> = placements
        .iter()
        .filter(|p| !p.reduce && p.symbol.as_deref() == Some(symbol) && within_minute(p, cx))
        .filter_map(|p| Some((p.client_order_id.as_str(), p.quantity?)))
        .collect();
    unreported.extend(awaiting.iter().copied());
    let mut sum = Decimal::ZERO;
    for o in cx.trading.orders.values() {
        if !unreported.is_empty() {
            if let Some(id) = o.client_order_id.as_deref() {
                unreported.remove(id);
            }
        }
        if o.status.is_terminal() || o.reduce_only || o.symbol.as_deref() != Some(symbol) {
            continue;
        }
        let open =
            o.quantity.map_or(Decimal::ZERO, |q| q.saturating_sub(o.filled_quantity).max(Decimal::ZERO));
        sum = match o.side {
            Some(Side::Buy) => sum.saturating_add(open),
            Some(Side::Sell) => sum.saturating_sub(open),
            None => sum,
        };
    }
    unreported.into_values().fold(sum, Decimal::saturating_add)
}

/// How much of the position on `symbol` (net `net`) — in `account`, or in every account when
/// `None` (a signal names none) — the reduce-only closes and reductions decided in the last
/// minute will still take off: the whole of one no venue event has reported yet, the unfilled
/// part of one working, nothing of one filled (the position shows it), ended, or failed at the
/// broker. `own` (the order being sized, when it is decided again) does not count. Resting
/// stop-loss and take-profit legs are not counted: they fill only if the price gets there.
pub(super) fn pending_reduction(
    (trading, now): (&crate::trading::TradingState, chrono::DateTime<chrono::Utc>),
    actions: &StrategyState,
    own: &str,
    account: Option<&Option<String>>,
    symbol: &str,
    net: Decimal,
) -> Decimal {
    let pending: BTreeMap<&str, Decimal> = actions
        .placements
        .iter()
        .filter(|p| p.reduce && p.client_order_id != own && p.symbol.as_deref() == Some(symbol))
        .filter(|p| account.is_none_or(|account| &p.account == account))
        .filter(|p| now.signed_duration_since(p.at) < ChronoDuration::seconds(60))
        .filter(|p| !actions.failed.contains(&p.client_order_id))
        .filter_map(|p| Some((p.client_order_id.as_str(), p.quantity?)))
        .collect();
    if pending.is_empty() || net.is_zero() {
        return Decimal::ZERO;
    }
    let mut left = pending.clone();
    for order in trading.orders.values() {
        let Some(quantity) = order.client_order_id.as_deref().and_then(|id| pending.get(id)) else {
            continue;
        };
        let open = if order.status.is_terminal() {
            Decimal::ZERO
        } else {
            order
                .quantity
                .map_or(quantity.abs(), |q| q.saturating_sub(order.filled_quantity).max(Decimal::ZERO))
        };
        left.insert(
            order.client_order_id.as_deref().unwrap_or_default(),
            if *quantity < Decimal::ZERO { -open } else { open },
        );
    }
    let total = left.into_values().fold(Decimal::ZERO, Decimal::saturating_add);
    // Sells take off a long, buys a short.
    if net > Decimal::ZERO {
        (-total).max(Decimal::ZERO)
    } else {
        total.max(Decimal::ZERO)
    }
}

/// Whether a placement falls in the 60 seconds before `now`.
fn within_minute(p: &Placement, cx: &Context<'_>) -> bool {
    cx.now.signed_duration_since(p.at) < ChronoDuration::seconds(60)
}

/// Drops placements older than a minute.
pub(super) fn prune_placements(actions: &mut StrategyState, cx: &Context<'_>) {
    actions.placements.retain(|p| within_minute(p, cx));
}

/// The role of the order a signal places: a close, an entry with attached legs, or a plain entry.
fn entry_role(signal: &Signal, plan: &Plan) -> Role {
    let bracketed = signal.stop_loss_percent.is_some() || signal.take_profit_percent.is_some();
    match (plan.close, bracketed) {
        (true, _) => Role::Close,
        (false, true) => Role::BracketedEntry,
        (false, false) => Role::Entry,
    }
}

/// The entry (or close) intent and its attached legs.
fn intents(
    signal: &Signal,
    plan: &Plan,
    actions: &StrategyState,
    cx: &Context<'_>,
) -> Result<Vec<OrderIntent>, String> {
    let legs = if plan.close { (None, None) } else { (signal.stop_loss_percent, signal.take_profit_percent) };
    let bracketed = legs.0.is_some() || legs.1.is_some();
    let reference = match bracketed {
        true => Some(reference_price(signal, actions).ok_or_else(|| {
            format!(
                "stop_loss/take_profit need a price: the signal has none and none is known for {}",
                signal.symbol
            )
        })?),
        false => None,
    };
    let role = entry_role(signal, plan);
    let entry_id = client_order_id(&cx.trigger.key, ACTION, role, "0");
    let base = OrderIntent {
        client_order_id: entry_id.clone(),
        target_client_order_id: None,
        parent_client_order_id: None,
        action: ACTION,
        role,
        op: IntentOp::Place,
        symbol: signal.symbol.clone(),
        side: plan.side,
        order_type: OrderType::Market,
        quantity: plan.quantity,
        price: None,
        stop_price: None,
        reduce_only: plan.close,
        leverage: signal.leverage,
        account: plan.account.clone(),
        trigger: cx.trigger.clone(),
        reason: format!("signal {:?} on {}", signal.action, signal.symbol),
        created_at: cx.event.at,
    };
    let mut out = vec![base.clone()];
    let long = plan.side == Side::Buy;
    for (role, percent) in [(Role::StopLoss, legs.0), (Role::TakeProfit, legs.1)] {
        let (Some(pct), Some(reference)) = (percent, reference) else { continue };
        let away = reference.saturating_mul(pct) / Decimal::ONE_HUNDRED;
        let up = (role == Role::TakeProfit) == long;
        let price =
            if up { reference.saturating_add(away) } else { reference.saturating_sub(away) }.normalize();
        if price <= Decimal::ZERO {
            return Err(format!("{role:?} {pct}% from {reference} is not a positive price"));
        }
        let (order_type, limit, stop) = match role {
            Role::StopLoss => (OrderType::Stop, None, Some(price)),
            _ => (OrderType::Limit, Some(price), None),
        };
        out.push(OrderIntent {
            client_order_id: client_order_id(&cx.trigger.key, ACTION, role, "0"),
            parent_client_order_id: Some(entry_id.clone()),
            role,
            side: if long { Side::Sell } else { Side::Buy },
            order_type,
            price: limit,
            stop_price: stop,
            reduce_only: true,
            leverage: None,
            reason: format!("{role:?} {pct}% attached to {entry_id}"),
            ..base.clone()
        });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "signal_order_tests.rs"]
mod tests;
