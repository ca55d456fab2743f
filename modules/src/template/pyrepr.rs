//! Python's `str()` / `repr()` of values, as Ansible (Python) prints them in templates:
//! `True`, `None`, `[1, 'a']`, `{'k': 1}`, `0.3333333333333333`.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, ValueKind};
use minijinja::Value;

/// A Python tuple (what `zip`, `product`, `subelements`, `splitext`... return): a sequence
/// everywhere, printed `(1, 'a')` as Python prints it.
#[derive(Debug)]
pub struct PyTuple(pub Vec<Value>);

impl Object for PyTuple {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let i = i64::try_from(key.clone()).ok()?;
        let i = if i < 0 { i + self.0.len() as i64 } else { i };
        self.0.get(usize::try_from(i).ok()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.len())
    }
}

/// A tuple value.
pub fn tuple(items: Vec<Value>) -> Value {
    Value::from_object(PyTuple(items))
}

/// Python `str(value)`; None gives "None" (the template formatter turns a top-level None into
/// the empty string itself, as Ansible does).
pub fn py_str(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        _ => py_repr(v),
    }
}

/// Python `repr(value)`.
pub fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, v, true);
    out
}

/// What a `{{ }}` prints: `str(value)` after ansible-core 2.19 turned the tuples in the value
/// into lists (`{{ [1] | zip([2]) }}` prints `[[1, 2]]`; `| string` inside the expression
/// still sees the tuple).
pub fn py_str_final(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        _ => {
            let mut out = String::new();
            write_repr(&mut out, v, false);
            out
        }
    }
}

/// A template's native result with its tuples turned into lists, as ansible-core 2.19 returns
/// it.
pub fn without_tuples(v: Value) -> Value {
    fn has_tuple(v: &Value) -> bool {
        match v.kind() {
            ValueKind::Seq => {
                v.downcast_object_ref::<PyTuple>().is_some()
                    || v.try_iter().is_ok_and(|mut it| it.any(|x| has_tuple(&x)))
            }
            ValueKind::Map => v
                .try_iter()
                .is_ok_and(|mut it| it.any(|k| v.get_item(&k).is_ok_and(|x| has_tuple(&x)))),
            _ => false,
        }
    }
    fn convert(v: Value) -> Value {
        match v.kind() {
            ValueKind::Seq => Value::from(
                v.try_iter()
                    .map(|it| it.map(convert).collect::<Vec<_>>())
                    .unwrap_or_default(),
            ),
            ValueKind::Map => {
                let mut m = indexmap::IndexMap::new();
                if let Ok(it) = v.try_iter() {
                    for k in it {
                        let x = v.get_item(&k).unwrap_or_default();
                        m.insert(k, convert(x));
                    }
                }
                Value::from(m)
            }
            _ => v,
        }
    }
    if has_tuple(&v) {
        convert(v)
    } else {
        v
    }
}

fn write_repr(out: &mut String, v: &Value, tuples: bool) {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&py_number(v)),
        ValueKind::String => out.push_str(&py_quote(v.as_str().unwrap_or_default())),
        ValueKind::Bytes => {
            out.push('b');
            let s = String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned();
            out.push_str(&py_quote(&s));
        }
        ValueKind::Seq if tuples && v.downcast_object_ref::<PyTuple>().is_some() => {
            out.push('(');
            let n = v.len().unwrap_or(0);
            if let Ok(iter) = v.try_iter() {
                for (i, item) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, &item, tuples);
                }
            }
            if n == 1 {
                out.push(',');
            }
            out.push(')');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            if let Ok(iter) = v.try_iter() {
                for (i, item) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, &item, tuples);
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(iter) = v.try_iter() {
                for (i, key) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, &key, tuples);
                    out.push_str(": ");
                    write_repr(out, &v.get_item(&key).unwrap_or_default(), tuples);
                }
            }
            out.push('}');
        }
        _ => out.push_str(&v.to_string()),
    }
}

/// A number as Python prints it (`2.0`, `1e+20`, `1.5e-07`, `7`).
pub fn py_number(v: &Value) -> String {
    if v.is_integer() {
        return v.to_string();
    }
    match f64::try_from(v.clone()) {
        Ok(f) => py_float(f),
        Err(_) => v.to_string(),
    }
}

/// Python's `repr(float)`.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Shortest round-trip digits in scientific form, e.g. "1.5e-7", "1e16".
    let sci = format!("{:e}", f);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let s = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{s}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{esign}{:02}", exp.abs())
    }
}

/// Python's `repr(str)`.
pub fn py_quote(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's type name, for `type_debug`.
pub fn py_type(v: &Value) -> &'static str {
    match v.kind() {
        ValueKind::Undefined => "AnsibleUndefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number => {
            if v.is_integer() {
                "int"
            } else {
                "float"
            }
        }
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}
