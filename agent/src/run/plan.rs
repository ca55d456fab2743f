//! What one pull-mode converge works from: the configuration file with the command line laid
//! over it, resolved for this host ([`Plan`]).

use std::path::{Path, PathBuf};

use crate::cli::ConvergeArgs;
use crate::config::{
    Config, ConfigError, ConfigOverrides, HostIds, HttpCredentials, OverrideError,
};
use crate::git::FetchOptions;

use super::playbook::{extra_vars, ExtraVarsError};

/// The configuration (file and command line) cannot be used: every message is for the user.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A command-line value that does not parse (`--repo`, `--branch`, ...); the message names
    /// the flag.
    #[error(transparent)]
    Flag(OverrideError),
    #[error(transparent)]
    ExtraVars(#[from] ExtraVarsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Invalid, and no repository named anywhere: says how to name one.
    #[error(
        "{source}\n(give --repo, set `repo` in {}, or converge a local directory with --playbook-dir)",
        path.display()
    )]
    NoRepo {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error("no repository configured")]
    NoRepository,
}

/// Everything one pull-mode converge needs, resolved from the config and the command line.
pub struct Plan {
    pub config: Config,
    /// Gathered once per converge; identifiers and the status summary come from it.
    pub(super) facts: gitops_modules::facts::Facts,
    pub ids: HostIds,
    /// The host's name in the status (`--host-name`, else the short hostname).
    pub host: String,
    /// `--host-name`: the inventory name asked for (else `localhost` or the inventory's).
    pub inventory_hostname: Option<String>,
    pub(super) url: String,
    pub(super) branch: String,
    /// Status repository URL and branch, when status commits are enabled.
    pub status: Option<(String, String)>,
    pub fetch: FetchOptions,
}

impl Plan {
    /// Resolves a validated configuration for this host (facts are gathered here).
    pub fn new(config: Config, host_name: Option<String>) -> Result<Plan, PlanError> {
        let facts = gitops_modules::facts::Facts::gather();
        let ids = HostIds::from_facts(&facts);
        let inventory_hostname = host_name.clone();
        let host = host_name.unwrap_or_else(|| ids.hostname.clone());
        let url = config
            .repo
            .as_ref()
            .map(|r| r.as_str().to_string())
            .ok_or(PlanError::NoRepository)?;
        let branch = config.branch_name(&ids);
        let status = match (config.status.enabled, config.status_repo()) {
            (true, Some(r)) => Some((r.as_str().to_string(), config.status_branch_name(&ids))),
            _ => None,
        };
        let http_credentials = match &config.http.credentials_file {
            Some(f) => {
                let c = HttpCredentials::load(f)?;
                Some((c.username, c.password))
            }
            None => None,
        };
        // The modules' HTTP client (get_url, uri, unarchive) trusts the same private CA.
        if let Some(ca) = &config.http.ca_file {
            gitops_modules::http::set_ca_file(ca.clone());
        }
        let fetch = FetchOptions {
            ssh_key: config.ssh_key.clone(),
            known_hosts: config.known_hosts.clone(),
            http_credentials,
            http_ca_file: config.http.ca_file.clone(),
        };
        Ok(Plan {
            config,
            facts,
            ids,
            host,
            inventory_hostname,
            url,
            branch,
            status,
            fetch,
        })
    }
}

/// The plan of `gitops-agent converge` in pull mode: the configuration file named on the
/// command line with the command line's values over it.
pub fn from_args(args: &ConvergeArgs) -> Result<Plan, PlanError> {
    let config = load_config(&args.pull.config, overrides(args)?)?;
    Plan::new(config, args.host_name.clone())
}

fn overrides(args: &ConvergeArgs) -> Result<ConfigOverrides, PlanError> {
    let mut o = ConfigOverrides::from_pairs(&args.pull.keys.values).map_err(PlanError::Flag)?;
    o.playbook(args.playbook.clone());
    o.inventory(args.inventory.clone());
    o.extra_vars(extra_vars(&args.extra_vars)?);
    Ok(o)
}

/// Reads the configuration file (the default one may be missing: bootstrap with `--repo`; a
/// named one may not), lays `overrides` over it and validates it.
pub fn load_config(path: &Path, overrides: ConfigOverrides) -> Result<Config, PlanError> {
    let text = Config::read_text(path)?;
    config_from_text(path, text.as_deref(), overrides)
}

/// As [`load_config`], from the file's text already read (`None`: no file, the defaults). The
/// daemon reads the file at start and at SIGHUP and hands that text to every run.
pub fn config_from_text(
    path: &Path,
    text: Option<&str>,
    overrides: ConfigOverrides,
) -> Result<Config, PlanError> {
    let mut config = match text {
        Some(text) => Config::from_str(&path.to_string_lossy(), text)?,
        None => Config::default(),
    };
    config.apply(overrides);
    config.validate().map_err(|source| {
        if config.repo.is_none() {
            PlanError::NoRepo {
                path: path.to_path_buf(),
                source,
            }
        } else {
            PlanError::Config(source)
        }
    })?;
    Ok(config)
}
