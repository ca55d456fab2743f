//! Ansible's path filters as Python's `os.path` (posix): `splitext`, `normpath`, `path_join`,
//! `commonpath`, `relpath`, `realpath`, `expanduser`, `expandvars`. The controller is this
//! host (ansible-pull), so `realpath`, `expanduser` and `expandvars` read it. A relative path
//! given to `realpath` or `relpath` would depend on the working directory of the controller,
//! which the agent does not share: it fails loudly.

use minijinja::value::ValueKind;
use minijinja::{Error, Value};

use super::{check_defined, err};
use crate::template::pyrepr::{py_str, py_type, tuple};

fn text(value: &Value, what: &str) -> Result<String, Error> {
    check_defined(value, what)?;
    Ok(py_str(value))
}

/// `posixpath.normpath`.
pub(super) fn py_normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let initial = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut comps: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp != ".." || (initial == 0 && comps.is_empty()) || comps.last() == Some(&"..") {
            comps.push(comp);
        } else {
            comps.pop();
        }
    }
    let joined = format!("{}{}", "/".repeat(initial), comps.join("/"));
    if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// `posixpath.join`.
fn py_join(parts: &[String]) -> String {
    let mut path = String::new();
    for (i, b) in parts.iter().enumerate() {
        if i == 0 || b.starts_with('/') {
            path = b.clone();
        } else if path.is_empty() || path.ends_with('/') {
            path.push_str(b);
        } else {
            path.push('/');
            path.push_str(b);
        }
    }
    path
}

pub(super) fn splitext(value: &Value) -> Result<Value, Error> {
    let p = text(value, "splitext")?;
    let sep = p.rfind('/').map_or(0, |i| i + 1);
    if let Some(dot) = p.rfind('.').filter(|d| *d >= sep) {
        if p[sep..dot].chars().any(|c| c != '.') {
            return Ok(tuple(vec![Value::from(&p[..dot]), Value::from(&p[dot..])]));
        }
    }
    Ok(tuple(vec![Value::from(p), Value::from("")]))
}

pub(super) fn normpath(value: &Value) -> Result<Value, Error> {
    Ok(Value::from(py_normpath(&text(value, "normpath")?)))
}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, Error> {
    if !matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable) {
        return Err(err(format!(
            "|{what} expects sequence, got {} instead.",
            py_type(value)
        )));
    }
    value
        .try_iter()?
        .map(|v| {
            check_defined(&v, what)?;
            Ok(py_str(&v))
        })
        .collect()
}

pub(super) fn path_join(value: &Value) -> Result<Value, Error> {
    check_defined(value, "path_join")?;
    if let Some(s) = value.as_str() {
        return Ok(Value::from(s));
    }
    Ok(Value::from(py_join(&strings(value, "path_join")?)))
}

pub(super) fn commonpath(value: &Value) -> Result<Value, Error> {
    check_defined(value, "commonpath")?;
    let paths = strings(value, "commonpath")?;
    let Some(first) = paths.first() else {
        return Err(err("commonpath() arg is an empty sequence"));
    };
    let abs = first.starts_with('/');
    if paths.iter().any(|p| p.starts_with('/') != abs) {
        return Err(err("Can't mix absolute and relative paths"));
    }
    let split: Vec<Vec<&str>> = paths
        .iter()
        .map(|p| {
            p.split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .collect()
        })
        .collect();
    let mut common: Vec<&str> = split[0].clone();
    for s in &split[1..] {
        let n = common.iter().zip(s).take_while(|(a, b)| a == b).count();
        common.truncate(n);
    }
    Ok(Value::from(format!(
        "{}{}",
        if abs { "/" } else { "" },
        common.join("/")
    )))
}

fn absolute(path: &str, what: &str) -> Result<String, Error> {
    if !path.starts_with('/') {
        return Err(err(format!(
            "{what}: the relative path '{path}' would depend on the controller's working \
             directory; give an absolute path"
        )));
    }
    Ok(py_normpath(path))
}

pub(super) fn relpath(value: &Value, start: Option<String>) -> Result<Value, Error> {
    let path = text(value, "relpath")?;
    if path.is_empty() {
        return Err(err("no path specified"));
    }
    let start = start.ok_or_else(|| {
        err("relpath: without a start directory the result would depend on the controller's working directory")
    })?;
    let start = absolute(&start, "relpath")?;
    let path = absolute(&path, "relpath")?;
    let s: Vec<&str> = start.split('/').filter(|c| !c.is_empty()).collect();
    let p: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let common = s.iter().zip(&p).take_while(|(a, b)| a == b).count();
    let mut rel: Vec<String> = vec!["..".to_string(); s.len() - common];
    rel.extend(p[common..].iter().map(|c| c.to_string()));
    if rel.is_empty() {
        return Ok(Value::from("."));
    }
    Ok(Value::from(py_join(&rel)))
}

