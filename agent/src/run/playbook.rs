//! What both kinds of converge share before the engine runs: which playbook of a source to run
//! (as ansible-pull picks it), the `-e` extra vars, and the exit code of a run.

use std::sync::Arc;

use gitops_modules::error::{LoadError, LoadErrors};
use gitops_modules::facts::Facts;
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

/// Picks the playbook of `source` ([`select_playbook`]) and loads it for `host`: parsed,
/// roles and includes resolved, validated.
pub fn load_playbook(
    source: &dyn Source,
    templar: &Templar,
    explicit: Option<&str>,
    host: &str,
    extra_vars: &RawVars,
) -> Result<Playbook, PlaybookError> {
    let path = select_playbook(source, explicit)?;
    let playbook = Loader::new(source, templar)
        .with_extra_vars(extra_vars.keys().cloned())
        .load(&path, host)?;
    super::local::print_warnings(&playbook);
    Ok(playbook)
}

pub fn short_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| {
            h.trim()
                .split('.')
                .next()
                .unwrap_or("localhost")
                .to_string()
        })
        .unwrap_or_else(|_| "localhost".to_string())
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
