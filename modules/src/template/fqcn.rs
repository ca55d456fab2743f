//! Filters and tests named by their collection: `x | debops.debops.parse_kv_items`,
//! `x is ansible.utils.ipv4`, `x | ansible.builtin.split(',')`.
//!
//! minijinja parses a dotted filter name but looks it up as one string among the filters
//! registered up front, and the environments are built once per process. So the source is
//! rewritten before it is compiled (as [`super::backslashes`] does, outside string constants):
//! `ansible.builtin.` and `ansible.legacy.` names become the agent's own filter or test of that
//! short name; any other `ns.coll.name` becomes a call of the one `__fqcn_filter` /
//! `__fqcn_test` the agent registers, which runs the collection's Python plugin
//! (see [`super::pyplugins`]) — or fails naming it.

use std::borrow::Cow;

/// The filter every other collection filter goes through (registered in `filters.rs`).
pub(crate) const FILTER: &str = "__fqcn_filter";
/// The test every other collection test goes through.
pub(crate) const TEST: &str = "__fqcn_test";

/// A template source with its collection-named filters and tests rewritten.
pub(crate) fn in_template(src: &str) -> Cow<'_, str> {
    if !might_have(src) {
        return Cow::Borrowed(src);
    }
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 32);
    let mut copied = 0;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'{' | b'%' => {
                let close: &[u8] = if b[i + 1] == b'{' { b"}}" } else { b"%}" };
                let start = i + 2;
                let end = code_end(b, start, close);
                let code = &src[start..end];
                if b[i + 1] == b'%' && is_raw(code) {
                    i = src[end..]
                        .find("endraw")
                        .map_or(b.len(), |p| end + p + "endraw".len());
                    continue;
                }
                if let Cow::Owned(new) = in_code(code) {
                    out.push_str(&src[copied..start]);
                    out.push_str(&new);
                    copied = end;
                }
                i = end;
            }
            b'#' => i = src[i + 2..].find("#}").map_or(b.len(), |p| i + 2 + p + 2),
            _ => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(src);
    }
    out.push_str(&src[copied..]);
    Cow::Owned(out)
}

/// A bare expression (`when:`, `that:`) with its collection-named filters and tests rewritten.
pub(crate) fn in_expression(expr: &str) -> Cow<'_, str> {
    if !might_have(expr) {
        return Cow::Borrowed(expr);
    }
    in_code(expr)
}

/// Cheap test first: a rewrite needs a name with two dots after `|` or `is`.
fn might_have(s: &str) -> bool {
    s.contains('.') && (s.contains('|') || s.contains(" is "))
}

fn is_raw(code: &str) -> bool {
    code.trim_matches(['-', '+', ' ', '\t', '\n', '\r']) == "raw"
}

/// Where the code starting at `start` ends: the index of `close` outside strings and brackets
/// (or the end of the text).
fn code_end(b: &[u8], start: usize, close: &[u8]) -> usize {
    let mut i = start;
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i = string_end(b, i, q);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b'}' if depth > 0 => depth -= 1,
            _ => {}
        }
        if depth == 0 && b[i..].starts_with(close) {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// The index after the string constant opening at `start` with quote `q`.
fn string_end(b: &[u8], start: usize, q: u8) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            c if c == q => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Rewrites the filters and tests of one piece of Jinja code (no `{{ }}` around it).
fn in_code(code: &str) -> Cow<'_, str> {
    let b = code.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' || c == b'"' {
            i = string_end(b, i, c);
            continue;
        }
        // What may precede a filter or test name: `|`, or the word `is` (then `not`).
        let after = if c == b'|' {
            Some((i + 1, false))
        } else if c == b'i'
            && b[i..].starts_with(b"is")
            && (i == 0 || !is_ident(b[i - 1]))
            && b.get(i + 2).is_some_and(|c| c.is_ascii_whitespace())
        {
            let mut j = skip_ws(b, i + 2);
            if b[j..].starts_with(b"not") && b.get(j + 3).is_some_and(|c| c.is_ascii_whitespace()) {
                j = skip_ws(b, j + 3);
            }
            Some((j, true))
        } else {
            None
        };
        let Some((from, test)) = after else {
            i += 1;
            continue;
        };
        let name_start = skip_ws(b, from);
        let (name_end, dots) = dotted_name(b, name_start);
        if dots < 2 {
            i = name_start.max(i + 1);
            continue;
        }
        let name = &code[name_start..name_end];
        out.push_str(&code[copied..name_start]);
        if let Some(short) = name
            .strip_prefix("ansible.builtin.")
            .or_else(|| name.strip_prefix("ansible.legacy."))
            .filter(|s| !s.contains('.'))
        {
            out.push_str(short);
            copied = name_end;
        } else {
            let via = if test { TEST } else { FILTER };
            let paren = skip_ws(b, name_end);
            if b.get(paren) == Some(&b'(') {
                let close = skip_ws(b, paren + 1);
                let sep = if b.get(close) == Some(&b')') {
                    ""
                } else {
                    ", "
                };
                out.push_str(&format!("{via}(\"{name}\"{sep}"));
                copied = paren + 1;
            } else {
                out.push_str(&format!("{via}(\"{name}\")"));
                copied = name_end;
            }
        }
        i = name_end;
    }
    if copied == 0 {
        return Cow::Borrowed(code);
    }
    out.push_str(&code[copied..]);
    Cow::Owned(out)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The end of a dotted identifier starting at `i`, and its number of dots.
fn dotted_name(b: &[u8], mut i: usize) -> (usize, usize) {
    let mut dots = 0;
    loop {
        if i >= b.len() || !is_ident_start(b[i]) {
            return (i, dots);
        }
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        if i + 1 < b.len() && b[i] == b'.' && is_ident_start(b[i + 1]) {
            dots += 1;
            i += 1;
        } else {
            return (i, dots);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_become_short_names() {
        assert_eq!(
            in_template(
                "{{ 'a,b' | ansible.builtin.split(',') }} {{ x is ansible.builtin.match('y') }}"
            ),
            "{{ 'a,b' | split(',') }} {{ x is match('y') }}"
        );
        assert_eq!(in_expression("x|ansible.legacy.bool"), "x|bool");
    }

    #[test]
    fn collection_names_go_through_the_plugin_call() {
        assert_eq!(
            in_template("{{ x | debops.debops.parse_kv_items }}"),
            "{{ x | __fqcn_filter(\"debops.debops.parse_kv_items\") }}"
        );
        assert_eq!(
            in_template("{% set y = x | ansible.utils.ipaddr('address') %}"),
            "{% set y = x | __fqcn_filter(\"ansible.utils.ipaddr\", 'address') %}"
        );
        assert_eq!(
            in_expression("a is not ansible.utils.ipv4 and b | c.d.e()"),
            "a is not __fqcn_test(\"ansible.utils.ipv4\") and b | __fqcn_filter(\"c.d.e\")"
        );
    }

    #[test]
    fn strings_comments_raw_and_attributes_stay() {
        for s in [
            "{{ '| a.b.c' }}",
            "{# x | a.b.c #}",
            "{% raw %}{{ x | a.b.c }}{% endraw %}",
            "{{ x | default(a.b.c) }}",
            "{{ x.is_a.b.c }}",
            "text | a.b.c",
        ] {
            assert_eq!(in_template(s), s);
        }
    }
}
