//! Ansible's filters (and Python string/dict methods) for minijinja.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use indexmap::IndexMap;
use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, Value};
use regex::Regex;

use super::pyrepr::{py_float, py_str, py_type};
use super::yaml;

pub(crate) fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Compiled regular expressions by (pattern, ignorecase, multiline).
type RegexCache = Mutex<HashMap<(String, bool, bool), Regex>>;

fn undefined_err(what: &str) -> Error {
    Error::new(
        ErrorKind::UndefinedError,
        format!("an undefined value was passed to `{what}`"),
    )
}

fn check_defined(v: &Value, what: &str) -> Result<(), Error> {
    if v.is_undefined() {
        Err(undefined_err(what))
    } else {
        Ok(())
    }
}

fn items(v: &Value) -> Result<Vec<Value>, Error> {
    Ok(v.try_iter()?.collect())
}

fn map_of(pairs: IndexMap<Value, Value>) -> Value {
    Value::from(pairs)
}

fn to_map(v: &Value) -> Result<IndexMap<Value, Value>, Error> {
    if v.kind() != ValueKind::Map {
        return Err(err(format!("expected a dictionary, got {}", py_type(v))));
    }
    let mut m = IndexMap::new();
    for k in v.try_iter()? {
        let val = v.get_item(&k)?;
        m.insert(k, val);
    }
    Ok(m)
}

pub fn register(env: &mut Environment<'static>) {
    env.add_filter("default", default);
    env.add_filter("d", default);
    env.add_filter("bool", bool_filter);
    env.add_filter("int", int_filter);
    env.add_filter("float", float_filter);
    env.add_filter("string", string_filter);
    env.add_filter("join", join);
    env.add_filter("replace", replace);
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_findall", regex_findall);
    env.add_filter("regex_escape", regex_escape);
    env.add_filter("to_json", to_json);
    env.add_filter("to_nice_json", to_nice_json);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_nice_yaml);
    env.add_filter("from_json", from_json);
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("basename", basename);
    env.add_filter("dirname", dirname);
    env.add_filter("combine", combine);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("mandatory", mandatory);
    env.add_filter("ternary", ternary);
    env.add_filter("flatten", flatten);
    env.add_filter("quote", quote);
    env.add_filter("round", round);
    env.add_filter("type_debug", type_debug);
    env.add_filter("version_compare", super::tests_impl::version_test);
    env.add_filter("union", union);
    env.add_filter("intersect", intersect);
    env.add_filter("difference", difference);
    env.add_filter("symmetric_difference", symmetric_difference);
}

