//! Ansible's text filters: `comment` (its styles and parameters, as ansible-core), `strftime`
//! (Python's `time.strftime`, local time of this host or UTC) and `urlsplit`.

use minijinja::value::{Kwargs, Rest};
use minijinja::{Error, Value};

use super::{check_defined, err, Params};
use crate::template::pyrepr::py_str;

/// One style of the `comment` filter: beginning, decoration, end.
fn comment_style(style: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match style {
        "plain" => ("", "# ", ""),
        "erlang" => ("", "% ", ""),
        "c" => ("", "// ", ""),
        "cblock" => ("/*", " * ", " */"),
        "xml" => ("<!--", " - ", "-->"),
        _ => return None,
    })
}

pub(super) fn comment(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "comment")?;
    if args.len() > 1 {
        return Err(err(
            "comment: takes at most one positional argument (the style)",
        ));
    }
    let style = match args.first() {
        Some(s) => py_str(s),
        None => kwargs
            .get::<Option<String>>("style")?
            .unwrap_or_else(|| "plain".into()),
    };
    let (beginning, decoration, end) = comment_style(&style).ok_or_else(|| {
        err(format!(
            "Invalid style '{style}'. Available styles: plain, erlang, c, cblock, xml"
        ))
    })?;
    let text = py_str(value);
    let kw = |name: &str| -> Result<Option<String>, Error> {
        Ok(kwargs.get::<Option<Value>>(name)?.map(|v| {
            if v.is_none() {
                String::new()
            } else {
                py_str(&v)
            }
        }))
    };
    let count = |name: &str| -> Result<i64, Error> {
        match kwargs.get::<Option<Value>>(name)? {
            None => Ok(1),
            Some(v) => match v.as_str() {
                Some(s) => s
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("comment: {name} must be an integer"))),
                None => {
                    i64::try_from(v).map_err(|_| err(format!("comment: {name} must be an integer")))
                }
            },
        }
    };
    let user_decoration = kw("decoration")?;
    let prepostfix = user_decoration
        .clone()
        .unwrap_or_else(|| decoration.to_string());
    let newline = kw("newline")?.unwrap_or_else(|| "\n".into());
    let beginning = kw("beginning")?.unwrap_or_else(|| beginning.into());
    let decoration = user_decoration.unwrap_or_else(|| decoration.into());
    let prefix = kw("prefix")?.unwrap_or_else(|| prepostfix.trim_end().to_string());
    let postfix = kw("postfix")?.unwrap_or_else(|| prepostfix.trim_end().to_string());
    let end = kw("end")?.unwrap_or_else(|| end.into());
    let prefix_count = count("prefix_count")?.max(0) as usize;
    let postfix_count = count("postfix_count")?.max(0) as usize;
    let _ = kwargs.get::<Option<Value>>("style")?;
    kwargs.assert_all_used()?;

    let mut out = String::new();
    if !beginning.is_empty() {
        out.push_str(&beginning);
        out.push_str(&newline);
    }
    if !prefix.is_empty() {
        let one = if prefix != newline {
            format!("{prefix}{newline}")
        } else {
            newline.clone()
        };
        out.push_str(&one.repeat(prefix_count));
    }
    let body = if newline.is_empty() {
        return Err(err("comment: newline must not be empty"));
    } else {
        format!(
            "{decoration}{}",
            text.replace(&newline, &format!("{newline}{decoration}"))
        )
    };
    let bare = format!("{decoration}{newline}");
    let body = if bare.is_empty() {
        body
    } else {
        body.replace(&bare, &format!("{}{newline}", decoration.trim_end()))
    };
    out.push_str(&body);
    for _ in 0..postfix_count {
        out.push_str(&newline);
        out.push_str(&postfix);
    }
    if !end.is_empty() {
        out.push_str(&newline);
        out.push_str(&end);
    }
    Ok(Value::from(out))
}

/// The directives `time.strftime` (glibc) and jiff write alike.
const STRFTIME_DIRECTIVES: &str = "aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZ%";

