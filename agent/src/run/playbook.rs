//! What both kinds of converge share before the engine runs: which playbook of a source to run
//! (as ansible-pull picks it), the `-e` extra vars, and the exit code of a run.

use std::sync::Arc;

use gitops_modules::ansible_cfg::AnsibleCfg;
use gitops_modules::error::{LoadError, LoadErrors};
use gitops_modules::facts::Facts;
use gitops_modules::inventory::{Inventory, InventoryHost};
use gitops_modules::playbook::{Loader, Playbook, RawVars};
use gitops_modules::report::{RunReport, RunResult};
use gitops_modules::source::{EscapeError, RepoPath, Source, SourceError};
use gitops_modules::template::Templar;
use gitops_modules::yaml;
use minijinja::Value;

use crate::cli::exit;

/// No playbook to run in a source.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("--playbook: {0}")]
    BadPath(#[source] EscapeError),
    #[error("playbook `{playbook}` not found in {place}")]
    NotFound { playbook: String, place: String },
    #[error("no playbook found in {place}: looked for {tried}")]
    NoneFound { place: String, tried: String },
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// A playbook that cannot be run: none to pick, or invalid (every error, one per line).
#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Invalid(#[from] LoadErrors),
}

/// An `-e` value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ExtraVarsError {
    #[error("extra vars file {file}: {source}")]
    File {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("-e {spec}: {source}")]
    Pairs {
        spec: String,
        #[source]
        source: gitops_modules::args::KvError,
    },
    #[error(transparent)]
    Yaml(#[from] LoadError),
    #[error("{origin}: extra vars must be a mapping")]
    NotMapping { origin: String },
}

/// The playbook as ansible-pull picks it: `<fqdn>.yml`, `<hostname>.yml`, `local.yml`.
pub fn select_playbook(
    source: &dyn Source,
    explicit: Option<&str>,
) -> Result<RepoPath, SelectError> {
    if let Some(p) = explicit {
        let path = RepoPath::new(p).map_err(SelectError::BadPath)?;
        return match source.kind(&path)? {
            Some(_) => Ok(path),
            None => Err(SelectError::NotFound {
                playbook: p.to_string(),
                place: source.describe(),
            }),
        };
    }
    let facts = Facts::gather();
    let name = |k: &str| {
        facts
            .map
            .get(k)
            .and_then(|v| v.as_str().map(str::to_string))
    };
    let mut candidates = Vec::new();
    if let Some(fqdn) = name("fqdn") {
        candidates.push(format!("{fqdn}.yml"));
    }
    if let Some(host) = name("hostname") {
        candidates.push(format!("{host}.yml"));
    }
    candidates.push("local.yml".to_string());
    for c in &candidates {
        if let Ok(path) = RepoPath::new(c) {
            if let Ok(Some(_)) = source.kind(&path) {
                return Ok(path);
            }
        }
    }
    Err(SelectError::NoneFound {
        place: source.describe(),
        tried: candidates.join(", "),
    })
}

/// Picks the playbook of `source` ([`select_playbook`]) and loads it for this host as the
/// inventory sees it ([`inventory_host`]): parsed, roles and includes resolved, validated.
pub fn load_playbook(
    source: &dyn Source,
    templar: &Templar,
    explicit: Option<&str>,
    inventory: Option<&str>,
    host_name: Option<&str>,
    extra_vars: &RawVars,
) -> Result<Playbook, PlaybookError> {
    let path = select_playbook(source, explicit)?;
    let cfg = AnsibleCfg::load(source)?;
    let inventory = inventory.or(cfg.as_ref().and_then(|c| c.inventory.as_deref()));
    let host = inventory_host(source, inventory, host_name)?;
    let cfg_path = format!(
        "{}/{}",
        source.describe(),
        gitops_modules::ansible_cfg::FILE
    );
    // ansible.cfg's roles_path: only directories inside the repository can hold roles here.
    let role_dirs = cfg
        .as_ref()
        .map(|c| {
            c.roles_path()
                .iter()
                .filter_map(|d| RepoPath::new(d.trim_start_matches("./")).ok())
                .collect()
        })
        .unwrap_or_default();
    let playbook = Loader::new(source, templar)
        .with_ansible_cfg(cfg, cfg_path)
        .with_role_dirs(role_dirs)
        .with_extra_vars(extra_vars.keys().cloned())
        .load(&path, &host)?;
    super::local::print_warnings(&playbook);
    Ok(playbook)
}

