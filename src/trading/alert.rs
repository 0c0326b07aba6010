//! Alerts: data-quality problems and venue warnings that state processing found.
//!
//! SPEC §3: such problems are recorded, never silently dropped. Applying an event returns its
//! alerts; the caller stores them. Alerts depend on arrival order (a fill is "before its order"
//! only if it arrived first), so unlike orders and positions they are not part of the
//! order-independent state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What kind of problem an alert reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// An order filled beyond its quantity.
    Overfill,
    /// The same trade id, cumulative quantity or transaction id arrived with different values.
    ConflictingDuplicate,
    /// A fill arrived before the order it belongs to was known.
    FillBeforeOrder,
    /// The venue's position quantity disagrees with the one derived from fills.
    PositionMismatch,
    /// The venue reported a margin call.
    Margin,
    /// The venue sent a `system.alert`.
    System,
    /// A value that cannot be used as sent (e.g. an inconsistent cumulative fill).
    DataQuality,
}

impl AlertKind {
    /// The snake_case name, as stored and as the alerts API filters by.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overfill => "overfill",
            Self::ConflictingDuplicate => "conflicting_duplicate",
            Self::FillBeforeOrder => "fill_before_order",
            Self::PositionMismatch => "position_mismatch",
            Self::Margin => "margin",
            Self::System => "system",
            Self::DataQuality => "data_quality",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// What kind of problem.
    pub kind: AlertKind,
    /// What it is about: order id, symbol, asset or transaction id.
    pub subject: String,
    /// A human sentence saying what happened and what was kept.
    pub message: String,
    /// Time of the event that raised it.
    pub at: DateTime<Utc>,
}

impl Alert {
    /// Builds an alert.
    pub fn new(
        kind: AlertKind,
        subject: impl Into<String>,
        message: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Alert { kind, subject: subject.into(), message: message.into(), at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_kinds_serialize_in_snake_case() {
        let json = serde_json::to_string(&AlertKind::ConflictingDuplicate).unwrap();
        assert_eq!(json, "\"conflicting_duplicate\"");
        let json = serde_json::to_string(&AlertKind::FillBeforeOrder).unwrap();
        assert_eq!(json, "\"fill_before_order\"");
    }

    #[test]
    fn the_stored_name_of_each_kind_is_its_serde_name() {
        use AlertKind::*;
        for kind in
            [Overfill, ConflictingDuplicate, FillBeforeOrder, PositionMismatch, Margin, System, DataQuality]
        {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str(), "{kind:?}");
            assert_eq!(serde_json::from_value::<AlertKind>(kind.as_str().into()).unwrap(), kind);
        }
    }
}
