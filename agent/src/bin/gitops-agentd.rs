//! gitops-agentd: the daemon `gitops-agent run` becomes (it execs this binary, so the unit's
//! main process stays the same). Kept apart from `gitops-agent` so that the process that idles
//! all day maps only the loop's code: each poll and drift check runs in a short-lived
//! `gitops-agent daemon-worker` (see `gitops_agent::daemon::protocol`).
//!
//! Its arguments are written by `gitops-agent run`, not by people, so they are read by hand:
//! `--agent PATH --config PATH [--host-name NAME] [--verbosity N] [--set KEY=VALUE ...]`.

use std::path::PathBuf;
use std::process::ExitCode;

use gitops_agent::daemon::{self, DaemonArgs};
use gitops_agent::logging;

const USAGE: &str =
    "gitops-agentd is started by `gitops-agent run` (see `gitops-agent run --help`); \
it takes --agent PATH --config PATH [--host-name NAME] [--verbosity N] [--set KEY=VALUE ...]";

/// Arguments `gitops-agent run` would never write.
#[derive(Debug, thiserror::Error)]
enum UsageError {
    #[error("{0} needs a value")]
    NeedsValue(String),
    #[error("--verbosity takes a number")]
    Verbosity,
    #[error("--set takes KEY=VALUE")]
    Set,
    #[error("unknown argument {0}")]
    Unknown(String),
    #[error("--agent and --config are required")]
    Missing,
}

fn parse() -> Result<(DaemonArgs, i8), UsageError> {
    let mut agent = None;
    let mut config = None;
    let mut host_name = None;
    let mut verbosity = 0i8;
    let mut overrides = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| UsageError::NeedsValue(flag.to_string_lossy().into_owned()))
        };
        match flag.to_str() {
            Some("--agent") => agent = Some(PathBuf::from(value()?)),
            Some("--config") => config = Some(PathBuf::from(value()?)),
            Some("--host-name") => host_name = Some(value()?.to_string_lossy().into_owned()),
            Some("--set") => {
                let pair = value()?.to_string_lossy().into_owned();
                let (k, v) = pair.split_once('=').ok_or(UsageError::Set)?;
                overrides.push((k.to_string(), v.to_string()));
            }
            Some("--verbosity") => {
                verbosity = value()?
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .ok_or(UsageError::Verbosity)?
            }
            _ => return Err(UsageError::Unknown(flag.to_string_lossy().into_owned())),
        }
    }
    match (agent, config) {
        (Some(agent), Some(config)) => Ok((
            DaemonArgs {
                agent,
                config,
                host_name,
                overrides,
                verbosity,
            },
            verbosity,
        )),
        _ => Err(UsageError::Missing),
    }
}

fn main() -> ExitCode {
    let (args, verbosity) = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gitops-agentd: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    logging::init(verbosity, logging::Style::Timestamped);
    ExitCode::from(daemon::run(&args) as u8)
}
