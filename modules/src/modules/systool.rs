//! Running the system tools of the system modules (`hostnamectl`, `timedatectl`, `locale-gen`,
//! `update-alternatives`, ...): a planned [`Change::Exec`] or a read-only query, with the exit
//! code left to the module, which words failures as its Ansible counterpart does.

use crate::process::Ran;
use crate::resource::{Change, ModuleError};

/// Runs the tool of a [`Change::Exec`]; only a failure to start it is an error.
pub fn run_exec(change: &Change) -> Result<Ran, ModuleError> {
    let Change::Exec { argv, .. } = change else {
        return Err(ModuleError::new(format!(
            "not a command: {}",
            change.describe()
        )));
    };
    query(argv)
}

/// Runs `argv` (stdin closed, output captured, `LC_ALL=C` as Ansible's `run_command` users set
/// where they parse the output); only a failure to start it is an error.
pub fn query<S: AsRef<str>>(argv: &[S]) -> Result<Ran, ModuleError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(ModuleError::new("empty command"));
    };
    crate::process::run(
        std::process::Command::new(program.as_ref())
            .args(args.iter().map(AsRef::as_ref))
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C"),
    )
}

/// A [`Change::Exec`] of `argv`.
pub fn exec<S: AsRef<str>>(argv: &[S], summary: impl Into<String>) -> Change {
    Change::Exec {
        argv: argv.iter().map(|s| s.as_ref().to_string()).collect(),
        summary: summary.into(),
    }
}

/// A mapping value in the order given (a registered result's `diff`, `ansible_facts`).
pub fn dict<K: Into<String>>(
    pairs: impl IntoIterator<Item = (K, minijinja::Value)>,
) -> minijinja::Value {
    minijinja::Value::from(
        pairs
            .into_iter()
            .map(|(k, v)| (minijinja::Value::from(k.into()), v))
            .collect::<indexmap::IndexMap<minijinja::Value, minijinja::Value>>(),
    )
}
