//! Ansible's Jinja tests: result tests (`changed`, `failed`, ...), `version`, regex tests, type
//! tests, path tests.

use std::cmp::Ordering;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, Value};

use super::filters::{compile_regex, err};
use super::pyrepr::{py_str, py_type};

pub fn register(env: &mut Environment<'static>) {
    env.add_test("changed", |r: &Value| result_flag(r, "changed", "changed"));
    env.add_test("change", |r: &Value| result_flag(r, "changed", "changed"));
    env.add_test("failed", |r: &Value| result_flag(r, "failed", "failed"));
    env.add_test("failure", |r: &Value| result_flag(r, "failed", "failed"));
    env.add_test("succeeded", |r: &Value| {
        result_flag(r, "failed", "succeeded").map(|f| !f)
    });
    env.add_test("success", |r: &Value| {
        result_flag(r, "failed", "succeeded").map(|f| !f)
    });
    env.add_test("successful", |r: &Value| {
        result_flag(r, "failed", "succeeded").map(|f| !f)
    });
    env.add_test("skipped", |r: &Value| result_flag(r, "skipped", "skipped"));
    env.add_test("skip", |r: &Value| result_flag(r, "skipped", "skipped"));
    env.add_test("version", version_bool);
    env.add_test("version_compare", version_bool);
    env.add_test("match", |v: &Value, p: String, k: Kwargs| {
        regex_test(v, &p, k, "match")
    });
    env.add_test("search", |v: &Value, p: String, k: Kwargs| {
        regex_test(v, &p, k, "search")
    });
    env.add_test("regex", |v: &Value, p: String, k: Kwargs| {
        let mt = k
            .get::<Option<String>>("match_type")?
            .unwrap_or_else(|| "search".into());
        regex_test(v, &p, k, &mt)
    });
    env.add_test("truthy", |v: &Value, k: Kwargs| truthy(v, k));
    env.add_test("falsy", |v: &Value, k: Kwargs| truthy(v, k).map(|t| !t));
    env.add_test("file", |p: &Value| path_test(p, |m| m.is_file(), true));
    env.add_test("directory", |p: &Value| path_test(p, |m| m.is_dir(), true));
    env.add_test("exists", |p: &Value| path_test(p, |_| true, true));
    env.add_test("link", |p: &Value| {
        path_test(p, |m| m.file_type().is_symlink(), false)
    });
    env.add_test("abs", |p: &Value| {
        Ok::<bool, Error>(py_str(p).starts_with('/'))
    });
    env.add_test(
        "contains",
        |seq: &Value, item: Value| -> Result<bool, Error> {
            Ok(seq.try_iter()?.any(|x| x == item))
        },
    );
    // Jinja2: strings and dicts are sequences too (they have __len__ and __getitem__)
    env.add_test("sequence", |v: &Value| {
        matches!(
            v.kind(),
            ValueKind::String | ValueKind::Seq | ValueKind::Map | ValueKind::Bytes
        )
    });
    env.add_test("any", |seq: &Value| -> Result<bool, Error> {
        Ok(seq.try_iter()?.any(|x| x.is_true()))
    });
    env.add_test("all", |seq: &Value| -> Result<bool, Error> {
        Ok(seq.try_iter()?.all(|x| x.is_true()))
    });
}

/// `result is changed` & co: the registered result must be a dict; reads one flag of it.
fn result_flag(result: &Value, key: &str, test: &str) -> Result<bool, Error> {
    if result.is_undefined() {
        return Err(Error::new(
            minijinja::ErrorKind::UndefinedError,
            format!("the '{test}' test was given an undefined value"),
        ));
    }
    if result.kind() != ValueKind::Map {
        return Err(err(format!("The '{test}' test expects a dictionary")));
    }
    let v = result.get_attr(key).unwrap_or_default();
    Ok(!v.is_undefined() && v.is_true())
}

fn truthy(v: &Value, kwargs: Kwargs) -> Result<bool, Error> {
    let convert_bool = kwargs.get::<Option<bool>>("convert_bool")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    if v.is_undefined() {
        return Err(Error::new(
            minijinja::ErrorKind::UndefinedError,
            "truthy/falsy on an undefined value",
        ));
    }
    if convert_bool
        && matches!(
            v.kind(),
            ValueKind::String | ValueKind::Number | ValueKind::Bool
        )
    {
        return Ok(super::filters::to_bool(v));
    }
    Ok(v.is_true())
}

