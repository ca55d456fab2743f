//! Serialization filters: JSON as Python's `json.dumps` writes it, YAML, base64.

use base64::Engine as _;
use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Error, Value};

use super::{check_defined, err, items, map_of, undefined_err};
use crate::template::pyrepr::{py_float, py_str, py_type};
use crate::template::yaml;

fn json_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(crate) struct JsonOpts {
    pub indent: Option<usize>,
    pub sort_keys: bool,
    pub ensure_ascii: bool,
    pub item_sep: &'static str,
    pub key_sep: &'static str,
}

fn json_key(k: &Value) -> Result<String, Error> {
    Ok(match k.kind() {
        ValueKind::String => k.as_str().unwrap_or_default().to_string(),
        ValueKind::None => "null".into(),
        ValueKind::Bool => (if k.is_true() { "true" } else { "false" }).into(),
        ValueKind::Number => crate::template::pyrepr::py_number(k),
        _ => {
            return Err(err(format!(
                "keys must be str, int, float, bool or None, not {}",
                py_type(k)
            )))
        }
    })
}

pub(crate) fn write_json(
    out: &mut String,
    v: &Value,
    o: &JsonOpts,
    level: usize,
) -> Result<(), Error> {
    let nl = |out: &mut String, level: usize| {
        if let Some(n) = o.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    match v.kind() {
        ValueKind::Undefined => return Err(undefined_err("to_json")),
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string())
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(0.0);
                out.push_str(&if f.is_nan() {
                    "NaN".to_string()
                } else if f.is_infinite() {
                    if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
                } else {
                    py_float(f)
                })
            }
        }
        ValueKind::String => json_str(out, v.as_str().unwrap_or_default(), o.ensure_ascii),
        ValueKind::Bytes => json_str(
            out,
            &String::from_utf8_lossy(v.as_bytes().unwrap_or_default()),
            o.ensure_ascii,
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            let it = items(v)?;
            if it.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in it.iter().enumerate() {
                if i > 0 {
                    out.push_str(o.item_sep);
                }
                nl(out, level + 1);
                write_json(out, item, o, level + 1)?;
            }
            nl(out, level);
            out.push(']');
        }
        ValueKind::Map => {
            let mut pairs = Vec::new();
            for k in v.try_iter()? {
                let val = v.get_item(&k)?;
                pairs.push((json_key(&k)?, val));
            }
            if o.sort_keys {
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
            }
            if pairs.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (k, val)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(o.item_sep);
                }
                nl(out, level + 1);
                json_str(out, k, o.ensure_ascii);
                out.push_str(o.key_sep);
                write_json(out, val, o, level + 1)?;
            }
            nl(out, level);
            out.push('}');
        }
        _ => json_str(out, &v.to_string(), o.ensure_ascii),
    }
    Ok(())
}

/// Python's `json.dumps(value)` with its defaults.
pub(crate) fn json_dumps(value: &Value) -> Result<String, Error> {
    let o = JsonOpts {
        indent: None,
        sort_keys: false,
        ensure_ascii: true,
        item_sep: ", ",
        key_sep: ": ",
    };
    let mut out = String::new();
    write_json(&mut out, value, &o, 0)?;
    Ok(out)
}

pub(super) fn to_json(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(true);
    let _: Option<Value> = kwargs.get("vault_to_text")?;
    let _: Option<Value> = kwargs.get("preprocess_unsafe")?;
    kwargs.assert_all_used()?;
    let o = JsonOpts {
        indent,
        sort_keys,
        ensure_ascii,
        item_sep: if indent.is_some() { "," } else { ", " },
        key_sep: ": ",
    };
    let mut out = String::new();
    write_json(&mut out, value, &o, 0)?;
    Ok(Value::from(out))
}

pub(super) fn to_nice_json(
    value: &Value,
    indent: Option<usize>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let indent = match indent {
        Some(i) => i,
        None => kwargs.get::<Option<usize>>("indent")?.unwrap_or(4),
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(true);
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(true);
    kwargs.assert_all_used()?;
    let o = JsonOpts {
        indent: Some(indent),
        sort_keys,
        ensure_ascii,
        item_sep: ",",
        key_sep: ": ",
    };
    let mut out = String::new();
    write_json(&mut out, value, &o, 0)?;
    Ok(Value::from(out))
}

pub(super) fn to_yaml(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "to_yaml")?;
    let indent = kwargs.get::<Option<usize>>("indent")?.unwrap_or(2);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(true);
    let flow: Option<bool> = kwargs.get("default_flow_style")?;
    kwargs.assert_all_used()?;
    Ok(Value::from(yaml::dump(
        value,
        indent,
        flow == Some(false),
        sort_keys,
    )?))
}

