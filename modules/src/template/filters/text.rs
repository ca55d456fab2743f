//! Jinja2's text builtins minijinja lacks or renders differently, as Jinja2 3.1 under
//! ansible-core 2.19: `truncate`, `wordcount`, `center`, `indent` (a string width too),
//! `wordwrap` (Python's textwrap), `striptags`, `filesizeformat`, `xmlattr`, `urlencode`,
//! `forceescape`.

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Error, Value};

use super::{check_defined, err, Params};
use crate::template::pyrepr::py_str;

fn text(value: &Value, what: &str) -> Result<String, Error> {
    check_defined(value, what)?;
    Ok(py_str(value))
}

/// Python's `str.splitlines()` (without the line ends).
pub(super) fn splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = match c {
            '\r' => {
                if let Some((_, '\n')) = chars.peek() {
                    chars.next();
                    i + 2
                } else {
                    i + 1
                }
            }
            '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => i + c.len_utf8(),
            _ => continue,
        };
        out.push(&s[start..i]);
        start = end;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

pub(super) fn truncate(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(
        "truncate",
        &["length", "killwords", "end", "leeway"],
        &args,
        &kwargs,
    )?;
    let s = text(value, "truncate")?;
    let length = p.int(0, 255)?;
    let killwords = p.bool(1, false);
    let end = p.str(2).unwrap_or_else(|| "...".into());
    let leeway = p.opt_int(3)?.unwrap_or(5);
    let end_len = end.chars().count() as i64;
    if length < end_len {
        return Err(err(format!("expected length >= {end_len}, got {length}")));
    }
    if leeway < 0 {
        return Err(err(format!("expected leeway >= 0, got {leeway}")));
    }
    let chars: Vec<char> = s.chars().collect();
    if chars.len() as i64 <= length + leeway {
        return Ok(Value::from(s));
    }
    let head: String = chars[..(length - end_len) as usize].iter().collect();
    if killwords {
        return Ok(Value::from(head + &end));
    }
    let kept = match head.rfind(' ') {
        Some(i) => &head[..i],
        None => &head[..],
    };
    Ok(Value::from(format!("{kept}{end}")))
}

pub(super) fn wordcount(value: &Value) -> Result<Value, Error> {
    let s = text(value, "wordcount")?;
    let re = super::compile_regex(r"\w+", false, false)?;
    Ok(Value::from(re.find_iter(&s).count()))
}

/// Python's `str.center(width, fill)`.
pub(super) fn py_center(s: &str, width: i64, fill: char) -> String {
    let len = s.chars().count() as i64;
    let marg = width - len;
    if marg <= 0 {
        return s.to_string();
    }
    let left = marg / 2 + (marg & width & 1);
    let right = marg - left;
    let pad = |n: i64| std::iter::repeat_n(fill, n as usize).collect::<String>();
    format!("{}{s}{}", pad(left), pad(right))
}

pub(super) fn center(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new("center", &["width"], &args, &kwargs)?;
    let s = text(value, "center")?;
    Ok(Value::from(py_center(&s, p.int(0, 80)?, ' ')))
}

pub(super) fn indent(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new("indent", &["width", "first", "blank"], &args, &kwargs)?;
    let (first, blank) = (p.bool(1, false), p.bool(2, false));
    let s = text(value, "indent")?;
    let indention = match p.value(0) {
        None => "    ".to_string(),
        Some(w) if w.kind() == ValueKind::String => py_str(w),
        Some(w) => {
            let n = i64::try_from(w.clone()).map_err(|_| {
                err(format!(
                    "indent: width must be an integer or a string, got {w}"
                ))
            })?;
            " ".repeat(n.max(0) as usize)
        }
    };
    let s = s + "\n";
    let lines = splitlines(&s);
    let mut rv = if blank {
        lines.join(&format!("\n{indention}"))
    } else {
        let mut it = lines.iter();
        let mut rv = it.next().copied().unwrap_or_default().to_string();
        let rest: Vec<String> = it
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{indention}{l}")
                }
            })
            .collect();
        if !rest.is_empty() {
            rv.push('\n');
            rv.push_str(&rest.join("\n"));
        }
        rv
    };
    if first {
        rv = indention + &rv;
    }
    Ok(Value::from(rv))
}

const PY_WHITESPACE: &[char] = &['\t', '\n', '\x0b', '\x0c', '\r', ' '];

