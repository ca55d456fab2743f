//! pip.py's reading of `name`: the names recovered from a list that may split specifiers on
//! commas (`_recover_package_name`), each parsed as a PEP 508 requirement (`Package`).

use super::pep440::{SpecError, SpecifierSet};

/// One package of `name`, as pip.py's `Package`.
#[derive(Debug, Clone)]
pub(crate) struct Package {
    /// The canonical name (PEP 503) of a plain requirement, else the text as given.
    pub name: String,
    /// The version specifiers of a plain requirement; `None`: not a requirement pip.py can
    /// compare (a path, a URL, a VCS link), never counted as installed.
    pub spec: Option<SpecifierSet>,
    /// As passed to pip (`str(Requirement)`).
    pub text: String,
}

impl Package {
    /// `name_string`, with `version` appended as pip.py does (`==V` when it starts with a
    /// digit, else ` V`).
    pub fn new(name_string: &str, version: Option<&str>) -> Result<Package, SpecError> {
        let full = match version.map(str::trim_start) {
            Some(v) if !v.is_empty() => {
                let sep = if v.starts_with(|c: char| c.is_ascii_digit()) {
                    "=="
                } else {
                    " "
                };
                format!("{name_string}{sep}{v}")
            }
            _ => name_string.to_string(),
        };
        match parse(&full)? {
            Some((name, extras, url, spec_text)) => {
                let spec = SpecifierSet::parse(&spec_text)?;
                let mut clauses: Vec<String> = spec_text
                    .split(',')
                    .map(|c| c.split_whitespace().collect::<String>())
                    .filter(|c| !c.is_empty())
                    .collect();
                clauses.sort();
                let mut text = name.clone();
                if !extras.is_empty() {
                    text.push_str(&format!("[{}]", extras.join(",")));
                }
                text.push_str(&clauses.join(","));
                if let Some(url) = url {
                    text.push_str(&format!(" @ {url}"));
                }
                Ok(Package {
                    name: canonicalize(&name),
                    spec: Some(spec),
                    text,
                })
            }
            None => Ok(Package {
                name: full.clone(),
                spec: None,
                text: full,
            }),
        }
    }

    pub fn has_version_specifier(&self) -> bool {
        self.spec.as_ref().is_some_and(|s| !s.is_empty())
    }

    pub fn is_satisfied_by(&self, version: &str) -> bool {
        self.spec.as_ref().is_some_and(|s| s.contains(version))
    }
}

/// Name, sorted extras, `@ url` and specifier text of a PEP 508 requirement; `None` when the
/// text is not one (pip.py then passes it to pip as is). Environment markers are refused.
#[allow(clippy::type_complexity)]
fn parse(text: &str) -> Result<Option<(String, Vec<String>, Option<String>, String)>, SpecError> {
    let t = text.trim();
    let name_len = t
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        .count();
    let name = &t[..name_len];
    if name.is_empty()
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Ok(None);
    }
    let mut rest = t[name_len..].trim_start();
    let mut extras = Vec::new();
    if let Some(after) = rest.strip_prefix('[') {
        let Some((inside, tail)) = after.split_once(']') else {
            return Ok(None);
        };
        extras = inside
            .split(',')
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        extras.sort();
        rest = tail.trim_start();
    }
    if rest.contains(';') {
        return Err(SpecError(format!(
            "{t} (environment markers are not supported)"
        )));
    }
    if let Some(url) = rest.strip_prefix('@') {
        return Ok(Some((
            name.to_string(),
            extras,
            Some(url.trim().to_string()),
            String::new(),
        )));
    }
    let spec = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(rest);
    if !spec.is_empty() && !spec.starts_with(['<', '>', '=', '!', '~']) {
        return Ok(None);
    }
    Ok(Some((name.to_string(), extras, None, spec.to_string())))
}

/// PEP 503: runs of `-`, `_`, `.` become `-`, lower case.
pub(crate) fn canonicalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

const OPERATOR_STARTS: &[&str] = &[">=", "<=", ">", "<", "==", "!=", "~="];

/// pip.py's `_recover_package_name`: `['django>1.11.1', '<1.11.3', 'ipaddress']` →
/// `['django>1.11.1,<1.11.3', 'ipaddress']` (a part starting with an operator continues the
/// previous name, as does a part inside `[...]`).
pub(crate) fn recover_package_names(names: &[String]) -> Vec<String> {
    let parts: Vec<&str> = names.iter().flat_map(|n| n.split(',')).collect();
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut in_brackets = false;
    for part in parts {
        let is_name = !OPERATOR_STARTS
            .iter()
            .any(|op| part.trim_start().starts_with(op));
        if is_name && !in_brackets {
            if !current.is_empty() {
                out.push(current.join(","));
            }
            current.clear();
        }
        if part.contains('[') {
            in_brackets = true;
        }
        if in_brackets && part.contains(']') {
            in_brackets = false;
        }
        current.push(part);
    }
    out.push(current.join(","));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        recover_package_names(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn names_recovered_as_pip_py() {
        assert_eq!(
            names(&[
                "django>1.11.1",
                "<1.11.3",
                "ipaddress",
                "simpleproject>1.1.0",
                "<2.0.0"
            ]),
            [
                "django>1.11.1,<1.11.3",
                "ipaddress",
                "simpleproject>1.1.0,<2.0.0"
            ]
        );
        assert_eq!(
            names(&[
                "django>1.11.1,<1.11.3,ipaddress",
                "simpleproject>1.1.0,<2.0.0"
            ]),
            [
                "django>1.11.1,<1.11.3",
                "ipaddress",
                "simpleproject>1.1.0,<2.0.0"
            ]
        );
        assert_eq!(names(&["req[a,b]>=1", "x"]), ["req[a,b]>=1", "x"]);
    }

    #[test]
    fn packages_parsed_as_pip_py() {
        let p = Package::new("Foo_Bar >= 1.0, <2", None).unwrap();
        assert_eq!(
            (p.name.as_str(), p.text.as_str()),
            ("foo-bar", "Foo_Bar<2,>=1.0")
        );
        assert!(p.is_satisfied_by("1.5") && !p.is_satisfied_by("2.0"));
        let p = Package::new("foo", Some("1.2")).unwrap();
        assert_eq!(p.text, "foo==1.2");
        assert!(p.has_version_specifier());
        let p = Package::new("foo", Some(">=1.2")).unwrap();
        assert_eq!(p.text, "foo>=1.2");
        let p = Package::new("foo", None).unwrap();
        assert!(!p.has_version_specifier() && p.is_satisfied_by("0.1"));
        let p = Package::new("git+https://example.com/x.git", None).unwrap();
        assert!(p.spec.is_none() && !p.is_satisfied_by("1"));
        assert!(Package::new("foo; python_version < '3'", None).is_err());
        assert!(Package::new("foo==1.0rc1.*", None).is_err());
    }
}