pub(super) fn strftime(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new("strftime", &["second", "utc"], &args, &kwargs)?;
    check_defined(value, "strftime")?;
    let format = py_str(value);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let mut d = chars.next();
            while matches!(d, Some('-' | '_' | '0' | '^' | '#')) {
                d = chars.next();
            }
            match d {
                Some(d) if STRFTIME_DIRECTIVES.contains(d) => {}
                other => {
                    return Err(err(format!(
                        "strftime: the directive %{} is not supported",
                        other.map(String::from).unwrap_or_default()
                    )))
                }
            }
        }
    }
    let ts = match p.value(0).filter(|v| !v.is_none()) {
        None => jiff::Timestamp::now(),
        Some(v) => {
            let secs: f64 = match v.as_str() {
                Some(s) => s.trim().parse().ok(),
                None => f64::try_from(v.clone()).ok(),
            }
            .ok_or_else(|| err(format!("Invalid value for epoch value ({})", py_str(v))))?;
            // time.localtime() truncates the fraction
            jiff::Timestamp::from_second(secs.trunc() as i64)
                .map_err(|e| err(format!("Invalid value for epoch value ({secs}): {e}")))?
        }
    };
    let tz = if p.bool(1, false) {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    };
    let zoned = ts.to_zoned(tz);
    let out =
        jiff::fmt::strtime::format(&format, &zoned).map_err(|e| err(format!("strftime: {e}")))?;
    Ok(Value::from(out))
}

/// Python's `urllib.parse.urlsplit` and its attributes, by name in alphabetical order (as
/// ansible-core's `urlsplit` filter returns them).
fn split_url(url: &str) -> Result<indexmap::IndexMap<&'static str, Value>, Error> {
    let url: String = url
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut rest = url.as_str();
    let mut scheme = String::new();
    if let Some(i) = rest.find(':') {
        let cand = &rest[..i];
        if cand.starts_with(|c: char| c.is_ascii_alphabetic())
            && cand
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            scheme = cand.to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    let mut netloc = "";
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = &after[..end];
        rest = &after[end..];
        if netloc.contains('[') != netloc.contains(']') {
            return Err(err("Invalid IPv6 URL"));
        }
    }
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (userinfo, hostinfo) = match netloc.rfind('@') {
        Some(i) => (Some(&netloc[..i]), &netloc[i + 1..]),
        None => (None, netloc),
    };
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (Value::from(a), Value::from(b)),
            None => (Value::from(u), Value::from(())),
        },
        None => (Value::from(()), Value::from(())),
    };
    let (host, port) = if let Some(after) = hostinfo.strip_prefix('[') {
        let (h, tail) = after.split_once(']').unwrap_or((after, ""));
        (h, tail.strip_prefix(':'))
    } else {
        match hostinfo.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostinfo, None),
        }
    };
    let hostname = if host.is_empty() {
        Value::from(())
    } else {
        Value::from(host.to_lowercase())
    };
    let port = match port.filter(|p| !p.is_empty()) {
        None => Value::from(()),
        Some(p) => {
            let n: u32 = p
                .parse()
                .ok()
                .filter(|n| *n <= 65535 && p.chars().all(|c| c.is_ascii_digit()))
                .ok_or_else(|| err(format!("Port could not be cast to integer value as '{p}'")))?;
            Value::from(n)
        }
    };
    let mut m = indexmap::IndexMap::new();
    m.insert("fragment", Value::from(fragment));
    m.insert("hostname", hostname);
    m.insert("netloc", Value::from(netloc));
    m.insert("password", password);
    m.insert("path", Value::from(path));
    m.insert("port", port);
    m.insert("query", Value::from(query));
    m.insert("scheme", Value::from(scheme));
    m.insert("username", username);
    Ok(m)
}

pub(super) fn urlsplit(value: &Value, query: Option<String>) -> Result<Value, Error> {
    check_defined(value, "urlsplit")?;
    let parts = split_url(&py_str(value))?;
    match query.filter(|q| !q.is_empty()) {
        None => Ok(Value::from(
            parts
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect::<indexmap::IndexMap<_, _>>(),
        )),
        Some(q) => parts
            .get(q.as_str())
            .cloned()
            .ok_or_else(|| err(format!("urlsplit: unknown URL component: {q}"))),
    }
}
