//! The `hostname` module, as ansible-core's `hostname.py` on Linux:
//!
//! - `use: systemd` or `debian` (both are the systemd strategy in Ansible), or no `use` on a
//!   host booted with systemd (`systemctl` on the PATH and `/run/systemd/system/`): the
//!   permanent name is read with `hostnamectl --static status` and set with `hostnamectl
//!   --pretty --static set-hostname NAME`, then the current one with `--transient`.
//! - No `use` on Debian or Ubuntu without a running systemd: the file strategy (`/etc/hostname`
//!   holds the name; the kernel's name is left as it is, as Ansible does).
//! - Any other strategy (`redhat`, `alpine`, `openrc`, `generic`, ...) or distribution is refused
//!   when the task is reached.
//!
//! The result has `name`, `ansible_facts` (`ansible_hostname`, `ansible_nodename`,
//! `ansible_fqdn`, `ansible_domain`) and, when changed, `diff` (`hostname = NAME`).

use std::path::{Path, PathBuf};

use minijinja::Value;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Change, Check, Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct HostnameModule;

static SPEC: ArgSpec = ArgSpec {
    module: "hostname",
    args: &[
        ArgDef::new("name", ArgType::Str).required(),
        ArgDef::new("use", ArgType::Str).choices(&[
            "alpine", "debian", "freebsd", "generic", "macos", "macosx", "darwin", "openbsd",
            "openrc", "redhat", "sles", "solaris", "systemd",
        ]),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Strategy {
    /// `hostnamectl`.
    Systemd,
    /// The permanent name in this file (`/etc/hostname`).
    File(PathBuf),
}

impl Module for HostnameModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let name = args.str("name").unwrap_or_default();
        let strategy = match args.str("use").as_deref() {
            Some("systemd") | Some("debian") => Strategy::Systemd,
            Some(other) => {
                return Err(ModuleError::new(format!(
                    "hostname: use={other} is not supported by the agent (supported: systemd, \
                     debian)"
                )))
            }
            None => default_strategy()?,
        };
        Ok(Box::new(HostnameResource { name, strategy }))
    }
}

/// Ansible's choice without `use`: systemd when it runs the host, else by distribution.
fn default_strategy() -> Result<Strategy, ModuleError> {
    if systemd_managed() {
        return Ok(Strategy::Systemd);
    }
    let osr = crate::facts::os_release();
    let id = osr.get("ID").map(String::as_str).unwrap_or("");
    let distribution =
        crate::facts::distribution_name(id, osr.get("NAME").map(String::as_str).unwrap_or(""));
    match distribution.as_str() {
        "Debian" | "Ubuntu" => Ok(Strategy::File(PathBuf::from("/etc/hostname"))),
        other => Err(ModuleError::new(format!(
            "hostname: without a running systemd, only Debian and Ubuntu's /etc/hostname are \
             supported by the agent (this host: {other}); set `use: systemd` if hostnamectl works"
        ))),
    }
}

/// `ServiceMgrFactCollector.is_systemd_managed`.
fn systemd_managed() -> bool {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("systemctl").is_file()));
    on_path
        && [
            "/run/systemd/system/",
            "/dev/.run/systemd/",
            "/dev/.systemd/",
        ]
        .iter()
        .any(|c| Path::new(c).exists())
}

struct HostnameResource {
    name: String,
    strategy: Strategy,
}

fn hostnamectl(args: &[&str]) -> Result<String, ModuleError> {
    let mut argv = vec!["hostnamectl"];
    argv.extend(args);
    let ran = super::systool::query(&argv)?;
    if !ran.ok() {
        return Err(ModuleError::new(format!(
            "Command failed rc={}, out={}, err={}",
            ran.rc, ran.stdout, ran.stderr
        )));
    }
    Ok(ran.stdout.trim().to_string())
}

fn set_hostname(flags: &[&str], name: &str, what: &str) -> Change {
    let mut argv = vec!["hostnamectl".to_string()];
    argv.extend(flags.iter().map(|f| f.to_string()));
    argv.extend(["set-hostname".to_string(), name.to_string()]);
    Change::Exec {
        argv,
        summary: format!("set the {what} host name to {name}"),
    }
}

