//! The agent's configuration: `/etc/gitops-agent/config.yml`, overridable key by key on the
//! command line.
//!
//! Every key is defined once, in the schema [`keys::KEYS`] (name, type, default, flag, help);
//! [`value`] binds each to its field of [`Config`]. Precedence: command line
//! ([`ConfigOverrides`], from the flags `crate::cli::KeyFlags` generates from the schema) > the
//! file > the schema's defaults, and [`Config::definition`] tells which one a key's value came
//! from (the file: with its line). The file is read with the project's own YAML loader
//! ([`read`]) so that every error names the file, the line and the key, and unknown keys and
//! values of the wrong type are errors, never ignored. The commented example is
//! `packaging/config.yml` ([`EXAMPLE_CONFIG`]), checked against the schema by the tests.
//!
//! Path-valued keys are made absolute while loading: relative paths in the file are resolved
//! against the file's directory, relative paths on the command line against the current
//! directory. Credentials are never part of the configuration: HTTP credentials live in the
//! file named by `http.credentials_file` ([`HttpCredentials`]), and a password inside a
//! repository URL is refused.

mod branch;
mod credentials;
pub mod keys;
mod overrides;
mod read;
mod repo;
mod value;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use gitops_modules::error::{LoadError, LoadErrors, Location};
use gitops_modules::playbook::RawVars;
use gitops_modules::yaml;

use crate::duration::DURATION_SYNTAX;
pub use crate::duration::{Duration, ParseDurationError};
pub use branch::BranchError;
pub use branch::{BranchTemplate, HostIds};
pub use credentials::HttpCredentials;
pub use overrides::{ConfigOverrides, OverrideError};
pub use repo::{RepoKind, RepoUrl, RepoUrlError};
pub use value::{Definition, EmptyPathError, ValueError};

/// Where the configuration file is read from unless `--config` names another.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/gitops-agent/config.yml";

/// The documented example configuration, every key with its default or an example value:
/// `packaging/config.yml`, installed as `/etc/gitops-agent/config.yml` by the packages.
pub const EXAMPLE_CONFIG: &str = include_str!("../../../packaging/config.yml");

/// What the daemon does about drift: `drift: correct` (default), `report` or `off` (no watch).
/// A task overrides the first two with the tag `drift_report`/`drift_correct` or the variable
/// `gitops_drift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DriftPolicy {
    Correct,
    Report,
    Off,
}

impl DriftPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftPolicy::Correct => "correct",
            DriftPolicy::Report => "report",
            DriftPolicy::Off => "off",
        }
    }

    /// `correct`, `report` or `off`.
    pub fn parse(text: &str) -> Result<DriftPolicy, DriftPolicyError> {
        match text {
            "correct" => Ok(DriftPolicy::Correct),
            "report" => Ok(DriftPolicy::Report),
            "off" => Ok(DriftPolicy::Off),
            other => Err(DriftPolicyError(other.to_string())),
        }
    }
}

/// A `drift` value that is none of the policies (the text given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}`: expected correct, report or off")]
pub struct DriftPolicyError(pub String);

/// Whether the agent may reboot the host when a `reboot` task ran: `reboot: allow`, or `deny`
/// (default: the reboot is owed, recorded in the state and the status, and left to a person).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RebootPolicy {
    Allow,
    Deny,
}

impl RebootPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RebootPolicy::Allow => "allow",
            RebootPolicy::Deny => "deny",
        }
    }

    /// `allow` or `deny`.
    pub fn parse(text: &str) -> Result<RebootPolicy, RebootPolicyError> {
        match text {
            "allow" => Ok(RebootPolicy::Allow),
            "deny" => Ok(RebootPolicy::Deny),
            other => Err(RebootPolicyError(other.to_string())),
        }
    }
}

/// A `reboot` value that is neither `allow` nor `deny` (the text given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}`: expected allow or deny")]
pub struct RebootPolicyError(pub String);

/// Why a `playbook` (or `inventory`) path is refused: it must stay inside the repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaybookPathError {
    #[error("empty path")]
    Empty,
    #[error("`{0}`: a path inside the repository is expected, not an absolute path")]
    Absolute(String),
    #[error("`{0}`: `..` would leave the repository")]
    LeavesRepository(String),
}

/// `http:` — how to authenticate over HTTP(S).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpConfig {
    /// A file of `username=...` and `password=...` lines (see [`HttpCredentials`]).
    pub credentials_file: Option<PathBuf>,
    /// A PEM file of extra CA certificates for https:// (a private CA).
    pub ca_file: Option<PathBuf>,
}

/// `signing:` — which keys commits must be signed with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SigningConfig {
    /// OpenSSH `allowed_signers` file (SSH signatures).
    pub allowed_signers: Option<PathBuf>,
    /// Files of OpenPGP public keys.
    pub openpgp_keys: Vec<PathBuf>,
    /// Refuse commits not signed by one of the keys.
    pub require: bool,
}