/// `default(value, default_value='', boolean=False)`.
fn default(
    value: &Value,
    other: Option<Value>,
    boolean: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let other = match other {
        Some(o) => o,
        None => kwargs
            .get::<Option<Value>>("default_value")?
            .unwrap_or(Value::from("")),
    };
    let boolean = match boolean {
        Some(b) => b,
        None => kwargs.get::<Option<bool>>("boolean")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
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

fn bool_filter(value: &Value) -> Result<Value, Error> {
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
fn int_filter(
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
fn float_filter(value: &Value, default: Option<Value>) -> Result<Value, Error> {
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

fn string_filter(value: &Value) -> Result<Value, Error> {
    check_defined(value, "string")?;
    Ok(Value::from(py_str(value)))
}

fn join(value: &Value, sep: Option<String>, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "join")?;
    let attribute: Option<String> = kwargs.get("attribute")?;
    kwargs.assert_all_used()?;
    let sep = sep.unwrap_or_default();
    if let Some(s) = value.as_str() {
        let chars: Vec<String> = s.chars().map(|c| c.to_string()).collect();
        return Ok(Value::from(chars.join(&sep)));
    }
    let mut parts = Vec::new();
    for item in value.try_iter()? {
        let item = match &attribute {
            Some(a) => item.get_attr(a)?,
            None => item,
        };
        check_defined(&item, "join")?;
        parts.push(py_str(&item));
    }
    Ok(Value::from(parts.join(&sep)))
}

fn replace(value: &Value, old: String, new: String, count: Option<i64>) -> Result<Value, Error> {
    check_defined(value, "replace")?;
    let s = py_str(value);
    Ok(Value::from(match count {
        Some(c) if c >= 0 => s.replacen(&old, &new, c as usize),
        _ => s.replace(&old, &new),
    }))
}

// ---------------------------------------------------------------------------------------
// regular expressions (Python `re` syntax, as far as Rust's regex supports it)

fn regex_cache() -> &'static Mutex<HashMap<(String, bool, bool), Regex>> {
    static C: OnceLock<RegexCache> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Empties the regex cache (see [`super::forget_compiled`]).
pub(crate) fn forget_regexes() {
    regex_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

/// Compiles a Python-style regex (cached).
pub(crate) fn compile_regex(
    pattern: &str,
    ignorecase: bool,
    multiline: bool,
) -> Result<Regex, Error> {
    let key = (pattern.to_string(), ignorecase, multiline);
    if let Some(r) = regex_cache().lock().unwrap().get(&key) {
        return Ok(r.clone());
    }
    // Python's named groups `(?P<name>...)` are native to Rust's regex; `\Z` is `\z`.
    let translated = pattern.replace("\\Z", "\\z");
    let re = regex::RegexBuilder::new(&translated)
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .build()
        .map_err(|e| err(format!("invalid regular expression {pattern:?}: {e}")))?;
    let mut cache = regex_cache().lock().unwrap();
    if cache.len() > 2000 {
        cache.clear();
    }
    cache.insert(key, re.clone());
    Ok(re)
}

fn regex_flags(kwargs: &Kwargs) -> Result<(bool, bool), Error> {
    Ok((
        kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false),
        kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false),
    ))
}

/// Converts a Python `re.sub` replacement (`\1`, `\g<1>`, `\g<name>`, `\n`) to Rust's syntax.
fn py_replacement(repl: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = repl.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            out.push_str("$$");
        } else if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            if n.is_ascii_digit() {
                let mut j = i + 1;
                let mut num = String::new();
                while j < chars.len() && j < i + 3 && chars[j].is_ascii_digit() {
                    num.push(chars[j]);
                    j += 1;
                }
                out.push_str(&format!("${{{num}}}"));
                i = j;
                continue;
            } else if n == 'g' && chars.get(i + 2) == Some(&'<') {
                if let Some(end) = chars[i + 3..].iter().position(|&c| c == '>') {
                    let name: String = chars[i + 3..i + 3 + end].iter().collect();
                    out.push_str(&format!("${{{name}}}"));
                    i = i + 3 + end + 1;
                    continue;
                }
                out.push(c);
            } else {
                match n {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    'a' => out.push('\x07'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
                i += 2;
                continue;
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

fn regex_replace(
    value: &Value,
    pattern: Option<String>,
    replacement: Option<String>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    check_defined(value, "regex_replace")?;
    let (ic, ml) = regex_flags(&kwargs)?;
    let count = kwargs.get::<Option<usize>>("count")?.unwrap_or(0);
    let mandatory_count = kwargs.get::<Option<usize>>("mandatory_count")?.unwrap_or(0);
    kwargs.assert_all_used()?;
    let s = py_str(value);
    let re = compile_regex(&pattern.unwrap_or_default(), ic, ml)?;
    let repl = py_replacement(&replacement.unwrap_or_default());
    if mandatory_count > 0 {
        let n = re.find_iter(&s).count();
        if n != mandatory_count {
            return Err(err(format!(
                "'{}' should match {mandatory_count} times, but matches {n} times in '{s}'",
                re.as_str()
            )));
        }
    }
    Ok(Value::from(
        re.replacen(&s, count, repl.as_str()).into_owned(),
    ))
}

fn group_value(caps: &regex::Captures, i: usize) -> Value {
    caps.get(i)
        .map(|m| Value::from(m.as_str()))
        .unwrap_or(Value::from(()))
}

fn regex_search(
    value: &Value,
    pattern: String,
    args: Rest<String>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    check_defined(value, "regex_search")?;
    let (ic, ml) = regex_flags(&kwargs)?;
    kwargs.assert_all_used()?;
    let s = py_str(value);
    let re = compile_regex(&pattern, ic, ml)?;
    let Some(caps) = re.captures(&s) else {
        return Ok(Value::from(()));
    };
    if args.is_empty() {
        return Ok(group_value(&caps, 0));
    }
    let mut out = Vec::new();
    for a in args.iter() {
        if let Some(name) = a.strip_prefix("\\g<").and_then(|r| r.strip_suffix('>')) {
            match name.parse::<usize>() {
                Ok(i) => out.push(group_value(&caps, i)),
                Err(_) => out.push(
                    caps.name(name)
                        .map(|m| Value::from(m.as_str()))
                        .unwrap_or(Value::from(())),
                ),
            }
        } else if let Some(n) = a.strip_prefix('\\').and_then(|r| r.parse::<usize>().ok()) {
            out.push(group_value(&caps, n));
        } else {
            return Err(err(format!("unknown argument {a:?} to regex_search")));
        }
    }
    Ok(Value::from(out))
}

fn regex_findall(value: &Value, pattern: String, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "regex_findall")?;
    let (ic, ml) = regex_flags(&kwargs)?;
    kwargs.assert_all_used()?;
    let s = py_str(value);
    let re = compile_regex(&pattern, ic, ml)?;
    let groups = re.captures_len() - 1;
    let mut out = Vec::new();
    for caps in re.captures_iter(&s) {
        let g = |i: usize| Value::from(caps.get(i).map(|m| m.as_str()).unwrap_or(""));
        match groups {
            0 => out.push(g(0)),
            1 => out.push(g(1)),
            n => out.push(Value::from((1..=n).map(g).collect::<Vec<_>>())),
        }
    }
    Ok(Value::from(out))
}

fn regex_escape(value: &Value) -> Result<Value, Error> {
    check_defined(value, "regex_escape")?;
    let s = py_str(value);
    let mut out = String::new();
    for c in s.chars() {
        // Python 3.7+ re.escape: escapes special characters only.
        if "()[]{}?*+-|^$\\.&~# \t\n\r\x0b\x0c".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(Value::from(out))
}

// ---------------------------------------------------------------------------------------
// JSON (Python's json.dumps)

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
        ValueKind::Number => super::pyrepr::py_number(k),
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

fn to_json(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
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

fn to_nice_json(value: &Value, indent: Option<usize>, kwargs: Kwargs) -> Result<Value, Error> {
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

fn to_yaml(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
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

fn to_nice_yaml(value: &Value, indent: Option<usize>, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "to_nice_yaml")?;
    let indent = match indent {
        Some(i) => i,
        None => kwargs.get::<Option<usize>>("indent")?.unwrap_or(4),
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(true);
    kwargs.assert_all_used()?;
    Ok(Value::from(yaml::dump(value, indent, true, sort_keys)?))
}

fn json_to_value(j: serde_json::Value) -> Value {
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

fn from_json(value: &Value) -> Result<Value, Error> {
    check_defined(value, "from_json")?;
    let s = py_str(value);
    let j: serde_json::Value =
        serde_json::from_str(&s).map_err(|e| err(format!("from_json: invalid JSON: {e}")))?;
    Ok(json_to_value(j))
}

fn from_yaml(value: &Value) -> Result<Value, Error> {
    check_defined(value, "from_yaml")?;
    if value.kind() != ValueKind::String {
        return Ok(value.clone());
    }
    yaml::load(value.as_str().unwrap_or_default())
}

fn b64encode(value: &Value) -> Result<Value, Error> {
    check_defined(value, "b64encode")?;
    let s = py_str(value);
    Ok(Value::from(
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
    ))
}

fn b64decode(value: &Value) -> Result<Value, Error> {
    check_defined(value, "b64decode")?;
    let s = py_str(value);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim().as_bytes())
        .or_else(|_| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(s.trim().trim_end_matches('=').as_bytes())
        })
        .map_err(|e| err(format!("b64decode: {e}")))?;
    Ok(Value::from(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Python's `os.path.basename`.
fn basename(value: &Value) -> Result<Value, Error> {
    check_defined(value, "basename")?;
    let s = py_str(value);
    Ok(Value::from(match s.rfind('/') {
        Some(i) => &s[i + 1..],
        None => &s[..],
    }))
}

/// Python's `os.path.dirname`.
fn dirname(value: &Value) -> Result<Value, Error> {
    check_defined(value, "dirname")?;
    let s = py_str(value);
    Ok(Value::from(match s.rfind('/') {
        Some(i) => {
            let head = &s[..i + 1];
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() {
                head
            } else {
                trimmed
            }
        }
        None => "",
    }))
}

fn merge(
    a: &IndexMap<Value, Value>,
    b: &IndexMap<Value, Value>,
    recursive: bool,
    list_merge: &str,
) -> Result<IndexMap<Value, Value>, Error> {
    let mut out = a.clone();
    for (k, v) in b {
        let merged = match out.get(k) {
            Some(old)
                if recursive && old.kind() == ValueKind::Map && v.kind() == ValueKind::Map =>
            {
                map_of(merge(&to_map(old)?, &to_map(v)?, recursive, list_merge)?)
            }
            Some(old) if old.kind() == ValueKind::Seq && v.kind() == ValueKind::Seq => {
                let (o, n) = (items(old)?, items(v)?);
                match list_merge {
                    "keep" => old.clone(),
                    "append" => Value::from(o.into_iter().chain(n).collect::<Vec<_>>()),
                    "prepend" => Value::from(n.into_iter().chain(o).collect::<Vec<_>>()),
                    "append_rp" => {
                        let mut r: Vec<Value> = o.into_iter().filter(|x| !n.contains(x)).collect();
                        r.extend(n);
                        Value::from(r)
                    }
                    "prepend_rp" => {
                        let mut r = n.clone();
                        r.extend(o.into_iter().filter(|x| !n.contains(x)));
                        Value::from(r)
                    }
                    _ => v.clone(),
                }
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    Ok(out)
}

fn combine(value: &Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "combine")?;
    let recursive = kwargs.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let list_merge = kwargs
        .get::<Option<String>>("list_merge")?
        .unwrap_or_else(|| "replace".into());
    kwargs.assert_all_used()?;
    let mut dicts = Vec::new();
    for v in std::iter::once(value).chain(others.iter()) {
        check_defined(v, "combine")?;
        if v.kind() == ValueKind::Seq {
            for item in v.try_iter()? {
                dicts.push(to_map(&item)?);
            }
        } else {
            dicts.push(to_map(v)?);
        }
    }
    let mut acc = IndexMap::new();
    for d in &dicts {
        acc = merge(&acc, d, recursive, &list_merge)?;
    }
    Ok(map_of(acc))
}

fn dict2items(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "dict2items")?;
    let key_name = kwargs
        .get::<Option<String>>("key_name")?
        .unwrap_or_else(|| "key".into());
    let value_name = kwargs
        .get::<Option<String>>("value_name")?
        .unwrap_or_else(|| "value".into());
    kwargs.assert_all_used()?;
    if value.kind() != ValueKind::Map {
        return Err(err(format!(
            "dict2items requires a dictionary, got {}",
            py_type(value)
        )));
    }
    let mut out = Vec::new();
    for (k, v) in to_map(value)? {
        let mut m = IndexMap::new();
        m.insert(Value::from(key_name.as_str()), k);
        m.insert(Value::from(value_name.as_str()), v);
        out.push(map_of(m));
    }
    Ok(Value::from(out))
}

fn items2dict(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "items2dict")?;
    let key_name = kwargs
        .get::<Option<String>>("key_name")?
        .unwrap_or_else(|| "key".into());
    let value_name = kwargs
        .get::<Option<String>>("value_name")?
        .unwrap_or_else(|| "value".into());
    kwargs.assert_all_used()?;
    let mut out = IndexMap::new();
    for item in value.try_iter()? {
        let k = item.get_attr(&key_name)?;
        let v = item.get_attr(&value_name)?;
        if k.is_undefined() || v.is_undefined() {
            return Err(err(format!(
                "items2dict requires each element to have '{key_name}' and '{value_name}' keys"
            )));
        }
        out.insert(k, v);
    }
    Ok(map_of(out))
}

/// Stands for the variable name in `mandatory`'s default message.
pub(crate) const MANDATORY_MARKER: &str = "\u{1}mandatory-var\u{1}";

fn mandatory(state: &State, value: &Value, msg: Option<String>) -> Result<Value, Error> {
    let _ = state;
    if value.is_undefined() {
        // The templar replaces the marker with the variable's name from the template source.
        let m =
            msg.unwrap_or_else(|| format!("Mandatory variable {MANDATORY_MARKER} not defined."));
        return Err(Error::new(ErrorKind::UndefinedError, m));
    }
    Ok(value.clone())
}

fn ternary(
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

fn flatten_into(
    out: &mut Vec<Value>,
    v: &Value,
    levels: Option<i64>,
    skip_nulls: bool,
) -> Result<(), Error> {
    for item in v.try_iter()? {
        if skip_nulls && (item.is_none() || item.as_str() == Some("None")) {
            continue;
        }
        if item.kind() == ValueKind::Seq && levels.is_none_or(|l| l > 0) {
            flatten_into(out, &item, levels.map(|l| l - 1), skip_nulls)?;
        } else {
            out.push(item);
        }
    }
    Ok(())
}

fn flatten(value: &Value, levels: Option<i64>, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "flatten")?;
    let levels = match levels {
        Some(l) => Some(l),
        None => kwargs.get::<Option<i64>>("levels")?,
    };
    let skip_nulls = kwargs.get::<Option<bool>>("skip_nulls")?.unwrap_or(true);
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    flatten_into(&mut out, value, levels, skip_nulls)?;
    Ok(Value::from(out))
}

/// Python's `shlex.quote`.
pub(crate) fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_alphanumeric() || c == '_' || "@%+=:,./-".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

fn quote(value: &Value) -> Result<Value, Error> {
    check_defined(value, "quote")?;
    let s = if value.is_none() {
        String::new()
    } else {
        py_str(value)
    };
    Ok(Value::from(shell_quote(&s)))
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
fn round(value: &Value, precision: Option<i32>, method: Option<String>) -> Result<Value, Error> {
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

fn type_debug(value: &Value) -> Value {
    Value::from(py_type(value))
}

fn unique_list(it: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in it {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn union(a: &Value, b: &Value) -> Result<Value, Error> {
    Ok(Value::from(unique_list(
        items(a)?.into_iter().chain(items(b)?),
    )))
}

fn intersect(a: &Value, b: &Value) -> Result<Value, Error> {
    let bi = items(b)?;
    Ok(Value::from(unique_list(
        items(a)?.into_iter().filter(|x| bi.contains(x)),
    )))
}

fn difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let bi = items(b)?;
    Ok(Value::from(unique_list(
        items(a)?.into_iter().filter(|x| !bi.contains(x)),
    )))
}

fn symmetric_difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let (ai, bi) = (items(a)?, items(b)?);
    let mut out: Vec<Value> = ai.iter().filter(|x| !bi.contains(x)).cloned().collect();
    out.extend(bi.iter().filter(|x| !ai.contains(x)).cloned());
    Ok(Value::from(unique_list(out)))
}

// ---------------------------------------------------------------------------------------
// Python methods on strings, dicts and lists (`'a,b'.split(',')`, `d.items()`, `d.get('k')`)

fn py_split(s: &str, sep: Option<&str>, maxsplit: i64) -> Vec<Value> {
    let max = if maxsplit < 0 {
        usize::MAX
    } else {
        maxsplit as usize
    };
    match sep {
        Some(sep) => {
            if max == usize::MAX {
                s.split(sep).map(Value::from).collect()
            } else {
                s.splitn(max + 1, sep).map(Value::from).collect()
            }
        }
        None => {
            let mut out = Vec::new();
            let mut rest = s.trim_start();
            while !rest.is_empty() {
                if out.len() == max {
                    out.push(Value::from(rest));
                    break;
                }
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                out.push(Value::from(&rest[..end]));
                rest = rest[end..].trim_start();
            }
            out
        }
    }
}

fn strip_chars<'a>(s: &'a str, chars: Option<&str>, left: bool, right: bool) -> &'a str {
    let pred = |c: char| match chars {
        Some(cs) => cs.contains(c),
        None => c.is_whitespace(),
    };
    let s = if left { s.trim_start_matches(pred) } else { s };
    if right {
        s.trim_end_matches(pred)
    } else {
        s
    }
}

pub(crate) fn call_py_method(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    let arg_str = |i: usize| -> Option<String> { args.get(i).filter(|a| !a.is_none()).map(py_str) };
    match value.kind() {
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            Ok(match method {
                "split" | "rsplit" => {
                    let sep = arg_str(0);
                    let max = args.get(1).and_then(|a| a.as_i64()).unwrap_or(-1);
                    if method == "rsplit" && max >= 0 {
                        let rev: String = s.chars().rev().collect();
                        let rsep: Option<String> = sep.as_ref().map(|x| x.chars().rev().collect());
                        let mut parts: Vec<Value> = py_split(&rev, rsep.as_deref(), max)
                            .into_iter()
                            .map(|p| {
                                Value::from(
                                    p.as_str()
                                        .unwrap_or_default()
                                        .chars()
                                        .rev()
                                        .collect::<String>(),
                                )
                            })
                            .collect();
                        parts.reverse();
                        Value::from(parts)
                    } else {
                        Value::from(py_split(s, sep.as_deref(), max))
                    }
                }
                "splitlines" => Value::from(s.lines().map(Value::from).collect::<Vec<_>>()),
                "startswith" | "endswith" => {
                    let cands: Vec<String> = match args.first() {
                        Some(a) if a.kind() == ValueKind::Seq => {
                            items(a)?.iter().map(py_str).collect()
                        }
                        Some(a) => vec![py_str(a)],
                        None => return Err(err(format!("{method}() takes at least 1 argument"))),
                    };
                    Value::from(cands.iter().any(|c| {
                        if method == "startswith" {
                            s.starts_with(c.as_str())
                        } else {
                            s.ends_with(c.as_str())
                        }
                    }))
                }
                "strip" => Value::from(strip_chars(s, arg_str(0).as_deref(), true, true)),
                "lstrip" => Value::from(strip_chars(s, arg_str(0).as_deref(), true, false)),
                "rstrip" => Value::from(strip_chars(s, arg_str(0).as_deref(), false, true)),
                "upper" => Value::from(s.to_uppercase()),
                "lower" => Value::from(s.to_lowercase()),
                "title" => return state.apply_filter("title", std::slice::from_ref(value)),
                "capitalize" => {
                    return state.apply_filter("capitalize", std::slice::from_ref(value))
                }
                "replace" => {
                    let (old, new) = (
                        arg_str(0).unwrap_or_default(),
                        arg_str(1).unwrap_or_default(),
                    );
                    match args.get(2).and_then(|a| a.as_i64()) {
                        Some(n) if n >= 0 => Value::from(s.replacen(&old, &new, n as usize)),
                        _ => Value::from(s.replace(&old, &new)),
                    }
                }
                "join" => {
                    let parts: Vec<String> = match args.first() {
                        Some(a) => items(a)?.iter().map(py_str).collect(),
                        None => Vec::new(),
                    };
                    Value::from(parts.join(s))
                }
                "find" | "index" => {
                    let sub = arg_str(0).unwrap_or_default();
                    match s.find(&sub) {
                        Some(i) => Value::from(s[..i].chars().count() as i64),
                        None if method == "find" => Value::from(-1),
                        None => return Err(err("substring not found")),
                    }
                }
                "count" => {
                    Value::from(s.matches(arg_str(0).unwrap_or_default().as_str()).count() as i64)
                }
                "isdigit" => Value::from(!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())),
                "isalpha" => Value::from(!s.is_empty() && s.chars().all(char::is_alphabetic)),
                "isalnum" => Value::from(!s.is_empty() && s.chars().all(char::is_alphanumeric)),
                "isspace" => Value::from(!s.is_empty() && s.chars().all(char::is_whitespace)),
                "islower" => Value::from(
                    s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase),
                ),
                "isupper" => Value::from(
                    s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase),
                ),
                "format" => {
                    let mut out = String::new();
                    let mut auto = 0;
                    let mut rest = s;
                    while let Some(i) = rest.find('{') {
                        out.push_str(&rest[..i]);
                        if rest[i..].starts_with("{{") {
                            out.push('{');
                            rest = &rest[i + 2..];
                            continue;
                        }
                        let Some(j) = rest[i..].find('}') else { break };
                        let field = &rest[i + 1..i + j];
                        let idx = if field.is_empty() {
                            auto += 1;
                            auto - 1
                        } else {
                            field.parse().unwrap_or(0)
                        };
                        out.push_str(&args.get(idx).map(py_str).unwrap_or_default());
                        rest = &rest[i + j + 1..];
                    }
                    out.push_str(&rest.replace("}}", "}"));
                    Value::from(out)
                }
                _ => return Err(Error::from(ErrorKind::UnknownMethod)),
            })
        }
        ValueKind::Map => Ok(match method {
            "items" => {
                let mut out = Vec::new();
                for k in value.try_iter()? {
                    let v = value.get_item(&k)?;
                    out.push(Value::from(vec![k, v]));
                }
                Value::from(out)
            }
            "keys" => Value::from(items(value)?),
            "values" => {
                let mut out = Vec::new();
                for k in value.try_iter()? {
                    out.push(value.get_item(&k)?);
                }
                Value::from(out)
            }
            "get" => {
                let key = args.first().cloned().unwrap_or_default();
                let v = value.get_item(&key)?;
                if v.is_undefined() {
                    args.get(1).cloned().unwrap_or(Value::from(()))
                } else {
                    v
                }
            }
            "copy" => value.clone(),
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        }),
        ValueKind::Seq => Ok(match method {
            "index" => {
                let x = args.first().cloned().unwrap_or_default();
                match items(value)?.iter().position(|v| v == &x) {
                    Some(i) => Value::from(i as i64),
                    None => return Err(err(format!("{} is not in list", py_str(&x)))),
                }
            }
            "count" => {
                let x = args.first().cloned().unwrap_or_default();
                Value::from(items(value)?.iter().filter(|v| *v == &x).count() as i64)
            }
            "copy" => value.clone(),
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        }),
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}
