//! One converge: of a playbook directory ([`local`], `converge --playbook-dir` and `validate`)
//! or of the host's branch in Git ([`pull`], `converge` and every run of the daemon).
//!
//! The parts depend one way: [`local`] and [`pull`] on [`playbook`] (what both do before the
//! engine runs); [`pull`] on its steps, [`plan`], [`verify`] and [`publish`]; nothing here on
//! the daemon.

pub mod local;
pub mod plan;
pub mod playbook;
pub mod publish;
pub mod pull;
pub mod reboot;
pub mod verify;

use crate::cli::ConvergeArgs;

/// `gitops-agent converge`: a playbook directory when one is given, else pull mode. Returns
/// the exit code.
pub fn converge(args: &ConvergeArgs) -> i32 {
    match &args.playbook_dir {
        Some(dir) => local::converge(args, dir),
        None => pull::converge(args),
    }
}