impl SigningConfig {
    /// At least one source of keys is configured.
    pub fn has_keys(&self) -> bool {
        self.allowed_signers.is_some() || !self.openpgp_keys.is_empty()
    }
}

/// `status:` — where status reports are committed.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusConfig {
    /// Status repository; `None` = the same as `repo` (see [`Config::status_repo`]).
    pub repo: Option<RepoUrl>,
    pub branch: BranchTemplate,
    /// A status commit is written at least this often even when nothing changed.
    pub heartbeat: Duration,
    pub enabled: bool,
}

/// The agent's configuration, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file the configuration was read from (`None`: defaults only).
    pub file: Option<Arc<str>>,
    pub repo: Option<RepoUrl>,
    pub branch: BranchTemplate,
    /// Playbook path inside the repository; `None` = ansible-pull's order.
    pub playbook: Option<String>,
    /// Inventory file inside the repository; `None` = ansible.cfg's, else `localhost,`.
    pub inventory: Option<String>,
    pub extra_vars: RawVars,
    pub interval: Duration,
    pub splay: Duration,
    /// The daemon re-converges the applied commit at least this often; zero = never.
    pub enforce: Duration,
    /// What the daemon does about drift (a watched target changed by something else).
    pub drift: DriftPolicy,
    /// Whether the agent reboots the host after a run whose `reboot` task ran.
    pub reboot: RebootPolicy,
    /// node_exporter textfile collector file; `None` = no metrics.
    pub metrics_file: Option<PathBuf>,
    pub ssh_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub http: HttpConfig,
    pub signing: SigningConfig,
    pub allow_rollback: bool,
    pub status: StatusConfig,
    pub state_dir: PathBuf,
    /// `ansible_modules: auto`: modules the agent does not implement run through the host's
    /// ansible-core (gitops_modules::bridge).
    pub ansible_modules: bool,
    /// The python3 with ansible-core; `None`: found by itself.
    pub ansible_python: Option<PathBuf>,
    /// Modules the agent has that still run through ansible-core.
    pub ansible_modules_force: Vec<String>,
    /// Where each key not at its default was defined (dotted: `status.branch`); sections
    /// (`status`) have their line too.
    defs: BTreeMap<String, Definition>,
}

impl Default for Config {
    /// The schema's defaults.
    fn default() -> Config {
        Config::defaults()
    }
}

/// The configuration could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// One or more errors, each naming file, line and key where known.
    #[error("{0}")]
    Invalid(LoadErrors),
}

impl ConfigError {
    /// The individual errors of an invalid configuration (empty for a read error).
    pub fn errors(&self) -> &[LoadError] {
        match self {
            ConfigError::Invalid(e) => &e.0,
            ConfigError::Read { .. } => &[],
        }
    }
}

impl From<LoadError> for ConfigError {
    fn from(e: LoadError) -> ConfigError {
        ConfigError::Invalid(LoadErrors(vec![e]))
    }
}

