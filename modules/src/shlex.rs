//! Python's `shlex` as Ansible uses it: `split` (POSIX mode, no comments) for `command` and
//! `validate`, `quote` for the `quote` filter and for showing a command line.
//!
//! Both stay hand-written rather than the `shlex` crate's: its `split` treats `#` as the start of
//! a comment, and its `quote` picks double quotes or quotes characters such as `=`, `,` and `%`
//! that Python leaves bare, so the output would differ from Ansible's.

/// Why a command line cannot be split (Python's `shlex` messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("No closing quotation")]
    NoClosingQuotation,
    #[error("No escaped character")]
    NoEscapedCharacter,
}

/// For callers that report the message as text (`ModuleError::new`).
impl From<SplitError> for String {
    fn from(e: SplitError) -> String {
        e.to_string()
    }
}

/// Splits a command line as Python's `shlex.split` (POSIX mode): whitespace separates words,
/// single quotes keep everything, double quotes keep everything but `\"`, `\\`, `\$`, `` \` ``
/// and `\<newline>`, a backslash outside quotes escapes the next character, `#` is not special.
pub fn split(s: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(SplitError::NoClosingQuotation),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`' | '\n')) => cur.push(n),
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err(SplitError::NoClosingQuotation),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(SplitError::NoClosingQuotation),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err(SplitError::NoEscapedCharacter),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Python's `shlex.quote`: bare when every character is an ASCII word character or one of
/// `@%+=:,./-` (Python's `[^\w@%+=:,./-]` with `re.ASCII`), else single-quoted with each `'`
/// written as `'"'"'`.
pub fn quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || "@%+=:,./-".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_python() {
        assert_eq!(
            split(r#"echo 'a b' "c \"d\" \q" e\ f"#).unwrap(),
            vec!["echo", "a b", "c \"d\" \\q", "e f"]
        );
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split("a '' b").unwrap(), vec!["a", "", "b"]);
        assert_eq!(split("a #b").unwrap(), vec!["a", "#b"]);
        assert_eq!(
            split("echo 'x").unwrap_err().to_string(),
            "No closing quotation"
        );
        assert_eq!(split("a\\").unwrap_err(), SplitError::NoEscapedCharacter);
    }

    /// Expected values printed by python3's `shlex.quote`.
    #[test]
    fn quotes_like_python() {
        let cases = [
            ("", "''"),
            ("abc", "abc"),
            ("a-b_c/d.e:f=g@h%+,", "a-b_c/d.e:f=g@h%+,"),
            ("a b", "'a b'"),
            ("it's", "'it'\"'\"'s'"),
            ("'", "''\"'\"''"),
            ("$HOME", "'$HOME'"),
            ("a\nb", "'a\nb'"),
            ("*", "'*'"),
            ("~", "'~'"),
            ("!x", "'!x'"),
            ("a\\b", "'a\\b'"),
            ("\"q\"", "'\"q\"'"),
            ("é", "'é'"),
            ("ß", "'ß'"),
            ("x²", "'x²'"),
            ("٣", "'٣'"),
            ("tab\there", "'tab\there'"),
            ("--opt=a,b", "--opt=a,b"),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), want, "{input:?}");
        }
    }
}
