//! A key's typed value and where it was defined, and the one place that binds each key of the
//! schema ([`super::keys::KEYS`]) to its field of [`Config`].

use std::path::{Path, PathBuf};

use gitops_modules::error::Location;
use gitops_modules::playbook::RawVars;

use super::keys::{self, Kind};
use super::repo::{absolute, RepoUrlError};
use super::{
    BranchError, BranchTemplate, Config, DriftPolicy, DriftPolicyError, Duration,
    ParseDurationError, RebootPolicy, RebootPolicyError, RepoUrl,
};

/// Where a key's value came from (cargo's `Definition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Definition {
    /// The schema's default.
    Default,
    /// The configuration file, at this line.
    File(Location),
    /// The command line.
    CommandLine,
}

/// A value of one of the schema's [`Kind`]s, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Repo(RepoUrl),
    Branch(BranchTemplate),
    /// A playbook path.
    Text(String),
    Vars(RawVars),
    Duration(Duration),
    Drift(DriftPolicy),
    Reboot(RebootPolicy),
    Path(PathBuf),
    Paths(Vec<PathBuf>),
    Bool(bool),
    /// `ansible_modules`: true for `auto`.
    Bridge(bool),
    Names(Vec<String>),
}

/// Why a text is not a value of its key's [`Kind`]; the message is the parser's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(transparent)]
    Repo(#[from] RepoUrlError),
    #[error(transparent)]
    Branch(#[from] BranchError),
    /// Variables have their own flag, `-e`, not a key flag.
    #[error("extra variables are given with -e")]
    Vars,
    #[error(transparent)]
    Duration(#[from] ParseDurationError),
    #[error(transparent)]
    Drift(#[from] DriftPolicyError),
    #[error(transparent)]
    Reboot(#[from] RebootPolicyError),
    #[error(transparent)]
    Path(#[from] EmptyPathError),
    #[error("`{0}`: expected true or false")]
    Bool(String),
    #[error("`{0}`: expected auto or off")]
    Bridge(String),
    #[error("`{0}`: expected a module name (`name` or `namespace.collection.name`)")]
    Name(String),
}

/// An empty path where a path is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("empty path")]
pub struct EmptyPathError;

impl Value {
    /// Reads `text` (a default of the schema, or a flag's value) as a value of `kind`; relative
    /// paths are resolved against `base`. A list takes `text` as its one element.
    pub fn parse(kind: Kind, text: &str, base: &Path) -> Result<Value, ValueError> {
        Ok(match kind {
            Kind::Repo => Value::Repo(RepoUrl::parse(text, base)?),
            Kind::Branch => Value::Branch(BranchTemplate::new(text)?),
            Kind::Playbook => Value::Text(text.to_string()),
            Kind::Vars => return Err(ValueError::Vars),
            Kind::Duration => Value::Duration(text.parse()?),
            Kind::Drift => Value::Drift(DriftPolicy::parse(text)?),
            Kind::Reboot => Value::Reboot(RebootPolicy::parse(text)?),
            Kind::Path => Value::Path(path(text, base)?),
            Kind::Paths => Value::Paths(vec![path(text, base)?]),
            Kind::Bool => Value::Bool(match text {
                "true" => true,
                "false" => false,
                other => return Err(ValueError::Bool(other.to_string())),
            }),
            Kind::Bridge => Value::Bridge(parse_bridge(text)?),
            Kind::Names => Value::Names(vec![module_name(text)?]),
        })
    }
}

/// `auto` (true) or `off` (false).
pub(super) fn parse_bridge(text: &str) -> Result<bool, ValueError> {
    match text {
        "auto" => Ok(true),
        "off" => Ok(false),
        other => Err(ValueError::Bridge(other.to_string())),
    }
}

/// A module name: dotted words of letters, digits and `_`.
pub(super) fn module_name(text: &str) -> Result<String, ValueError> {
    let ok = !text.is_empty()
        && text
            .split('.')
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if ok {
        Ok(text.to_string())
    } else {
        Err(ValueError::Name(text.to_string()))
    }
}

/// A path made absolute against `base`; empty is an error.
pub(super) fn path(text: &str, base: &Path) -> Result<PathBuf, EmptyPathError> {
    if text.is_empty() {
        return Err(EmptyPathError);
    }
    Ok(absolute(base, Path::new(text)))
}

impl Config {
    /// Stores `value` as the value of `key`. False when `key` has no field of that type: a
    /// mistake in the schema, which the tests catch (`every_key_is_bound_to_a_field`).
    pub(super) fn store(&mut self, key: &str, value: Value) -> bool {
        use Value as V;
        match (key, value) {
            ("repo", V::Repo(v)) => self.repo = Some(v),
            ("branch", V::Branch(v)) => self.branch = v,
            ("playbook", V::Text(v)) => self.playbook = Some(v),
            ("inventory", V::Text(v)) => self.inventory = Some(v),
            // The command line's variables are merged key by key over the file's.
            ("extra_vars", V::Vars(v)) => self.extra_vars.extend(v),
            ("interval", V::Duration(v)) => self.interval = v,
            ("splay", V::Duration(v)) => self.splay = v,
            ("enforce", V::Duration(v)) => self.enforce = v,
            ("drift", V::Drift(v)) => self.drift = v,
            ("reboot", V::Reboot(v)) => self.reboot = v,
            ("metrics_file", V::Path(v)) => self.metrics_file = Some(v),
            ("ssh_key", V::Path(v)) => self.ssh_key = Some(v),
            ("known_hosts", V::Path(v)) => self.known_hosts = Some(v),
            ("http.credentials_file", V::Path(v)) => self.http.credentials_file = Some(v),
            ("http.ca_file", V::Path(v)) => self.http.ca_file = Some(v),
            ("signing.allowed_signers", V::Path(v)) => self.signing.allowed_signers = Some(v),
            ("signing.openpgp_keys", V::Paths(v)) => self.signing.openpgp_keys = v,
            ("signing.require", V::Bool(v)) => self.signing.require = v,
            ("allow_rollback", V::Bool(v)) => self.allow_rollback = v,
            ("status.repo", V::Repo(v)) => self.status.repo = Some(v),
            ("status.branch", V::Branch(v)) => self.status.branch = v,
            ("status.heartbeat", V::Duration(v)) => self.status.heartbeat = v,
            ("status.enabled", V::Bool(v)) => self.status.enabled = v,
            ("state_dir", V::Path(v)) => self.state_dir = v,
            ("ansible_modules", V::Bridge(v)) => self.ansible_modules = v,
            ("ansible_python", V::Path(v)) => self.ansible_python = Some(v),
            ("ansible_modules_force", V::Names(v)) => self.ansible_modules_force = v,
            _ => return false,
        }
        true
    }

    /// The configuration of the schema's defaults alone.
    pub(super) fn defaults() -> Config {
        let mut c = Config::empty();
        for key in keys::KEYS {
            if let Some(text) = key.default {
                let stored = Value::parse(key.kind, text, Path::new("/"))
                    .map(|v| c.store(key.name, v))
                    .unwrap_or(false);
                // The tests parse every default (`schema_defaults_parse`); never outside input.
                debug_assert!(stored, "the default of `{}` does not parse", key.name);
            }
        }
        c
    }
}
