//! gitops-agent's library: everything behind the two binaries, `gitops-agent` (the command line:
//! converge, validate, status, run, suspend, resume) and `gitops-agentd` (the daemon `run`
//! becomes; see [`daemon`]). The language and the engine live in `gitops-modules`.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod duration;
pub mod git;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod run;
pub mod state;
pub mod status;
pub mod trust;
