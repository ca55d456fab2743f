//! Ansible's data filters: `product`, `permutations`, `combinations` (itertools), `zip`,
//! `zip_longest`, `subelements`, `extract`, `rekey_on_member`, the math ones (`log`, `pow`,
//! `root`) and the size ones (`human_readable`, `human_to_bytes`). Python tuples are lists
//! here.

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Error, Value};

use super::{check_defined, err, items, Params};
use crate::template::pyrepr::{py_repr, py_str, py_type, tuple};

fn list(value: &Value, what: &str) -> Result<Vec<Value>, Error> {
    check_defined(value, what)?;
    match value.as_str() {
        Some(s) => Ok(s.chars().map(|c| Value::from(c.to_string())).collect()),
        None => items(value),
    }
}

pub(super) fn product(value: &Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let repeat = kwargs.get::<Option<i64>>("repeat")?.unwrap_or(1).max(0) as usize;
    kwargs.assert_all_used()?;
    let mut pools = vec![list(value, "product")?];
    for o in others.iter() {
        pools.push(list(o, "product")?);
    }
    let pools: Vec<Vec<Value>> = std::iter::repeat_n(pools, repeat).flatten().collect();
    let mut result: Vec<Vec<Value>> = vec![Vec::new()];
    for pool in &pools {
        let mut next = Vec::with_capacity(result.len() * pool.len());
        for r in &result {
            for item in pool {
                let mut t = r.clone();
                t.push(item.clone());
                next.push(t);
            }
        }
        result = next;
    }
    Ok(tuples(result))
}

/// `itertools.permutations(pool, r)` in its order.
fn permutations_of(pool: &[Value], r: usize) -> Vec<Vec<Value>> {
    let n = pool.len();
    let mut out = Vec::new();
    if r > n {
        return out;
    }
    let mut indices: Vec<usize> = (0..n).collect();
    let mut cycles: Vec<usize> = (n - r + 1..=n).rev().collect();
    out.push(indices[..r].iter().map(|&i| pool[i].clone()).collect());
    'outer: loop {
        for i in (0..r).rev() {
            cycles[i] -= 1;
            if cycles[i] == 0 {
                let moved = indices.remove(i);
                indices.push(moved);
                cycles[i] = n - i;
            } else {
                let j = cycles[i];
                indices.swap(i, n - j);
                out.push(indices[..r].iter().map(|&i| pool[i].clone()).collect());
                continue 'outer;
            }
        }
        return out;
    }
}

