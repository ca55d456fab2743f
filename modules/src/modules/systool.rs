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

/// The full path of a tool on the PATH (or an sbin directory), as Ansible's `get_bin_path`
/// finds it, for the command lines the modules report.
pub fn bin_path(tool: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/sbin", "/usr/sbin", "/usr/local/sbin"].map(std::path::PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
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

#[cfg(test)]
mod tests {
    use crate::playbook::Loader;
    use crate::source::{DirSource, RepoPath};
    use crate::template::Templar;

    /// Loads a playbook with these tasks; the error text, or "" when it loads.
    fn load(tasks: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let playbook = format!("- hosts: all\n  tasks:\n{tasks}");
        std::fs::write(dir.path().join("site.yml"), playbook).unwrap();
        let source = DirSource::new(dir.path()).unwrap();
        let templar = Templar::new();
        match Loader::new(&source, &templar).load(
            &RepoPath::new("site.yml").unwrap(),
            &crate::inventory::InventoryHost::implicit("h"),
        ) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn what_the_agent_does_not_implement_fails_only_when_reached() {
        // Roles carry branches for other systems: these load (the task fails when it runs).
        for task in [
            "    - mount: {path: /m, src: a, fstype: b, state: ephemeral}\n",
            "    - ansible.posix.mount: {path: /m, state: unmounted, opts_no_log: true}\n",
            "    - community.general.timezone: {name: UTC, rtc: local}\n",
            "    - hostname: {name: h, use: redhat}\n",
            "    - alternatives: {name: e, path: /bin/x, family: f}\n",
            "    - mount: {path: /m, src: a, fstype: b, state: '{{ s }}'}\n",
        ] {
            assert_eq!(load(task), "", "{task}");
        }
        // A task that cannot work anywhere is refused at load, as `group`'s non_unique.
        let e = load("    - mount: {path: /m, src: a, state: present}\n");
        assert!(
            e.contains("state is present but all of the following are missing: fstype"),
            "{e}"
        );
    }
}
