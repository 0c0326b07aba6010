//! Routing: which targets one processed event goes to.
//!
//! Two sources of targets, merged without duplicates: the configured `[[route]]`s (event globs,
//! source, symbol and status filters → `forward:`, `nats:`, `exec:` actions) and every
//! subscription whose own event list takes the event type. Pure: the worker calls it while it
//! builds a processed batch, so the deliveries commit in the same transaction as the
//! "processed" mark and an event can never be processed without its deliveries being queued.

use crate::config::RouteConfig;
use crate::delivery::subscription::{glob_matches, Subscription};

/// What routing needs to know about an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFacts {
    /// Event type, e.g. `order.updated`, when known.
    pub event_type: Option<String>,
    /// Source name.
    pub source: String,
    /// Instrument, when the event has one.
    pub symbol: Option<String>,
    /// Order or account status, when the event has one.
    pub status: Option<String>,
}

/// One place an event is to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `forward:<subscription id or name>`, `nats:<subject>` or `exec:<command>`.
    pub target: String,
    /// The subscription, for `forward:` targets that name an existing one.
    pub webhook_id: Option<String>,
    /// The subscription is inactive: keep the delivery for later instead of attempting it.
    pub held: bool,
}

/// The configured routes, ready to match.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<RouteConfig>,
}

impl RouteTable {
    /// The routes of the configuration.
    pub fn new(routes: &[RouteConfig]) -> Self {
        RouteTable { routes: routes.to_vec() }
    }

    /// Whether nothing could ever be routed (no routes, no subscriptions): lets the worker skip
    /// reading event facts.
    pub fn is_idle(&self, subscriptions: &[Subscription]) -> bool {
        self.routes.is_empty() && subscriptions.is_empty()
    }

    /// The strategy actions (`bracket_on_fill`, `signal_to_order`, `margin_guard`) of the routes
    /// that match an event.
    pub fn strategy_actions(&self, facts: &EventFacts) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let Some(event_type) = facts.event_type.as_deref() else { return out };
        for route in self.routes.iter().filter(|r| route_matches(r, facts, event_type)) {
            for action in route.actions.iter().filter(|a| !a.contains(':')) {
                if !out.contains(&action.as_str()) {
                    out.push(action);
                }
            }
        }
        out
    }

    /// Whether any route names a strategy action.
    pub fn has_strategy_actions(&self) -> bool {
        self.routes.iter().flat_map(|r| &r.actions).any(|a| !a.contains(':'))
    }

    /// The targets of an event, each once, routes first in configuration order.
    pub fn targets(&self, facts: &EventFacts, subscriptions: &[Subscription]) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        let Some(event_type) = facts.event_type.as_deref() else { return out };
        for route in self.routes.iter().filter(|r| route_matches(r, facts, event_type)) {
            for action in &route.actions {
                if let Some(name) = action.strip_prefix("forward:") {
                    let found = subscriptions
                        .iter()
                        .find(|s| s.id == name)
                        .or_else(|| subscriptions.iter().find(|s| s.name.as_deref() == Some(name)));
                    push(&mut out, forward(name, found));
                } else if action.starts_with("nats:") || action.starts_with("exec:") {
                    push(&mut out, Target { target: action.clone(), webhook_id: None, held: false });
                }
                // Strategy actions (`bracket_on_fill`, …) are not deliveries.
            }
        }
        for subscription in subscriptions.iter().filter(|s| s.wants(event_type)) {
            push(&mut out, forward(&subscription.id, Some(subscription)));
        }
        out
    }
}

fn forward(name: &str, found: Option<&Subscription>) -> Target {
    match found {
        Some(s) => {
            Target { target: format!("forward:{}", s.id), webhook_id: Some(s.id.clone()), held: !s.active }
        }
        // Kept under the name it was given: the dispatcher looks it up again at each attempt, so
        // a subscription created later (or a replay) still gets it.
        None => Target { target: format!("forward:{name}"), webhook_id: None, held: false },
    }
}

fn push(out: &mut Vec<Target>, target: Target) {
    if !out.iter().any(|t| t.target == target.target) {
        out.push(target);
    }
}

fn route_matches(route: &RouteConfig, facts: &EventFacts, event_type: &str) -> bool {
    let any_or = |list: &[String], value: Option<&str>| {
        list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(v)))
    };
    route.events.iter().any(|pattern| glob_matches(pattern, event_type))
        && any_or(&route.sources, Some(&facts.source))
        && any_or(&route.symbols, facts.symbol.as_deref())
        && any_or(&route.statuses, facts.status.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::subscription::example;

    fn route(events: &[&str], actions: &[&str]) -> RouteConfig {
        RouteConfig {
            events: events.iter().map(|s| s.to_string()).collect(),
            sources: vec![],
            symbols: vec![],
            statuses: vec![],
            actions: actions.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn facts(event_type: &str) -> EventFacts {
        EventFacts {
            event_type: Some(event_type.into()),
            source: "vibe".into(),
            symbol: Some("BTCUSDT".into()),
            status: Some("filled".into()),
        }
    }

    fn names(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|t| t.target.as_str()).collect()
    }

    #[test]
    fn routes_and_subscription_lists_merge_without_duplicates() {
        let table =
            RouteTable::new(&[route(&["order.*"], &["forward:svc", "nats:orders", "bracket_on_fill"])]);
        let subs = vec![
            example("wh_a", Some("svc"), &["order.updated"], true),
            example("wh_b", None, &["*"], true),
            example("wh_c", None, &["position.*"], true),
        ];
        let targets = table.targets(&facts("order.updated"), &subs);
        assert_eq!(names(&targets), ["forward:wh_a", "nats:orders", "forward:wh_b"]);
        assert_eq!(targets[0].webhook_id.as_deref(), Some("wh_a"));
        assert_eq!(
            names(&table.targets(&facts("position.updated"), &subs)),
            ["forward:wh_b", "forward:wh_c"]
        );
    }

    #[test]
    fn filters_on_source_symbol_and_status() {
        let mut filtered = route(&["order.*"], &["exec:./notify"]);
        filtered.sources = vec!["vibe".into()];
        filtered.symbols = vec!["btcusdt".into()];
        filtered.statuses = vec!["filled".into(), "partially_filled".into()];
        let table = RouteTable::new(&[filtered]);
        assert_eq!(names(&table.targets(&facts("order.updated"), &[])), ["exec:./notify"]);
        let mut other = facts("order.updated");
        other.status = Some("new".into());
        assert!(table.targets(&other, &[]).is_empty());
        let mut no_symbol = facts("order.updated");
        no_symbol.symbol = None;
        assert!(table.targets(&no_symbol, &[]).is_empty());
        let mut other_source = facts("order.updated");
        other_source.source = "tv".into();
        assert!(table.targets(&other_source, &[]).is_empty());
    }

    #[test]
    fn inactive_subscriptions_get_held_deliveries_and_unknown_names_stay_named() {
        let table = RouteTable::new(&[route(&["*"], &["forward:later"])]);
        let subs = vec![example("wh_off", None, &["order.*"], false)];
        let targets = table.targets(&facts("order.created"), &subs);
        assert_eq!(names(&targets), ["forward:later", "forward:wh_off"]);
        assert!(!targets[0].held && targets[0].webhook_id.is_none());
        assert!(targets[1].held);
    }

    #[test]
    fn events_without_a_type_go_nowhere() {
        let table = RouteTable::new(&[route(&["*"], &["nats:all"])]);
        let mut untyped = facts("x");
        untyped.event_type = None;
        assert!(table.targets(&untyped, &[example("wh", None, &["*"], true)]).is_empty());
    }
}
