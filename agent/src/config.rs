//! The agent's configuration: `/etc/gitops-agent/config.yml`, overridable key by key on the
//! command line (for the one-shot bootstrap).
//!
//! Precedence: command line ([`ConfigOverrides`]) > the file > the defaults. The file is read
//! with the project's own YAML loader so that every error names the file, the line and the key,
//! and unknown keys and values of the wrong type are errors, never ignored. The documented schema
//! is [`EXAMPLE_CONFIG`] (installed as `packaging/config.yml`).
//!
//! Path-valued keys are made absolute while loading: relative paths in the file are resolved
//! against the file's directory, relative paths on the command line against the current
//! directory. Credentials are never part of the configuration: HTTP credentials live in the
//! file named by `http.credentials_file` ([`HttpCredentials`]), and a password inside a
//! repository URL is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use gitops_modules::error::{LoadError, LoadErrors, Location};
use gitops_modules::facts::Facts;
use gitops_modules::playbook::RawVars;
use gitops_modules::yaml::{self, Entry, Node, NodeKind};

pub use crate::duration::Duration;
use crate::duration::DURATION_SYNTAX;

/// Where the configuration file is read from unless `--config` names another.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/gitops-agent/config.yml";
/// Default of `state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/gitops-agent";
/// Default of `branch`.
pub const DEFAULT_BRANCH: &str = "hosts/{hostname}";
/// Default of `status.branch`.
pub const DEFAULT_STATUS_BRANCH: &str = "status/{hostname}";
/// Default of `interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default of `splay`.
pub const DEFAULT_SPLAY: Duration = Duration::from_secs(30);
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
}

/// Default of `enforce`.
pub const DEFAULT_ENFORCE: Duration = Duration::from_secs(30 * 60);
/// Default of `status.heartbeat`.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(24 * 3600);

/// The documented example configuration, every key with its default or an example value.
/// Installed as `/etc/gitops-agent/config.yml` by the packages (`packaging/config.yml`).
pub const EXAMPLE_CONFIG: &str = r#"# /etc/gitops-agent/config.yml: configuration of gitops-agent.
#
# Every key is optional in this file and every key can also be given on the command line
# (the one-shot bootstrap: `--repo URL --branch ...`); the command line wins over this file,
# this file over the defaults. A key left empty (`splay:`) means its default.
#
# Unknown keys and values of the wrong type are errors that name this file, the line and the
# key: the agent refuses to start rather than guess.
#
# Relative paths are resolved against the directory of this file (/etc/gitops-agent).
# Durations are written `30s`, `5m`, `24h`, `1h30m` (units ms, s, m, h, d); a plain integer
# is a number of seconds.
#
# Lines made of `#` directly followed by a key are settings, shown with their default or an
# example value: remove the `#` to set them.

# The Git repository holding the desired state of the fleet. Required to pull. One of:
#   https://git.example.com/infra/fleet.git           HTTPS (credentials: `http` below)
#   http://git.example.com/infra/fleet.git            plain HTTP, for a trusted network only
#   ssh://git@git.example.com:2222/infra/fleet.git    SSH (key: `ssh_key` below)
#   git@git.example.com:infra/fleet.git               SSH, scp-like
#   file:///srv/git/fleet.git or /srv/git/fleet.git   a repository on this machine
# A password written into the URL is refused: see `http.credentials_file`.
#repo: https://git.example.com/infra/fleet.git

# The branch this host converges to. `{hostname}` (the short host name), `{fqdn}` and
# `{machine_id}` (/etc/machine-id) are replaced by this host's values.
#branch: hosts/{hostname}

# The playbook file, relative to the top of the repository. Default: the first of
# <fqdn>.yml, <hostname>.yml and local.yml, as ansible-pull picks it.
#playbook: site.yml

# Extra variables, with the highest precedence (as `ansible-playbook -e`).
#extra_vars:
#  environment: production
#  ntp_servers: [ntp1.example.com, ntp2.example.com]

# How often the daemon looks for a new commit, and a random delay of up to `splay` added to
# each wait so that a fleet does not poll the Git server all at the same second.
#interval: 60s
#splay: 30s

# The daemon re-converges the commit it has applied at least this often even when the branch
# has no new commit, and also when the Git server cannot be reached: the host is put back into
# the state of its last applied commit (from the copy kept in the state directory). `0s` turns
# it off. With the drift watch on, this is the safety net for what the watch cannot see.
#enforce: 30m

# Drift: between polls the daemon watches what the playbook manages (files and directories
# through inotify, packages through the dpkg/rpm database) and re-checks the playbook when
# something else changes it. `correct` puts it back, `report` only records it in the status,
# `off` does not watch. A task overrides correct/report with the tag `drift_report` or
# `drift_correct`, or the variable `gitops_drift: report|correct`.
#drift: correct

# Metrics for node_exporter's textfile collector: a file written (atomically) after every
# converge and poll of the daemon, e.g. into node_exporter's --collector.textfile.directory.
# Default: unset, no metrics file.
#metrics_file: /var/lib/prometheus/node-exporter/gitops-agent.prom

# SSH transport: the private key to authenticate with and the known_hosts file to check the
# server's host key against. Default: unset, OpenSSH's own defaults apply.
#ssh_key: /etc/gitops-agent/id_ed25519
#known_hosts: /etc/gitops-agent/known_hosts

# HTTP(S) transport: credentials are read from a file, never from this file or the command
# line. The file holds two lines, `username=...` and `password=...` (a password or an access
# token); blank lines and lines starting with `#` are ignored. It must not be readable by
# other users (chmod 600).
# Credentials are only ever sent over https://.
# `ca_file`: a PEM file of CA certificates trusted for https:// in addition to the system's
# (a private CA). Default: unset, the system's CA store only.
#http:
#  credentials_file: /etc/gitops-agent/http-credentials
#  ca_file: /etc/gitops-agent/ca.pem

# Commit signatures. `allowed_signers` is an OpenSSH allowed_signers file (as for
# `git config gpg.ssh.allowedSignersFile`); `openpgp_keys` lists files of OpenPGP public
# keys (armored or binary). With `require: true`, a commit not signed by one of these keys is
# never applied (and at least one of the two must be set). Default: false.
#signing:
#  allowed_signers: /etc/gitops-agent/allowed_signers
#  openpgp_keys: [/etc/gitops-agent/fleet-signing.asc]
#  require: false

# Allow converging to a commit that does not descend from the last applied one (a reset or
# force-push of the branch). Default false: such a commit is refused and reported, so that an
# older signed commit cannot be replayed.
#allow_rollback: false

