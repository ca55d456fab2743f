//! ansible-core's `ini` inventory plugin: `[group]` host lines with inline `key=value`
//! variables and ranges, `[group:children]`, `[group:vars]`; hosts before any section are
//! ungrouped. Values are read as Python literals (`1`, `True`, `'x'`), else kept as text.

use minijinja::Value;

use super::range;
use super::{Inventory, InventoryError};

#[derive(Clone, Copy, PartialEq)]
enum State {
    Hosts,
    Children,
    Vars,
}

pub fn parse(file: &str, text: &str) -> Result<Inventory, InventoryError> {
    let mut inv = Inventory::empty(Some(file.to_string()));
    let mut group = "ungrouped".to_string();
    let mut state = State::Hosts;
    // Groups named in `:vars`/`:children` before (or without) a section of their own.
    let mut pending: Vec<(String, u32, State, String)> = Vec::new();
    let mut defined: Vec<String> = vec!["all".into(), "ungrouped".into()];
    for (i, raw) in text.lines().enumerate() {
        let lineno = i as u32 + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            let head = strip_comment(line).trim();
            let Some(inner) = head.strip_prefix('[').and_then(|h| h.strip_suffix(']')) else {
                return Err(InventoryError::at(
                    file,
                    lineno,
                    format!("invalid section header `{line}`"),
                ));
            };
            let (name, kind) = match inner.split_once(':') {
                Some((n, k)) => (n, k),
                None => (inner, "hosts"),
            };
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err(InventoryError::at(
                    file,
                    lineno,
                    format!("invalid group name in `{line}`"),
                ));
            }
            state = match kind {
                "hosts" => State::Hosts,
                "children" => State::Children,
                "vars" => State::Vars,
                other => {
                    return Err(InventoryError::at(
                        file,
                        lineno,
                        format!("Section [{inner}] has unknown type: {other}"),
                    ))
                }
            };
            group = name.to_string();
            if state == State::Vars {
                if !defined.contains(&group) && !pending.iter().any(|p| p.0 == group) {
                    pending.push((group.clone(), lineno, State::Vars, group.clone()));
                }
            } else {
                inv.group_mut(&group);
                defined.push(group.clone());
                pending.retain(|p| p.0 != group);
            }
            continue;
        }
        match state {
            State::Hosts => host_line(&mut inv, file, lineno, &group, line)?,
            State::Children => {
                let child = strip_comment(line).trim();
                if child.is_empty() || child.chars().any(char::is_whitespace) {
                    return Err(InventoryError::at(
                        file,
                        lineno,
                        format!("invalid group name `{child}`"),
                    ));
                }
                if !defined.iter().any(|d| d == child) && !pending.iter().any(|p| p.0 == child) {
                    pending.push((child.to_string(), lineno, State::Children, group.clone()));
                }
                inv.add_child(&group, child);
            }
            State::Vars => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(InventoryError::at(
                        file,
                        lineno,
                        format!("Expected key=value, got: {line}"),
                    ));
                };
                let value = python_literal(v.trim());
                inv.group_mut(&group)
                    .vars
                    .insert(k.trim().to_string(), value);
            }
        }
    }
    if let Some((name, line, state, parent)) = pending.into_iter().next() {
        let message = if state == State::Vars {
            format!("Section [{name}:vars] not valid for undefined group: {name}")
        } else {
            format!("Section [{parent}:children] includes undefined group: {name}")
        };
        return Err(InventoryError::at(file, line, message));
    }
    Ok(inv)
}

fn host_line(
    inv: &mut Inventory,
    file: &str,
    lineno: u32,
    group: &str,
    line: &str,
) -> Result<(), InventoryError> {
    let tokens = crate::shlex::split(strip_comment(line))
        .map_err(|e| InventoryError::at(file, lineno, e.to_string()))?;
    let Some((pattern, assignments)) = tokens.split_first() else {
        return Ok(());
    };
    let mut vars = Vec::new();
    for t in assignments {
        let Some((k, v)) = t.split_once('=') else {
            return Err(InventoryError::at(
                file,
                lineno,
                format!("Expected key=value host variable assignment, got: {t}"),
            ));
        };
        vars.push((k.to_string(), python_literal(v)));
    }
    let names =
        range::expand(&strip_port(pattern)).map_err(|e| InventoryError::at(file, lineno, e))?;
    for name in names {
        inv.add_host(group, &name);
        if let Some(hv) = inv.hosts.get_mut(&name) {
            for (k, v) in &vars {
                hv.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

/// `host:2222` → `host` (the port means nothing to a local run); IPv6 addresses stay whole.
fn strip_port(pattern: &str) -> String {
    match pattern.rsplit_once(':') {
        Some((h, p))
            if !h.contains(':') && !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) =>
        {
            h.to_string()
        }
        _ => pattern.to_string(),
    }
}

/// The line up to a `#` outside quotes (Python's shlex with comments).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Python's `ast.literal_eval` for the literals inventories hold; anything else stays text.
pub(super) fn python_literal(v: &str) -> Value {
    match v {
        "True" => return Value::from(true),
        "False" => return Value::from(false),
        "None" => return Value::from(()),
        _ => {}
    }
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        // Python 3 refuses leading zeros (`01` stays text).
        if !(digits.len() > 1 && digits.starts_with('0')) {
            if let Ok(i) = v.parse::<i64>() {
                return Value::from(i);
            }
        }
        return Value::from(v);
    }
    if !digits.is_empty()
        && digits.chars().any(|c| c.is_ascii_digit())
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        if let Ok(f) = v.parse::<f64>() {
            return Value::from(f);
        }
    }
    for q in ['\'', '"'] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            let inner = &v[1..v.len() - 1];
            if !inner.contains(q) && !inner.contains('\\') {
                return Value::from(inner);
            }
        }
    }
    if v.starts_with('[') || v.starts_with('{') {
        let name: std::sync::Arc<str> = std::sync::Arc::from("<inventory value>");
        if let Ok(node) = crate::yaml::parse(&name, v) {
            return node.to_value();
        }
    }
    Value::from(v)
}