/// `posixpath.realpath(path, strict=False)`: symbolic links resolved one component at a time,
/// missing components kept as written.
pub(super) fn realpath(value: &Value) -> Result<Value, Error> {
    let path = text(value, "realpath")?;
    if !path.starts_with('/') {
        absolute(&path, "realpath")?;
    }
    let mut seen = std::collections::HashMap::new();
    let (resolved, _) = join_realpath(String::from("/"), &path, &mut seen, 0)?;
    Ok(Value::from(resolved))
}

fn split_last(path: &str) -> (String, String) {
    let i = path.rfind('/').map_or(0, |i| i + 1);
    let (head, tail) = (&path[..i], &path[i..]);
    let trimmed = head.trim_end_matches('/');
    let head = if trimmed.is_empty() { head } else { trimmed };
    (head.to_string(), tail.to_string())
}

type Seen = std::collections::HashMap<String, Option<String>>;

fn join_realpath(
    mut path: String,
    rest: &str,
    seen: &mut Seen,
    depth: usize,
) -> Result<(String, bool), Error> {
    if depth > 100 {
        return Err(err("realpath: too many levels of symbolic links"));
    }
    let mut rest = rest.to_string();
    if rest.starts_with('/') {
        rest.remove(0);
        path = "/".into();
    }
    while !rest.is_empty() {
        let (name, tail) = match rest.find('/') {
            Some(i) => (rest[..i].to_string(), rest[i + 1..].to_string()),
            None => (rest.clone(), String::new()),
        };
        rest = tail;
        if name.is_empty() || name == "." {
            continue;
        }
        if name == ".." {
            if path.is_empty() {
                path = "..".into();
            } else {
                let (head, last) = split_last(&path);
                path = if last == ".." {
                    py_join(&[head, "..".into(), "..".into()])
                } else {
                    head
                };
            }
            continue;
        }
        let newpath = py_join(&[path.clone(), name]);
        let is_link = std::fs::symlink_metadata(&newpath)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if !is_link {
            path = newpath;
            continue;
        }
        if let Some(known) = seen.get(&newpath) {
            match known {
                Some(p) => {
                    path = p.clone();
                    continue;
                }
                None => return Ok((py_join(&[newpath, rest]), false)),
            }
        }
        seen.insert(newpath.clone(), None);
        let target =
            std::fs::read_link(&newpath).map_err(|e| err(format!("realpath: {newpath}: {e}")))?;
        let (p, ok) = join_realpath(path, &target.to_string_lossy(), seen, depth + 1)?;
        if !ok {
            return Ok((py_join(&[p, rest]), false));
        }
        seen.insert(newpath, Some(p.clone()));
        path = p;
    }
    Ok((path, true))
}

/// `posixpath.expanduser`.
pub(super) fn expanduser(value: &Value) -> Result<Value, Error> {
    let path = text(value, "expanduser")?;
    if !path.starts_with('~') {
        return Ok(Value::from(path));
    }
    let i = path.find('/').unwrap_or(path.len());
    let user = &path[1..i];
    let home = if user.is_empty() {
        match std::env::var("HOME") {
            Ok(h) => Some(h),
            Err(_) => nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir.to_string_lossy().into_owned()),
        }
    } else {
        nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .map(|u| u.dir.to_string_lossy().into_owned())
    };
    let Some(home) = home else {
        return Ok(Value::from(path));
    };
    let home = home.trim_end_matches('/');
    let out = format!("{home}{}", &path[i..]);
    Ok(Value::from(if out.is_empty() { "/".into() } else { out }))
}

/// `posixpath.expandvars`: `$name` and `${name}` from the environment, others left as written.
pub(super) fn expandvars(value: &Value) -> Result<Value, Error> {
    let path = text(value, "expandvars")?;
    if !path.contains('$') {
        return Ok(Value::from(path));
    }
    let re = super::compile_regex(r"\$([A-Za-z0-9_]+|\{[^}]*\})", false, false)?;
    let out = re.replace_all(&path, |c: &regex::Captures| {
        let whole = c.get(0).map_or("", |m| m.as_str());
        let name = c.get(1).map_or("", |m| m.as_str());
        let name = name
            .strip_prefix('{')
            .and_then(|n| n.strip_suffix('}'))
            .unwrap_or(name);
        std::env::var(name).unwrap_or_else(|_| whole.to_string())
    });
    Ok(Value::from(out.into_owned()))
}