# Status reports: after a converge whose result differs from the last report (or at least
# every `heartbeat`), the agent commits a status document on `branch` of `repo` and pushes
# it. `repo` defaults to the desired-state repository above; a separate repository is
# recommended, so that hosts need write access only there and status commits stay out of
# the history of the desired state. The same `ssh_key`/`http` credentials are used.
#status:
#  repo: https://git.example.com/infra/fleet-status.git
#  branch: status/{hostname}
#  heartbeat: 24h
#  enabled: true

# Where the agent keeps its local state (last applied commit, lock).
#state_dir: /var/lib/gitops-agent
"#;

// ---------------------------------------------------------------------------------------------
// Host identifiers and branch templates

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

impl BranchTemplate {
    pub fn new(text: &str) -> Result<BranchTemplate, String> {
        let filled = fill(text, |name| {
            if PLACEHOLDERS.contains(&name) {
                Ok("x".to_string())
            } else {
                Err(format!(
                    "unknown placeholder `{{{name}}}` in branch `{text}` (known: {{hostname}}, \
                     {{fqdn}}, {{machine_id}})"
                ))
            }
        })?;
        if filled.starts_with("refs/") {
            return Err(format!(
                "`{text}`: write the branch name without `refs/heads/` (e.g. `hosts/{{hostname}}`)"
            ));
        }
        check_ref_name(&filled).map_err(|why| format!("invalid branch name `{text}`: {why}"))?;
        Ok(BranchTemplate(text.to_string()))
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
    type Err = String;
    fn from_str(s: &str) -> Result<BranchTemplate, String> {
        BranchTemplate::new(s)
    }
}

impl fmt::Display for BranchTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Replaces each `{name}` of `text` by `value(name)`.
fn fill(text: &str, value: impl Fn(&str) -> Result<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        if rest[i..].starts_with('}') {
            return Err(format!("unmatched `}}` in `{text}`"));
        }
        let end = rest[i..]
            .find('}')
            .ok_or_else(|| format!("unmatched `{{` in `{text}`"))?;
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

// ---------------------------------------------------------------------------------------------
// Repository URLs

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepoKind {
    /// `https://host/path`
    Https,
    /// `http://host/path`
    Http,
    /// `ssh://[user@]host[:port]/path`
    Ssh,
    /// scp-like SSH: `[user@]host:path`
    Scp,
    /// `file:///path`
    File,
    /// A local path, made absolute.
    Path,
}

/// A repository location whose form was checked (see [`RepoKind`]); a password in it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoUrl {
    kind: RepoKind,
    url: String,
}

impl RepoUrl {
    /// Checks `text`; a bare path is made absolute against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<RepoUrl, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty repository URL".to_string());
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "repository URL `{t}` contains a space or a control character"
            ));
        }
        if let Some((scheme, rest)) = t.split_once("://") {
            let kind = match scheme.to_ascii_lowercase().as_str() {
                "https" => RepoKind::Https,
                "http" => RepoKind::Http,
                "ssh" => RepoKind::Ssh,
                "file" => RepoKind::File,
                other => {
                    return Err(format!(
                        "repository URL `{t}`: unsupported scheme `{other}://` (use https://, \
                         http://, ssh://, user@host:path, file:// or a path)"
                    ))
                }
            };
            if kind == RepoKind::File {
                if !rest.starts_with('/') || rest.len() < 2 {
                    return Err(format!(
                        "repository URL `{t}`: a file:// URL needs an absolute path \
                         (file:///srv/git/fleet.git)"
                    ));
                }
            } else {
                check_authority(t, rest)?;
            }
            return Ok(RepoUrl {
                kind,
                url: t.to_string(),
            });
        }
        // Git's rule: a colon before the first slash makes it scp-like SSH.
        if let Some(colon) = t.find(':') {
            if t.find('/').is_none_or(|slash| colon < slash) {
                let (userhost, path) = (&t[..colon], &t[colon + 1..]);
                let host = userhost.rsplit_once('@').map_or(userhost, |(_, h)| h);
                if host.is_empty() || userhost.starts_with('@') {
                    return Err(format!("repository URL `{t}`: no host before `:`"));
                }
                if path.is_empty() {
                    return Err(format!(
                        "repository URL `{t}`: no repository path after `:`"
                    ));
                }
                if userhost.contains(':') || userhost.matches('@').count() > 1 {
                    return Err(format!("repository URL `{t}`: invalid user or host"));
                }
                return Ok(RepoUrl {
                    kind: RepoKind::Scp,
                    url: t.to_string(),
                });
            }
        }
        let path = absolute(base, Path::new(t));
        Ok(RepoUrl {
            kind: RepoKind::Path,
            url: path.to_string_lossy().into_owned(),
        })
    }

    pub fn kind(&self) -> RepoKind {
        self.kind
    }

    /// The URL as Git is given it (a local path as an absolute path).
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The repository is on this machine (`file://` or a path).
    pub fn is_local(&self) -> bool {
        matches!(self.kind, RepoKind::File | RepoKind::Path)
    }
}

/// Checks `[user@]host[:port]/path` after `scheme://`.
fn check_authority(url: &str, rest: &str) -> Result<(), String> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(format!("repository URL `{url}`: no repository path"));
    }
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            if userinfo.contains(':') {
                return Err(format!(
                    "repository URL `{url}`: a password in the URL is refused (it would end up \
                     in logs and status reports); put credentials in the file named by \
                     `http.credentials_file`, or use `ssh_key` for SSH"
                ));
            }
            if userinfo.is_empty() {
                return Err(format!(
                    "repository URL `{url}`: empty user name before `@`"
                ));
            }
            hostport
        }
        None => authority,
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("repository URL `{url}`: unclosed `[` in the host"))?;
        match after {
            "" => (host, None),
            p => match p.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("repository URL `{url}`: invalid host")),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("repository URL `{url}`: no host"));
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(p) if p != 0) {
            return Err(format!("repository URL `{url}`: invalid port `{port}`"));
        }
    }
    Ok(())
}

