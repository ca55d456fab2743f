//! OpenSSH's `allowed_signers` file (`man ssh-keygen`, section ALLOWED SIGNERS).
//!
//! Each non-blank line that does not start with `#` is
//! `principals [options] keytype base64-key [comment]`:
//!
//! - `principals`: a comma-separated pattern list (`*` and `?` wildcards, `!` negation), optionally
//!   in double quotes. It is reported as the signer, as written, like `git verify-commit` does.
//! - `options`: comma-separated, no spaces except inside double quotes, keywords case-insensitive:
//!   `namespaces="git,file"` (a pattern list the namespace `git` must match),
//!   `valid-after="YYYYMMDD[HHMM[SS]][Z]"` and `valid-before=...` (inclusive bounds, compared with
//!   the commit time; without `Z` the time is in the host's time zone, as in OpenSSH). As in
//!   OpenSSH, option values must be quoted and unknown options are errors.
//! - `cert-authority` (trusting certificates signed by a CA key) is refused with a parse error:
//!   certificate-based SSH signatures are not supported.

use std::path::{Path, PathBuf};

use ssh_key::{Algorithm, HashAlg, PublicKey};

use super::TrustError;

/// A line of an `allowed_signers` file that cannot be used (the file and line are added by
/// [`TrustError::Parse`]).
#[derive(Debug, thiserror::Error)]
pub enum SyntaxError {
    #[error("empty principals field")]
    EmptyPrincipals,
    #[error(
        "missing key after principals \"{principals}\" (expected `principals [options] keytype base64-key`)"
    )]
    MissingKey { principals: String },
    #[error("missing key after options")]
    MissingKeyAfterOptions,
    #[error("invalid key \"{0}\": expected `keytype base64-key`")]
    BadKey(String),
    #[error("certificate key type {0} is not supported in allowed_signers")]
    Certificate(String),
    #[error("unknown key type \"{0}\"")]
    UnknownKeyType(String),
    #[error("invalid {kind} key: {source}")]
    KeyData {
        kind: String,
        #[source]
        source: ssh_key::Error,
    },
    #[error("key type \"{kind}\" does not match the encoded key ({actual})")]
    KeyTypeMismatch { kind: String, actual: String },
    #[error("unterminated quote in \"{0}\"")]
    UnterminatedQuote(String),
    #[error("option cert-authority is not supported (certificate-based SSH signatures cannot be verified by this agent; list the signing keys themselves)")]
    CertAuthority,
    #[error("option {0} needs a value: {0}=\"...\"")]
    NeedsValue(String),
    #[error("empty option in \"{0}\"")]
    EmptyOption(String),
    #[error("unsupported option \"{0}\"")]
    UnsupportedOption(String),
    #[error("invalid time interval: valid-before is not after valid-after")]
    BadInterval,
    #[error("option {0} given twice")]
    Twice(String),
    #[error("value of option {0} must be in double quotes: {0}=\"...\"")]
    Unquoted(String),
    #[error(
        "invalid time \"{text}\": expected YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]{}",
        source.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
    )]
    BadTime {
        text: String,
        #[source]
        source: Option<jiff::Error>,
    },
}

/// A parsed `allowed_signers` file.
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    path: PathBuf,
    entries: Vec<SignerEntry>,
}

/// One line of an `allowed_signers` file.
#[derive(Debug, Clone)]
pub struct SignerEntry {
    /// 1-based line number in the file.
    pub line: usize,
    /// The principals pattern list, as written (quotes removed).
    pub principals: String,
    /// The `namespaces=` pattern list, if given.
    pub namespaces: Option<String>,
    /// `valid-after`, unix seconds.
    pub valid_after: Option<i64>,
    /// `valid-before`, unix seconds.
    pub valid_before: Option<i64>,
    pub key: PublicKey,
}

impl SignerEntry {
    /// The key's fingerprint as OpenSSH prints it: `SHA256:...`.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }
}