/// This host in the inventory: without an inventory file, ansible-pull's `-i localhost,` (or
/// `NAME,` with `--host-name`); with one, the host named `--host-name`, else the one named as
/// this machine (FQDN, node name, short name, then `localhost`/`127.0.0.1`, as ansible-pull's
/// `--limit`).
pub fn inventory_host(
    source: &dyn Source,
    inventory: Option<&str>,
    host_name: Option<&str>,
) -> Result<InventoryHost, PlaybookError> {
    let Some(file) = inventory else {
        return Ok(InventoryHost::implicit(host_name.unwrap_or("localhost")));
    };
    let invalid = |msg: String| {
        PlaybookError::Invalid(LoadErrors::from(
            LoadError::new(format!("inventory {file}: {msg}")).with_key("inventory"),
        ))
    };
    let path = RepoPath::new(file).map_err(|e| invalid(e.to_string()))?;
    let bytes = source
        .read(&path)
        .map_err(|e| invalid(e.to_string()))?
        .ok_or_else(|| invalid(format!("no such file in {}", source.describe())))?;
    let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
    let inv = Inventory::parse(path.as_str(), &text)
        .map_err(|e| PlaybookError::Invalid(LoadErrors::from(e.to_load_error())))?;
    let name = match host_name {
        Some(n) if inv.hosts.contains_key(n) => n.to_string(),
        Some(n) => {
            return Err(invalid(format!(
                "--host-name `{n}` is not in the inventory"
            )))
        }
        None => inv.find_host(&machine_names()).map_err(invalid)?,
    };
    Ok(InventoryHost {
        name,
        inventory: Arc::new(inv),
    })
}

/// The names ansible-pull limits its run to: FQDN, node name, their short forms, localhost.
fn machine_names() -> Vec<String> {
    let facts = Facts::gather();
    let get = |k: &str| {
        facts
            .map
            .get(k)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let mut names = Vec::new();
    for n in [get("fqdn"), get("nodename"), get("hostname")] {
        for n in [
            n.clone(),
            n.split('.').next().unwrap_or_default().to_string(),
        ] {
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        }
    }
    for n in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    names
}

/// `-e` values: `k=v k2=v2`, a JSON/YAML mapping, or `@file`.
pub fn extra_vars(specs: &[String]) -> Result<RawVars, ExtraVarsError> {
    let mut out = RawVars::new();
    for spec in specs {
        let spec = spec.trim();
        let (text, origin) = if let Some(file) = spec.strip_prefix('@') {
            let text = std::fs::read_to_string(file).map_err(|source| ExtraVarsError::File {
                file: file.to_string(),
                source,
            })?;
            (text, file.to_string())
        } else if spec.starts_with('{') {
            (spec.to_string(), "-e".to_string())
        } else {
            let pairs = gitops_modules::args::parse_kv(spec, false).map_err(|source| {
                ExtraVarsError::Pairs {
                    spec: spec.to_string(),
                    source,
                }
            })?;
            for (k, v) in pairs {
                out.insert(k, Value::from(v));
            }
            continue;
        };
        let node = yaml::parse(&Arc::from(origin.as_str()), &text)?;
        let Some(entries) = node.as_map() else {
            return Err(ExtraVarsError::NotMapping { origin });
        };
        for e in entries {
            out.insert(e.key.clone(), e.value.to_value());
        }
    }
    Ok(out)
}

/// The exit code `gitops-agent converge` returns for a run.
pub fn exit_code(report: &RunReport) -> i32 {
    match report.result {
        RunResult::Ok => exit::OK,
        RunResult::Changed => exit::CHANGED,
        RunResult::Failed => exit::FAILED,
    }
}