impl FromStr for RepoUrl {
    type Err = String;
    /// As on the command line: a relative path is resolved against the current directory.
    fn from_str(s: &str) -> Result<RepoUrl, String> {
        RepoUrl::parse(s, &current_dir())
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

fn current_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
}

/// `path` made absolute against `base` (itself made absolute against the current directory),
/// lexically: `.` components dropped, `..` kept (the file system decides what it means).
fn absolute(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let joined = std::path::absolute(&joined).unwrap_or(joined);
    joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The configuration

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

impl Default for StatusConfig {
    fn default() -> StatusConfig {
        StatusConfig {
            repo: None,
            branch: BranchTemplate(DEFAULT_STATUS_BRANCH.to_string()),
            heartbeat: DEFAULT_HEARTBEAT,
            enabled: true,
        }
    }
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
    pub extra_vars: RawVars,
    pub interval: Duration,
    pub splay: Duration,
    /// The daemon re-converges the applied commit at least this often; zero = never.
    pub enforce: Duration,
    /// What the daemon does about drift (a watched target changed by something else).
    pub drift: DriftPolicy,
    /// node_exporter textfile collector file; `None` = no metrics.
    pub metrics_file: Option<PathBuf>,
    pub ssh_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub http: HttpConfig,
    pub signing: SigningConfig,
    pub allow_rollback: bool,
    pub status: StatusConfig,
    pub state_dir: PathBuf,
    /// The line each key (dotted: `status.branch`) was set on in `file`; keys overridden on
    /// the command line are removed.
    lines: BTreeMap<String, u32>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            file: None,
            repo: None,
            branch: BranchTemplate(DEFAULT_BRANCH.to_string()),
            playbook: None,
            extra_vars: RawVars::new(),
            interval: DEFAULT_INTERVAL,
            splay: DEFAULT_SPLAY,
            enforce: DEFAULT_ENFORCE,
            drift: DriftPolicy::Correct,
            metrics_file: None,
            ssh_key: None,
            known_hosts: None,
            http: HttpConfig::default(),
            signing: SigningConfig::default(),
            allow_rollback: false,
            status: StatusConfig::default(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            lines: BTreeMap::new(),
        }
    }
}

/// Values given on the command line; each `Some` (or non-empty list) beats the file.
/// There is deliberately no way to pass HTTP credentials here.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    pub repo: Option<RepoUrl>,
    pub branch: Option<BranchTemplate>,
    pub playbook: Option<String>,
    /// Merged key by key over the file's `extra_vars`.
    pub extra_vars: RawVars,
    pub interval: Option<Duration>,
    pub splay: Option<Duration>,
    pub ssh_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    /// `http.credentials_file` (the path of the file, not a credential).
    pub http_credentials_file: Option<PathBuf>,
    /// `http.ca_file`.
    pub http_ca_file: Option<PathBuf>,
    pub allowed_signers: Option<PathBuf>,
    /// Non-empty: replaces `signing.openpgp_keys`.
    pub openpgp_keys: Vec<PathBuf>,
    pub require_signatures: Option<bool>,
    pub allow_rollback: Option<bool>,
    pub status_repo: Option<RepoUrl>,
    pub status_branch: Option<BranchTemplate>,
    pub status_heartbeat: Option<Duration>,
    pub status_enabled: Option<bool>,
    pub state_dir: Option<PathBuf>,
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
        let parent = Path::new(name).parent().unwrap_or(Path::new(""));
        let base = absolute(&current_dir(), parent);
        let mut r = Reader {
            file: file.clone(),
            base,
            errors: Vec::new(),
            lines: BTreeMap::new(),
        };
        let mut c = Config {
            file: Some(file),
            ..Config::default()
        };
        for e in r.mapping(&root, "", TOP_KEYS) {
            let k = e.key.as_str();
            let v = &e.value;
            match k {
                "repo" => set(&mut c.repo, r.repo(k, v).map(Some)),
                "branch" => set(&mut c.branch, r.branch(k, v)),
                "playbook" => set(&mut c.playbook, r.playbook(k, v).map(Some)),
                "extra_vars" => set(&mut c.extra_vars, r.extra_vars(k, v)),
                "interval" => set(&mut c.interval, r.duration(k, v)),
                "splay" => set(&mut c.splay, r.duration(k, v)),
                "enforce" => set(&mut c.enforce, r.duration(k, v)),
                "drift" => set(&mut c.drift, r.drift(k, v)),
                "metrics_file" => set(&mut c.metrics_file, r.path(k, v).map(Some)),
                "ssh_key" => set(&mut c.ssh_key, r.path(k, v).map(Some)),
                "known_hosts" => set(&mut c.known_hosts, r.path(k, v).map(Some)),
                "allow_rollback" => set(&mut c.allow_rollback, r.bool(k, v)),
                "state_dir" => set(&mut c.state_dir, r.path(k, v)),
                "http" => {
                    for e in r.mapping(v, "http", HTTP_KEYS) {
                        match e.key.as_str() {
                            "ca_file" => {
                                let k = "http.ca_file";
                                set(&mut c.http.ca_file, r.path(k, &e.value).map(Some));
                            }
                            _ => {
                                let k = "http.credentials_file";
                                set(&mut c.http.credentials_file, r.path(k, &e.value).map(Some));
                            }
                        }
                    }
                }
                "signing" => {
                    for e in r.mapping(v, "signing", SIGNING_KEYS) {
                        let v = &e.value;
                        match e.key.as_str() {
                            "allowed_signers" => set(
                                &mut c.signing.allowed_signers,
                                r.path("signing.allowed_signers", v).map(Some),
                            ),
                            "openpgp_keys" => set(
                                &mut c.signing.openpgp_keys,
                                r.paths("signing.openpgp_keys", v),
                            ),
                            _ => set(&mut c.signing.require, r.bool("signing.require", v)),
                        }
                    }
                }
                _ => {
                    for e in r.mapping(v, "status", STATUS_KEYS) {
                        let v = &e.value;
                        match e.key.as_str() {
                            "repo" => set(&mut c.status.repo, r.repo("status.repo", v).map(Some)),
                            "branch" => set(&mut c.status.branch, r.branch("status.branch", v)),
                            "heartbeat" => {
                                set(&mut c.status.heartbeat, r.duration("status.heartbeat", v))
                            }
                            _ => set(&mut c.status.enabled, r.bool("status.enabled", v)),
                        }
                    }
                }
            }
        }
        if !r.errors.is_empty() {
            return Err(ConfigError::Invalid(LoadErrors(r.errors)));
        }
        c.lines = r.lines;
        Ok(c)
    }

    /// Lays the command line over this configuration.
    pub fn apply(&mut self, o: ConfigOverrides) {
        let cwd = current_dir();
        let path = |p: PathBuf| absolute(&cwd, &p);
        let lines = &mut self.lines;
        let mut over = |key: &str| {
            lines.remove(key);
        };
        if let Some(v) = o.repo {
            over("repo");
            self.repo = Some(v);
        }
        if let Some(v) = o.branch {
            over("branch");
            self.branch = v;
        }
        if let Some(v) = o.playbook {
            over("playbook");
            self.playbook = Some(v);
        }
        for (k, v) in o.extra_vars {
            self.extra_vars.insert(k, v);
        }
        if let Some(v) = o.interval {
            over("interval");
            self.interval = v;
        }
        if let Some(v) = o.splay {
            over("splay");
            self.splay = v;
        }
        if let Some(v) = o.ssh_key {
            over("ssh_key");
            self.ssh_key = Some(path(v));
        }
        if let Some(v) = o.known_hosts {
            over("known_hosts");
            self.known_hosts = Some(path(v));
        }
        if let Some(v) = o.http_credentials_file {
            over("http.credentials_file");
            self.http.credentials_file = Some(path(v));
        }
        if let Some(v) = o.http_ca_file {
            over("http.ca_file");
            self.http.ca_file = Some(path(v));
        }
        if let Some(v) = o.allowed_signers {
            over("signing.allowed_signers");
            self.signing.allowed_signers = Some(path(v));
        }
        if !o.openpgp_keys.is_empty() {
            over("signing.openpgp_keys");
            self.signing.openpgp_keys = o.openpgp_keys.into_iter().map(path).collect();
        }
        if let Some(v) = o.require_signatures {
            over("signing.require");
            self.signing.require = v;
        }
        if let Some(v) = o.allow_rollback {
            over("allow_rollback");
            self.allow_rollback = v;
        }
        if let Some(v) = o.status_repo {
            over("status.repo");
            self.status.repo = Some(v);
        }
        if let Some(v) = o.status_branch {
            over("status.branch");
            self.status.branch = v;
        }
        if let Some(v) = o.status_heartbeat {
            over("status.heartbeat");
            self.status.heartbeat = v;
        }
        if let Some(v) = o.status_enabled {
            over("status.enabled");
            self.status.enabled = v;
        }
        if let Some(v) = o.state_dir {
            over("state_dir");
            self.state_dir = path(v);
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
                errors.push(self.error("playbook", why));
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
                     (default `{DEFAULT_STATUS_BRANCH}`)",
                    self.status.branch
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
        let file = self.file.clone()?;
        self.lines.get(key).map(|&line| Location::new(file, line))
    }

    fn error(&self, key: &str, message: impl Into<String>) -> LoadError {
        let e = match self.location_of(key) {
            Some(loc) => LoadError::at(loc, message),
            None => LoadError::new(message),
        };
        e.with_key(key)
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn check_playbook(p: &str) -> Result<(), String> {
    let path = Path::new(p);
    if p.trim().is_empty() {
        return Err("empty playbook path".to_string());
    }
    if path.is_absolute() {
        return Err(format!(
            "`{p}`: the playbook is a path inside the repository, not an absolute path"
        ));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("`{p}`: `..` would leave the repository"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading the YAML tree

const TOP_KEYS: &[&str] = &[
    "repo",
    "branch",
    "playbook",
    "extra_vars",
    "interval",
    "splay",
    "enforce",
    "drift",
    "metrics_file",
    "ssh_key",
    "known_hosts",
    "http",
    "signing",
    "allow_rollback",
    "status",
    "state_dir",
];
const HTTP_KEYS: &[&str] = &["credentials_file", "ca_file"];
const SIGNING_KEYS: &[&str] = &["allowed_signers", "openpgp_keys", "require"];
const STATUS_KEYS: &[&str] = &["repo", "branch", "heartbeat", "enabled"];

/// Every key of the schema, dotted.
fn all_keys() -> Vec<String> {
    let mut keys: Vec<String> = TOP_KEYS.iter().map(|k| k.to_string()).collect();
    for (section, sub) in [
        ("http", HTTP_KEYS),
        ("signing", SIGNING_KEYS),
        ("status", STATUS_KEYS),
    ] {
        keys.extend(sub.iter().map(|k| format!("{section}.{k}")));
    }
    keys
}

struct Reader {
    file: Arc<str>,
    base: PathBuf,
    errors: Vec<LoadError>,
    lines: BTreeMap<String, u32>,
}

impl Reader {
    fn error(&mut self, line: u32, key: &str, message: impl Into<String>) {
        self.errors
            .push(LoadError::at(Location::new(self.file.clone(), line), message).with_key(key));
    }

    fn wrong_type(&mut self, key: &str, node: &Node, expected: &str) {
        let found = node.type_name();
        self.error(
            node.line,
            key,
            format!("expected {expected}, found {found}"),
        );
    }

    /// The known entries of a mapping (null = empty); unknown keys are reported.
    fn mapping<'n>(&mut self, node: &'n Node, section: &str, known: &[&str]) -> Vec<&'n Entry> {
        let entries = match &node.kind {
            NodeKind::Null => return Vec::new(),
            NodeKind::Map(entries) => entries,
            _ if section.is_empty() => {
                let found = node.type_name();
                self.errors.push(LoadError::at(
                    Location::new(self.file.clone(), node.line),
                    format!("the configuration must be a mapping of keys to values, found {found}"),
                ));
                return Vec::new();
            }
            _ => {
                self.wrong_type(section, node, "a mapping");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for e in entries {
            let dotted = qualify(section, &e.key);
            if known.contains(&e.key.as_str()) {
                if !e.value.is_null() {
                    self.lines.insert(dotted, e.key_line);
                }
                out.push(e);
            } else {
                let message = unknown_key_message(section, &e.key);
                self.error(e.key_line, &dotted, message);
            }
        }
        out
    }

    fn string<'n>(&mut self, key: &str, node: &'n Node) -> Option<&'n str> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Str(s) => Some(s),
            _ => {
                self.wrong_type(key, node, "a string");
                None
            }
        }
    }

    fn checked<T>(&mut self, key: &str, node: &Node, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.error(node.line, key, e)).ok()
    }

    fn repo(&mut self, key: &str, node: &Node) -> Option<RepoUrl> {
        let s = self.string(key, node)?;
        let r = RepoUrl::parse(s, &self.base);
        self.checked(key, node, r)
    }

    fn branch(&mut self, key: &str, node: &Node) -> Option<BranchTemplate> {
        let s = self.string(key, node)?;
        self.checked(key, node, BranchTemplate::new(s))
    }

    fn playbook(&mut self, key: &str, node: &Node) -> Option<String> {
        let s = self.string(key, node)?;
        let r = check_playbook(s).map(|()| s.to_string());
        self.checked(key, node, r)
    }

    fn path(&mut self, key: &str, node: &Node) -> Option<PathBuf> {
        let s = self.string(key, node)?;
        if s.is_empty() {
            self.error(node.line, key, "empty path");
            return None;
        }
        Some(absolute(&self.base, Path::new(s)))
    }

    fn paths(&mut self, key: &str, node: &Node) -> Option<Vec<PathBuf>> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Seq(items) => {
                let n = self.errors.len();
                let out: Vec<PathBuf> = items
                    .iter()
                    .filter_map(|item| {
                        if item.is_null() {
                            self.wrong_type(key, item, "a path");
                            None
                        } else {
                            self.path(key, item)
                        }
                    })
                    .collect();
                (self.errors.len() == n).then_some(out)
            }
            _ => {
                self.wrong_type(key, node, "a list of paths");
                None
            }
        }
    }

    fn bool(&mut self, key: &str, node: &Node) -> Option<bool> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Bool(b) => Some(*b),
            _ => {
                self.wrong_type(key, node, "true or false");
                None
            }
        }
    }

    fn drift(&mut self, key: &str, node: &Node) -> Option<DriftPolicy> {
        // YAML 1.1 reads a bare `off` as false.
        if let NodeKind::Bool(false) = node.kind {
            return Some(DriftPolicy::Off);
        }
        let s = self.string(key, node)?;
        let r = match s {
            "correct" => Ok(DriftPolicy::Correct),
            "report" => Ok(DriftPolicy::Report),
            "off" => Ok(DriftPolicy::Off),
            other => Err(format!("`{other}`: expected correct, report or off")),
        };
        self.checked(key, node, r)
    }

    fn duration(&mut self, key: &str, node: &Node) -> Option<Duration> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Int(i) if *i >= 0 => Some(Duration::from_secs(*i as u64)),
            NodeKind::Str(s) => {
                let r = s.parse::<Duration>().map_err(|e| e.0);
                self.checked(key, node, r)
            }
            NodeKind::Int(i) => {
                self.error(node.line, key, format!("negative duration {i}"));
                None
            }
            _ => {
                self.wrong_type(key, node, DURATION_SYNTAX);
                None
            }
        }
    }

    fn extra_vars(&mut self, key: &str, node: &Node) -> Option<RawVars> {
        let entries = match &node.kind {
            NodeKind::Null => return None,
            NodeKind::Map(entries) => entries,
            _ => {
                self.wrong_type(key, node, "a mapping of variable names to values");
                return None;
            }
        };
        let mut out = RawVars::new();
        for e in entries {
            if !is_identifier(&e.key) {
                let k = format!("{key}.{}", e.key);
                self.error(
                    e.key_line,
                    &k,
                    format!("`{}` is not a valid variable name", e.key),
                );
                continue;
            }
            out.insert(e.key.clone(), e.value.to_value());
        }
        Some(out)
    }
}

