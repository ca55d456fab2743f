//! Regular expressions (Python `re` syntax, as far as Rust's regex supports it):
//! `regex_replace`, `regex_search`, `regex_findall`, `regex_escape`, and the cache the `match`
//! and `search` tests share.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use minijinja::value::{Kwargs, Rest};
use minijinja::{Error, Value};
use regex::Regex;

use super::{check_defined, err};
use crate::template::pyrepr::py_str;

/// Compiled regular expressions by (pattern, ignorecase, multiline).
type RegexCache = Mutex<HashMap<(String, bool, bool), Regex>>;

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

pub(super) fn regex_replace(
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

pub(super) fn regex_search(
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

pub(super) fn regex_findall(
    value: &Value,
    pattern: String,
    kwargs: Kwargs,
) -> Result<Value, Error> {
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

pub(super) fn regex_escape(value: &Value) -> Result<Value, Error> {
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