impl AllowedSigners {
    /// Read and parse a file.
    pub fn load(path: &Path) -> Result<AllowedSigners, TrustError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrustError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse the text of a file; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<AllowedSigners, TrustError> {
        let mut entries = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let s = raw.trim_matches([' ', '\t', '\r']);
            if s.is_empty() || s.starts_with('#') {
                continue;
            }
            let entry = parse_line(s, line).map_err(|source| TrustError::Parse {
                file: path.to_path_buf(),
                line,
                source,
            })?;
            entries.push(entry);
        }
        Ok(AllowedSigners {
            path: path.to_path_buf(),
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &[SignerEntry] {
        &self.entries
    }
}

fn parse_line(s: &str, line: usize) -> Result<SignerEntry, SyntaxError> {
    let (principals, rest) = take_token(s)?;
    if principals.is_empty() {
        return Err(SyntaxError::EmptyPrincipals);
    }
    if rest.is_empty() {
        return Err(SyntaxError::MissingKey { principals });
    }
    let (first, after_first) = take_token(rest)?;
    let mut opts = Options::default();
    let key_text = if is_key_type(&first) {
        rest
    } else {
        parse_options(&first, &mut opts)?;
        if after_first.is_empty() {
            return Err(SyntaxError::MissingKeyAfterOptions);
        }
        after_first
    };
    Ok(SignerEntry {
        line,
        principals,
        namespaces: opts.namespaces,
        valid_after: opts.valid_after,
        valid_before: opts.valid_before,
        key: parse_key(key_text)?,
    })
}

#[derive(Default)]
struct Options {
    namespaces: Option<String>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

/// A key type name such as `ssh-ed25519`, as opposed to an options field.
fn is_key_type(token: &str) -> bool {
    token.parse::<Algorithm>().is_ok()
        || token.ends_with("-cert-v01@openssh.com")
        || token.starts_with("ssh-")
        || token.starts_with("ecdsa-")
        || token.starts_with("sk-")
}

/// `keytype base64 [comment]`.
fn parse_key(s: &str) -> Result<PublicKey, SyntaxError> {
    let mut parts = s.split([' ', '\t']).filter(|p| !p.is_empty());
    let (Some(kind), Some(data)) = (parts.next(), parts.next()) else {
        return Err(SyntaxError::BadKey(s.to_string()));
    };
    if kind.ends_with("-cert-v01@openssh.com") {
        return Err(SyntaxError::Certificate(kind.to_string()));
    }
    if kind.parse::<Algorithm>().is_err() {
        return Err(SyntaxError::UnknownKeyType(kind.to_string()));
    }
    let key = PublicKey::from_openssh(&format!("{kind} {data}")).map_err(|source| {
        SyntaxError::KeyData {
            kind: kind.to_string(),
            source,
        }
    })?;
    if key.algorithm().as_str() != kind {
        return Err(SyntaxError::KeyTypeMismatch {
            kind: kind.to_string(),
            actual: key.algorithm().to_string(),
        });
    }
    Ok(key)
}

/// One whitespace-delimited token; double quotes group (and are removed around a fully quoted
/// token, kept inside an options token such as `namespaces="git"`). Returns the rest, trimmed.
fn take_token(s: &str) -> Result<(String, &str), SyntaxError> {
    let s = s.trim_start_matches([' ', '\t']);
    if let Some(inner) = s.strip_prefix('"') {
        let end = inner
            .find('"')
            .ok_or_else(|| SyntaxError::UnterminatedQuote(s.to_string()))?;
        let rest = &inner[end + 1..];
        if rest.is_empty() || rest.starts_with([' ', '\t']) {
            return Ok((
                inner[..end].to_string(),
                rest.trim_start_matches([' ', '\t']),
            ));
        }
        // `"a"b...`: not a fully quoted token; scanned like an unquoted one below.
    }
    let mut in_quote = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ' ' | '\t' if !in_quote => {
                return Ok((s[..i].to_string(), s[i..].trim_start_matches([' ', '\t'])));
            }
            _ => {}
        }
    }
    if in_quote {
        return Err(SyntaxError::UnterminatedQuote(s.to_string()));
    }
    Ok((s.to_string(), ""))
}

fn parse_options(opts: &str, entry: &mut Options) -> Result<(), SyntaxError> {
    for opt in split_unquoted_commas(opts) {
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let lname = name.to_ascii_lowercase();
        match (lname.as_str(), value) {
            ("cert-authority", _) => return Err(SyntaxError::CertAuthority),
            ("namespaces", Some(v)) => {
                let v = dequote(name, v)?;
                set_once(&mut entry.namespaces, v, name)?;
            }
            ("valid-after", Some(v)) => {
                let t = parse_time(&dequote(name, v)?)?;
                set_once(&mut entry.valid_after, t, name)?;
            }
            ("valid-before", Some(v)) => {
                let t = parse_time(&dequote(name, v)?)?;
                set_once(&mut entry.valid_before, t, name)?;
            }
            ("namespaces" | "valid-after" | "valid-before", None) => {
                return Err(SyntaxError::NeedsValue(name.to_string()))
            }
            _ if opt.is_empty() => return Err(SyntaxError::EmptyOption(opts.to_string())),
            _ => return Err(SyntaxError::UnsupportedOption(name.to_string())),
        }
    }
    if let (Some(after), Some(before)) = (entry.valid_after, entry.valid_before) {
        if before <= after {
            return Err(SyntaxError::BadInterval);
        }
    }
    Ok(())
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), SyntaxError> {
    if slot.is_some() {
        return Err(SyntaxError::Twice(name.to_string()));
    }
    *slot = Some(value);
    Ok(())
}

fn split_unquoted_commas(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quote = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ',' if !in_quote => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn dequote(name: &str, v: &str) -> Result<String, SyntaxError> {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) if !inner.contains('"') => Ok(inner.to_string()),
        _ => Err(SyntaxError::Unquoted(name.to_string())),
    }
}