fn qualify(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// "unknown key", with the closest known key (in this section first, else anywhere).
fn unknown_key_message(section: &str, key: &str) -> String {
    const SECRETS: [&str; 8] = [
        "password",
        "passwd",
        "username",
        "user",
        "token",
        "credentials",
        "secret",
        "private_key",
    ];
    if SECRETS.contains(&key.to_ascii_lowercase().as_str()) {
        return "unknown key: credentials are never written in the configuration; put them in \
                the file named by `http.credentials_file`"
            .to_string();
    }
    let mut best: Option<(usize, bool, String)> = None;
    for dotted in all_keys() {
        let (sec, name) = dotted.rsplit_once('.').unwrap_or(("", dotted.as_str()));
        let d = edit_distance(key, name);
        let limit = (name.len().max(key.len()) / 3).max(1);
        if d > limit {
            continue;
        }
        let other_section = sec != section;
        let better = match &best {
            None => true,
            Some((bd, bo, _)) => (d, other_section) < (*bd, *bo),
        };
        if better {
            let shown = if other_section {
                format!("`{dotted}`")
            } else {
                format!("`{name}`")
            };
            best = Some((d, other_section, shown));
        }
    }
    match best {
        Some((_, _, shown)) => format!("unknown key (did you mean {shown}?)"),
        None => {
            let known: Vec<&str> = match section {
                "" => TOP_KEYS.to_vec(),
                "http" => HTTP_KEYS.to_vec(),
                "signing" => SIGNING_KEYS.to_vec(),
                _ => STATUS_KEYS.to_vec(),
            };
            format!("unknown key (known: {})", known.join(", "))
        }
    }
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------
// HTTP credentials

/// HTTP(S) credentials read from `http.credentials_file`.
///
/// Format: `username=...` and `password=...` lines (both required; the password may be an
/// access token). Blank lines and lines starting with `#` are ignored, whitespace around key and
/// value is trimmed, anything else is an error naming the line. The file must not be readable
/// by other users.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpCredentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for HttpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl HttpCredentials {
    /// Reads the credentials file.
    pub fn load(path: &Path) -> Result<HttpCredentials, ConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        if meta.permissions().mode() & 0o004 != 0 {
            return Err(LoadError::new(format!(
                "{name}: the credentials file is readable by every user; `chmod 600 {name}`"
            ))
            .into());
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        HttpCredentials::parse(&name, &text)
    }

    /// Parses the text of a credentials file; `name` is used in errors.
    pub fn parse(name: &str, text: &str) -> Result<HttpCredentials, ConfigError> {
        let file: Arc<str> = Arc::from(name);
        let at = |line: usize| Location::new(file.clone(), line as u32 + 1);
        let (mut username, mut password) = (None, None);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(
                    LoadError::at(at(i), "expected `username=...` or `password=...`").into(),
                );
            };
            let (k, v) = (k.trim(), v.trim().to_string());
            let slot = match k {
                "username" => &mut username,
                "password" => &mut password,
                other => {
                    return Err(LoadError::at(
                        at(i),
                        format!("unknown key `{other}` (expected `username` or `password`)"),
                    )
                    .into())
                }
            };
            if slot.replace(v).is_some() {
                return Err(LoadError::at(at(i), format!("`{k}` given twice")).into());
            }
        }
        match (username, password) {
            (Some(username), Some(password)) => Ok(HttpCredentials { username, password }),
            (None, _) => Err(LoadError::new(format!("{name}: no `username=` line")).into()),
            (_, None) => Err(LoadError::new(format!("{name}: no `password=` line")).into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::Value;

    const NAME: &str = "/etc/gitops-agent/config.yml";

    fn parse(text: &str) -> Config {
        Config::from_str(NAME, text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(text: &str) -> String {
        Config::from_str(NAME, text).unwrap_err().to_string()
    }

    const FULL: &str = r#"
repo: https://git.example.com/infra/fleet.git
branch: fleet/{fqdn}
playbook: site.yml
extra_vars:
  env: prod
  ports: [80, 443]
interval: 5m
splay: 1h30m
ssh_key: keys/id_ed25519
known_hosts: /etc/gitops-agent/known_hosts
http:
  credentials_file: /etc/gitops-agent/http-credentials
  ca_file: ca/private.pem
signing:
  allowed_signers: /etc/gitops-agent/allowed_signers
  openpgp_keys:
    - /etc/gitops-agent/a.asc
    - b.asc
  require: true
allow_rollback: yes
status:
  repo: git@git.example.com:infra/status.git
  branch: status/{machine_id}
  heartbeat: 12h
  enabled: false
state_dir: /var/lib/agent-test
"#;

    #[test]
    fn every_key_is_parsed() {
        let c = parse(FULL);
        assert_eq!(
            c.repo.as_ref().unwrap().as_str(),
            "https://git.example.com/infra/fleet.git"
        );
        assert_eq!(c.repo.as_ref().unwrap().kind(), RepoKind::Https);
        assert_eq!(c.branch.as_str(), "fleet/{fqdn}");
        assert_eq!(c.playbook.as_deref(), Some("site.yml"));
        assert_eq!(c.extra_vars["env"], Value::from("prod"));
        assert_eq!(c.extra_vars["ports"], Value::from(vec![80, 443]));
        assert_eq!(c.interval, Duration::from_secs(300));
        assert_eq!(c.splay, Duration::from_secs(5400));
        // Relative paths are resolved against the file's directory.
        assert_eq!(
            c.ssh_key.as_deref(),
            Some(Path::new("/etc/gitops-agent/keys/id_ed25519"))
        );
        assert_eq!(
            c.known_hosts.as_deref(),
            Some(Path::new("/etc/gitops-agent/known_hosts"))
        );
        assert_eq!(
            c.http.credentials_file.as_deref(),
            Some(Path::new("/etc/gitops-agent/http-credentials"))
        );
        assert_eq!(
            c.http.ca_file.as_deref(),
            Some(Path::new("/etc/gitops-agent/ca/private.pem"))
        );
        assert_eq!(
            c.signing.allowed_signers.as_deref(),
            Some(Path::new("/etc/gitops-agent/allowed_signers"))
        );
        assert_eq!(
            c.signing.openpgp_keys,
            vec![
                PathBuf::from("/etc/gitops-agent/a.asc"),
                PathBuf::from("/etc/gitops-agent/b.asc")
            ]
        );
        assert!(c.signing.require);
        assert!(c.allow_rollback);
        let status_repo = c.status.repo.as_ref().unwrap();
        assert_eq!(status_repo.kind(), RepoKind::Scp);
        assert_eq!(c.status_repo(), Some(status_repo));
        assert_eq!(c.status.branch.as_str(), "status/{machine_id}");
        assert_eq!(c.status.heartbeat, Duration::from_secs(12 * 3600));
        assert!(!c.status.enabled);
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/agent-test"));
        c.validate().unwrap();
        assert_eq!(c.location_of("status.heartbeat").unwrap().line, 25);
    }

    #[test]
    fn defaults() {
        for text in [
            "",
            "# nothing\n",
            "---\n",
            "status:\nhttp:\nsigning:\nsplay:\n",
        ] {
            let c = parse(text);
            let d = Config::default();
            assert_eq!(c.repo, None);
            assert_eq!(c.branch.as_str(), "hosts/{hostname}");
            assert_eq!(c.playbook, None);
            assert!(c.extra_vars.is_empty());
            assert_eq!(c.interval.to_string(), "1m");
            assert_eq!(c.interval, Duration::from_secs(60));
            assert_eq!(c.splay, Duration::from_secs(30));
            assert_eq!(c.ssh_key, None);
            assert_eq!(c.known_hosts, None);
            assert_eq!(c.http, d.http);
            assert_eq!(c.signing, SigningConfig::default());
            assert!(!c.signing.require);
            assert!(!c.allow_rollback);
            assert_eq!(c.status.repo, None);
            assert_eq!(c.status.branch.as_str(), "status/{hostname}");
            assert_eq!(c.status.heartbeat, Duration::from_secs(86_400));
            assert!(c.status.enabled);
            assert_eq!(c.state_dir, PathBuf::from("/var/lib/gitops-agent"));
        }
        // Without a repo, nothing to pull from.
        let e = parse("").validate().unwrap_err().to_string();
        assert!(e.contains("`repo`") && e.contains("--repo"), "{e}");
    }

    #[test]
    fn durations() {
        for (text, secs) in [
            ("30s", 30),
            ("5m", 300),
            ("24h", 86_400),
            ("1h30m", 5_400),
            ("90", 90),
        ] {
            let c = parse(&format!("interval: {text}\n"));
            assert_eq!(c.interval, Duration::from_secs(secs), "{text}");
        }
        assert_eq!(parse("splay: '45'").splay, Duration::from_secs(45));
        let e = error("repo: /srv/x\n\ninterval: 5x\n");
        assert!(
            e.starts_with(&format!("{NAME}:3: key `interval`: invalid duration `5x`")),
            "{e}"
        );
        let e = error("status:\n  heartbeat: -5\n");
        assert!(
            e.starts_with(&format!("{NAME}:2: key `status.heartbeat`")),
            "{e}"
        );
        let e = error("splay: 1.5\n");
        assert!(e.contains(":1: key `splay`: expected a duration"), "{e}");
        // Zero is parsed, refused by validate for `interval`, allowed for `splay`.
        let c = parse("repo: /srv/x\nsplay: 0\ninterval: 0s\n");
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains(":3: key `interval`: must be more than 0s"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_is_an_error_with_line_and_suggestion() {
        let e = error("repo: /srv/x\nbranch: main\n\n\n\n\nintervall: 5m\n");
        assert_eq!(
            e,
            "/etc/gitops-agent/config.yml:7: key `intervall`: unknown key (did you mean `interval`?)"
        );
        let e = error("status:\n  heartbeet: 1h\n");
        assert!(
            e.contains(":2: key `status.heartbeet`: unknown key (did you mean `heartbeat`?)"),
            "{e}"
        );
        // Right key, wrong section.
        let e = error("heartbeat: 1h\n");
        assert!(e.contains("did you mean `status.heartbeat`?"), "{e}");
        let e = error("signing:\n  interval: 1h\n");
        assert!(e.contains("did you mean `interval`?"), "{e}");
        // Nothing close: the known keys are listed.
        let e = error("frobnicate: 1\n");
        assert!(e.contains("unknown key (known: repo, branch"), "{e}");
        // Credentials are pointed to the credentials file.
        let e = error("http:\n  password: hunter2\n");
        assert!(e.contains(":2: key `http.password`") && e.contains("credentials_file"));
        // Every error at once.
        let e = Config::from_str(NAME, "a: 1\nb: 2\ninterval: x\n").unwrap_err();
        assert_eq!(e.errors().len(), 3, "{e}");
    }

    #[test]
    fn wrong_types_are_errors_with_line() {
        let e = error("repo: /srv/x\ninterval: [1]\n");
        assert!(
            e.starts_with(&format!("{NAME}:2: key `interval`: expected a duration")),
            "{e}"
        );
        assert!(e.ends_with("found a list"), "{e}");
        for (text, key, line) in [
            ("repo: [a]\n", "repo", 1),
            ("allow_rollback: maybe\n", "allow_rollback", 1),
            ("status: yes\n", "status", 1),
            ("signing:\n  require: 1\n", "signing.require", 2),
            (
                "signing:\n  openpgp_keys: a.asc\n",
                "signing.openpgp_keys",
                2,
            ),
            (
                "signing:\n  openpgp_keys: [a.asc, 3]\n",
                "signing.openpgp_keys",
                2,
            ),
            ("extra_vars: [a]\n", "extra_vars", 1),
            ("extra_vars:\n  bad-name: 1\n", "extra_vars.bad-name", 2),
            ("branch: 12\n", "branch", 1),
        ] {
            let e = error(text);
            assert!(e.contains(&format!(":{line}: key `{key}`")), "{text}: {e}");
        }
        let e = error("repo: /x\nrepo: /y\n");
        assert!(e.contains("duplicate key"), "{e}");
        let e = error("- a\n");
        assert!(e.contains(":1: the configuration must be a mapping"), "{e}");
        let e = error("repo: [\n");
        assert!(e.contains("invalid YAML"), "{e}");
    }

    #[test]
    fn repository_urls() {
        let base = Path::new("/etc/gitops-agent");
        for (url, kind) in [
            ("https://git.example.com/infra/fleet.git", RepoKind::Https),
            ("https://token@git.example.com:8443/fleet", RepoKind::Https),
            ("http://10.0.0.1/fleet.git", RepoKind::Http),
            (
                "ssh://git@git.example.com:2222/infra/fleet.git",
                RepoKind::Ssh,
            ),
            ("ssh://[::1]:22/fleet.git", RepoKind::Ssh),
            ("git@git.example.com:infra/fleet.git", RepoKind::Scp),
            ("host:fleet.git", RepoKind::Scp),
            ("file:///srv/git/fleet.git", RepoKind::File),
            ("/srv/git/fleet.git", RepoKind::Path),
        ] {
            let r = RepoUrl::parse(url, base).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(r.kind(), kind, "{url}");
            assert_eq!(r.as_str(), url);
        }
        let r = RepoUrl::parse("../git/./fleet.git", base).unwrap();
        assert_eq!(r.kind(), RepoKind::Path);
        assert_eq!(r.as_str(), "/etc/gitops-agent/../git/fleet.git");
        assert!(r.is_local());
        let r = RepoUrl::parse("./a:b", base).unwrap();
        assert_eq!(r.as_str(), "/etc/gitops-agent/a:b");
        let cwd = std::env::current_dir().unwrap();
        let r: RepoUrl = "fleet".parse().unwrap();
        assert_eq!(Path::new(r.as_str()), cwd.join("fleet"));
        for (bad, why) in [
            ("", "empty"),
            ("git://host/fleet", "unsupported scheme"),
            ("ftp://host/fleet", "unsupported scheme"),
            ("https://host", "no repository path"),
            ("https:///fleet", "no host"),
            ("https://user:secret@host/fleet", "password"),
            ("ssh://git:pw@host/fleet", "password"),
            ("https://host:99999/fleet", "invalid port"),
            ("file://srv/git", "absolute path"),
            ("git@host:", "no repository path"),
            (":fleet", "no host"),
            ("a b", "space"),
        ] {
            let e = RepoUrl::parse(bad, base).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = error("repo: https://u:p@h/x\n");
        assert!(e.contains(":1: key `repo`") && e.contains("credentials_file"));
    }

    #[test]
    fn branch_expansion() {
        let ids = HostIds {
            hostname: "web1".into(),
            fqdn: "web1.example.com".into(),
            machine_id: "0123abcd".into(),
        };
        let c = parse("");
        assert_eq!(c.branch_name(&ids), "hosts/web1");
        assert_eq!(c.status_branch_name(&ids), "status/web1");
        let t = BranchTemplate::new("x/{fqdn}/{machine_id}-{hostname}").unwrap();
        assert_eq!(t.expand(&ids), "x/web1.example.com/0123abcd-web1");
        assert_eq!(BranchTemplate::new("main").unwrap().expand(&ids), "main");
        for (bad, why) in [
            ("hosts/{host}", "unknown placeholder `{host}`"),
            ("hosts/{hostname", "unmatched `{`"),
            ("hosts/}", "unmatched `}`"),
            ("hosts/a b", "space"),
            ("hosts/../x", ".."),
            ("/hosts", "empty path component"),
            ("hosts/x.lock", ".lock"),
            ("refs/heads/main", "refs/heads/"),
            ("", "empty"),
        ] {
            let e = BranchTemplate::new(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = error("\nbranch: hosts/{nodename}\n");
        assert!(e.contains(":2: key `branch`: unknown placeholder"), "{e}");
        // From the facts of this machine.
        let ids = HostIds::gather();
        assert!(!ids.hostname.is_empty());
        assert_eq!(c.branch_name(&ids), format!("hosts/{}", ids.hostname));
    }

    #[test]
    fn overrides_beat_the_file() {
        let mut c = parse(FULL);
        let mut extra = RawVars::new();
        extra.insert("env".into(), Value::from("staging"));
        extra.insert("new".into(), Value::from(1));
        c.apply(ConfigOverrides {
            repo: Some("file:///srv/git/other.git".parse().unwrap()),
            branch: Some("hosts/{hostname}".parse().unwrap()),
            playbook: Some("local.yml".into()),
            extra_vars: extra,
            interval: Some("10s".parse().unwrap()),
            splay: Some(Duration::ZERO),
            ssh_key: Some("/root/.ssh/id".into()),
            known_hosts: Some("kh".into()),
            http_credentials_file: Some("/run/creds".into()),
            http_ca_file: Some("/run/ca.pem".into()),
            allowed_signers: Some("/x/allowed".into()),
            openpgp_keys: vec!["/x/k.asc".into()],
            require_signatures: Some(false),
            allow_rollback: Some(false),
            status_repo: None,
            status_branch: Some("st/{hostname}".parse().unwrap()),
            status_heartbeat: Some(Duration::from_secs(60)),
            status_enabled: Some(true),
            state_dir: Some("/tmp/state".into()),
        });
        assert_eq!(
            c.repo.as_ref().unwrap().as_str(),
            "file:///srv/git/other.git"
        );
        assert_eq!(c.branch.as_str(), "hosts/{hostname}");
        assert_eq!(c.playbook.as_deref(), Some("local.yml"));
        assert_eq!(c.extra_vars["env"], Value::from("staging"));
        assert_eq!(c.extra_vars["ports"], Value::from(vec![80, 443]));
        assert_eq!(c.extra_vars["new"], Value::from(1));
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!(c.splay, Duration::ZERO);
        assert_eq!(c.ssh_key, Some(PathBuf::from("/root/.ssh/id")));
        // Relative paths on the command line are resolved against the current directory.
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.known_hosts, Some(cwd.join("kh")));
        assert_eq!(c.http.credentials_file, Some(PathBuf::from("/run/creds")));
        assert_eq!(c.http.ca_file, Some(PathBuf::from("/run/ca.pem")));
        assert_eq!(c.signing.allowed_signers, Some(PathBuf::from("/x/allowed")));
        assert_eq!(c.signing.openpgp_keys, vec![PathBuf::from("/x/k.asc")]);
        assert!(!c.signing.require);
        assert!(!c.allow_rollback);
        // Not overridden: the file's value stays.
        assert_eq!(c.status_repo().unwrap().kind(), RepoKind::Scp);
        assert_eq!(c.status.branch.as_str(), "st/{hostname}");
        assert_eq!(c.status.heartbeat, Duration::from_secs(60));
        assert!(c.status.enabled);
        assert_eq!(c.state_dir, PathBuf::from("/tmp/state"));
        // Overridden keys no longer point into the file; the others still do.
        assert_eq!(c.location_of("interval"), None);
        assert_eq!(c.location_of("status.repo").unwrap().line, 23);

        // An empty override changes nothing; status.repo follows repo by default.
        let mut c = parse("repo: /srv/a\n");
        c.apply(ConfigOverrides::default());
        assert_eq!(c.repo.as_ref().unwrap().as_str(), "/srv/a");
        c.apply(ConfigOverrides {
            repo: Some("/srv/b".parse().unwrap()),
            ..Default::default()
        });
        assert_eq!(c.status_repo().unwrap().as_str(), "/srv/b");
        c.validate().unwrap();
    }

    #[test]
    fn validate_checks_what_keys_cannot_alone() {
        let e = parse("repo: /srv/x\nsigning:\n  require: true\n")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":3: key `signing.require`: `require: true` needs keys"),
            "{e}"
        );
        parse("repo: /srv/x\nsigning:\n  require: true\n  openpgp_keys: [k.asc]\n")
            .validate()
            .unwrap();
        let e = parse("repo: /srv/x\nbranch: main\nstatus:\n  branch: main\n")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains(":4: key `status.branch`"), "{e}");
        parse("repo: /srv/x\nbranch: main\nstatus:\n  repo: /srv/s\n  branch: main\n")
            .validate()
            .unwrap();
        let e = error("playbook: ../x.yml\n");
        assert!(e.contains(":1: key `playbook`"), "{e}");
        let mut c = parse("repo: /srv/x\n");
        c.apply(ConfigOverrides {
            playbook: Some("/abs.yml".into()),
            ..Default::default()
        });
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("key `playbook`: `/abs.yml`"), "{e}");
    }

    #[test]
    fn load_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yml");
        let e = Config::load(&path).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
        assert_eq!(Config::load_or_default(&path).unwrap(), Config::default());
        std::fs::write(&path, "repo: fleet\nintervall: 1\n").unwrap();
        let e = Config::load_or_default(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:2: key `intervall`: unknown key (did you mean `interval`?)",
                path.display()
            )
        );
        std::fs::write(&path, "repo: fleet\n").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(
            Path::new(c.repo.unwrap().as_str()),
            dir.path().join("fleet")
        );
    }

    #[test]
    fn example_config_parses_and_documents_every_key() {
        let c = parse(EXAMPLE_CONFIG);
        assert_eq!(
            c,
            Config {
                file: c.file.clone(),
                ..Config::default()
            }
        );
        // Uncommented, every setting line parses and every key of the schema is there.
        let uncommented: String = EXAMPLE_CONFIG
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest)
                    if rest.starts_with(|ch: char| ch.is_ascii_lowercase())
                        || (rest.starts_with("  ")
                            && rest[2..].starts_with(char::is_alphanumeric)) =>
                {
                    rest
                }
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c = parse(&uncommented);
        c.validate().unwrap();
        for key in all_keys() {
            assert!(c.location_of(&key).is_some(), "{key} not in EXAMPLE_CONFIG");
        }
        assert_eq!(c.interval, DEFAULT_INTERVAL);
        assert_eq!(c.splay, DEFAULT_SPLAY);
        assert_eq!(c.status.heartbeat, DEFAULT_HEARTBEAT);
        assert_eq!(c.branch.as_str(), DEFAULT_BRANCH);
        assert_eq!(c.status.branch.as_str(), DEFAULT_STATUS_BRANCH);
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        // The packaged file is this text.
        let packaged = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/config.yml");
        assert_eq!(std::fs::read_to_string(packaged).unwrap(), EXAMPLE_CONFIG);
    }

    #[test]
    fn drift_policy() {
        let c = Config::from_str("c.yml", "drift: off\n").unwrap();
        assert_eq!(c.drift, DriftPolicy::Off);
        let c = Config::from_str("c.yml", "drift: report\n").unwrap();
        assert_eq!(c.drift, DriftPolicy::Report);
        assert_eq!(Config::default().drift, DriftPolicy::Correct);
        assert!(Config::from_str("c.yml", "drift: fix\n").is_err());
    }

    #[test]
    fn http_credentials() {
        let c =
            HttpCredentials::parse("c", "# token\nusername = fleet\n\npassword=s3cr=t\n").unwrap();
        assert_eq!(c.username, "fleet");
        assert_eq!(c.password, "s3cr=t");
        assert!(!format!("{c:?}").contains("s3cr"));
        let e = HttpCredentials::parse("c", "username=a\ntoken=b\n").unwrap_err();
        assert!(e.to_string().starts_with("c:2: unknown key `token`"), "{e}");
        let e = HttpCredentials::parse("c", "username=a\n").unwrap_err();
        assert!(e.to_string().contains("no `password=`"), "{e}");
        let e = HttpCredentials::parse("c", "password=a\npassword=b\nusername=u").unwrap_err();
        assert!(e.to_string().contains("c:2: `password` given twice"), "{e}");

        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(&path, "username=u\npassword=p\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = HttpCredentials::load(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(HttpCredentials::load(&path).unwrap().password, "p");
    }
}
