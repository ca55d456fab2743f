//! Lookups that reshape their terms: `items`, `list`, `dict`, `indexed_items`, `nested`,
//! `together`, `subelements`, `random_choice`, `inventory_hostnames`.

use indexmap::IndexMap;
use minijinja::value::ValueKind;
use minijinja::{Error, Value};

use super::{err, map_entries, Frame};
use crate::vars::map_value;

fn seq(v: &Value) -> Option<Vec<Value>> {
    // `a + b` of two lists is an iterable object in minijinja, not a plain sequence.
    if matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable) {
        Some(v.try_iter().map(|i| i.collect()).unwrap_or_default())
    } else {
        None
    }
}

/// Ansible's `_flatten`: lists among the terms are spliced in, one level.
pub(super) fn flatten_one(terms: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::with_capacity(terms.len());
    for t in terms {
        match seq(&t) {
            Some(inner) => out.extend(inner),
            None => out.push(t),
        }
    }
    out
}

/// `dict`: `{key, value}` for each entry of each mapping.
pub(super) fn dict(terms: Vec<Value>) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for t in &terms {
        let entries = map_entries(t).ok_or_else(|| {
            err(format!(
                "the 'dict' lookup plugin expects a dictionary, got '{t}'"
            ))
        })?;
        for (k, v) in entries {
            out.push(map_value([("key", k), ("value", v)]));
        }
    }
    Ok(out)
}

/// `indexed_items`: `[index, item]` pairs of the flattened terms.
pub(super) fn indexed_items(terms: Vec<Value>) -> Vec<Value> {
    flatten_one(terms)
        .into_iter()
        .enumerate()
        .map(|(i, v)| Value::from(vec![Value::from(i), v]))
        .collect()
}

fn list_terms(terms: &[Value], lookup: &str) -> Result<Vec<Vec<Value>>, Error> {
    terms
        .iter()
        .map(|t| {
            seq(t).ok_or_else(|| err(format!("the '{lookup}' lookup expects lists, got '{t}'")))
        })
        .collect()
}

/// `nested`: the product of the lists, each combination flattened one level.
pub(super) fn nested(terms: Vec<Value>) -> Result<Vec<Value>, Error> {
    if terms.is_empty() {
        return Err(err(
            "with_nested requires at least one element in the nested list",
        ));
    }
    let lists = list_terms(&terms, "nested")?;
    let mut result: Vec<Value> = lists[0].clone();
    for next in &lists[1..] {
        let mut combined = Vec::with_capacity(result.len() * next.len());
        for x in &result {
            for y in next {
                combined.push(Value::from(flatten_one(vec![x.clone(), y.clone()])));
            }
        }
        result = combined;
    }
    Ok(result
        .into_iter()
        .map(|x| Value::from(flatten_one(vec![x])))
        .collect())
}

/// `cartesian` (community.general): the product of the lists, each combination flattened one
/// level (a term that is not a list is a list of itself).
pub(super) fn cartesian(terms: Vec<Value>) -> Result<Vec<Value>, Error> {
    if terms.is_empty() {
        return Err(err(
            "with_cartesian requires at least one element in each list",
        ));
    }
    let lists: Vec<Vec<Value>> = terms
        .iter()
        .map(|t| seq(t).unwrap_or_else(|| vec![t.clone()]))
        .collect();
    let mut result: Vec<Vec<Value>> = vec![Vec::new()];
    for list in &lists {
        let mut next = Vec::with_capacity(result.len() * list.len());
        for prefix in &result {
            for x in list {
                let mut row = prefix.clone();
                row.push(x.clone());
                next.push(row);
            }
        }
        result = next;
    }
    Ok(result
        .into_iter()
        .map(|row| Value::from(flatten_one(row)))
        .collect())
}

/// A list of one list (of one list…) is its innermost item.
fn unwrap_list_of_one(v: Value) -> Value {
    match seq(&v) {
        Some(mut l) if l.len() == 1 => {
            let inner = l.remove(0);
            if inner.kind() == ValueKind::Seq {
                unwrap_list_of_one(inner)
            } else {
                inner
            }
        }
        _ => v,
    }
}

