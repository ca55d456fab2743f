//! Filters that convert or choose values: `default`, `bool`, `int`, `float`, `string`, `round`,
//! `type_debug`, `mandatory`, `ternary`.

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Error, ErrorKind, State, Value};

use super::{check_defined, err};
use crate::template::pyrepr::{py_str, py_type};

/// `default(value, default_value='', boolean=False)`; `default(none)` gives None.
pub(super) fn default(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = super::Params::new("default", &["default_value", "boolean"], &args, &kwargs)?;
    let other = p.value(0).cloned().unwrap_or(Value::from(""));
    let boolean = p.bool(1, false);
    if value.is_undefined() || (boolean && !value.is_true()) {
        Ok(other)
    } else {
        Ok(value.clone())
    }
}

/// Ansible's `bool`: True for true, 1 and the strings yes/on/1/true (any case).
pub fn to_bool(value: &Value) -> bool {
    match value.kind() {
        ValueKind::Bool => value.is_true(),
        ValueKind::Number => f64::try_from(value.clone())
            .map(|f| f == 1.0)
            .unwrap_or(false),
        ValueKind::String => matches!(
            value.as_str().unwrap_or_default().to_lowercase().as_str(),
            "yes" | "on" | "1" | "true"
        ),
        _ => false,
    }
}

pub(super) fn bool_filter(value: &Value) -> Result<Value, Error> {
    check_defined(value, "bool")?;
    Ok(Value::from(to_bool(value)))
}

/// Python `int(str, base)`: surrounding whitespace, a sign, underscores between digits, and the
/// base prefix when it matches the base.
fn parse_py_int(s: &str, base: u32) -> Option<i128> {
    let t = s.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let lower = t.to_ascii_lowercase();
    let body = match base {
        16 => lower.strip_prefix("0x").unwrap_or(&lower),
        8 => lower.strip_prefix("0o").unwrap_or(&lower),
        2 => lower.strip_prefix("0b").unwrap_or(&lower),
        _ => &lower,
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let digits = body.replace('_', "");
    let n = i128::from_str_radix(&digits, base).ok()?;
    Some(if neg { -n } else { n })
}

/// Python `float(str)`.
fn parse_py_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    let t = t.replace('_', "");
    let l = t.to_ascii_lowercase();
    match l.trim_start_matches(['+', '-']) {
        "inf" | "infinity" | "nan" => {}
        other if other.chars().any(|c| c.is_ascii_alphabetic() && c != 'e') => return None,
        _ => {}
    }
    l.parse::<f64>().ok()
}

fn int_value(n: i128) -> Value {
    match i64::try_from(n) {
        Ok(i) => Value::from(i),
        Err(_) => Value::from(n),
    }
}

/// Jinja's `int(value, default=0, base=10)`.
pub(super) fn int_filter(
    value: &Value,
    default: Option<Value>,
    base: Option<u32>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    check_defined(value, "int")?;
    let default = match default {
        Some(d) => d,
        None => kwargs
            .get::<Option<Value>>("default")?
            .unwrap_or(Value::from(0)),
    };
    let base = match base {
        Some(b) => b,
        None => kwargs.get::<Option<u32>>("base")?.unwrap_or(10),
    };
    kwargs.assert_all_used()?;
    if !(2..=36).contains(&base) {
        return Err(err("int() base must be >= 2 and <= 36"));
    }
    Ok(match value.kind() {
        ValueKind::Bool => Value::from(value.is_true() as i64),
        ValueKind::Number => {
            if value.is_integer() {
                value.clone()
            } else {
                match f64::try_from(value.clone()) {
                    Ok(f) if f.is_finite() => int_value(f.trunc() as i128),
                    _ => default,
                }
            }
        }
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            match parse_py_int(s, base) {
                Some(n) => int_value(n),
                None => match parse_py_float(s) {
                    Some(f) if f.is_finite() => int_value(f.trunc() as i128),
                    _ => default,
                },
            }
        }
        _ => default,
    })
}

/// Jinja's `float(value, default=0.0)`.
pub(super) fn float_filter(value: &Value, default: Option<Value>) -> Result<Value, Error> {
    check_defined(value, "float")?;
    let default = default.unwrap_or(Value::from(0.0));
    Ok(match value.kind() {
        ValueKind::Bool => Value::from(if value.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => Value::from(f64::try_from(value.clone()).unwrap_or(0.0)),
        ValueKind::String => match parse_py_float(value.as_str().unwrap_or_default()) {
            Some(f) => Value::from(f),
            None => default,
        },
        _ => default,
    })
}

pub(super) fn string_filter(value: &Value) -> Result<Value, Error> {
    check_defined(value, "string")?;
    Ok(Value::from(py_str(value)))
}

/// Stands for the variable name in `mandatory`'s default message.
pub(crate) const MANDATORY_MARKER: &str = "\u{1}mandatory-var\u{1}";

pub(super) fn mandatory(state: &State, value: &Value, msg: Option<String>) -> Result<Value, Error> {
    let _ = state;
    if value.is_undefined() {
        // The templar replaces the marker with the variable's name from the template source.
        let m =
            msg.unwrap_or_else(|| format!("Mandatory variable {MANDATORY_MARKER} not defined."));
        return Err(Error::new(ErrorKind::UndefinedError, m));
    }
    Ok(value.clone())
}

pub(super) fn ternary(
    value: &Value,
    true_val: Value,
    false_val: Value,
    none_val: Option<Value>,
) -> Result<Value, Error> {
    check_defined(value, "ternary")?;
    if value.is_none() {
        if let Some(n) = none_val {
            return Ok(n);
        }
    }
    Ok(if value.is_true() { true_val } else { false_val })
}

/// Python's round-half-to-even at `precision` digits.
fn round_half_even(f: f64, precision: i32) -> f64 {
    let m = 10f64.powi(precision);
    let x = f * m;
    let r = x.round();
    let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    };
    r / m
}

/// Jinja's `round(value, precision=0, method='common')`: ints stay ints for `common`.
pub(super) fn round(
    value: &Value,
    precision: Option<i32>,
    method: Option<String>,
) -> Result<Value, Error> {
    check_defined(value, "round")?;
    let precision = precision.unwrap_or(0);
    let method = method.unwrap_or_else(|| "common".into());
    let f = f64::try_from(value.clone()).map_err(|_| err("round requires a number"))?;
    let m = 10f64.powi(precision);
    Ok(match method.as_str() {
        "common" => {
            if value.is_integer() {
                value.clone()
            } else {
                Value::from(round_half_even(f, precision))
            }
        }
        "ceil" => Value::from((f * m).ceil() / m),
        "floor" => Value::from((f * m).floor() / m),
        _ => return Err(err("method must be common, ceil or floor")),
    })
}

pub(super) fn type_debug(value: &Value) -> Value {
    Value::from(py_type(value))
}