impl HostnameResource {
    /// (current, permanent) names.
    fn read(&self) -> Result<(String, String), ModuleError> {
        match &self.strategy {
            Strategy::Systemd => Ok((
                hostnamectl(&["--transient", "status"])?,
                hostnamectl(&["--static", "status"])?,
            )),
            Strategy::File(path) => {
                let permanent = if path.is_file() {
                    std::fs::read_to_string(path)
                        .map_err(|e| ModuleError::new(format!("failed to read hostname: {e}")))?
                        .trim()
                        .to_string()
                } else {
                    String::new()
                };
                // The file strategy's current name is the permanent one.
                Ok((permanent.clone(), permanent))
            }
        }
    }

    fn outcome(&self, name_before: Option<String>) -> Outcome {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let fqdn = crate::facts::fqdn(&kernel);
        let domain = fqdn.split('.').skip(1).collect::<Vec<_>>().join(".");
        let facts = super::systool::dict([
            (
                "ansible_hostname",
                Value::from(self.name.split('.').next().unwrap_or("")),
            ),
            ("ansible_nodename", Value::from(self.name.clone())),
            ("ansible_fqdn", Value::from(fqdn)),
            ("ansible_domain", Value::from(domain)),
        ]);
        let mut out = Outcome::default()
            .with("name", self.name.clone())
            .with("ansible_facts", facts);
        if let Some(before) = name_before {
            out = out.with(
                "diff",
                super::systool::dict([
                    ("after", Value::from(format!("hostname = {}\n", self.name))),
                    ("before", Value::from(format!("hostname = {before}\n"))),
                ]),
            );
        }
        out
    }
}

impl Resource for HostnameResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let (current, permanent) = self.read()?;
        let name = &self.name;
        let mut changes = Vec::new();
        match &self.strategy {
            Strategy::Systemd => {
                if permanent != *name {
                    changes.push(set_hostname(&["--pretty", "--static"], name, "permanent"));
                }
                if current != *name {
                    changes.push(set_hostname(&["--transient"], name, "current"));
                }
            }
            Strategy::File(path) => {
                if permanent != *name {
                    changes.push(Change::WriteFile {
                        path: path.clone(),
                        content: format!("{name}\n").into_bytes().into(),
                        before: path
                            .is_file()
                            .then(|| std::fs::read(path).unwrap_or_default().into()),
                        attrs: Default::default(),
                        backup: false,
                        validate: None,
                    });
                }
            }
        }
        let before = if current != *name { current } else { permanent };
        let outcome = self.outcome((!changes.is_empty()).then_some(before));
        Ok(Check::new(changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        if self.strategy == Strategy::Systemd && self.name.len() > 64 {
            return Err(ModuleError::new(
                "name cannot be longer than 64 characters on systemd servers, try a shorter name",
            ));
        }
        for change in &check.changes {
            match change {
                Change::Exec { .. } => {
                    let ran = super::systool::run_exec(change)?;
                    if !ran.ok() {
                        return Err(ModuleError::new(format!(
                            "Command failed rc={}, out={}, err={}",
                            ran.rc, ran.stdout, ran.stderr
                        )));
                    }
                }
                other => {
                    crate::fsops::apply(other)
                        .map_err(|e| ModuleError::new(format!("failed to update hostname: {e}")))?;
                }
            }
        }
        // The facts report the kernel's name as it is now.
        let mut out = self.outcome(None);
        if let Some(diff) = check.outcome.data.get("diff") {
            out = out.with("diff", diff.clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_strategy_writes_etc_hostname() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("hostname");
        std::fs::write(&path, "old\n").unwrap();
        let r = HostnameResource {
            name: "web1.example.org".into(),
            strategy: Strategy::File(path.clone()),
        };
        let c = r.check().unwrap();
        assert_eq!(c.changes.len(), 1);
        let diff = c.outcome.data["diff"].clone();
        assert_eq!(
            diff.get_attr("before").unwrap().as_str(),
            Some("hostname = old\n")
        );
        let out = r.apply(c).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "web1.example.org\n"
        );
        let facts = out.data["ansible_facts"].clone();
        assert_eq!(
            facts.get_attr("ansible_hostname").unwrap().as_str(),
            Some("web1")
        );
        assert!(r.check().unwrap().changes.is_empty());
        assert!(!r.check().unwrap().outcome.data.contains_key("diff"));
    }

    #[test]
    fn systemd_plan_sets_permanent_then_current() {
        let c = [
            set_hostname(&["--pretty", "--static"], "h", "permanent"),
            set_hostname(&["--transient"], "h", "current"),
        ];
        let Change::Exec { argv, .. } = &c[0] else {
            panic!()
        };
        assert_eq!(
            argv,
            &["hostnamectl", "--pretty", "--static", "set-hostname", "h"]
        );
    }
}
