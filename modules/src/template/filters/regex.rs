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

/// A piece of a parsed `re.sub` replacement template.
enum Piece {
    Text(String),
    Group(usize),
}

/// Parses a Python `re.sub` replacement template as Python's `re` does: `\1`..`\99` and
/// `\g<n>`/`\g<name>` are group references (a group the pattern lacks is an error), `\0` and
/// three-digit `\NNN` are octal escapes, `\n`-style escapes are characters, an unknown ASCII
/// letter escape is an error and any other `\x` stays as written.
fn parse_replacement(repl: &str, re: &Regex) -> Result<Vec<Piece>, Error> {
    let groups = re.captures_len() - 1;
    let chars: Vec<char> = repl.chars().collect();
    let mut pieces = Vec::new();
    let mut text = String::new();
    let group = |pieces: &mut Vec<Piece>, text: &mut String, n: usize, at: usize| {
        if n > groups {
            return Err(err(format!("invalid group reference {n} at position {at}")));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(text)));
        }
        pieces.push(Piece::Group(n));
        Ok(())
    };
    let octal = |c: Option<&char>| c.is_some_and(|c| ('0'..='7').contains(c));
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' {
            text.push(c);
            i += 1;
            continue;
        }
        let Some(&n) = chars.get(i + 1) else {
            return Err(err(format!("bad escape (end of pattern) at position {i}")));
        };
        match n {
            'g' => {
                if chars.get(i + 2) != Some(&'<') {
                    return Err(err(format!("missing < at position {}", i + 2)));
                }
                let Some(len) = chars[i + 3..].iter().position(|&c| c == '>') else {
                    return Err(err(format!(
                        "missing >, unterminated name at position {}",
                        i + 3
                    )));
                };
                let name: String = chars[i + 3..i + 3 + len].iter().collect();
                let index = if name.chars().all(|c| c.is_ascii_digit()) && !name.is_empty() {
                    name.parse::<usize>()
                        .map_err(|_| err(format!("invalid group reference {name}")))?
                } else {
                    re.capture_names()
                        .position(|g| g == Some(name.as_str()))
                        .ok_or_else(|| err(format!("unknown group name '{name}'")))?
                };
                group(&mut pieces, &mut text, index, i + 3)?;
                i += 3 + len + 1;
            }
            '0' => {
                let mut j = i + 2;
                while j < i + 4 && octal(chars.get(j)) {
                    j += 1;
                }
                let digits: String = chars[i + 1..j].iter().collect();
                let v = u32::from_str_radix(&digits, 8).unwrap_or(0) & 0xff;
                text.push(char::from_u32(v).unwrap_or('\0'));
                i = j;
            }
            '1'..='9' => {
                let two = chars.get(i + 2).is_some_and(|c| c.is_ascii_digit());
                if two && octal(Some(&n)) && octal(chars.get(i + 2)) && octal(chars.get(i + 3)) {
                    let digits: String = chars[i + 1..i + 4].iter().collect();
                    let v = u32::from_str_radix(&digits, 8).unwrap_or(0);
                    if v > 0o377 {
                        return Err(err(format!(
                            "octal escape value \\{digits} outside of range 0-0o377 at position {i}"
                        )));
                    }
                    text.push(char::from_u32(v).unwrap_or('\0'));
                    i += 4;
                } else {
                    let end = if two { i + 3 } else { i + 2 };
                    let digits: String = chars[i + 1..end].iter().collect();
                    let index = digits.parse::<usize>().unwrap_or(usize::MAX);
                    group(&mut pieces, &mut text, index, i + 1)?;
                    i = end;
                }
            }
            _ => {
                match n {
                    'a' => text.push('\x07'),
                    'b' => text.push('\x08'),
                    'f' => text.push('\x0c'),
                    'n' => text.push('\n'),
                    'r' => text.push('\r'),
                    't' => text.push('\t'),
                    'v' => text.push('\x0b'),
                    '\\' => text.push('\\'),
                    l if l.is_ascii_alphabetic() => {
                        return Err(err(format!("bad escape \\{l} at position {i}")));
                    }
                    other => {
                        text.push('\\');
                        text.push(other);
                    }
                }
                i += 2;
            }
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The matches of `re` in `s` as Python's `re` finds them (Python 3.7+: an empty match right
/// after a non-empty one counts, an empty match where the previous empty one was does not);
/// at most `limit` of them (0: all).
fn py_matches<'h>(re: &Regex, s: &'h str, limit: usize) -> Vec<regex::Captures<'h>> {
    let mut found = Vec::new();
    let mut pos = 0;
    let mut empty_at: Option<usize> = None;
    while pos <= s.len() && (limit == 0 || found.len() < limit) {
        let Some(caps) = re.captures_at(s, pos) else {
            break;
        };
        let Some(m) = caps.get(0) else { break };
        if m.is_empty() && empty_at == Some(m.start()) {
            // retry one character further
            match s[m.start()..].chars().next() {
                Some(c) => pos = m.start() + c.len_utf8(),
                None => break,
            }
            continue;
        }
        empty_at = m.is_empty().then_some(m.end());
        pos = m.end();
        found.push(caps);
    }
    found
}