/// `itertools.combinations(pool, r)` in its order.
fn combinations_of(pool: &[Value], r: usize) -> Vec<Vec<Value>> {
    let n = pool.len();
    let mut out = Vec::new();
    if r > n {
        return out;
    }
    let mut idx: Vec<usize> = (0..r).collect();
    loop {
        out.push(idx.iter().map(|&i| pool[i].clone()).collect());
        let Some(i) = (0..r).rev().find(|&i| idx[i] != i + n - r) else {
            return out;
        };
        idx[i] += 1;
        for j in i + 1..r {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

fn tuples(v: Vec<Vec<Value>>) -> Value {
    Value::from(v.into_iter().map(tuple).collect::<Vec<_>>())
}

pub(super) fn permutations(value: &Value, r: Option<Value>) -> Result<Value, Error> {
    let pool = list(value, "permutations")?;
    let r = match r.filter(|r| !r.is_none()) {
        Some(r) => i64::try_from(r).map_err(|_| err("r must be an integer"))?,
        None => pool.len() as i64,
    };
    if r < 0 {
        return Err(err("r must be non-negative"));
    }
    Ok(tuples(permutations_of(&pool, r as usize)))
}

pub(super) fn combinations(value: &Value, r: i64) -> Result<Value, Error> {
    let pool = list(value, "combinations")?;
    if r < 0 {
        return Err(err("r must be non-negative"));
    }
    Ok(tuples(combinations_of(&pool, r as usize)))
}

pub(super) fn zip(value: &Value, others: Rest<Value>) -> Result<Value, Error> {
    let mut lists = vec![list(value, "zip")?];
    for o in others.iter() {
        lists.push(list(o, "zip")?);
    }
    let n = lists.iter().map(|l| l.len()).min().unwrap_or(0);
    Ok(tuples(
        (0..n)
            .map(|i| lists.iter().map(|l| l[i].clone()).collect())
            .collect(),
    ))
}

pub(super) fn zip_longest(
    value: &Value,
    others: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let fill: Value = kwargs
        .get::<Option<Value>>("fillvalue")?
        .unwrap_or(Value::from(()));
    kwargs.assert_all_used()?;
    let mut lists = vec![list(value, "zip_longest")?];
    for o in others.iter() {
        lists.push(list(o, "zip_longest")?);
    }
    let n = lists.iter().map(|l| l.len()).max().unwrap_or(0);
    Ok(tuples(
        (0..n)
            .map(|i| {
                lists
                    .iter()
                    .map(|l| l.get(i).cloned().unwrap_or_else(|| fill.clone()))
                    .collect()
            })
            .collect(),
    ))
}

pub(super) fn subelements(
    value: &Value,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let p = Params::new(
        "subelements",
        &["subelements", "skip_missing"],
        &args,
        &kwargs,
    )?;
    check_defined(value, "subelements")?;
    let elements: Vec<Value> = match value.kind() {
        ValueKind::Map => value
            .try_iter()?
            .map(|k| value.get_item(&k).unwrap_or_default())
            .collect(),
        ValueKind::Seq => items(value)?,
        _ => return Err(err("obj must be a list of dicts or a nested dict")),
    };
    let path: Vec<Value> = match p.value(0) {
        Some(v) if v.kind() == ValueKind::String => py_str(v).split('.').map(Value::from).collect(),
        Some(v) if v.kind() == ValueKind::Seq => items(v)?,
        _ => return Err(err("subelements must be a list or a string")),
    };
    let skip_missing = p.bool(1, false);
    let mut out = Vec::new();
    for element in elements {
        let mut values = element.clone();
        for key in &path {
            if values.kind() != ValueKind::Map {
                return Err(err(format!(
                    "the key {} should point to a dictionary, got '{}'",
                    py_str(key),
                    py_str(&values)
                )));
            }
            let next = values.get_item(key)?;
            if next.is_undefined() {
                if skip_missing {
                    values = Value::from(Vec::<Value>::new());
                    break;
                }
                return Err(err(format!(
                    "could not find {} key in iterated item {}",
                    py_repr(key),
                    py_repr(&values)
                )));
            }
            values = next;
        }
        if values.kind() != ValueKind::Seq {
            return Err(err(format!(
                "the key {} should point to a list, got {}",
                py_repr(path.last().unwrap_or(&Value::from(""))),
                py_repr(&values)
            )));
        }
        for v in values.try_iter()? {
            out.push(tuple(vec![element.clone(), v]));
        }
    }
    Ok(Value::from(out))
}

pub(super) fn extract(
    item: &Value,
    container: &Value,
    morekeys: Option<Value>,
) -> Result<Value, Error> {
    let mut keys = vec![item.clone()];
    match morekeys {
        None => {}
        Some(m) if m.kind() == ValueKind::Seq => keys.extend(items(&m)?),
        Some(m) => keys.push(m),
    }
    let mut value = container.clone();
    for key in keys {
        if value.is_undefined() {
            break;
        }
        value = value.get_item(&key).unwrap_or(Value::UNDEFINED);
    }
    Ok(value)
}

pub(super) fn rekey_on_member(
    value: &Value,
    key: Value,
    duplicates: Option<String>,
) -> Result<Value, Error> {
    check_defined(value, "rekey_on_member")?;
    let duplicates = duplicates.unwrap_or_else(|| "error".into());
    if duplicates != "error" && duplicates != "overwrite" {
        return Err(err(format!(
            "duplicates parameter to rekey_on_member has unknown value '{duplicates}'"
        )));
    }
    let elements: Vec<Value> = match value.kind() {
        ValueKind::Map => value
            .try_iter()?
            .map(|k| value.get_item(&k).unwrap_or_default())
            .collect(),
        ValueKind::Seq | ValueKind::Iterable => items(value)?,
        _ => return Err(err("Type is not a valid list, set, or dict")),
    };
    let mut out = indexmap::IndexMap::new();
    for item in elements {
        if item.kind() != ValueKind::Map {
            return Err(err("List item is not a valid dict"));
        }
        let k = item.get_item(&key)?;
        if k.is_undefined() {
            return Err(err(format!("Key {} was not found.", py_repr(&key))));
        }
        if out.contains_key(&k) && duplicates == "error" {
            return Err(err(format!(
                "Key {} is not unique, cannot convert to dict.",
                py_repr(&k)
            )));
        }
        out.insert(k, item);
    }
    Ok(Value::from(out))
}

fn number(v: &Value, what: &str) -> Result<f64, Error> {
    check_defined(v, what)?;
    if matches!(v.kind(), ValueKind::Number | ValueKind::Bool) {
        return f64::try_from(v.clone())
            .map_err(|_| err(format!("{what}() can only be used on numbers")));
    }
    Err(err(format!(
        "{what}() can only be used on numbers, not {}",
        py_type(v)
    )))
}

pub(super) fn log(value: &Value, base: Option<Value>) -> Result<Value, Error> {
    let x = number(value, "log")?;
    let r = match base {
        None => x.ln(),
        Some(b) => {
            let b = number(&b, "log")?;
            if b == 10.0 {
                x.log10()
            } else {
                x.ln() / b.ln()
            }
        }
    };
    if x <= 0.0 {
        return Err(err("log: math domain error"));
    }
    Ok(Value::from(r))
}

pub(super) fn pow(value: &Value, y: Value) -> Result<Value, Error> {
    Ok(Value::from(number(value, "pow")?.powf(number(&y, "pow")?)))
}

pub(super) fn root(value: &Value, base: Option<Value>) -> Result<Value, Error> {
    let x = number(value, "root")?;
    let b = match base {
        Some(b) => number(&b, "root")?,
        None => 2.0,
    };
    if b == 2.0 {
        if x < 0.0 {
            return Err(err("root() can only be used on numbers: math domain error"));
        }
        return Ok(Value::from(x.sqrt()));
    }
    Ok(Value::from(x.powf(1.0 / b)))
}

const SIZE_RANGES: [(char, u128); 9] = [
    ('Y', 1 << 80),
    ('Z', 1 << 70),
    ('E', 1 << 60),
    ('P', 1 << 50),
    ('T', 1 << 40),
    ('G', 1 << 30),
    ('M', 1 << 20),
    ('K', 1 << 10),
    ('B', 1),
];

pub(super) fn human_readable(
    value: &Value,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let p = Params::new("human_readable", &["isbits", "unit"], &args, &kwargs)?;
    let size =
        number(value, "human_readable").map_err(|_| err("human_readable() failed on bad input"))?;
    let isbits = p.bool(0, false);
    let unit = p.str(1);
    let base = if isbits { "bits" } else { "Bytes" };
    let mut chosen = SIZE_RANGES[SIZE_RANGES.len() - 1];
    for (suffix, limit) in SIZE_RANGES {
        chosen = (suffix, limit);
        let hit = match &unit {
            None => size >= limit as f64,
            Some(u) => u.to_uppercase().starts_with(suffix),
        };
        if hit {
            break;
        }
    }
    let (suffix, limit) = chosen;
    let suffix = if limit != 1 {
        format!("{suffix}{}", &base[..1])
    } else {
        base.to_string()
    };
    Ok(Value::from(format!("{:.2} {suffix}", size / limit as f64)))
}

pub(super) fn human_to_bytes(
    value: &Value,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let p = Params::new(
        "human_to_bytes",
        &["default_unit", "isbits"],
        &args,
        &kwargs,
    )?;
    check_defined(value, "human_to_bytes")?;
    let s = py_str(value);
    let bad = |why: String| err(format!("human_to_bytes() can't interpret the input: {why}"));
    let re = super::compile_regex(r"^([0-9]*\.?[0-9]+)(?:\s*([A-Za-z]+))?\s*$", false, false)?;
    let caps = re.captures(&s).ok_or_else(|| {
        bad(format!(
            "human_to_bytes() can't interpret following string: {s}"
        ))
    })?;
    let num: f64 = caps[1]
        .parse()
        .map_err(|_| bad(format!("bad number {s}")))?;
    let Some(unit) = caps.get(2).map(|m| m.as_str().to_string()).or(p.str(0)) else {
        return Ok(Value::from(num.round_ties_even() as i64));
    };
    let isbits = p.bool(1, false);
    let key = unit
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or(' ');
    let limit = SIZE_RANGES
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, l)| *l)
        .ok_or_else(|| {
            bad(format!(
                "human_to_bytes() failed to convert {s} (unit = {unit}). The suffix must be one of Y, Z, E, P, T, G, M, K, B"
            ))
        })?;
    if unit.chars().count() > 1 {
        let names = [
            ('B', "byte", "B", "bit", "b"),
            ('K', "kilobyte", "KB", "kilobit", "Kb"),
            ('M', "megabyte", "MB", "megabit", "Mb"),
            ('G', "gigabyte", "GB", "gigabit", "Gb"),
            ('T', "terabyte", "TB", "terabit", "Tb"),
            ('P', "petabyte", "PB", "petabit", "Pb"),
            ('E', "exabyte", "EB", "exabit", "Eb"),
            ('Z', "zetabyte", "ZB", "zetabit", "Zb"),
            ('Y', "yottabyte", "YB", "yottabit", "Yb"),
        ];
        let (_, bl, bs, il, is) = names
            .iter()
            .find(|n| n.0 == key)
            .copied()
            .unwrap_or(names[0]);
        let (long, short) = if isbits { (il, is) } else { (bl, bs) };
        if unit.to_lowercase() != long && unit != short {
            let class = if isbits { "b" } else { "B" };
            let expect = if key == 'B' {
                format!("expect {class} or {}", if isbits { "bit" } else { "byte" })
            } else {
                format!("expect {key}{class} or {key}")
            };
            return Err(bad(format!(
                "human_to_bytes() failed to convert {s}. Value is not a valid string ({expect})"
            )));
        }
    }
    Ok(Value::from((num * limit as f64).round_ties_even() as i64))
}