impl Config {
    /// Reads and checks the file at `path` (a missing file is an error).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_str(&path.to_string_lossy(), &text)
    }

    /// The text of the configuration file at `path`; `None` when `path` is the default one and
    /// no file is there (then the defaults apply, as in [`Config::load_or_default`]).
    pub fn read_text(path: &Path) -> Result<Option<String>, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Some(t)),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && path == Path::new(DEFAULT_CONFIG_PATH) =>
            {
                Ok(None)
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// As [`Config::load`], but a missing file gives the defaults (for the bootstrap, when
    /// everything comes from the command line).
    pub fn load_or_default(path: &Path) -> Result<Config, ConfigError> {
        match Config::load(path) {
            Err(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(Config::default())
            }
            other => other,
        }
    }

    /// Parses configuration text; `name` is the file name used in errors, and its directory is
    /// what relative paths are resolved against. Reports every error found, not only the first.
    pub fn from_str(name: &str, text: &str) -> Result<Config, ConfigError> {
        let file: Arc<str> = Arc::from(name);
        let root = yaml::parse(&file, text)?;
        let mut r = read::Reader::new(file.clone(), read::base_of(name));
        r.read(&root);
        if !r.errors.is_empty() {
            return Err(ConfigError::Invalid(LoadErrors(r.errors)));
        }
        let mut c = Config {
            file: Some(file.clone()),
            ..Config::default()
        };
        for (key, value) in r.values {
            c.store(key.name, value);
        }
        for (key, line) in r.lines {
            let loc = Location::new(file.clone(), line);
            c.defs.insert(key, Definition::File(loc));
        }
        Ok(c)
    }

    /// Lays the command line over this configuration.
    pub fn apply(&mut self, o: ConfigOverrides) {
        for (key, value) in o.into_values() {
            self.store(key.name, value);
            self.defs
                .insert(key.name.to_string(), Definition::CommandLine);
        }
    }

    /// A configuration with every field empty, before the defaults are stored.
    fn empty() -> Config {
        Config {
            file: None,
            repo: None,
            branch: BranchTemplate::placeholder(),
            playbook: None,
            inventory: None,
            extra_vars: RawVars::new(),
            interval: Duration::ZERO,
            splay: Duration::ZERO,
            enforce: Duration::ZERO,
            drift: DriftPolicy::Correct,
            reboot: RebootPolicy::Deny,
            metrics_file: None,
            ssh_key: None,
            known_hosts: None,
            http: HttpConfig::default(),
            signing: SigningConfig::default(),
            allow_rollback: false,
            status: StatusConfig {
                repo: None,
                branch: BranchTemplate::placeholder(),
                heartbeat: Duration::ZERO,
                enabled: false,
            },
            state_dir: PathBuf::new(),
            ansible_modules: false,
            ansible_python: None,
            ansible_modules_force: Vec::new(),
            defs: BTreeMap::new(),
        }
    }

    /// Checks what a pull needs and what no single key can check alone: `repo` is set,
    /// `signing.require` has keys, `interval`/`status.heartbeat` are not zero, the playbook is
    /// a path inside the repository, the status branch is not the host branch.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let where_ = match &self.file {
            Some(f) => format!("in {f} "),
            None => String::new(),
        };
        if self.repo.is_none() {
            errors.push(
                LoadError::new(format!(
                    "no repository to pull from: set `repo` {where_}or pass --repo"
                ))
                .with_key("repo"),
            );
        }
        if self.signing.require && !self.signing.has_keys() {
            errors.push(self.error(
                "signing.require",
                "`require: true` needs keys to verify with: set `signing.allowed_signers` or \
                 `signing.openpgp_keys`",
            ));
        }
        if self.interval.is_zero() {
            errors.push(self.error("interval", "must be more than 0s"));
        }
        if self.status.heartbeat.is_zero() {
            errors.push(self.error("status.heartbeat", "must be more than 0s"));
        }
        if let Some(p) = &self.playbook {
            if let Err(why) = check_playbook(p) {
                errors.push(self.error("playbook", why.to_string()));
            }
        }
        if let Some(p) = &self.inventory {
            if let Err(why) = check_playbook(p) {
                errors.push(self.error("inventory", why.to_string()));
            }
        }
        if self.status.enabled
            && self.status.branch == self.branch
            && self
                .status
                .repo
                .as_ref()
                .is_none_or(|r| Some(r) == self.repo.as_ref())
        {
            errors.push(self.error(
                "status.branch",
                format!(
                    "`{}` is also the host branch: status commits need a branch of their own \
                     (default `{}`)",
                    self.status.branch,
                    keys::find("status.branch").and_then(|k| k.default).unwrap_or_default()
                ),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(LoadErrors(errors)))
        }
    }

    /// The repository status commits go to: `status.repo`, or else `repo`.
    /// The engine's bridge to the host's ansible-core, when `ansible_modules: auto`.
    pub fn ansible_bridge(&self) -> Option<Arc<gitops_modules::bridge::Bridge>> {
        self.ansible_modules.then(|| {
            Arc::new(gitops_modules::bridge::Bridge::new(
                gitops_modules::bridge::BridgeOptions {
                    python: self.ansible_python.clone(),
                    force: self.ansible_modules_force.clone(),
                },
            ))
        })
    }

    pub fn status_repo(&self) -> Option<&RepoUrl> {
        self.status.repo.as_ref().or(self.repo.as_ref())
    }

    /// This host's branch.
    pub fn branch_name(&self, ids: &HostIds) -> String {
        self.branch.expand(ids)
    }

    /// This host's status branch.
    pub fn status_branch_name(&self, ids: &HostIds) -> String {
        self.status.branch.expand(ids)
    }

    /// Where a key (dotted: `status.repo`) was set in the file, if it was.
    pub fn location_of(&self, key: &str) -> Option<Location> {
        match self.defs.get(key)? {
            Definition::File(loc) => Some(loc.clone()),
            _ => None,
        }
    }

    /// Where the value of a key (dotted) came from: the default, the file or the command line.
    pub fn definition(&self, key: &str) -> Definition {
        self.defs.get(key).cloned().unwrap_or(Definition::Default)
    }

    fn error(&self, key: &str, message: impl Into<String>) -> LoadError {
        let e = match self.location_of(key) {
            Some(loc) => LoadError::at(loc, message),
            None => LoadError::new(message),
        };
        e.with_key(key)
    }
}

fn check_playbook(p: &str) -> Result<(), PlaybookPathError> {
    let path = Path::new(p);
    if p.trim().is_empty() {
        return Err(PlaybookPathError::Empty);
    }
    if path.is_absolute() {
        return Err(PlaybookPathError::Absolute(p.to_string()));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(PlaybookPathError::LeavesRepository(p.to_string()));
    }
    Ok(())
}