pub(super) fn to_nice_yaml(
    value: &Value,
    indent: Option<usize>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    check_defined(value, "to_nice_yaml")?;
    let indent = match indent {
        Some(i) => i,
        None => kwargs.get::<Option<usize>>("indent")?.unwrap_or(4),
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(true);
    kwargs.assert_all_used()?;
    Ok(Value::from(yaml::dump(value, indent, true, sort_keys)?))
}

pub(crate) fn json_to_value(j: serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::from(s),
        serde_json::Value::Array(a) => {
            Value::from(a.into_iter().map(json_to_value).collect::<Vec<_>>())
        }
        serde_json::Value::Object(o) => map_of(
            o.into_iter()
                .map(|(k, v)| (Value::from(k), json_to_value(v)))
                .collect(),
        ),
    }
}

pub(super) fn from_json(value: &Value) -> Result<Value, Error> {
    check_defined(value, "from_json")?;
    let s = py_str(value);
    let j: serde_json::Value =
        serde_json::from_str(&s).map_err(|e| err(format!("from_json: invalid JSON: {e}")))?;
    Ok(json_to_value(j))
}

pub(super) fn from_yaml(value: &Value) -> Result<Value, Error> {
    check_defined(value, "from_yaml")?;
    if value.kind() != ValueKind::String {
        return Ok(value.clone());
    }
    yaml::load(value.as_str().unwrap_or_default())
}

/// A text in one of the encodings roles pass to `b64encode`/`b64decode` (Python codec names).
fn encode_text(s: &str, encoding: &str) -> Result<Vec<u8>, Error> {
    let norm = encoding.to_ascii_lowercase().replace('_', "-");
    Ok(match norm.as_str() {
        "utf-8" | "utf8" => s.as_bytes().to_vec(),
        "utf-16-le" | "utf-16le" => s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect(),
        "utf-16-be" | "utf-16be" => s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect(),
        "utf-16" | "utf16" => [0xff, 0xfe]
            .into_iter()
            .chain(s.encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect(),
        "ascii" | "us-ascii" | "latin-1" | "latin1" | "iso-8859-1" => {
            let max = if norm.contains("ascii") { 0x7f } else { 0xff };
            s.chars()
                .map(|c| {
                    u8::try_from(c as u32)
                        .ok()
                        .filter(|b| u32::from(*b) <= max)
                        .ok_or_else(|| {
                            err(format!("'{encoding}' codec can't encode character {c:?}"))
                        })
                })
                .collect::<Result<_, _>>()?
        }
        _ => return Err(err(format!("the encoding '{encoding}' is not supported"))),
    })
}

fn decode_text(b: &[u8], encoding: &str) -> Result<String, Error> {
    let norm = encoding.to_ascii_lowercase().replace('_', "-");
    let utf16 = |le: bool, b: &[u8]| -> Result<String, Error> {
        if !b.len().is_multiple_of(2) {
            return Err(err(format!(
                "'{encoding}' codec can't decode: truncated data"
            )));
        }
        let units = b.chunks(2).map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|e| err(format!("'{encoding}' codec can't decode: {e}")))
    };
    match norm.as_str() {
        "utf-8" | "utf8" => String::from_utf8(b.to_vec()).map_err(|e| {
            err(format!(
                "b64decode: the decoded bytes are not UTF-8 text: {e}"
            ))
        }),
        "utf-16-le" | "utf-16le" => utf16(true, b),
        "utf-16-be" | "utf-16be" => utf16(false, b),
        "utf-16" | "utf16" => match b {
            [0xfe, 0xff, rest @ ..] => utf16(false, rest),
            [0xff, 0xfe, rest @ ..] => utf16(true, rest),
            _ => utf16(true, b),
        },
        "ascii" | "us-ascii" if b.is_ascii() => Ok(b.iter().map(|&c| c as char).collect()),
        "latin-1" | "latin1" | "iso-8859-1" => Ok(b.iter().map(|&c| c as char).collect()),
        _ => Err(err(format!(
            "the encoding '{encoding}' is not supported or does not fit"
        ))),
    }
}

pub(super) fn b64encode(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = super::Params::new("b64encode", &["encoding", "urlsafe"], &args, &kwargs)?;
    check_defined(value, "b64encode")?;
    let bytes = encode_text(&py_str(value), &p.str(0).unwrap_or_else(|| "utf-8".into()))?;
    let engine = if p.bool(1, false) {
        &base64::engine::general_purpose::URL_SAFE
    } else {
        &base64::engine::general_purpose::STANDARD
    };
    Ok(Value::from(engine.encode(bytes)))
}

pub(super) fn b64decode(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = super::Params::new("b64decode", &["encoding", "urlsafe"], &args, &kwargs)?;
    check_defined(value, "b64decode")?;
    let s = py_str(value);
    let (padded, unpadded) = if p.bool(1, false) {
        (
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        )
    } else {
        (
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
        )
    };
    let bytes = padded
        .decode(s.trim().as_bytes())
        .or_else(|_| unpadded.decode(s.trim().trim_end_matches('=').as_bytes()))
        .map_err(|e| err(format!("b64decode: {e}")))?;
    Ok(Value::from(decode_text(
        &bytes,
        &p.str(0).unwrap_or_else(|| "utf-8".into()),
    )?))
}