/// textwrap's chunks: runs of whitespace and words, a word also split after a hyphen between
/// letters (`break_on_hyphens`, as textwrap's `wordsep_re` does for the common cases).
fn chunks(line: &str, break_on_hyphens: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut cur_ws = false;
    for c in line.chars() {
        let ws = PY_WHITESPACE.contains(&c);
        if !cur.is_empty() && ws != cur_ws {
            out.push(std::mem::take(&mut cur));
        }
        cur_ws = ws;
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    if !break_on_hyphens {
        return out;
    }
    // textwrap's `[^\d\W]`
    let letter = |c: char| (c.is_alphanumeric() || c == '_') && !c.is_numeric();
    let mut split = Vec::new();
    for chunk in out {
        let cs: Vec<char> = chunk.chars().collect();
        let mut start = 0;
        for i in 0..cs.len() {
            // "-" preceded by two letters (or letter-letter-) and followed by letter -? letter
            if cs[i] == '-' && i >= 2 && i + 1 < cs.len() {
                let before = (letter(cs[i - 1]) && letter(cs[i - 2]))
                    || (i >= 3 && letter(cs[i - 1]) && cs[i - 2] == '-' && letter(cs[i - 3]));
                let at = |j: usize| cs.get(j).is_some_and(|c| letter(*c));
                let after = at(i + 1) && (at(i + 2) || (cs.get(i + 2) == Some(&'-') && at(i + 3)));
                if before && after {
                    split.push(cs[start..=i].iter().collect());
                    start = i + 1;
                }
            }
        }
        split.push(cs[start..].iter().collect());
    }
    split
}

/// Python's `textwrap.wrap(line, width, expand_tabs=False, replace_whitespace=False, ...)`.
fn textwrap(
    line: &str,
    width: usize,
    break_long_words: bool,
    break_on_hyphens: bool,
) -> Vec<String> {
    let mut rev: Vec<String> = chunks(line, break_on_hyphens);
    rev.reverse();
    let len = |s: &str| s.chars().count();
    let blank = |s: &str| s.trim_matches(PY_WHITESPACE).is_empty();
    let mut lines: Vec<String> = Vec::new();
    while !rev.is_empty() {
        let mut cur: Vec<String> = Vec::new();
        let mut cur_len = 0;
        if rev.last().is_some_and(|c| blank(c)) && !lines.is_empty() {
            rev.pop();
        }
        while let Some(c) = rev.last() {
            let l = len(c);
            if cur_len + l <= width {
                cur_len += l;
                cur.push(rev.pop().unwrap_or_default());
            } else {
                break;
            }
        }
        if rev.last().is_some_and(|c| len(c) > width) {
            let space_left = if width < 1 { 1 } else { width - cur_len };
            if break_long_words {
                let chunk: Vec<char> = rev.last().map(|c| c.chars().collect()).unwrap_or_default();
                let mut end = space_left;
                if break_on_hyphens && chunk.len() > space_left {
                    if let Some(h) = chunk[..space_left].iter().rposition(|&c| c == '-') {
                        if h > 0 && chunk[..h].iter().any(|&c| c != '-') {
                            end = h + 1;
                        }
                    }
                }
                cur.push(chunk[..end].iter().collect());
                if let Some(last) = rev.last_mut() {
                    *last = chunk[end..].iter().collect();
                }
            } else if cur.is_empty() {
                cur.push(rev.pop().unwrap_or_default());
            }
        }
        if cur.last().is_some_and(|c| blank(c)) {
            cur.pop();
        }
        if !cur.is_empty() {
            lines.push(cur.concat());
        }
    }
    lines
}

pub(super) fn wordwrap(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let names = [
        "width",
        "break_long_words",
        "wrapstring",
        "break_on_hyphens",
    ];
    let p = Params::new("wordwrap", &names, &args, &kwargs)?;
    let s = text(value, "wordwrap")?;
    let width = p.int(0, 79)?;
    let (break_long_words, break_on_hyphens) = (p.bool(1, true), p.bool(3, true));
    let wrapstring = p.str(2);
    if width <= 0 {
        return Err(err(format!("invalid width {width} (must be > 0)")));
    }
    let wrap = wrapstring.unwrap_or_else(|| "\n".into());
    let paragraphs: Vec<String> = splitlines(&s)
        .into_iter()
        .map(|line| textwrap(line, width as usize, break_long_words, break_on_hyphens).join(&wrap))
        .collect();
    Ok(Value::from(paragraphs.join(&wrap)))
}

/// markupsafe's `escape`.
pub(super) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Python's `html.unescape` for numeric references and the common named ones; another named
/// reference fails loudly (not silently left as written).
fn html_unescape(s: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest[1..].find(';').map(|p| p + 1).filter(|p| *p <= 33) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..semi];
        let decoded = if let Some(num) = name.strip_prefix('#') {
            let n = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => num.parse::<u32>().ok(),
            };
            n.and_then(char::from_u32).map(String::from)
        } else {
            match name {
                "amp" => Some("&".into()),
                "lt" => Some("<".into()),
                "gt" => Some(">".into()),
                "quot" => Some("\"".into()),
                "apos" => Some("'".into()),
                "nbsp" => Some("\u{a0}".into()),
                _ if name.chars().all(|c| c.is_ascii_alphanumeric()) && !name.is_empty() => {
                    return Err(err(format!(
                        "striptags: the HTML entity &{name}; is not supported"
                    )))
                }
                _ => None,
            }
        };
        match decoded {
            Some(d) => {
                out.push_str(&d);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

pub(super) fn striptags(value: &Value) -> Result<Value, Error> {
    let mut s = text(value, "striptags")?;
    for (open, close) in [("<!--", "-->"), ("<", ">")] {
        while let Some(start) = s.find(open) {
            let Some(end) = s[start..].find(close).map(|e| start + e) else {
                break;
            };
            s.replace_range(start..end + close.len(), "");
        }
    }
    let collapsed = s
        .split(PY_WHITESPACE)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>();
    // Python's str.split() also splits on Unicode spaces
    let collapsed = collapsed
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Value::from(html_unescape(&collapsed)?))
}

pub(super) fn filesizeformat(
    value: &Value,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let binary = Params::new("filesizeformat", &["binary"], &args, &kwargs)?.bool(0, false);
    check_defined(value, "filesizeformat")?;
    let bytes: f64 = match value.as_str() {
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| err(format!("could not convert string to float: '{s}'")))?,
        None => f64::try_from(value.clone())
            .map_err(|_| err(format!("filesizeformat: not a number: {value}")))?,
    };
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let prefixes = if binary {
        ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    } else {
        ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    };
    if bytes == 1.0 {
        return Ok(Value::from("1 Byte"));
    }
    if bytes < base {
        return Ok(Value::from(format!("{} Bytes", bytes.trunc() as i64)));
    }
    let mut unit = base;
    for (i, prefix) in prefixes.iter().enumerate() {
        unit = base.powi(i as i32 + 2);
        if bytes < unit || i == prefixes.len() - 1 {
            return Ok(Value::from(format!("{:.1} {prefix}", base * bytes / unit)));
        }
    }
    Ok(Value::from(format!("{:.1} YB", base * bytes / unit)))
}

