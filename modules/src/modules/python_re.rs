//! Python `re` patterns (on text) for Rust's `regex` crate, for the modules that take a regular
//! expression the host's Python would compile (`replace`): the pattern is read once, the
//! constructs whose meaning differs between the two engines are translated when an exact
//! translation exists (`\Z` is `\z`, a `[` inside a class is a literal) and refused otherwise,
//! with an error that names the construct. Constructs `regex` does not know at all (look-around,
//! back-references, atomic groups, possessive quantifiers, `(?#...)`) fail to compile, which is
//! refused the same way.

use regex::{Regex, RegexBuilder};

use crate::resource::ModuleError;

/// How a pattern is compiled, as Python's flags.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    /// `re.MULTILINE`: `^`/`$` at every line.
    pub multiline: bool,
    /// `re.DOTALL`: `.` matches a newline too.
    pub dotall: bool,
}

fn refuse(pattern: &str, what: &str) -> ModuleError {
    ModuleError::new(format!(
        "regular expression `{pattern}`: {what} is not supported (Python's `re` and this \
         agent's regex engine would not match the same text); rewrite the pattern without it"
    ))
}

/// Translates a Python pattern into the same pattern for `regex`, or refuses it.
pub(crate) fn translate(pattern: &str, flags: Flags) -> Result<String, ModuleError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    // Position in the class (0: just after `[` or `[^`), for a leading literal `]`.
    let mut class_pos = 0usize;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\\' {
            let Some(n) = next else {
                return Err(refuse(pattern, "a trailing backslash"));
            };
            match n {
                '1'..='9' if !in_class => {
                    return Err(refuse(pattern, "a back-reference (`\\N`)"));
                }
                'Z' if !in_class => out.push_str("\\z"),
                'p' | 'P' => return Err(refuse(pattern, "`\\p`/`\\P` (not Python syntax)")),
                '<' | '>' => out.push(n), // a literal in Python, a word boundary in `regex`
                'b' if !in_class && next_is(&chars, i + 2, '{') => {
                    return Err(refuse(pattern, "`\\b{`"))
                }
                'z' if !in_class => return Err(refuse(pattern, "`\\z` (not Python syntax)")),
                _ => {
                    out.push('\\');
                    out.push(n);
                }
            }
            i += 2;
            if in_class {
                class_pos += 1;
            }
            continue;
        }
        if in_class {
            match c {
                ']' if class_pos > 0 => in_class = false,
                // A literal in Python; a nested class or a POSIX class (`[:alpha:]`) in `regex`.
                '[' => {
                    out.push_str("\\[");
                    i += 1;
                    class_pos += 1;
                    continue;
                }
                '&' | '~' | '-' if next == Some(c) => {
                    return Err(refuse(
                        pattern,
                        &format!("`{c}{c}` inside a character class (a set operation for `regex`)"),
                    ))
                }
                _ => {}
            }
            out.push(c);
            class_pos += 1;
            i += 1;
            continue;
        }
        // A quantifier right after one: possessive in Python 3.11+ (`a++`), an error before;
        // `regex` reads it as a repetition of the repetition.
        if matches!(c, '*' | '+' | '{') && i > 0 && matches!(chars[i - 1], '*' | '+' | '?' | '}') {
            let escaped = i > 1 && chars[i - 2] == '\\';
            let group_flag = chars[i - 1] == '?' && i > 1 && chars[i - 2] == '(';
            if !(escaped || group_flag) {
                return Err(refuse(
                    pattern,
                    "a quantifier after a quantifier (`a++`, `a*+`)",
                ));
            }
        }
        match c {
            '[' => {
                in_class = true;
                class_pos = 0;
                out.push('[');
                if next == Some('^') {
                    out.push('^');
                    i += 1;
                }
                i += 1;
                continue;
            }
            '$' if !flags.multiline && !inline_multiline(pattern) => {
                // Python's `$` also matches before a final newline; `regex` has no such anchor.
                return Err(refuse(
                    pattern,
                    "`$` without multiline mode (Python's also matches before a final newline)",
                ));
            }
            '(' if next == Some('?') => {
                let rest: String = chars[i + 2..].iter().take(3).collect();
                if rest.starts_with('=') || rest.starts_with('!') {
                    return Err(refuse(pattern, "a look-ahead (`(?=`, `(?!`)"));
                }
                if rest.starts_with("<=") || rest.starts_with("<!") {
                    return Err(refuse(pattern, "a look-behind (`(?<=`, `(?<!`)"));
                }
                if rest.starts_with("P=") {
                    return Err(refuse(pattern, "a named back-reference (`(?P=name)`)"));
                }
                // Inline flags: Python's and `regex`'s share only i, m, s (and u, a no-op).
                let flag_chars: String = chars[i + 2..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic() || **c == '-')
                    .collect();
                if let Some(bad) = flag_chars.chars().find(|f| !"imsu-".contains(*f)) {
                    let stop = chars.get(i + 2 + flag_chars.len()).copied();
                    if matches!(stop, Some(')') | Some(':')) {
                        return Err(refuse(pattern, &format!("the inline flag `{bad}`")));
                    }
                }
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

fn next_is(chars: &[char], i: usize, c: char) -> bool {
    chars.get(i) == Some(&c)
}

/// True when the pattern turns multiline mode on itself (`(?m)` at its start, Python's rule for
/// global flags).
fn inline_multiline(pattern: &str) -> bool {
    pattern
        .strip_prefix("(?")
        .and_then(|r| r.split_once(')'))
        .is_some_and(|(f, _)| f.chars().all(|c| c.is_ascii_alphabetic()) && f.contains('m'))
}

/// Compiles a Python pattern with Python's flags, or refuses it.
pub(crate) fn compile(pattern: &str, flags: Flags) -> Result<Regex, ModuleError> {
    let translated = translate(pattern, flags)?;
    RegexBuilder::new(&translated)
        .multi_line(flags.multiline)
        .dot_matches_new_line(flags.dotall)
        .build()
        .map_err(|e| {
            ModuleError::new(format!(
                "unsupported or invalid regular expression `{pattern}` (Python `re` syntax, as far \
                 as it can be matched exactly: no look-around, no back-references in the \
                 pattern): {e}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ML: Flags = Flags {
        multiline: true,
        dotall: false,
    };

    #[test]
    fn translations() {
        assert_eq!(translate(r"a\Z", ML).unwrap(), r"a\z");
        assert_eq!(translate(r"[[:alpha:]]", ML).unwrap(), r"[\[:alpha:]]");
        assert_eq!(translate(r"[]a]x", ML).unwrap(), r"[]a]x");
        assert_eq!(translate(r"\<b\>", ML).unwrap(), r"<b>");
        assert_eq!(
            translate(r"^(\w+)\s*=\s*(?P<v>.*)$", ML).unwrap(),
            r"^(\w+)\s*=\s*(?P<v>.*)$"
        );
        // What Python's `[[:alpha:]]` means: one of `[:alph` then `]`.
        let re = compile(r"[[:alpha:]]", ML).unwrap();
        assert!(re.is_match("[]"));
        assert!(!re.is_match("b"));
    }

    #[test]
    fn refusals() {
        for p in [
            r"foo(?=bar)",
            r"(?<!x)y",
            r"(a)\1",
            r"(?P<n>a)(?P=n)",
            r"[a&&b]",
            r"[a--b]",
            r"\pL",
            r"(?x)a b",
            r"(?>a)",
            r"a++",
        ] {
            assert!(compile(p, ML).is_err(), "{p} should be refused");
        }
        assert!(compile("a$", Flags::default()).is_err());
        assert!(compile("(?m)a$", Flags::default()).is_ok());
    }
}
