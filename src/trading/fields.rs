//! Typed reads of one JSON object's fields, each failure naming the field by its full path.
//!
//! `null` and empty strings count as absent: senders use both for "not set".

use chrono::SubsecRound;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::decimal::{self, kind_of, Sign};
use super::event::SchemaError;

/// A JSON object and the path it sits at (`data`, `alert`, …) for error messages.
pub(crate) struct Fields<'a> {
    /// The object read from.
    obj: &'a Map<String, Value>,
    /// Path prefix for field names in errors.
    path: &'static str,
}

impl<'a> Fields<'a> {
    /// Wraps `value`, which must be a JSON object.
    pub(crate) fn new(value: &'a Value, path: &'static str) -> Result<Self, SchemaError> {
        match value {
            Value::Object(obj) => Ok(Fields { obj, path }),
            other => Err(SchemaError::WrongType {
                field: path.to_owned(),
                expected: "an object",
                found: kind_of(other),
            }),
        }
    }

    /// The full path of `name`, as errors show it.
    pub(crate) fn path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The raw value of `name`, `None` when absent, null or an empty string.
    pub(crate) fn raw(&self, name: &str) -> Option<&'a Value> {
        match self.obj.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(v) => Some(v),
        }
    }

    /// A string field; numbers are accepted and printed (exchanges send numeric trade ids).
    pub(crate) fn str(&self, name: &str) -> Result<Option<String>, SchemaError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.wrong(name, "a string", other)),
        }
    }

    /// A string field that must be present.
    pub(crate) fn req_str(&self, name: &str) -> Result<String, SchemaError> {
        self.str(name)?.ok_or_else(|| SchemaError::Missing { field: self.path(name) })
    }

    /// A decimal field.
    pub(crate) fn decimal(&self, name: &str, sign: Sign) -> Result<Option<Decimal>, SchemaError> {
        self.raw(name).map(|v| decimal::from_json(&self.path(name), v, sign)).transpose()
    }

    /// A boolean field; the strings `"true"`/`"false"` are accepted.
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, SchemaError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(self.wrong(name, "a boolean", other)),
        }
    }

    /// A non-negative integer field.
    pub(crate) fn u64(&self, name: &str) -> Result<Option<u64>, SchemaError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().ok()),
            Some(other) => Err(self.wrong(name, "a non-negative integer", other)),
        }
    }

    /// A timestamp field.
    pub(crate) fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, SchemaError> {
        self.raw(name).map(|v| parse_time(&self.path(name), v)).transpose()
    }

    /// The first present timestamp among `names`.
    pub(crate) fn first_time(&self, names: &[&str]) -> Result<Option<DateTime<Utc>>, SchemaError> {
        for name in names {
            if let Some(t) = self.time(name)? {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    /// An array of strings (`affectedSymbols`, …); absent means empty.
    pub(crate) fn str_list(&self, name: &str) -> Result<Vec<String>, SchemaError> {
        match self.raw(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.wrong(name, "an array of strings", other)),
                })
                .collect(),
            Some(other) => Err(self.wrong(name, "an array of strings", other)),
        }
    }

    /// The wrong-type error for `name`.
    fn wrong(&self, name: &str, expected: &'static str, found: &Value) -> SchemaError {
        SchemaError::WrongType { field: self.path(name), expected, found: kind_of(found) }
    }
}

/// Parses RFC 3339 (`2024-01-15T10:30:00Z`), a zone-less date-time taken as UTC, or epoch
/// milliseconds (seconds when the number is below 10^11, i.e. before 1973 in milliseconds).
/// Times are kept to the microsecond: that is what the stored state records, so a state loaded
/// from the store orders fills exactly as the live one did.
pub(crate) fn parse_time(field: &str, value: &Value) -> Result<DateTime<Utc>, SchemaError> {
    parse_time_exact(field, value).map(|t| t.trunc_subsecs(6))
}

fn parse_time_exact(field: &str, value: &Value) -> Result<DateTime<Utc>, SchemaError> {
    let bad = || SchemaError::BadTimestamp { field: field.to_owned(), value: value_text(value) };
    let epoch = |n: i64| {
        let parsed = if n.abs() < 100_000_000_000 {
            Utc.timestamp_opt(n, 0).single()
        } else {
            Utc.timestamp_millis_opt(n).single()
        };
        parsed.ok_or_else(bad)
    };
    match value {
        Value::Number(n) => epoch(n.as_i64().ok_or_else(bad)?),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return epoch(n);
            }
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(t.with_timezone(&Utc));
            }
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
                .map(|naive| naive.and_utc())
                .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

/// A value as shown in an error message.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_epoch_millis_and_seconds_all_parse() {
        let want = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).single().unwrap();
        assert_eq!(parse_time("t", &json!("2024-01-15T10:30:00Z")).unwrap(), want);
        assert_eq!(parse_time("t", &json!("2024-01-15T11:30:00+01:00")).unwrap(), want);
        assert_eq!(parse_time("t", &json!(want.timestamp_millis())).unwrap(), want);
        assert_eq!(parse_time("t", &json!(want.timestamp())).unwrap(), want);
        assert_eq!(parse_time("t", &json!("2024-01-15 10:30:00")).unwrap(), want);
    }

    #[test]
    fn unparseable_timestamp_names_the_field() {
        let err = parse_time("timestamp", &json!("yesterday")).unwrap_err();
        assert!(err.to_string().contains("timestamp"), "{err}");
    }
}
