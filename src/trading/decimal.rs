//! Decimal numbers as trading state keeps them: parsed exactly from JSON and combined without panics.
//!
//! Quantities and prices never pass through binary floats in state. A JSON number is converted via
//! the shortest decimal string of its `f64` (so `0.1` stays exactly `0.1`); a numeric string (as
//! Binance sends) is parsed exactly. Every parsed value is normalized (`0.10` → `0.1`) so that the
//! same quantity always prints, sorts and keys the same way whichever event carried it.
//!
//! Arithmetic on input-derived values uses saturating or checked operations: absurd inputs give
//! clamped or skipped results, never a panic in the worker.

use rust_decimal::Decimal;
use serde_json::Value;

use super::event::SchemaError;

/// Whether a field may hold a negative value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sign {
    /// Quantities, prices and amounts: negative is a schema error.
    NonNegative,
    /// PnL, balance changes, commissions (rebates are negative): any sign.
    Any,
}

/// Parses a JSON number or numeric string as an exact, normalized decimal.
pub(crate) fn from_json(field: &str, value: &Value, sign: Sign) -> Result<Decimal, SchemaError> {
    let parsed = match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Decimal::from(i)
            } else if let Some(u) = n.as_u64() {
                Decimal::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() {
                    return Err(SchemaError::NotFinite { field: field.to_owned(), value: n.to_string() });
                }
                // `f64`'s Display is the shortest string that round-trips, never in exponent form.
                Decimal::from_str_exact(&f.to_string())
                    .map_err(|_| SchemaError::OutOfRange { field: field.to_owned(), value: n.to_string() })?
            }
        }
        Value::String(s) => from_str(field, s)?,
        other => {
            return Err(SchemaError::WrongType {
                field: field.to_owned(),
                expected: "a number or numeric string",
                found: kind_of(other),
            })
        }
    };
    let parsed = parsed.normalize();
    if sign == Sign::NonNegative && parsed.is_sign_negative() && !parsed.is_zero() {
        return Err(SchemaError::Negative { field: field.to_owned(), value: parsed.to_string() });
    }
    Ok(parsed)
}

/// Parses a numeric string exactly; `NaN` and infinities are named as such.
fn from_str(field: &str, raw: &str) -> Result<Decimal, SchemaError> {
    let s = raw.trim();
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "nan" | "inf" | "infinity") {
        return Err(SchemaError::NotFinite { field: field.to_owned(), value: raw.to_owned() });
    }
    let parsed = if lower.contains('e') { Decimal::from_scientific(s) } else { Decimal::from_str_exact(s) };
    parsed.map_err(|e| SchemaError::BadDecimal {
        field: field.to_owned(),
        value: raw.to_owned(),
        reason: e.to_string(),
    })
}

/// The JSON type name of a value, for error messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `a + b`, clamped at the decimal range.
pub(crate) fn add(a: Decimal, b: Decimal) -> Decimal {
    a.saturating_add(b)
}

/// `a − b`, clamped at the decimal range.
pub(crate) fn sub(a: Decimal, b: Decimal) -> Decimal {
    a.saturating_sub(b)
}

/// `a · b`, clamped at the decimal range.
pub(crate) fn mul(a: Decimal, b: Decimal) -> Decimal {
    a.saturating_mul(b)
}

/// `a / b` normalized, or `None` when `b` is zero or the quotient leaves the decimal range.
pub(crate) fn div(a: Decimal, b: Decimal) -> Option<Decimal> {
    a.checked_div(b).map(|q| q.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Decimal, SchemaError> {
        from_json("data.quantity", &v, Sign::NonNegative)
    }

    #[test]
    fn json_float_point_one_stays_exactly_point_one() {
        assert_eq!(parse(json!(0.1)).unwrap().to_string(), "0.1");
        assert_eq!(parse(json!(49850.25)).unwrap().to_string(), "49850.25");
    }

    #[test]
    fn numeric_strings_parse_exactly_and_normalize() {
        assert_eq!(parse(json!("0.10000000")).unwrap().to_string(), "0.1");
        assert_eq!(parse(json!("1e-3")).unwrap().to_string(), "0.001");
    }

    #[test]
    fn nan_and_infinity_strings_are_not_finite() {
        for s in ["NaN", "Infinity", "-inf", "+Infinity"] {
            assert!(matches!(parse(json!(s)), Err(SchemaError::NotFinite { .. })), "{s}");
        }
    }

    #[test]
    fn numbers_outside_the_decimal_range_are_rejected() {
        assert!(matches!(parse(json!(1e300)), Err(SchemaError::OutOfRange { .. })));
    }

    #[test]
    fn negative_quantity_is_rejected_but_negative_zero_is_zero() {
        assert!(matches!(parse(json!(-0.5)), Err(SchemaError::Negative { .. })));
        assert_eq!(parse(json!("-0")).unwrap(), Decimal::ZERO);
        assert!(from_json("data.change", &json!(-500.0), Sign::Any).is_ok());
    }
}