/// `flattened` (community.general): lists flattened at every depth; a `None`/`null` string
/// ends the list (as the plugin does).
pub(super) fn flattened(terms: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for t in terms {
        let t = unwrap_list_of_one(t);
        if matches!(t.as_str(), Some("None" | "null")) {
            break;
        }
        match seq(&t) {
            Some(inner) => out.extend(flattened(inner)),
            None => out.push(t),
        }
    }
    out
}

/// `together`: the lists side by side, the shorter ones padded with `None`.
pub(super) fn together(terms: Vec<Value>) -> Result<Vec<Value>, Error> {
    if terms.is_empty() {
        return Err(err(
            "with_together requires at least one element in each list",
        ));
    }
    let lists = list_terms(&terms, "together")?;
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    Ok((0..longest)
        .map(|i| {
            let row: Vec<Value> = lists
                .iter()
                .map(|l| l.get(i).cloned().unwrap_or(Value::from(())))
                .collect();
            Value::from(flatten_one(row))
        })
        .collect())
}

fn skipped(v: &Value) -> bool {
    v.get_attr("skipped")
        .ok()
        .filter(|s| !s.is_undefined())
        .is_some_and(|s| s.kind() != ValueKind::Bool || s.is_true())
}

/// `item0` without the key at `path` (ansible-core pops the sub-list out of the element).
fn without(item: &Value, path: &[&str]) -> Value {
    let Some(entries) = map_entries(item) else {
        return item.clone();
    };
    let mut out: IndexMap<Value, Value> = IndexMap::new();
    for (k, v) in entries {
        match (k.as_str(), path) {
            (Some(name), [last]) if name == *last => {}
            (Some(name), [first, rest @ ..]) if name == *first && !rest.is_empty() => {
                out.insert(k, without(&v, rest));
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    Value::from(out)
}

/// `subelements`: `[element, sub-item]` for each sub-item of the list at a (dotted) key of
/// each element; `skip_missing` skips elements without the key.
pub(super) fn subelements(terms: Vec<Value>) -> Result<Vec<Value>, Error> {
    let usage = |msg: &str| {
        err(format!(
            "subelements lookup expects a list of two or three items, {msg}"
        ))
    };
    if !(2..=3).contains(&terms.len()) {
        return Err(usage(""));
    }
    let Some(key) = terms[1].as_str() else {
        return Err(usage(
            "first a dict or a list, second a string pointing to the subkey",
        ));
    };
    let elements: Vec<Value> = match (seq(&terms[0]), map_entries(&terms[0])) {
        (Some(list), _) => list,
        (None, Some(entries)) => {
            if skipped(&terms[0]) {
                return Ok(Vec::new());
            }
            entries.into_iter().map(|(_, v)| v).collect()
        }
        _ => {
            return Err(usage(
                "first a dict or a list, second a string pointing to the subkey",
            ))
        }
    };
    let mut skip_missing = false;
    if let Some(flags) = terms.get(2) {
        let entries = map_entries(flags).ok_or_else(|| {
            usage("the optional third item must be a dict with flags ('skip_missing',)")
        })?;
        for (k, v) in entries {
            if k.as_str() != Some("skip_missing") {
                return Err(usage(
                    "the optional third item must be a dict with flags ('skip_missing',)",
                ));
            }
            skip_missing = crate::args::to_bool(&v).unwrap_or(false);
        }
    }
    let path: Vec<&str> = key.split('.').collect();
    let mut out = Vec::new();
    for item0 in elements {
        if map_entries(&item0).is_none() {
            return Err(err(format!(
                "subelements lookup expects a dictionary, got '{item0}'"
            )));
        }
        if skipped(&item0) {
            continue;
        }
        let mut sub = item0.clone();
        let mut sublist = Vec::new();
        for (i, subkey) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let next = sub.get_attr(subkey).ok().filter(|v| !v.is_undefined());
            let Some(next) = next else {
                if skip_missing {
                    continue;
                }
                return Err(err(format!(
                    "could not find '{subkey}' key in iterated item '{sub}'"
                )));
            };
            if !last {
                if next.kind() != ValueKind::Map {
                    if skip_missing {
                        continue;
                    }
                    return Err(err(format!(
                        "the key {subkey} should point to a dictionary, got '{next}'"
                    )));
                }
                sub = next;
            } else {
                sublist = seq(&next).ok_or_else(|| {
                    err(format!(
                        "the key {subkey} should point to a list, got '{next}'"
                    ))
                })?;
            }
        }
        if sublist.is_empty() {
            continue;
        }
        let element = without(&item0, &path);
        for item1 in sublist {
            out.push(Value::from(vec![element.clone(), item1]));
        }
    }
    Ok(out)
}

/// `random_choice`: one of the terms at random.
pub(super) fn random_choice(terms: Vec<Value>) -> Vec<Value> {
    if terms.is_empty() {
        return terms;
    }
    let i = fastrand::usize(..terms.len());
    vec![terms[i].clone()]
}

/// `inventory_hostnames`: the hosts a pattern names (group and host names, `all`, `*`
/// wildcards, `,`/`:` lists with `&` and `!`), from `groups` — this host alone without an
/// inventory.
pub(super) fn inventory_hostnames(terms: Vec<Value>, fr: &Frame) -> Result<Vec<Value>, Error> {
    let groups: Vec<(String, Vec<String>)> = match fr
        .vars
        .get_attr("groups")
        .ok()
        .filter(|g| !g.is_undefined())
        .and_then(|g| map_entries(&g))
    {
        Some(entries) => entries
            .into_iter()
            .map(|(k, v)| {
                let hosts = seq(&v)
                    .unwrap_or_default()
                    .iter()
                    .map(|h| h.to_string())
                    .collect();
                (k.to_string(), hosts)
            })
            .collect(),
        None => vec![
            ("all".into(), vec![fr.inventory_hostname.to_string()]),
            ("ungrouped".into(), vec![fr.inventory_hostname.to_string()]),
        ],
    };
    let all: Vec<String> = groups
        .iter()
        .find(|(g, _)| g == "all")
        .map(|(_, h)| h.clone())
        .unwrap_or_default();
    let resolve = |name: &str| -> Result<Vec<String>, Error> {
        if name == "all" || name == "*" {
            return Ok(all.clone());
        }
        if name.starts_with('~') {
            return Err(err(format!(
                "inventory_hostnames: regular expression patterns ({name}) are not supported"
            )));
        }
        if let Some((_, hosts)) = groups.iter().find(|(g, _)| g == name) {
            return Ok(hosts.clone());
        }
        if name.contains('*') {
            let re = super::files::glob_regex(name)?;
            let mut out: Vec<String> = all.iter().filter(|h| re.is_match(h)).cloned().collect();
            for (g, hosts) in &groups {
                if re.is_match(g) {
                    out.extend(hosts.iter().cloned());
                }
            }
            return Ok(out);
        }
        Ok(all.iter().filter(|h| *h == name).cloned().collect())
    };
    let mut out: Vec<String> = Vec::new();
    for t in &terms {
        let patterns: Vec<String> = match seq(t) {
            Some(list) => list.iter().map(|v| v.to_string()).collect(),
            None => vec![t.to_string()],
        };
        let mut selected: Vec<String> = Vec::new();
        let parts: Vec<&str> = patterns
            .iter()
            .flat_map(|p| p.split([',', ':']))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let mut plain = Vec::new();
        let mut and = Vec::new();
        let mut not = Vec::new();
        for p in parts {
            if let Some(rest) = p.strip_prefix('&') {
                and.push(rest);
            } else if let Some(rest) = p.strip_prefix('!') {
                not.push(rest);
            } else {
                plain.push(p);
            }
        }
        for p in plain {
            for h in resolve(p)? {
                if !selected.contains(&h) {
                    selected.push(h);
                }
            }
        }
        for p in and {
            let keep = resolve(p)?;
            selected.retain(|h| keep.contains(h));
        }
        for p in not {
            let drop = resolve(p)?;
            selected.retain(|h| !drop.contains(h));
        }
        for h in selected {
            if !out.contains(&h) {
                out.push(h);
            }
        }
    }
    Ok(out.into_iter().map(Value::from).collect())
}
