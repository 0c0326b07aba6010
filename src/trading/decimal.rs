//! Decimal numbers as trading state keeps them: parsed exactly from JSON and combined without panics.
//!
//! Quantities and prices never pass through binary floats in state. A JSON number is converted via
//! the shortest decimal string of its `f64` (so `0.1` stays exactly `0.1`); a numeric string (as
//! Binance sends) is parsed exactly. A number with more significant digits than an `f64` keeps
//! (`1.000000000000000001`, an 18-decimal amount) is read from its text: [`exact_numbers`] writes
//! it as a string before the body is parsed. Every parsed value is normalized (`0.10` → `0.1`) so that the
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

/// Serializes a decimal as a JSON number, digit for digit (no binary float in between).
#[cfg(feature = "server")] // for the worker and the API; the pure build (fuzz targets) has neither
pub(crate) fn number<S: serde::Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    let raw = serde_json::value::RawValue::from_string(value.normalize().to_string())
        .map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

/// [`number`], or `null`.
#[cfg(feature = "server")]
pub(crate) fn optional_number<S: serde::Serializer>(
    value: &Option<Decimal>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => number(value, serializer),
        None => serializer.serialize_none(),
    }
}

/// Significant digits every decimal of at most this many keeps through an `f64` (`DBL_DIG`).
#[cfg(feature = "server")]
const F64_DIGITS: usize = 15;

/// `body` (JSON) with every number that `serde_json::Value` would not hold exactly — an integer
/// outside 64 bits, or a fraction or exponent form with more than 15 significant digits — put in
/// quotes, its text unchanged, so [`from_json`] reads it as the exact numeric string it is. Other
/// numbers, strings and the layout stay byte for byte; the body itself when nothing changes.
#[cfg(feature = "server")]
pub(crate) fn exact_numbers(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut at = 0;
    while at < body.len() {
        match body[at] {
            b'"' => {
                // Skip the string: up to its closing quote, past escapes.
                at += 1;
                while let Some(next) = memchr::memchr2(b'"', b'\\', &body[at..]) {
                    at += next;
                    if body[at] == b'"' {
                        break;
                    }
                    at += 2;
                    if at >= body.len() {
                        break;
                    }
                }
                at += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = at;
                at += 1;
                while at < body.len() && matches!(body[at], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                    at += 1;
                }
                let number = &body[start..at];
                if !held_exactly(number) {
                    let out = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 16));
                    out.extend_from_slice(&body[copied..start]);
                    out.push(b'"');
                    out.extend_from_slice(number);
                    out.push(b'"');
                    copied = at;
                }
            }
            _ => at += 1,
        }
    }
    match out {
        Some(mut out) => {
            out.extend_from_slice(&body[copied.min(body.len())..]);
            std::borrow::Cow::Owned(out)
        }
        None => std::borrow::Cow::Borrowed(body),
    }
}

/// Whether the JSON number `text` survives `serde_json::Value` exactly (as its value: `1.50`
/// and `1.5` are one decimal).
#[cfg(feature = "server")]
fn held_exactly(text: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(text) else { return true };
    if !text.contains(['.', 'e', 'E']) {
        return text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok();
    }
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let first = digits.iter().position(|d| *d != b'0');
    let last = digits.iter().rposition(|d| *d != b'0');
    match (first, last) {
        (Some(first), Some(last)) => last - first < F64_DIGITS,
        _ => true, // zero
    }
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

    /// The body as the worker reads it.
    fn read(body: &str) -> Value {
        serde_json::from_slice(&exact_numbers(body.as_bytes())).unwrap()
    }

    #[test]
    fn numbers_a_float_cannot_hold_are_read_from_their_text() {
        let body = r#"{"amount":1.000000000000000001,"qty":0.123456789012345678,"price":2345.67890123456789,"big":30000000000000000001,"neg":-1.0000000000000001e2}"#;
        let json = read(body);
        let exact = |field: &str| parse(json[field].clone()).map(|d| d.to_string());
        assert_eq!(exact("amount").unwrap(), "1.000000000000000001");
        assert_eq!(exact("qty").unwrap(), "0.123456789012345678");
        assert_eq!(exact("price").unwrap(), "2345.67890123456789");
        assert_eq!(exact("big").unwrap(), "30000000000000000001");
        assert_eq!(from_json("pnl", &json["neg"], Sign::Any).unwrap().to_string(), "-100.00000000000001");
    }

    #[test]
    fn numbers_a_float_holds_and_strings_stay_byte_for_byte() {
        for body in [
            r#"{"a":1.5,"b":-42,"c":18446744073709551615,"d":-9223372036854775808,"e":1e3,"f":0.000000000000001}"#,
            r#"{"t":"1.000000000000000001 \"2.000000000000000002\" \\","n":[0,0.0,-0.0,123456789012345]}"#,
            r#"{"x": 0.100000000000000000000}"#,
            "[]",
            "",
        ] {
            assert_eq!(exact_numbers(body.as_bytes()), body.as_bytes(), "{body}");
        }
        // Not JSON (the worker reports it as such): no panic on an escape at the very end.
        for text in [r#"""#, r#""\"#, r#"{"a":"\"#, r#"{"a":1.000000000000000001,"b":"\"#] {
            let _ = exact_numbers(text.as_bytes());
        }
        // Keys and strings holding digits are never touched, even after escapes.
        let body = r#"{"k\"1.000000000000000001":"\\","v":1.000000000000000001}"#;
        assert_eq!(
            &*exact_numbers(body.as_bytes()),
            br#"{"k\"1.000000000000000001":"\\","v":"1.000000000000000001"}"#
        );
    }

    proptest::proptest! {
        /// Whatever the document, the rewritten body is JSON with the same structure and
        /// strings, and each number either unchanged or the same number as a string.
        #[test]
        fn rewriting_keeps_every_value(value in json_value()) {
            let text = serde_json::to_string(&value).unwrap();
            let original: Value = serde_json::from_str(&text).unwrap();
            let rewritten: Value = serde_json::from_slice(&exact_numbers(text.as_bytes())).unwrap();
            proptest::prop_assert!(same(&original, &rewritten), "{} -> {}", text, rewritten);
        }
    }

    fn same(original: &Value, rewritten: &Value) -> bool {
        match (original, rewritten) {
            // serde_json's own float reading may be an ulp off the exact one.
            (Value::Number(n), Value::String(s)) => match (s.parse::<f64>(), n.as_f64()) {
                (Ok(a), Some(b)) => (a - b).abs() <= a.abs() * 1e-15,
                _ => false,
            },
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
            }
            (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|((ka, a), (kb, b))| ka == kb && same(a, b))
            }
            (a, b) => a == b,
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            ".*".prop_map(Value::String),
            "[0-9.e\\\"-]{0,30}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::vec(("[a-z0-9\\\".]{0,8}", inner), 0..8)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
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
