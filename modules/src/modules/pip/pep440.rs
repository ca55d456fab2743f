//! PEP 440 versions and version specifiers, as Python's `packaging` (which pip.py uses) compares
//! them: `Specifier.contains(version, prereleases=True)`. A specifier this does not evaluate
//! exactly (an `==` prefix match other than on release numbers) is refused when parsed.

use std::cmp::Ordering;

/// A parsed version: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    epoch: u64,
    release: Vec<u64>,
    /// (0 = a, 1 = b, 2 = rc, number)
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<Local>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Local {
    Num(u64),
    Str(String),
}

/// A number after an optional separator (`.`, `-`, `_`), if any digits follow.
fn number(s: &str) -> (Option<u64>, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return (None, s);
    }
    (s[..digits].parse().ok(), &s[digits..])
}

fn strip_sep(s: &str) -> &str {
    s.strip_prefix(['.', '-', '_']).unwrap_or(s)
}

/// `KEYWORD[sep]N`: the keyword found (longest first) and its number (0 when implicit).
fn suffix<'a>(s: &'a str, words: &[&'static str]) -> Option<(&'static str, u64, &'a str)> {
    let t = strip_sep(s);
    for w in words {
        if let Some(rest) = t.strip_prefix(w) {
            let (n, rest2) = number(strip_sep(rest));
            return Some(match n {
                Some(n) => (*w, n, rest2),
                None => (*w, 0, rest),
            });
        }
    }
    None
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let lower = text.trim().to_ascii_lowercase();
        let s = lower.strip_prefix('v').unwrap_or(&lower);
        let (public, local) = match s.split_once('+') {
            Some((p, l)) => (p, Some(l)),
            None => (s, None),
        };
        let (epoch, s) = match public.split_once('!') {
            Some((e, rest)) => (e.parse().ok()?, rest),
            None => (0, public),
        };
        let mut release = Vec::new();
        let (first, mut s) = number(s);
        release.push(first?);
        while let Some(rest) = s.strip_prefix('.') {
            match number(rest) {
                (Some(n), r) => {
                    release.push(n);
                    s = r;
                }
                (None, _) => break,
            }
        }
        let mut v = Version {
            epoch,
            release,
            pre: None,
            post: None,
            dev: None,
            local: Vec::new(),
        };
        let pre_words = ["alpha", "beta", "preview", "pre", "rc", "a", "b", "c"];
        if let Some((w, n, rest)) = suffix(s, &pre_words) {
            let kind = match w {
                "alpha" | "a" => 0,
                "beta" | "b" => 1,
                _ => 2,
            };
            v.pre = Some((kind, n));
            s = rest;
        }
        if let Some((_, n, rest)) = suffix(s, &["post", "rev", "r"]) {
            v.post = Some(n);
            s = rest;
        } else if let Some(rest) = s.strip_prefix('-') {
            let (n, rest) = number(rest);
            v.post = Some(n?);
            s = rest;
        }
        if let Some((_, n, rest)) = suffix(s, &["dev"]) {
            v.dev = Some(n);
            s = rest;
        }
        if !s.is_empty() {
            return None;
        }
        if let Some(l) = local {
            for part in l.split(['.', '-', '_']) {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return None;
                }
                v.local.push(match part.parse() {
                    Ok(n) => Local::Num(n),
                    Err(_) => Local::Str(part.to_string()),
                });
            }
        }
        Some(v)
    }

    fn public(&self) -> Version {
        Version {
            local: Vec::new(),
            ..self.clone()
        }
    }

    fn base(&self) -> Version {
        Version {
            epoch: self.epoch,
            release: self.release.clone(),
            pre: None,
            post: None,
            dev: None,
            local: Vec::new(),
        }
    }

    fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// packaging's `_cmpkey`: release without trailing zeros; a dev release without pre or
    /// post sorts before every pre-release; no pre sorts after pre-releases; no post before
    /// posts; no dev after devs; no local before locals (numbers above strings).
    fn key(&self) -> impl Ord + '_ {
        let mut rel = self.release.as_slice();
        while let [head @ .., 0] = rel {
            rel = head;
        }
        let pre: (i8, u8, u64) = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0, 0),
            (None, _, _) => (1, 0, 0),
            (Some((k, n)), _, _) => (0, k, n),
        };
        let post: (i8, u64) = self.post.map_or((-1, 0), |n| (0, n));
        let dev: (i8, u64) = self.dev.map_or((1, 0), |n| (0, n));
        let local: Vec<(i8, u64, &str)> = self
            .local
            .iter()
            .map(|l| match l {
                Local::Num(n) => (1, *n, ""),
                Local::Str(s) => (0, 0, s.as_str()),
            })
            .collect();
        let has_local = !self.local.is_empty();
        (self.epoch, rel, pre, post, dev, has_local, local)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One clause of a specifier set (`>=1.0`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Clause {
    /// `==V.*` / `!=V.*` on release numbers: (epoch, prefix, negated)
    Prefix(u64, Vec<u64>, bool),
    /// `===text`
    Arbitrary(String),
    Cmp(&'static str, Version),
}

/// Why a specifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot evaluate the version specifier `{0}`")]
pub(crate) struct SpecError(pub String);

const OPERATORS: &[&str] = &["===", "~=", "==", "!=", "<=", ">=", "<", ">"];

impl Clause {
    pub fn parse(text: &str) -> Result<Clause, SpecError> {
        let t = text.trim();
        let err = || SpecError(t.to_string());
        let op = OPERATORS
            .iter()
            .find(|op| t.starts_with(**op))
            .ok_or_else(err)?;
        let rest = t[op.len()..].trim();
        if *op == "===" {
            return Ok(Clause::Arbitrary(rest.to_string()));
        }
        if let Some(prefix) = rest.strip_suffix(".*") {
            if !matches!(*op, "==" | "!=") {
                return Err(err());
            }
            let v = Version::parse(prefix).ok_or_else(err)?;
            // Only a release-number prefix (`1.2.*`) is matched here.
            if v.pre.is_some() || v.post.is_some() || v.dev.is_some() || !v.local.is_empty() {
                return Err(err());
            }
            return Ok(Clause::Prefix(v.epoch, v.release, *op == "!="));
        }
        let v = Version::parse(rest).ok_or_else(err)?;
        if *op == "~=" && v.release.len() < 2 {
            return Err(err());
        }
        if !v.local.is_empty() && !matches!(*op, "==" | "!=") {
            return Err(err());
        }
        Ok(Clause::Cmp(op, v))
    }

    /// `Specifier.contains(candidate, prereleases=True)`.
    pub fn contains(&self, candidate: &Version, raw: &str) -> bool {
        match self {
            Clause::Arbitrary(s) => s.eq_ignore_ascii_case(raw.trim()),
            Clause::Prefix(epoch, prefix, negated) => {
                prefix_match(candidate, *epoch, prefix) != *negated
            }
            Clause::Cmp(op, spec) => {
                let public = candidate.public();
                match *op {
                    "==" => equal(candidate, spec),
                    "!=" => !equal(candidate, spec),
                    "<=" => public <= *spec,
                    ">=" => public >= *spec,
                    "<" => {
                        // `<V` excludes pre-releases of V itself unless V is one.
                        let pre_of_spec = !spec.is_prerelease()
                            && candidate.is_prerelease()
                            && candidate.base() == spec.base();
                        *candidate < *spec && !pre_of_spec
                    }
                    ">" => {
                        // `>V` excludes post-releases and local versions of V itself.
                        let same_base = candidate.base() == spec.base();
                        let post_of_spec =
                            spec.post.is_none() && candidate.post.is_some() && same_base;
                        let local_of_spec = !candidate.local.is_empty() && same_base;
                        *candidate > *spec && !post_of_spec && !local_of_spec
                    }
                    "~=" => {
                        let prefix = &spec.release[..spec.release.len() - 1];
                        public >= *spec && prefix_match(candidate, spec.epoch, prefix)
                    }
                    _ => false,
                }
            }
        }
    }
}

fn equal(candidate: &Version, spec: &Version) -> bool {
    if spec.local.is_empty() {
        candidate.public() == *spec
    } else {
        candidate == spec
    }
}

/// `==E!P.*`: the candidate's release, padded with zeros, starts with `prefix`.
fn prefix_match(candidate: &Version, epoch: u64, prefix: &[u64]) -> bool {
    candidate.epoch == epoch
        && prefix
            .iter()
            .enumerate()
            .all(|(i, p)| candidate.release.get(i).copied().unwrap_or(0) == *p)
}

/// A specifier set (`>=1.0,<2`): every clause must hold. Empty: any version.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct SpecifierSet(pub Vec<Clause>);

impl SpecifierSet {
    pub fn parse(text: &str) -> Result<SpecifierSet, SpecError> {
        text.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(Clause::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(SpecifierSet)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `version` (as pip lists it) satisfies every clause; an unparsable version
    /// satisfies only an empty set or `===`.
    pub fn contains(&self, version: &str) -> bool {
        match Version::parse(version) {
            Some(v) => self.0.iter().all(|c| c.contains(&v, version)),
            None => self.0.iter().all(
                |c| matches!(c, Clause::Arbitrary(s) if s.eq_ignore_ascii_case(version.trim())),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str, version: &str) -> bool {
        SpecifierSet::parse(spec).unwrap().contains(version)
    }

    #[test]
    fn versions_order_as_packaging() {
        let order = [
            "1.0.dev1",
            "1.0a1",
            "1.0a2.dev1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0+local",
            "1.0.post1.dev1",
            "1.0.post1",
            "1.1",
            "1!0.1",
        ];
        for w in order.windows(2) {
            let (a, b) = (Version::parse(w[0]).unwrap(), Version::parse(w[1]).unwrap());
            assert!(a < b, "{} < {}", w[0], w[1]);
        }
        assert_eq!(Version::parse("1.0.0"), Version::parse("1"));
        assert_eq!(Version::parse("1.0-1"), Version::parse("1.0.post1"));
        assert_eq!(Version::parse("1.0RC1"), Version::parse("1.0rc1"));
        assert!(Version::parse("1.0.x").is_none());
    }

    #[test]
    fn specifiers_as_packaging() {
        assert!(ok("", "3.1"));
        assert!(ok("==1.0", "1.0.0"));
        assert!(ok("==1.0", "1.0+cpu"));
        assert!(!ok("==1.0+cpu", "1.0"));
        assert!(ok(">=1.0,<2", "1.5"));
        assert!(!ok(">=1.0,<2", "2.0"));
        assert!(!ok("<2", "2.0rc1"));
        assert!(ok("<2rc2", "2.0rc1"));
        assert!(!ok(">1.0", "1.0.post1"));
        assert!(ok(">1.0.post0", "1.0.post1"));
        assert!(ok("~=1.4.2", "1.4.5"));
        assert!(!ok("~=1.4.2", "1.5"));
        assert!(ok("~=1.4", "1.9"));
        assert!(ok("==1.4.*", "1.4.7"));
        assert!(!ok("!=1.4.*", "1.4.7"));
        assert!(ok("!=1.4", "1.5"));
        assert!(ok(">=1.0", "2.0a1")); // prereleases=True
        assert!(ok("===1.0", "1.0"));
        assert!(!ok("===1.0", "1.0.0"));
        assert!(SpecifierSet::parse("~=1").is_err());
        assert!(SpecifierSet::parse("==1.0rc1.*").is_err());
        assert!(SpecifierSet::parse(">=1.0+x").is_err());
    }
}
