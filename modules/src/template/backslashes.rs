//! Ansible's `escape_backslashes` (ansible-core 2.19 `AnsibleLexer`): in a template that comes
//! from YAML (task arguments, variables), a string constant inside `{{ }}` takes its
//! backslashes literally — YAML already processed them — so `"{{ s | regex_replace('(a)',
//! '\\1') }}"` passes the back reference `\1`, not U+0001. String constants in `{% %}`
//! statements, conditionals and template files keep Jinja's escapes.
//!
//! Ansible rewrites the string tokens after lexing; minijinja offers no such hook, so the
//! source is rewritten before it is compiled: every backslash in a string constant of a
//! `{{ }}` block is doubled (and an escaped quote stays escaped), which minijinja's unescaping
//! turns back into exactly the text between the quotes.

use std::borrow::Cow;

/// A template source with the string constants of its `{{ }}` blocks escaped.
pub(crate) fn in_template(src: &str) -> Cow<'_, str> {
    if !src.contains('\\') {
        return Cow::Borrowed(src);
    }
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 8);
    let mut i = 0;
    let mut copied = 0;
    while i + 1 < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'{' => {
                out.push_str(&src[copied..i + 2]);
                let end = escape_block(src, i + 2, &mut out, b"}}");
                copied = end;
                i = end;
            }
            b'%' => {
                // a statement: its strings keep Jinja's escapes; `{% raw %}` is text.
                let end = skip_block(b, i + 2, b"%}");
                let stmt = src[i + 2..end.saturating_sub(2).max(i + 2)]
                    .trim_matches(['-', '+', ' ', '\t', '\n', '\r']);
                let end = if stmt == "raw" {
                    find_endraw(src, end)
                } else {
                    end
                };
                i = end;
            }
            b'#' => {
                i = src[i + 2..].find("#}").map_or(b.len(), |p| i + 2 + p + 2);
            }
            _ => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(src);
    }
    out.push_str(&src[copied..]);
    Cow::Owned(out)
}

/// A bare expression (the inside of one `{{ }}`) with its string constants escaped.
pub(crate) fn in_expression(expr: &str) -> Cow<'_, str> {
    if !expr.contains('\\') {
        return Cow::Borrowed(expr);
    }
    let mut out = String::with_capacity(expr.len() + 8);
    let end = escape_block(expr, 0, &mut out, b"");
    out.push_str(&expr[end..]);
    Cow::Owned(out)
}

/// Copies the block starting at `start` into `out`, escaping its string constants, up to and
/// including the closing `close` (outside brackets, as Jinja's lexer balances them; an empty
/// `close` runs to the end). Returns the index after what was copied.
fn escape_block(src: &str, start: usize, out: &mut String, close: &[u8]) -> usize {
    let b = src.as_bytes();
    let mut i = start;
    let mut depth = 0usize;
    let mut copied = start;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' || c == b'"' {
            out.push_str(&src[copied..i]);
            i = escape_string(src, i, out);
            copied = i;
            continue;
        }
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b'}' if depth > 0 => depth -= 1,
            _ => {}
        }
        if depth == 0 && !close.is_empty() && b[i..].starts_with(close) {
            i += close.len();
            break;
        }
        i += 1;
    }
    out.push_str(&src[copied..i]);
    i
}

/// Copies the string constant opening at `start` (a quote) into `out` with its backslashes
/// doubled; returns the index after its closing quote (or the end of an unterminated one,
/// which the compiler then reports).
fn escape_string(src: &str, start: usize, out: &mut String) -> usize {
    let b = src.as_bytes();
    let quote = b[start];
    out.push(quote as char);
    let mut i = start + 1;
    let mut run = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                out.push_str(&src[run..i]);
                out.push_str("\\\\");
                match b.get(i + 1) {
                    // Jinja's lexer reads `\'` inside '...' as part of the string: keep the
                    // quote escaped so the string still ends where Jinja ends it.
                    Some(&n) if n == quote || n == b'\\' => {
                        out.push('\\');
                        out.push(n as char);
                        i += 2;
                    }
                    _ => i += 1,
                }
                run = i;
            }
            c if c == quote => {
                out.push_str(&src[run..=i]);
                return i + 1;
            }
            _ => i += 1,
        }
    }
    out.push_str(&src[run..]);
    b.len()
}

/// The index after the `close` that ends a block opened before `start` (strings skipped).
fn skip_block(b: &[u8], start: usize, close: &[u8]) -> usize {
    let mut i = start;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            _ if b[i..].starts_with(close) => return i + close.len(),
            _ => i += 1,
        }
    }
    b.len()
}

/// The index after the `{% endraw %}` that closes a raw block whose body starts at `start`.
fn find_endraw(src: &str, start: usize) -> usize {
    let b = src.as_bytes();
    let mut i = start;
    while let Some(p) = src[i..].find("{%") {
        let open = i + p;
        let end = skip_block(b, open + 2, b"%}");
        let stmt = src[open + 2..end.saturating_sub(2).max(open + 2)]
            .trim_matches(['-', '+', ' ', '\t', '\n', '\r']);
        if stmt == "endraw" {
            return end;
        }
        i = open + 2;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_in_expression_blocks_take_backslashes_literally() {
        assert_eq!(in_template(r"{{ 'a\1' }}"), r"{{ 'a\\1' }}");
        assert_eq!(
            in_template(r#"x{{ "\d" ~ '\\' }}y"#),
            r#"x{{ "\\d" ~ '\\\\' }}y"#
        );
        // an escaped quote stays escaped, so the string ends where Jinja ends it
        assert_eq!(in_template(r"{{ 'it\'s' }}"), r"{{ 'it\\\'s' }}");
        // `}}` inside brackets or strings does not end the block
        assert_eq!(
            in_template(r"{{ {'a': {'b': '\1'}} }}{{ '\2' }}"),
            r"{{ {'a': {'b': '\\1'}} }}{{ '\\2' }}"
        );
        assert_eq!(in_template(r"{{ '}}\1' }}"), r"{{ '}}\\1' }}");
        assert_eq!(
            in_expression(r"s | regex_replace('(a)', '\1')"),
            r"s | regex_replace('(a)', '\\1')"
        );
    }

    #[test]
    fn statements_comments_raw_and_text_are_untouched() {
        for src in [
            r"{% set x = '\1' %}\1",
            r"{# '\1' #}",
            r"{% raw %}{{ '\1' }}{% endraw %}",
            r"{%- raw -%}{{ '\1' }}{%- endraw %}",
            r"no template \1",
        ] {
            assert_eq!(in_template(src), src);
        }
        assert_eq!(
            in_template(r"{% raw %}{{ '\1' }}{% endraw %}{{ '\1' }}"),
            r"{% raw %}{{ '\1' }}{% endraw %}{{ '\\1' }}"
        );
        assert_eq!(
            in_template(r"{% if '%}' %}{{ '\1' }}{% endif %}"),
            r"{% if '%}' %}{{ '\\1' }}{% endif %}"
        );
    }
}
