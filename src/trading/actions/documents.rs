//! The strategy state as stored: one JSON document per key, so an event writes only what it
//! touched. Kinds are prefixed `strategy_` to sit beside the trading entities in one table.

use serde::Serialize;

use super::state::{StrategyState, StrategyTouched};

/// Which part of the strategy state a document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StrategyDocKind {
    /// One entry's brackets, keyed by entry order id.
    Bracket,
    /// One margin-guard episode, keyed by `account|symbol`.
    Guard,
    /// The recent signal placements, one document keyed `placements`.
    Placements,
    /// The manual kill switch, one document keyed `kill_switch`.
    KillSwitch,
    /// One symbol's last price, keyed by symbol.
    Price,
}

impl StrategyDocKind {
    /// The stored kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bracket => "strategy_bracket",
            Self::Guard => "strategy_guard",
            Self::Placements => "strategy_placements",
            Self::KillSwitch => "strategy_kill_switch",
            Self::Price => "strategy_price",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Bracket, Self::Guard, Self::Placements, Self::KillSwitch, Self::Price]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// One document to write: `doc: None` removes the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyDoc {
    /// Which part.
    pub kind: StrategyDocKind,
    /// Its key.
    pub key: String,
    /// The JSON document, or `None` when the key was removed.
    pub doc: Option<String>,
}

/// The key of the single placements document.
const PLACEMENTS: &str = "placements";
/// The key of the single kill-switch document.
const KILL_SWITCH: &str = "kill_switch";

fn doc<T: Serialize>(
    kind: StrategyDocKind,
    key: &str,
    value: Option<&T>,
) -> Result<StrategyDoc, serde_json::Error> {
    Ok(StrategyDoc { kind, key: key.to_owned(), doc: value.map(serde_json::to_string).transpose()? })
}

impl StrategyState {
    /// The documents of the keys `touched` names, read after the change.
    pub fn documents(&self, touched: &StrategyTouched) -> Result<Vec<StrategyDoc>, serde_json::Error> {
        let mut out = Vec::new();
        for key in &touched.brackets {
            out.push(doc(StrategyDocKind::Bracket, key, self.brackets.get(key))?);
        }
        for key in &touched.guards {
            out.push(doc(StrategyDocKind::Guard, key, self.guards.get(key))?);
        }
        if touched.placements {
            out.push(doc(StrategyDocKind::Placements, PLACEMENTS, Some(&self.placements))?);
        }
        if touched.kill_switch {
            out.push(doc(StrategyDocKind::KillSwitch, KILL_SWITCH, Some(&self.kill_switch))?);
        }
        for key in &touched.prices {
            out.push(doc(StrategyDocKind::Price, key, self.prices.get(key))?);
        }
        Ok(out)
    }

    /// Every document of the state (for a full rewrite).
    pub fn all_documents(&self) -> Result<Vec<StrategyDoc>, serde_json::Error> {
        let touched = StrategyTouched {
            brackets: self.brackets.keys().cloned().collect(),
            guards: self.guards.keys().cloned().collect(),
            placements: true,
            kill_switch: true,
            prices: self.prices.keys().cloned().collect(),
        };
        self.documents(&touched)
    }

    /// Rebuilds the state from stored `(kind, key, document)` rows; rows of other kinds are
    /// skipped, so the caller may pass its whole state table.
    pub fn from_documents(rows: impl IntoIterator<Item = (String, String, String)>) -> Result<Self, String> {
        let mut state = StrategyState::new();
        for (kind, key, text) in rows {
            let Some(kind) = StrategyDocKind::parse(&kind) else { continue };
            let bad = |e: serde_json::Error| format!("stored {} `{key}` is unreadable: {e}", kind.as_str());
            match kind {
                StrategyDocKind::Bracket => {
                    state.brackets.insert(key.clone(), serde_json::from_str(&text).map_err(bad)?);
                }
                StrategyDocKind::Guard => {
                    state.guards.insert(key.clone(), serde_json::from_str(&text).map_err(bad)?);
                }
                StrategyDocKind::Placements => state.placements = serde_json::from_str(&text).map_err(bad)?,
                StrategyDocKind::KillSwitch => {
                    state.kill_switch = serde_json::from_str(&text).map_err(bad)?
                }
                StrategyDocKind::Price => {
                    state.prices.insert(key.clone(), serde_json::from_str(&text).map_err(bad)?);
                }
            }
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests_support::{created, filled, Harness};
    use super::*;

    #[test]
    fn touched_documents_reload_into_the_same_state() {
        let mut h = Harness::new(json!({"bracket_on_fill": {"stop_loss": "1%", "take_profit": "2%"}}));
        let mut rows = std::collections::BTreeMap::new();
        for event in [
            created("o1", "BTC/USD", "buy", "2", 0),
            filled("o1", "1", "100", 1),
            filled("o1", "2", "100", 2),
        ] {
            let touched = h.feed(&event).touched;
            for d in h.actions.documents(&touched).unwrap() {
                match d.doc {
                    Some(text) => rows.insert((d.kind.as_str().to_owned(), d.key), text),
                    None => rows.remove(&(d.kind.as_str().to_owned(), d.key)),
                };
            }
        }
        h.actions.set_kill_switch(true);
        for d in h.actions.documents(&StrategyTouched { kill_switch: true, ..Default::default() }).unwrap() {
            rows.insert((d.kind.as_str().to_owned(), d.key), d.doc.unwrap());
        }
        let loaded =
            StrategyState::from_documents(rows.into_iter().map(|((k, key), doc)| (k, key, doc))).unwrap();
        assert_eq!(loaded, h.actions);
    }
}
