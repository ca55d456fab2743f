//! Host identifiers and branch templates: `{hostname}`, `{fqdn}`, `{machine_id}` in `branch` and
//! `status.branch`.

use std::fmt;
use std::str::FromStr;

use gitops_modules::facts::Facts;

/// The values `{hostname}`, `{fqdn}` and `{machine_id}` expand to in branch names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostIds {
    pub hostname: String,
    pub fqdn: String,
    pub machine_id: String,
}

impl HostIds {
    /// From gathered facts (`hostname`, `fqdn`, `machine_id`; a missing one is empty).
    pub fn from_facts(facts: &Facts) -> HostIds {
        let get = |k: &str| {
            facts
                .map
                .get(k)
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        HostIds {
            hostname: get("hostname"),
            fqdn: get("fqdn"),
            machine_id: get("machine_id"),
        }
    }

    /// Gathers the facts of this host and takes the identifiers from them.
    pub fn gather() -> HostIds {
        HostIds::from_facts(&Facts::gather())
    }
}

const PLACEHOLDERS: [&str; 3] = ["hostname", "fqdn", "machine_id"];

/// A branch name that may hold `{hostname}`, `{fqdn}` and `{machine_id}`, checked when built:
/// only those placeholders, and a valid Git branch name once they are filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BranchTemplate(String);

/// Why a branch template is refused; each names the template as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BranchError {
    #[error(
        "unknown placeholder `{{{name}}}` in branch `{text}` (known: {{hostname}}, {{fqdn}}, \
         {{machine_id}})"
    )]
    UnknownPlaceholder { name: String, text: String },
    #[error("unmatched `}}` in `{text}`")]
    UnmatchedClose { text: String },
    #[error("unmatched `{{` in `{text}`")]
    UnmatchedOpen { text: String },
    /// The full ref was given where a branch name is meant.
    #[error("`{text}`: write the branch name without `refs/heads/` (e.g. `hosts/{{hostname}}`)")]
    FullRef { text: String },
    /// Not a valid Git branch name once the placeholders are filled in; `why` is Git's rule.
    #[error("invalid branch name `{text}`: {why}")]
    InvalidName { text: String, why: &'static str },
}

impl BranchTemplate {
    pub fn new(text: &str) -> Result<BranchTemplate, BranchError> {
        let filled = fill(text, |name| {
            if PLACEHOLDERS.contains(&name) {
                Ok("x".to_string())
            } else {
                Err(BranchError::UnknownPlaceholder {
                    name: name.to_string(),
                    text: text.to_string(),
                })
            }
        })?;
        if filled.starts_with("refs/") {
            return Err(BranchError::FullRef {
                text: text.to_string(),
            });
        }
        check_ref_name(&filled).map_err(|why| BranchError::InvalidName {
            text: text.to_string(),
            why,
        })?;
        Ok(BranchTemplate(text.to_string()))
    }

    /// An empty template, until the schema's default is stored (`Config::defaults`).
    pub(super) fn placeholder() -> BranchTemplate {
        BranchTemplate(String::new())
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The branch name for this host (placeholders replaced; a missing value expands to "").
    pub fn expand(&self, ids: &HostIds) -> String {
        fill(&self.0, |name| {
            Ok(match name {
                "hostname" => ids.hostname.clone(),
                "fqdn" => ids.fqdn.clone(),
                "machine_id" => ids.machine_id.clone(),
                _ => String::new(),
            })
        })
        .unwrap_or_default()
    }
}

impl FromStr for BranchTemplate {
    type Err = BranchError;
    fn from_str(s: &str) -> Result<BranchTemplate, BranchError> {
        BranchTemplate::new(s)
    }
}

impl fmt::Display for BranchTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Replaces each `{name}` of `text` by `value(name)`.
fn fill(
    text: &str,
    value: impl Fn(&str) -> Result<String, BranchError>,
) -> Result<String, BranchError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        if rest[i..].starts_with('}') {
            return Err(BranchError::UnmatchedClose {
                text: text.to_string(),
            });
        }
        let end = rest[i..]
            .find('}')
            .ok_or_else(|| BranchError::UnmatchedOpen {
                text: text.to_string(),
            })?;
        out.push_str(&value(&rest[i + 1..i + end])?);
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Git's rules for a branch name (`git check-ref-format --branch`).
fn check_ref_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err("empty path component");
    }
    if name.starts_with('-') {
        return Err("it starts with `-`");
    }
    if name.ends_with('.') {
        return Err("it ends with `.`");
    }
    if name.contains("..") {
        return Err("it contains `..`");
    }
    if name.contains("@{") || name == "@" {
        return Err("it contains `@{` or is `@`");
    }
    if name
        .chars()
        .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
    {
        return Err("it contains a space, a control character or one of ~ ^ : ? * [ \\");
    }
    for part in name.split('/') {
        if part.starts_with('.') {
            return Err("a path component starts with `.`");
        }
        if part.ends_with(".lock") {
            return Err("a path component ends with `.lock`");
        }
    }
    Ok(())
}