/// OpenSSH's `parse_absolute_time`: `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, with an
/// optional `Z` for UTC; without it, the host's time zone.
fn parse_time(s: &str) -> Result<i64, SyntaxError> {
    let bad = |source: Option<jiff::Error>| SyntaxError::BadTime {
        text: s.to_string(),
        source,
    };
    let (digits, utc) = match s.strip_suffix(['Z', 'z']) {
        Some(d) => (d, true),
        None => (s, false),
    };
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(None));
    }
    let num = |r: std::ops::Range<usize>| -> i32 { digits[r].parse().unwrap_or(-1) };
    let field = |r: std::ops::Range<usize>| -> i8 {
        if digits.len() >= r.end {
            digits[r].parse().unwrap_or(-1)
        } else {
            0
        }
    };
    let dt = jiff::civil::DateTime::new(
        i16::try_from(num(0..4)).map_err(|_| bad(None))?,
        field(4..6),
        field(6..8),
        field(8..10),
        field(10..12),
        field(12..14),
        0,
    )
    .map_err(|e| bad(Some(e)))?;
    let tz = if utc {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    };
    let ts = tz.to_timestamp(dt).map_err(|e| bad(Some(e)))?;
    Ok(ts.as_second())
}

/// OpenSSH's `match_pattern`: `*` matches any run of characters, `?` one character.
fn match_pattern(s: &[u8], p: &[u8]) -> bool {
    // Iterative wildcard match with backtracking to the last `*`.
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// OpenSSH's `match_pattern_list`: true if some pattern matches and no negated (`!`) one does.
pub(super) fn match_pattern_list(s: &str, list: &str) -> bool {
    let mut positive = false;
    for pat in list.split(',') {
        if let Some(neg) = pat.strip_prefix('!') {
            if match_pattern(s.as_bytes(), neg.as_bytes()) {
                return false;
            }
        } else if match_pattern(s.as_bytes(), pat.as_bytes()) {
            positive = true;
        }
    }
    positive
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOq6cS2hXcyiSwQS0KfcnwIsnSqiRF3GYzz9JpU7EU4T";

    fn parse(text: &str) -> Result<AllowedSigners, TrustError> {
        AllowedSigners::parse(text, Path::new("/etc/gitops/allowed_signers"))
    }

    fn parse_err(text: &str) -> (usize, String) {
        match parse(text) {
            Err(TrustError::Parse { line, source, file }) => {
                assert_eq!(file, Path::new("/etc/gitops/allowed_signers"));
                (line, source.to_string())
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn trust_parses_plain_lines_comments_and_options() {
        let text = format!(
            "# team\n\n   \nadmin@example.org {KEY} admin key\n\
             \"a@x,b@x\" namespaces=\"git,file\",valid-after=\"20240101\",VALID-BEFORE=\"20250101000000Z\" {KEY}\n\
             *@example.org\tnamespaces=\"git\"\t{KEY}\r\n"
        );
        let s = parse(&text).unwrap();
        let e = s.entries();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].line, 4);
        assert_eq!(e[0].principals, "admin@example.org");
        assert_eq!(e[0].namespaces, None);
        assert_eq!(e[1].line, 5);
        assert_eq!(e[1].principals, "a@x,b@x");
        assert_eq!(e[1].namespaces.as_deref(), Some("git,file"));
        assert!(e[1].valid_after.is_some());
        assert_eq!(e[1].valid_before, Some(1_735_689_600));
        assert_eq!(e[2].principals, "*@example.org");
        assert_eq!(e[2].namespaces.as_deref(), Some("git"));
        assert!(e[0].fingerprint().starts_with("SHA256:"));
    }

    #[test]
    fn trust_parse_errors_name_the_line() {
        let ok = format!("a@x {KEY}\n");
        let cases: &[(&str, &str)] = &[
            ("a@x", "missing key"),
            (
                "a@x cert-authority ssh-ed25519 AAAA",
                "cert-authority is not supported",
            ),
            ("a@x namespaces=git KEY", "must be in double quotes"),
            ("a@x foo=\"bar\" KEY", "unsupported option \"foo\""),
            ("a@x valid-after=\"2024\" KEY", "invalid time \"2024\""),
            ("a@x valid-after=\"20241340\" KEY", "invalid time"),
            (
                "a@x valid-after=\"20250101\",valid-before=\"20240101\" KEY",
                "invalid time interval",
            ),
            (
                "a@x namespaces=\"git\",namespaces=\"file\" KEY",
                "given twice",
            ),
            ("a@x ssh-ed25519 notbase64!", "invalid ssh-ed25519 key"),
            ("a@x ssh-ed25519", "invalid key"),
            (
                "a@x ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOq6cS2hXcyiSwQS0KfcnwIsnSqiRF3GYzz9JpU7EU4T",
                "invalid ssh-rsa key",
            ),
            ("\"a@x ssh-ed25519 AAAA", "unterminated quote"),
            ("a@x namespaces=\"git KEY", "unterminated quote"),
            ("a@x namespaces=\"git\"", "missing key after options"),
        ];
        for (bad, want) in cases {
            let bad = bad.replace("KEY", KEY);
            let (line, msg) = parse_err(&format!("{ok}# c\n{bad}\n{ok}"));
            assert_eq!(line, 3, "{bad}: {msg}");
            assert!(msg.contains(want), "{bad}: got {msg:?}, want {want:?}");
        }
        let err = parse(&format!("{ok}\na@x bogus {KEY}\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/gitops/allowed_signers:3: unsupported option \"bogus\""
        );
    }

    #[test]
    fn trust_times_parse_like_openssh() {
        assert_eq!(parse_time("19700101Z").ok(), Some(0));
        assert_eq!(parse_time("197001010001Z").ok(), Some(60));
        assert_eq!(parse_time("19700101000001Z").ok(), Some(1));
        assert_eq!(parse_time("20240229z").ok(), Some(1_709_164_800));
        assert!(parse_time("20240230Z").is_err());
        assert!(parse_time("2024010100Z").is_err());
        assert!(parse_time("Z").is_err());
        // Without Z: the host's time zone (UTC or not, the result is within a day of UTC).
        let local = parse_time("20240101").unwrap();
        assert!((local - 1_704_067_200).abs() <= 26 * 3600);
    }

    #[test]
    fn trust_patterns_match_like_openssh() {
        assert!(match_pattern_list("git", "git"));
        assert!(match_pattern_list("git", "file,git"));
        assert!(match_pattern_list("git", "g*"));
        assert!(match_pattern_list("git", "g?t"));
        assert!(match_pattern_list("git", "*"));
        assert!(!match_pattern_list("git", "file"));
        assert!(!match_pattern_list("git", "g?"));
        assert!(!match_pattern_list("git", "*,!git"));
        assert!(!match_pattern_list("git", "!file"));
        assert!(!match_pattern_list("git", "GIT"));
        assert!(match_pattern(b"a@example.org", b"*@example.org"));
        assert!(match_pattern(b"aaab", b"*a*b"));
        assert!(!match_pattern(b"aaac", b"*a*b"));
    }
}
