//! String and path filters: `join`, `replace`, `quote` ([`crate::shlex::quote`]), `basename`,
//! `dirname`.

use minijinja::value::Kwargs;
use minijinja::{Error, Value};

use super::check_defined;
use crate::template::pyrepr::py_str;

pub(super) fn join(value: &Value, sep: Option<String>, kwargs: Kwargs) -> Result<Value, Error> {
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

pub(super) fn replace(
    value: &Value,
    old: String,
    new: String,
    count: Option<i64>,
) -> Result<Value, Error> {
    check_defined(value, "replace")?;
    let s = py_str(value);
    Ok(Value::from(match count {
        Some(c) if c >= 0 => s.replacen(&old, &new, c as usize),
        _ => s.replace(&old, &new),
    }))
}

pub(super) fn quote(value: &Value) -> Result<Value, Error> {
    check_defined(value, "quote")?;
    let s = if value.is_none() {
        String::new()
    } else {
        py_str(value)
    };
    Ok(Value::from(crate::shlex::quote(&s)))
}

/// Python's `os.path.basename`.
pub(super) fn basename(value: &Value) -> Result<Value, Error> {
    check_defined(value, "basename")?;
    let s = py_str(value);
    Ok(Value::from(match s.rfind('/') {
        Some(i) => &s[i + 1..],
        None => &s[..],
    }))
}

/// Python's `os.path.dirname`.
pub(super) fn dirname(value: &Value) -> Result<Value, Error> {
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
