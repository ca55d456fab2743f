//! Play `hosts:` patterns, as ansible-core's inventory manager evaluates them, reduced to the
//! one question the agent asks: is this host selected?
//!
//! Patterns: host and group names, `all`, shell wildcards (`web*`), `~regex`, subscripts
//! (`web[0]`, `web[1:3]`), lists (`a,b`, the old `a:b`, or a YAML list), intersections (`&g`)
//! and exclusions (`!g`). Regular patterns are taken first, then `&`, then `!`, whatever order
//! they were written in.

use regex::Regex;

use super::Inventory;

const LOCALHOST: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// Splits one pattern string as ansible-core's `split_host_pattern`.
pub fn split(pattern: &str) -> Vec<String> {
    let parts: Vec<String> = if pattern.contains(',') {
        pattern.split(',').map(str::to_string).collect()
    } else {
        // `a:b`, `a:&b`, `a:!b`; `[...]` groups are kept whole (ranges, subscripts).
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut depth = 0;
        let colons = pattern.matches(':').count();
        // An IPv6 address is one pattern.
        if colons > 1 && !pattern.contains('&') && !pattern.contains('!') && !pattern.contains('[')
        {
            return vec![pattern.trim().to_string()];
        }
        for c in pattern.chars() {
            match c {
                '[' => {
                    depth += 1;
                    cur.push(c)
                }
                ']' => {
                    depth -= 1;
                    cur.push(c)
                }
                ':' if depth == 0 => out.push(std::mem::take(&mut cur)),
                c if c.is_whitespace() && depth == 0 => out.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        out.push(cur);
        out
    };
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether `patterns` (the items of `hosts:`) select `me`. Errors: a bad regex or subscript,
/// or a play that only the implicit `localhost` would run (another host than `me`).
pub fn matches(inv: &Inventory, me: &str, patterns: &[String]) -> Result<bool, String> {
    let mut all: Vec<String> = patterns.iter().flat_map(|p| split(p)).collect();
    if all.is_empty() {
        return Ok(false);
    }
    // Regular patterns first, then intersections, then exclusions.
    let mut ordered: Vec<String> = all
        .iter()
        .filter(|p| !p.starts_with('&') && !p.starts_with('!'))
        .cloned()
        .collect();
    if ordered.is_empty() {
        ordered.push("all".into());
    }
    ordered.extend(all.iter().filter(|p| p.starts_with('&')).cloned());
    ordered.extend(all.iter().filter(|p| p.starts_with('!')).cloned());
    all = ordered;
    let mut selected: Vec<String> = Vec::new();
    let mut implicit_localhost = false;
    for p in &all {
        if let Some(rest) = p.strip_prefix('&') {
            let (hosts, _) = one(inv, rest)?;
            selected.retain(|h| hosts.contains(h));
            implicit_localhost = false;
        } else if let Some(rest) = p.strip_prefix('!') {
            let (hosts, implicit) = one(inv, rest)?;
            selected.retain(|h| !hosts.contains(h));
            if implicit {
                implicit_localhost = false;
            }
        } else {
            let (hosts, implicit) = one(inv, p)?;
            implicit_localhost |= implicit;
            for h in hosts {
                if !selected.contains(&h) {
                    selected.push(h);
                }
            }
        }
    }
    if selected.iter().any(|h| h == me) {
        return Ok(true);
    }
    if implicit_localhost {
        return Err(format!(
            "`hosts: {}` selects the implicit `localhost`, which is not in the inventory and \
             is not this host's inventory name `{me}`: ansible-pull would run this play as a \
             second host (add `localhost` to the inventory, or target `{me}`)",
            patterns.join(",")
        ));
    }
    Ok(false)
}

/// The hosts one pattern selects; true when only the implicit localhost does.
fn one(inv: &Inventory, pattern: &str) -> Result<(Vec<String>, bool), String> {
    let (base, subscript) = split_subscript(pattern)?;
    let mut hosts: Vec<String> = Vec::new();
    let groups = match_list(inv.groups.keys(), base)?;
    for g in &groups {
        for h in inv.hosts_of(g) {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    let special = base.starts_with('~') || base.contains(['.', '?', '*', '[']);
    if groups.is_empty() || special {
        for h in match_list(inv.hosts.keys(), base)? {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    let mut implicit = false;
    if hosts.is_empty() && LOCALHOST.contains(&base) {
        // ansible-core's get_host: a host whose name is a localhost alias stands for them all.
        match inv.hosts.keys().find(|h| LOCALHOST.contains(&h.as_str())) {
            Some(h) => hosts.push(h.clone()),
            None => implicit = true,
        }
    }
    if let Some((start, end)) = subscript {
        let len = hosts.len() as i64;
        let norm = |i: i64| if i < 0 { len + i } else { i };
        let (s, e) = (norm(start), end.map(norm).unwrap_or(norm(start)));
        hosts = hosts
            .into_iter()
            .enumerate()
            .filter(|(i, _)| (*i as i64) >= s && (*i as i64) <= e)
            .map(|(_, h)| h)
            .collect();
    }
    Ok((hosts, implicit))
}

/// A subscript: `[i]` or `[start:end]` (both ends included).
type Subscript = (i64, Option<i64>);

/// `web[1]`, `web[-1]`, `web[0:2]` → the base and the subscript.
fn split_subscript(pattern: &str) -> Result<(&str, Option<Subscript>), String> {
    if pattern.starts_with('~') || !pattern.ends_with(']') {
        return Ok((pattern, None));
    }
    let Some(open) = pattern.rfind('[') else {
        return Ok((pattern, None));
    };
    let inner = &pattern[open + 1..pattern.len() - 1];
    let base = &pattern[..open];
    if base.is_empty() {
        return Ok((pattern, None));
    }
    let num = |s: &str| s.trim().parse::<i64>().ok();
    if let Some(i) = num(inner) {
        return Ok((base, Some((i, None))));
    }
    if let Some((a, b)) = inner.split_once(':') {
        let start = if a.trim().is_empty() { Some(0) } else { num(a) };
        let end = if b.trim().is_empty() {
            Some(-1)
        } else {
            num(b)
        };
        if let (Some(s), Some(e)) = (start, end) {
            return Ok((base, Some((s, Some(e)))));
        }
    }
    // Not a subscript: a wildcard character class.
    Ok((pattern, None))
}

fn match_list<'a>(
    items: impl Iterator<Item = &'a String>,
    pattern: &str,
) -> Result<Vec<String>, String> {
    let re = match pattern.strip_prefix('~') {
        Some(r) => Regex::new(&format!("^(?:{r})")),
        None => Regex::new(&format!("^(?s:{})$", fnmatch_translate(pattern))),
    }
    .map_err(|_| format!("Invalid host list pattern: {pattern}"))?;
    Ok(items.filter(|i| re.is_match(i)).cloned().collect())
}

/// Python's `fnmatch.translate`: `*`, `?`, `[seq]`, `[!seq]`.
fn fnmatch_translate(pat: &str) -> String {
    let chars: Vec<char> = pat.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                } else {
                    let mut stuff: String = chars[i..j].iter().collect();
                    i = j + 1;
                    if let Some(rest) = stuff.strip_prefix('!') {
                        stuff = format!("^{rest}");
                    }
                    out.push('[');
                    out.push_str(&stuff.replace('\\', "\\\\"));
                    out.push(']');
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}
