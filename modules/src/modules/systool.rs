//! Running the system tools of the system modules (`hostnamectl`, `timedatectl`, `locale-gen`,
//! `update-alternatives`, ...): a planned [`Change::Exec`] or a read-only query, with the exit
//! code left to the module, which words failures as its Ansible counterpart does.

use crate::error::LoadError;
use crate::process::Ran;
use crate::resource::{Change, LoadContext, ModuleError, TaskArgs};

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

/// Refuses at load time the arguments (by any of their names) the agent does not implement,
/// when a task gives them: `module: NAME is not supported by the agent`.
pub fn refuse_given(
    args: &TaskArgs,
    ctx: &LoadContext,
    module: &str,
    names: &[&str],
) -> Result<(), LoadError> {
    for name in names {
        if let Some(node) = args.get(name) {
            return Err(LoadError::at(
                ctx.at(node),
                format!("{module}: {name} is not supported by the agent"),
            )
            .with_key(*name));
        }
    }
    Ok(())
}

/// Refuses at load time a literal value of `key` outside `supported`.
pub fn refuse_value(
    args: &TaskArgs,
    ctx: &LoadContext,
    module: &str,
    key: &str,
    supported: &[&str],
) -> Result<(), LoadError> {
    match args.literal_str(key) {
        Some((value, node)) if !supported.contains(&value) => Err(LoadError::at(
            ctx.at(node),
            format!(
                "{module}: {key}={value} is not supported by the agent (supported: {})",
                supported.join(", ")
            ),
        )
        .with_key(key)),
        _ => Ok(()),
    }
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
    fn system_modules_refuse_what_they_do_not_implement_at_load() {
        let cases = [
            (
                "    - mount: {path: /m, src: a, fstype: b, state: ephemeral}\n",
                "mount: state=ephemeral is not supported by the agent",
            ),
            (
                "    - ansible.posix.mount: {path: /m, state: unmounted, opts_no_log: true}\n",
                "mount: opts_no_log is not supported by the agent",
            ),
            (
                "    - mount: {path: /m, src: a, state: present}\n",
                "state is present but all of the following are missing: fstype",
            ),
            (
                "    - community.general.timezone: {name: UTC, rtc: local}\n",
                "timezone: hwclock is not supported by the agent",
            ),
            (
                "    - hostname: {name: h, use: redhat}\n",
                "hostname: use=redhat is not supported by the agent",
            ),
            (
                "    - alternatives: {name: e, path: /bin/x, family: f}\n",
                "alternatives: family is not supported by the agent",
            ),
        ];
        for (task, want) in cases {
            let e = load(task);
            assert!(e.contains(want), "{task}: {e}");
        }
        for ok in [
            "    - mount: {path: /m, src: a, fstype: b, state: '{{ s }}'}\n",
            "    - community.general.timezone: {name: UTC}\n",
            "    - hostname: {name: h, use: systemd}\n",
        ] {
            assert_eq!(load(ok), "", "{ok}");
        }
    }
}