pub(super) fn xmlattr(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let autospace = Params::new("xmlattr", &["autospace"], &args, &kwargs)?.bool(0, true);
    check_defined(value, "xmlattr")?;
    if value.kind() != ValueKind::Map {
        return Err(err("xmlattr: expected a dictionary"));
    }
    let mut items = Vec::new();
    for key in value.try_iter()? {
        let v = value.get_item(&key)?;
        if v.is_none() || v.is_undefined() {
            continue;
        }
        let k = py_str(&key);
        if k.chars()
            .any(|c| c.is_ascii_whitespace() || "/>=".contains(c))
        {
            return Err(err(format!("Invalid character in attribute name: '{k}'")));
        }
        items.push(format!(
            "{}=\"{}\"",
            html_escape(&k),
            html_escape(&py_str(&v))
        ));
    }
    let mut rv = items.join(" ");
    if autospace && !rv.is_empty() {
        rv.insert(0, ' ');
    }
    Ok(Value::from(rv))
}

/// Python's `urllib.parse.quote_from_bytes` (`_.-~` and alphanumerics kept, plus `safe`).
fn url_quote(s: &str, for_qs: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || (!for_qs && b == b'/') {
            out.push(b as char);
        } else if for_qs && b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn urlencode(value: &Value) -> Result<Value, Error> {
    check_defined(value, "urlencode")?;
    let pairs: Vec<(Value, Value)> = match value.kind() {
        ValueKind::Map => value
            .try_iter()?
            .map(|k| {
                let v = value.get_item(&k).unwrap_or_default();
                (k, v)
            })
            .collect(),
        ValueKind::Seq | ValueKind::Iterable => {
            let mut pairs = Vec::new();
            for item in value.try_iter()? {
                let parts: Vec<Value> = item.try_iter()?.collect();
                match &parts[..] {
                    [k, v] => pairs.push((k.clone(), v.clone())),
                    _ => return Err(err("urlencode: expected pairs")),
                }
            }
            pairs
        }
        _ => return Ok(Value::from(url_quote(&py_str(value), false))),
    };
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                url_quote(&py_str(k), true),
                url_quote(&py_str(v), true)
            )
        })
        .collect();
    Ok(Value::from(joined.join("&")))
}

pub(super) fn forceescape(value: &Value) -> Result<Value, Error> {
    Ok(Value::from(html_escape(&text(value, "forceescape")?)))
}

/// Jinja's `escape`/`e` (auto-escaping is off, so the result is plain text).
pub(super) fn escape(value: &Value) -> Result<Value, Error> {
    if value.is_safe() {
        return Ok(value.clone());
    }
    forceescape(value)
}
