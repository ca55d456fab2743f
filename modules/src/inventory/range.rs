//! Host ranges in inventory names: `web[01:10]`, `db-[a:f]`, `node[1:9:2]` (ansible-core's
//! `expand_hostname_range`; several ranges in one name multiply).

/// The names `pattern` stands for (itself when it has no range).
pub fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        return Ok(vec![pattern.to_string()]);
    };
    let Some(close_rel) = pattern[open..].find(']') else {
        return Ok(vec![pattern.to_string()]);
    };
    let close = open + close_rel;
    let inner = &pattern[open + 1..close];
    if !inner.contains(':') {
        return Ok(vec![pattern.to_string()]);
    }
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let parts: Vec<&str> = inner.split(':').collect();
    let (beg, end, step) = match parts.as_slice() {
        [b, e] => (*b, *e, "1"),
        [b, e, s] => (*b, *e, *s),
        _ => return Err(format!("bad host range `[{inner}]`")),
    };
    let beg = if beg.is_empty() { "0" } else { beg };
    if end.is_empty() {
        return Err(format!("host range `[{inner}]` must specify end value"));
    }
    let step: usize = step
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("host range `[{inner}]`: bad step `{step}`"))?;
    let items: Vec<String> = if let (Ok(b), Ok(e)) = (beg.parse::<u64>(), end.parse::<u64>()) {
        let width = if beg.starts_with('0') && beg.len() > 1 {
            if beg.len() != end.len() {
                return Err(format!(
                    "host range `[{inner}]` must specify equal-length begin and end formats"
                ));
            }
            beg.len()
        } else {
            0
        };
        if b > e {
            return Err(format!("host range `[{inner}]` must have begin <= end"));
        }
        (b..=e)
            .step_by(step)
            .map(|i| format!("{i:0width$}"))
            .collect()
    } else {
        let letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let (Some(b), Some(e)) = (
            (beg.len() == 1).then(|| letters.find(beg)).flatten(),
            (end.len() == 1).then(|| letters.find(end)).flatten(),
        ) else {
            return Err(format!("bad host range `[{inner}]`"));
        };
        if b > e {
            return Err(format!("host range `[{inner}]` must have begin <= end"));
        }
        letters[b..=e]
            .chars()
            .step_by(step)
            .map(String::from)
            .collect()
    };
    // Ansible's order: the first range varies slowest.
    let rests = expand(tail)?;
    let mut out = Vec::with_capacity(items.len() * rests.len());
    for i in &items {
        for rest in &rests {
            out.push(format!("{head}{i}{rest}"));
        }
    }
    Ok(out)
}
