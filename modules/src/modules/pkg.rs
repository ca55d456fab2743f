//! What the package modules (`apt`, `dnf`) share: the transactions a check plans and how one
//! is run and logged.

use std::process::Command;

use crate::host::HostState;
use crate::process::{self, Ran};
use crate::resource::{Change, ModuleError, PackageOp};

/// Why a package transaction failed; the message is the task's `msg`.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// The package manager could not be started.
    #[error(transparent)]
    Start(#[from] ModuleError),
    /// It ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// The transactions for the packages to install, upgrade and remove (by `remove_op`: remove
/// or purge), in that order; none for an empty list.
pub fn transactions(
    install: Vec<String>,
    upgrade: Vec<String>,
    remove_op: PackageOp,
    remove: Vec<String>,
) -> Vec<Change> {
    [
        (PackageOp::Install, install),
        (PackageOp::Upgrade, upgrade),
        (remove_op, remove),
    ]
    .into_iter()
    .filter(|(_, names)| !names.is_empty())
    .map(|(op, names)| Change::Package { op, names })
    .collect()
}

/// Runs one transaction, logs what it printed, and forgets the package database: whatever
/// happened, it may have changed.
pub fn run_transaction(
    cmd: &mut Command,
    host: &HostState,
    log: &mut Vec<Ran>,
) -> Result<(), TransactionError> {
    let ran = process::run(cmd)?;
    host.invalidate_packages();
    let failed = (!ran.ok()).then(|| ran.failure());
    log.push(ran);
    match failed {
        Some(f) => Err(TransactionError::Failed(f)),
        None => Ok(()),
    }
}