fn regex_test(v: &Value, pattern: &str, kwargs: Kwargs, match_type: &str) -> Result<bool, Error> {
    let ic = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let ml = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    if v.is_undefined() {
        return Err(Error::new(
            minijinja::ErrorKind::UndefinedError,
            "regex test on an undefined value",
        ));
    }
    let s = py_str(v);
    let anchored = match match_type {
        "match" => format!("\\A(?:{pattern})"),
        "fullmatch" => format!("\\A(?:{pattern})\\z"),
        _ => pattern.to_string(),
    };
    let re = compile_regex(&anchored, ic, ml)?;
    Ok(re.is_match(&s))
}

fn path_test(
    p: &Value,
    f: impl Fn(&std::fs::Metadata) -> bool,
    follow: bool,
) -> Result<bool, Error> {
    if p.is_undefined() {
        return Err(Error::new(
            minijinja::ErrorKind::UndefinedError,
            "path test on an undefined value",
        ));
    }
    let s = py_str(p);
    let s = if let Some(rest) = s.strip_prefix("~/") {
        format!("{}/{}", std::env::var("HOME").unwrap_or_default(), rest)
    } else {
        s
    };
    let md = if follow {
        std::fs::metadata(&s)
    } else {
        std::fs::symlink_metadata(&s)
    };
    Ok(md.map(|m| f(&m)).unwrap_or(false))
}

// ---------------------------------------------------------------------------------------
// LooseVersion

#[derive(Debug, PartialEq, Eq)]
enum Part {
    Num(u128),
    Str(String),
}

/// distutils' LooseVersion components: runs of digits, runs of letters, other characters;
/// dots dropped.
fn loose_parts(s: &str) -> Vec<Part> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_ascii_digit() {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let t: String = chars[start..i].iter().collect();
            out.push(match t.parse() {
                Ok(n) => Part::Num(n),
                Err(_) => Part::Str(t),
            });
        } else if c.is_ascii_lowercase() {
            while i < chars.len() && chars[i].is_ascii_lowercase() {
                i += 1;
            }
            out.push(Part::Str(chars[start..i].iter().collect()));
        } else if c == '.' {
            i += 1;
        } else {
            // anything else up to the next digit/lowercase/dot is one component
            while i < chars.len()
                && !chars[i].is_ascii_digit()
                && !chars[i].is_ascii_lowercase()
                && chars[i] != '.'
            {
                i += 1;
            }
            out.push(Part::Str(chars[start..i].iter().collect()));
        }
    }
    out
}

fn cmp_parts(a: &[Part], b: &[Part]) -> Result<Ordering, Error> {
    for (x, y) in a.iter().zip(b.iter()) {
        let o = match (x, y) {
            (Part::Num(x), Part::Num(y)) => x.cmp(y),
            (Part::Str(x), Part::Str(y)) => x.cmp(y),
            _ => return Err(err(
                "Version comparison failed: '<' not supported between instances of 'int' and 'str'",
            )),
        };
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    Ok(a.len().cmp(&b.len()))
}

/// Compares two versions the way Ansible's `version` test does (loose versions).
pub fn version_compare(value: &str, version: &str, op: &str) -> Result<bool, Error> {
    let o = cmp_parts(&loose_parts(value), &loose_parts(version))?;
    Ok(match op {
        "==" | "=" | "eq" => o == Ordering::Equal,
        "!=" | "<>" | "ne" => o != Ordering::Equal,
        "<" | "lt" => o == Ordering::Less,
        "<=" | "le" => o != Ordering::Greater,
        ">" | "gt" => o == Ordering::Greater,
        ">=" | "ge" => o != Ordering::Less,
        other => return Err(err(format!("Invalid operator type ({other})"))),
    })
}

fn version_bool(
    value: &Value,
    version: Value,
    op: Option<String>,
    kwargs: Kwargs,
) -> Result<bool, Error> {
    let op = match op {
        Some(o) => o,
        None => kwargs
            .get::<Option<String>>("operator")?
            .unwrap_or_else(|| "eq".into()),
    };
    let _: Option<bool> = kwargs.get("strict")?;
    let _: Option<String> = kwargs.get("version_type")?;
    kwargs.assert_all_used()?;
    if value.is_undefined() || version.is_undefined() {
        return Err(Error::new(
            minijinja::ErrorKind::UndefinedError,
            "version test on an undefined value",
        ));
    }
    if matches!(value.kind(), ValueKind::Seq | ValueKind::Map) {
        return Err(err(format!(
            "Version comparison needs a version string, got {}",
            py_type(value)
        )));
    }
    version_compare(&py_str(value), &py_str(&version), &op)
}

/// Exposed for the `version_compare` filter.
pub fn version_test(
    value: &Value,
    version: Value,
    op: Option<String>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    version_bool(value, version, op, kwargs).map(Value::from)
}
