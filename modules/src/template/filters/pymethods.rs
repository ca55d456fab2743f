//! Python methods on strings, dicts and lists (`'a,b'.split(',')`, `d.items()`, `d.get('k')`),
//! called through minijinja's unknown-method callback.

use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, State, Value};

use super::{err, items};
use crate::template::pyrepr::py_str;

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
    // An undefined argument is an error, as Jinja's StrictUndefined raises when Python uses it:
    // `' '.join(pkgs)` with an undefined `pkgs` (or one whose template failed) must fail the
    // task, not join nothing.
    if args.iter().any(Value::is_undefined) {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("an argument of `{method}()` is undefined"),
        ));
    }
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
