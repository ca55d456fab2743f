//! Filters on dictionaries and lists: `combine`, `dict2items`, `items2dict`, `flatten` and the
//! set operations (`union`, `intersect`, `difference`, `symmetric_difference`).

use indexmap::IndexMap;
use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Error, Value};

use super::{check_defined, err, items, map_of, to_map};
use crate::template::pyrepr::py_type;

fn merge(
    a: &IndexMap<Value, Value>,
    b: &IndexMap<Value, Value>,
    recursive: bool,
    list_merge: &str,
) -> Result<IndexMap<Value, Value>, Error> {
    let mut out = a.clone();
    for (k, v) in b {
        let merged = match out.get(k) {
            Some(old)
                if recursive && old.kind() == ValueKind::Map && v.kind() == ValueKind::Map =>
            {
                map_of(merge(&to_map(old)?, &to_map(v)?, recursive, list_merge)?)
            }
            Some(old) if old.kind() == ValueKind::Seq && v.kind() == ValueKind::Seq => {
                let (o, n) = (items(old)?, items(v)?);
                match list_merge {
                    "keep" => old.clone(),
                    "append" => Value::from(o.into_iter().chain(n).collect::<Vec<_>>()),
                    "prepend" => Value::from(n.into_iter().chain(o).collect::<Vec<_>>()),
                    "append_rp" => {
                        let mut r: Vec<Value> = o.into_iter().filter(|x| !n.contains(x)).collect();
                        r.extend(n);
                        Value::from(r)
                    }
                    "prepend_rp" => {
                        let mut r = n.clone();
                        r.extend(o.into_iter().filter(|x| !n.contains(x)));
                        Value::from(r)
                    }
                    _ => v.clone(),
                }
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    Ok(out)
}

pub(super) fn combine(value: &Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "combine")?;
    let recursive = kwargs.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let list_merge = kwargs
        .get::<Option<String>>("list_merge")?
        .unwrap_or_else(|| "replace".into());
    kwargs.assert_all_used()?;
    let mut dicts = Vec::new();
    for v in std::iter::once(value).chain(others.iter()) {
        check_defined(v, "combine")?;
        if v.kind() == ValueKind::Seq {
            for item in v.try_iter()? {
                dicts.push(to_map(&item)?);
            }
        } else {
            dicts.push(to_map(v)?);
        }
    }
    let mut acc = IndexMap::new();
    for d in &dicts {
        acc = merge(&acc, d, recursive, &list_merge)?;
    }
    Ok(map_of(acc))
}

pub(super) fn dict2items(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "dict2items")?;
    let key_name = kwargs
        .get::<Option<String>>("key_name")?
        .unwrap_or_else(|| "key".into());
    let value_name = kwargs
        .get::<Option<String>>("value_name")?
        .unwrap_or_else(|| "value".into());
    kwargs.assert_all_used()?;
    if value.kind() != ValueKind::Map {
        return Err(err(format!(
            "dict2items requires a dictionary, got {}",
            py_type(value)
        )));
    }
    let mut out = Vec::new();
    for (k, v) in to_map(value)? {
        let mut m = IndexMap::new();
        m.insert(Value::from(key_name.as_str()), k);
        m.insert(Value::from(value_name.as_str()), v);
        out.push(map_of(m));
    }
    Ok(Value::from(out))
}

pub(super) fn items2dict(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "items2dict")?;
    let key_name = kwargs
        .get::<Option<String>>("key_name")?
        .unwrap_or_else(|| "key".into());
    let value_name = kwargs
        .get::<Option<String>>("value_name")?
        .unwrap_or_else(|| "value".into());
    kwargs.assert_all_used()?;
    let mut out = IndexMap::new();
    for item in value.try_iter()? {
        let k = item.get_attr(&key_name)?;
        let v = item.get_attr(&value_name)?;
        if k.is_undefined() || v.is_undefined() {
            return Err(err(format!(
                "items2dict requires each element to have '{key_name}' and '{value_name}' keys"
            )));
        }
        out.insert(k, v);
    }
    Ok(map_of(out))
}

fn flatten_into(
    out: &mut Vec<Value>,
    v: &Value,
    levels: Option<i64>,
    skip_nulls: bool,
) -> Result<(), Error> {
    for item in v.try_iter()? {
        if skip_nulls && (item.is_none() || item.as_str() == Some("None")) {
            continue;
        }
        if item.kind() == ValueKind::Seq && levels.is_none_or(|l| l > 0) {
            flatten_into(out, &item, levels.map(|l| l - 1), skip_nulls)?;
        } else {
            out.push(item);
        }
    }
    Ok(())
}

pub(super) fn flatten(value: &Value, levels: Option<i64>, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "flatten")?;
    let levels = match levels {
        Some(l) => Some(l),
        None => kwargs.get::<Option<i64>>("levels")?,
    };
    let skip_nulls = kwargs.get::<Option<bool>>("skip_nulls")?.unwrap_or(true);
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    flatten_into(&mut out, value, levels, skip_nulls)?;
    Ok(Value::from(out))
}

fn unique_list(it: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in it {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

pub(super) fn union(a: &Value, b: &Value) -> Result<Value, Error> {
    Ok(Value::from(unique_list(
        items(a)?.into_iter().chain(items(b)?),
    )))
}

pub(super) fn intersect(a: &Value, b: &Value) -> Result<Value, Error> {
    let bi = items(b)?;
    Ok(Value::from(unique_list(
        items(a)?.into_iter().filter(|x| bi.contains(x)),
    )))
}

pub(super) fn difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let bi = items(b)?;
    Ok(Value::from(unique_list(
        items(a)?.into_iter().filter(|x| !bi.contains(x)),
    )))
}

pub(super) fn symmetric_difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let (ai, bi) = (items(a)?, items(b)?);
    let mut out: Vec<Value> = ai.iter().filter(|x| !bi.contains(x)).cloned().collect();
    out.extend(bi.iter().filter(|x| !ai.contains(x)).cloned());
    Ok(Value::from(unique_list(out)))
}