/// Python's `re.subn(re, repl, s)`: the text with every match replaced by the expanded
/// template `repl` (`\1`, `\g<name>`, escapes), and the number of matches (for the `replace`
/// module).
pub(crate) fn python_subn(re: &Regex, s: &str, repl: &str) -> Result<(String, usize), String> {
    let pieces = parse_replacement(repl, re).map_err(|e| e.to_string())?;
    let matches = py_matches(re, s, 0);
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for caps in &matches {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&s[last..m.start()]);
        for piece in &pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Group(g) => out.push_str(caps.get(*g).map_or("", |m| m.as_str())),
            }
        }
        last = m.end();
    }
    out.push_str(&s[last..]);
    Ok((out, matches.len()))
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
    let pattern = pattern.unwrap_or_default();
    let re = compile_regex(&pattern, ic, ml)?;
    let pieces = parse_replacement(&replacement.unwrap_or_default(), &re)?;
    let matches = py_matches(&re, &s, count);
    if mandatory_count > 0 && matches.len() != mandatory_count {
        // ansible-core's message names `count`, not the number of matches
        return Err(err(format!(
            "'{pattern}' should match {mandatory_count} times, but matches {count} times in '{s}'"
        )));
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for caps in &matches {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&s[last..m.start()]);
        for piece in &pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Group(g) => out.push_str(caps.get(*g).map_or("", |m| m.as_str())),
            }
        }
        last = m.end();
    }
    out.push_str(&s[last..]);
    Ok(Value::from(out))
}

fn group_value(caps: &regex::Captures, i: usize) -> Value {
    caps.get(i)
        .map(|m| Value::from(m.as_str()))
        .unwrap_or(Value::from(()))
}

/// A `regex_search` group argument, as ansible-core reads it: `\g<name>` names a group (even
/// `\g<1>`: Python's `match.group('1')`), `\N` numbers one.
enum GroupArg {
    Name(String),
    Number(usize),
}

fn group_arg(a: &str) -> Result<GroupArg, Error> {
    if let Some(rest) = a.strip_prefix("\\g") {
        let name = rest
            .strip_prefix('<')
            .and_then(|r| r.find('>').map(|e| &r[..e]))
            .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
            .ok_or_else(|| err(format!("regex_search: bad group argument {a:?}")))?;
        Ok(GroupArg::Name(name.to_string()))
    } else if let Some(rest) = a.strip_prefix('\\') {
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits
            .parse()
            .map(GroupArg::Number)
            .map_err(|_| err(format!("regex_search: bad group argument {a:?}")))
    } else {
        Err(err(format!("regex_search: Unknown argument {a:?}")))
    }
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
    let groups = args
        .iter()
        .map(|a| group_arg(a))
        .collect::<Result<Vec<_>, _>>()?;
    let s = py_str(value);
    let re = compile_regex(&pattern, ic, ml)?;
    let Some(caps) = re.captures(&s) else {
        return Ok(Value::from(()));
    };
    if groups.is_empty() {
        return Ok(group_value(&caps, 0));
    }
    let mut out = Vec::new();
    for g in groups {
        let index = match g {
            GroupArg::Number(n) => Some(n).filter(|n| *n < re.captures_len()),
            GroupArg::Name(name) => re.capture_names().position(|g| g == Some(name.as_str())),
        };
        let index = index.ok_or_else(|| err("regex_search: no such group"))?;
        out.push(group_value(&caps, index));
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
    for caps in py_matches(&re, &s, 0) {
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
