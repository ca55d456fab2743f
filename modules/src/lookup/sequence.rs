//! `sequence`: numbers from `start` to `end` (or `count` of them) by `stride`, each formatted
//! with a printf-style `format`; as `k=v` words or the short form `[start-]end[/stride][:format]`.

use std::sync::OnceLock;

use minijinja::{Error, Value};

use super::{err, term_str, Call};

#[derive(Debug, Clone)]
struct Fields {
    start: i64,
    end: Option<i64>,
    count: Option<i64>,
    stride: i64,
    format: String,
}

/// Python's `int()` of a decimal text (what the option's `integer` type accepts).
fn int(key: &str, text: &str) -> Result<i64, Error> {
    text.trim().replace('_', "").parse::<i64>().map_err(|_| {
        err(format!(
            "Config '{key}' for 'sequence' lookup plugin has an invalid value: Invalid value provided for 'integer': '{text}'"
        ))
    })
}

fn shortcut() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"(?i)^((0?x?[0-9a-f]+)-)?(0?x?[0-9a-f]+)(/(0?x?[0-9a-f]+))?(:(.+))?$")
            .expect("valid regex")
    })
}

fn set(f: &mut Fields, key: &str, v: &str) -> Result<(), Error> {
    match key {
        "start" => f.start = int(key, v)?,
        "end" => f.end = Some(int(key, v)?),
        "count" => f.count = Some(int(key, v)?),
        "stride" => f.stride = int(key, v)?,
        "format" => f.format = v.to_string(),
        _ => unreachable!("only the five fields are set"),
    }
    Ok(())
}

fn parse_term(term: &str, f: &mut Fields) -> Result<(), Error> {
    if let Some(c) = shortcut().captures(term) {
        for (key, group) in [("start", 2), ("end", 3), ("stride", 5), ("format", 7)] {
            if let Some(m) = c.get(group) {
                set(f, key, m.as_str())?;
            }
        }
        return Ok(());
    }
    let pairs = crate::args::parse_kv(term, false).map_err(|e| {
        err(format!(
            "unknown error parsing with_sequence arguments: {term:?}. Error was: {e}"
        ))
    })?;
    let mut unknown = Vec::new();
    for (k, v) in pairs {
        if matches!(k.as_str(), "start" | "end" | "count" | "stride" | "format") {
            set(f, &k, &v)?;
        } else {
            unknown.push(k);
        }
    }
    if !unknown.is_empty() {
        return Err(err(format!(
            "unrecognized arguments to with_sequence: {unknown:?}"
        )));
    }
    Ok(())
}

/// Python's `format % i` for one integer conversion (`%d`, `%05d`, `%x`, `%-3o`, `%s`…).
fn format_int(fmt: &str, i: i64) -> Result<String, Error> {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"%([-+ 0#]*)(\d*)(?:\.(\d+))?([diouxXsr])").expect("valid regex")
    });
    let bad = || err(format!("problem formatting {i} with {fmt:?}"));
    let c = re.captures(fmt).ok_or_else(bad)?;
    let whole = c.get(0).ok_or_else(bad)?;
    let flags = c.get(1).map_or("", |m| m.as_str());
    let width: usize = c.get(2).map_or("", |m| m.as_str()).parse().unwrap_or(0);
    let precision: Option<usize> = c.get(3).and_then(|m| m.as_str().parse().ok());
    let conv = c.get(4).map_or("d", |m| m.as_str());
    let mag = i.unsigned_abs();
    let mut digits = match conv {
        "o" => format!("{mag:o}"),
        "x" => format!("{mag:x}"),
        "X" => format!("{mag:X}"),
        _ => mag.to_string(),
    };
    if let Some(p) = precision.filter(|_| !matches!(conv, "s" | "r")) {
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    let mut prefix = String::new();
    if i < 0 {
        prefix.push('-');
    } else if flags.contains('+') && !matches!(conv, "s" | "r") {
        prefix.push('+');
    } else if flags.contains(' ') && !matches!(conv, "s" | "r") {
        prefix.push(' ');
    }
    if flags.contains('#') {
        match conv {
            "o" => prefix.push_str("0o"),
            "x" => prefix.push_str("0x"),
            "X" => prefix.push_str("0X"),
            _ => {}
        }
    }
    let len = prefix.len() + digits.len();
    let body = if len >= width {
        format!("{prefix}{digits}")
    } else if flags.contains('-') {
        format!("{prefix}{digits}{}", " ".repeat(width - len))
    } else if flags.contains('0') && !matches!(conv, "s" | "r") {
        format!("{prefix}{}{digits}", "0".repeat(width - len))
    } else {
        format!("{}{prefix}{digits}", " ".repeat(width - len))
    };
    Ok(format!(
        "{}{}{}",
        &fmt[..whole.start()],
        body,
        &fmt[whole.end()..]
    ))
}

/// Ansible's `sanity_check` then `generate_sequence`.
fn generate(mut f: Fields, out: &mut Vec<Value>) -> Result<(), Error> {
    match (f.count, f.end) {
        (None, None) => return Err(err("must specify count or end in with_sequence")),
        (Some(_), Some(_)) => return Err(err("can't specify both count and end in with_sequence")),
        (Some(0), None) => return Ok(()),
        (Some(c), None) => f.end = Some(f.start + c * f.stride - 1),
        (None, Some(_)) => {}
    }
    let end = f.end.unwrap_or_default();
    if f.stride > 0 && end < f.start {
        return Err(err("to count backwards make stride negative"));
    }
    if f.stride < 0 && end > f.start {
        return Err(err("to count forward don't make stride negative"));
    }
    if f.stride == 0 {
        return Ok(());
    }
    if f.format.matches('%').count() != 1 {
        return Err(err(format!("bad formatting string: {}", f.format)));
    }
    let mut i = f.start;
    while (f.stride > 0 && i <= end) || (f.stride < 0 && i >= end) {
        out.push(Value::from(format_int(&f.format, i)?));
        i += f.stride;
    }
    Ok(())
}

pub(super) fn run(terms: Vec<Value>, call: &Call) -> Result<Vec<Value>, Error> {
    let mut base = Fields {
        start: 1,
        end: None,
        count: None,
        stride: 1,
        format: "%d".into(),
    };
    let mut any_kwarg = false;
    for key in ["start", "end", "count", "stride", "format"] {
        if let Some(v) = call.kwargs.get::<Option<Value>>(key)? {
            any_kwarg = true;
            let text = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            set(&mut base, key, &text)?;
        }
    }
    let terms = if terms.is_empty() && any_kwarg {
        vec![Value::from("")]
    } else {
        terms
    };
    let mut out = Vec::new();
    for t in &terms {
        let mut f = base.clone();
        parse_term(&term_str(t, "sequence")?, &mut f)?;
        generate(f, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
pub(super) fn sequence_of(term: &str) -> Result<Vec<String>, String> {
    let mut f = Fields {
        start: 1,
        end: None,
        count: None,
        stride: 1,
        format: "%d".into(),
    };
    parse_term(term, &mut f).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    generate(f, &mut out).map_err(|e| e.to_string())?;
    Ok(out.iter().map(|v| v.to_string()).collect())
}
