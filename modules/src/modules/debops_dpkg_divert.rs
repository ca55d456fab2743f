//! `debops.debops.dpkg_divert`: DebOps' own diversion module (not community.general's: other
//! arguments and defaults), as its `dpkg_divert.py`. The command is `env LC_ALL=C dpkg-divert
//! [--local|--package P] [--divert D] [--rename] --add|--remove PATH`, with `D` defaulting to
//! `PATH.dpkg-divert` for `LOCAL` (the default `package`) and `PATH.distrib` for a package;
//! `rename` defaults to yes. It is first run with `--test` (what check mode reports); a result
//! starting with `Leaving` or `No diversion` is no change. `delete` with `state: absent`
//! deletes `PATH` (the package's file put back in place by the removal) first.
//!
//! Refused when reached: `force` when the test run fails on an existing diversion (the
//! module's replace-and-restore branch).

use std::path::Path;

use super::systool::{bin_path, exec, query, run_exec};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Change, Check, Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct DebopsDpkgDivertModule;

static SPEC: ArgSpec = ArgSpec {
    module: "debops.debops.dpkg_divert",
    args: &[
        ArgDef::new("path", ArgType::Path)
            .aliases(&["name"])
            .required(),
        ArgDef::new("state", ArgType::Str).choices(&["absent", "present"]),
        ArgDef::new("package", ArgType::Str),
        ArgDef::new("divert", ArgType::Path),
        ArgDef::new("rename", ArgType::Bool),
        ArgDef::new("delete", ArgType::Bool),
        ArgDef::new("force", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for DebopsDpkgDivertModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        Ok(Box::new(DebopsDivert {
            path: args.str("path").unwrap_or_default(),
            present: args.str("state").as_deref() != Some("absent"),
            package: args.str("package").unwrap_or_else(|| "LOCAL".into()),
            divert: args.str("divert"),
            rename: args.bool_or("rename", true),
            delete: args.bool_or("delete", false),
            force: args.bool_or("force", false),
            check_mode: ctx.check_mode,
        }))
    }
}

struct DebopsDivert {
    path: String,
    present: bool,
    package: String,
    divert: Option<String>,
    rename: bool,
    delete: bool,
    force: bool,
    check_mode: bool,
}

impl DebopsDivert {
    /// The divert target the command names, if any.
    fn target(&self) -> Option<String> {
        match (&self.divert, self.package.as_str()) {
            (Some(d), _) => Some(d.clone()),
            (None, "LOCAL") => Some(format!("{}.dpkg-divert", self.path)),
            (None, "") => None,
            (None, _) => Some(format!("{}.distrib", self.path)),
        }
    }

    /// `env LC_ALL=C dpkg-divert [--test] ...`, in the module's order of options.
    fn command(&self, test: bool) -> Vec<String> {
        let env = bin_path("env").unwrap_or_else(|| "env".into());
        let tool = bin_path("dpkg-divert").unwrap_or_else(|| "dpkg-divert".into());
        let mut argv = vec![env, "LC_ALL=C".into(), tool];
        if test {
            argv.push("--test".into());
        }
        match self.package.as_str() {
            "LOCAL" => argv.push("--local".into()),
            "" => {}
            p => argv.extend(["--package".into(), p.into()]),
        }
        if let Some(t) = self.target() {
            argv.extend(["--divert".into(), t]);
        }
        if self.rename {
            argv.push("--rename".into());
        }
        argv.push(if self.present { "--add" } else { "--remove" }.into());
        argv.push(self.path.clone());
        argv
    }

    /// The stdout check mode reports for `delete` (the module's made-up line).
    fn fake_delete_stdout(&self) -> String {
        let mut words = vec!["Deleting", &self.path, "and", "removing"];
        if self.package == "LOCAL" {
            words.push("local");
        }
        let target = self.target();
        words.extend(["diversion", "of", &self.path, "to"]);
        if let Some(t) = target.as_deref() {
            words.push(t);
        }
        words.join(" ")
    }
}

fn unchanged(stdout: &str) -> bool {
    stdout.starts_with("Leaving") || stdout.starts_with("No diversion")
}

impl Resource for DebopsDivert {
    fn check(&self) -> Result<Check, ModuleError> {
        let list = query(&["dpkg-divert", "--listpackage", &self.path])?.stdout;
        let test = self.command(true);
        let tested = query(&test)?;
        if !tested.ok() {
            if self.force && !list.is_empty() {
                return Err(ModuleError::new(
                    "debops.debops.dpkg_divert: force (replacing a diversion the test run \
                     refuses) is not supported by the agent",
                ));
            }
            return Err(ModuleError::new(tested.stderr.trim_end().to_string()));
        }
        let deletes =
            !self.present && self.delete && !list.is_empty() && Path::new(&self.path).exists();
        let stdout = if deletes {
            self.fake_delete_stdout()
        } else {
            tested.stdout.clone()
        };
        let cmd = self.command(self.check_mode).join(" ");
        let outcome = Outcome::default()
            .with("stdout", stdout.clone())
            .with("stderr", tested.stderr.clone())
            .with("cmd", cmd);
        let mut changes = Vec::new();
        if !unchanged(&stdout) {
            if !self.present && self.delete && !list.is_empty() {
                changes.push(Change::Remove {
                    path: self.path.clone().into(),
                });
            }
            let argv = self.command(false);
            changes.push(exec(&argv, format!("run {}", argv.join(" "))));
        }
        Ok(Check::new(changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let mut out = check.outcome;
        for change in &check.changes {
            match change {
                Change::Remove { path } => match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(ModuleError::new(format!("unlinking failed: {e} ")));
                    }
                },
                _ => {
                    let ran = run_exec(change)?;
                    if !ran.ok() {
                        return Err(ModuleError::new(ran.stderr.trim_end().to_string()));
                    }
                    out = out
                        .with("stdout", ran.stdout.clone())
                        .with("stderr", ran.stderr.clone());
                    out.changed = Some(!unchanged(&ran.stdout));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(present: bool, package: &str, divert: Option<&str>) -> DebopsDivert {
        DebopsDivert {
            path: "/etc/x".into(),
            present,
            package: package.into(),
            divert: divert.map(str::to_string),
            rename: true,
            delete: true,
            force: false,
            check_mode: false,
        }
    }

    #[test]
    fn commands_in_the_module_s_order() {
        let tail = |v: Vec<String>| {
            v[2..]
                .join(" ")
                .replace(&bin_path("dpkg-divert").unwrap_or_default(), "dpkg-divert")
        };
        assert_eq!(
            tail(r(true, "LOCAL", None).command(true)),
            "dpkg-divert --test --local --divert /etc/x.dpkg-divert --rename --add /etc/x"
        );
        assert_eq!(
            tail(r(false, "pkg", Some("/etc/y")).command(false)),
            "dpkg-divert --package pkg --divert /etc/y --rename --remove /etc/x"
        );
        assert_eq!(
            r(false, "LOCAL", None).fake_delete_stdout(),
            "Deleting /etc/x and removing local diversion of /etc/x to /etc/x.dpkg-divert"
        );
        assert!(unchanged(
            "Leaving 'local diversion of /etc/x to /etc/x.dpkg-divert'"
        ));
        assert!(unchanged(
            "No diversion 'any diversion of /etc/x', none removed."
        ));
    }
}
