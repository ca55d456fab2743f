//! The `dpkg_divert` module (`community.general.dpkg_divert`), as its `dpkg_divert.py`:
//! a diversion of `path` (to `divert`, default `PATH.distrib`, held by `holder` or `LOCAL`)
//! made or removed with `dpkg-divert [--rename|--no-rename] [--package H|--local] [--divert D]
//! --add|--remove PATH`.
//!
//! - The state is read with `dpkg-divert --listpackage` and `--truename`; the command is first
//!   run with `--test` (also what check mode reports).
//! - A diversion whose holder or target differs is removed and added again (the diverted file
//!   moves to the new target if it is free).
//! - With `rename`, a file in the way is an error unless `force` (then it is deleted first).
//! - The result has `diversion`, `commands`, `messages` and, with `--diff`, `diff`.

use std::path::Path;

use minijinja::Value;

use super::systool::{dict, exec, query, run_exec};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::process::Ran;
use crate::resource::{Change, Check, Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct DpkgDivertModule;

static SPEC: ArgSpec = ArgSpec {
    module: "dpkg_divert",
    args: &[
        ArgDef::new("path", ArgType::Path).required(),
        ArgDef::new("state", ArgType::Str).choices(&["absent", "present"]),
        ArgDef::new("holder", ArgType::Str),
        ArgDef::new("divert", ArgType::Path),
        ArgDef::new("rename", ArgType::Bool),
        ArgDef::new("force", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

const TOOL: &str = "dpkg-divert";

impl Module for DpkgDivertModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        Ok(Box::new(DivertResource {
            path: args.str("path").unwrap_or_default(),
            present: args.str("state").as_deref() != Some("absent"),
            holder: args.str("holder"),
            divert: args.str("divert"),
            rename: args.bool_or("rename", false),
            force: args.bool_or("force", false),
            diff: ctx.diff,
        }))
    }
}

struct DivertResource {
    path: String,
    present: bool,
    holder: Option<String>,
    divert: Option<String>,
    rename: bool,
    force: bool,
    diff: bool,
}

/// A diversion as dpkg_divert.py describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Diversion {
    path: String,
    present: bool,
    divert: Option<String>,
    holder: Option<String>,
}

impl Diversion {
    fn value(&self) -> Value {
        dict([
            ("path", Value::from(self.path.as_str())),
            (
                "state",
                Value::from(if self.present { "present" } else { "absent" }),
            ),
            ("divert", Value::from(self.divert.clone())),
            ("holder", Value::from(self.holder.clone())),
        ])
    }
}

fn checked(argv: &[&str]) -> Result<Ran, ModuleError> {
    let ran = query(argv)?;
    if !ran.ok() {
        return Err(ModuleError::new(ran.failure()));
    }
    Ok(ran)
}

fn diversion_state(path: &str) -> Result<Diversion, ModuleError> {
    let out = checked(&[TOOL, "--listpackage", path])?.stdout;
    if out.is_empty() {
        return Ok(Diversion {
            path: path.into(),
            present: false,
            divert: None,
            holder: None,
        });
    }
    let truename = checked(&[TOOL, "--truename", path])?.stdout;
    Ok(Diversion {
        path: path.into(),
        present: true,
        holder: Some(out.trim_end().to_string()),
        divert: Some(truename.trim_end().to_string()),
    })
}

/// The numeric parts of a version, for LooseVersion's comparisons of plain versions.
fn version_parts(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn dpkg_version() -> Result<Vec<u64>, ModuleError> {
    let out = checked(&[TOOL, "--version"])?.stdout;
    let first = out.lines().next().unwrap_or("");
    let v = first
        .split_whitespace()
        .find(|w| {
            let mut c = w.chars();
            c.next().is_some_and(|x| x.is_ascii_digit())
                && w.split_once('.').is_some_and(|(a, b)| {
                    a.chars().all(|x| x.is_ascii_digit())
                        && b.starts_with(|x: char| x.is_ascii_digit())
                })
        })
        .ok_or_else(|| ModuleError::new(format!("no version in `{TOOL} --version`: {first}")))?;
    Ok(version_parts(v))
}

/// The plan of a task: the commands, what to delete first, and what to report.
struct Plan {
    /// `commands` of the result (command lines as dpkg_divert.py joins them).
    commands: Vec<String>,
    messages: Vec<String>,
    changes: Vec<Change>,
    /// A diverted file to move from the old target to the new one afterwards.
    move_file: Option<(String, String)>,
}

impl DivertResource {
    fn wanted(&self) -> (Diversion, Vec<String>) {
        let target = self
            .divert
            .clone()
            .unwrap_or_else(|| format!("{}.distrib", self.path));
        let holder = match &self.holder {
            Some(h) if h != "LOCAL" => h.clone(),
            _ => "LOCAL".to_string(),
        };
        let mut args = Vec::new();
        if self.present {
            if holder != "LOCAL" {
                args.extend(["--package".to_string(), holder.clone()]);
            } else {
                args.push("--local".to_string());
            }
            if let Some(d) = &self.divert {
                args.extend(["--divert".to_string(), d.clone()]);
            }
            args.extend(["--add".to_string(), self.path.clone()]);
            (
                Diversion {
                    path: self.path.clone(),
                    present: true,
                    divert: Some(target),
                    holder: Some(holder),
                },
                args,
            )
        } else {
            args.extend(["--remove".to_string(), self.path.clone()]);
            (
                Diversion {
                    path: self.path.clone(),
                    present: false,
                    divert: None,
                    holder: None,
                },
                args,
            )
        }
    }

    fn plan(&self, before: &Diversion) -> Result<(Diversion, Plan), ModuleError> {
        let version = dpkg_version()?;
        if version < vec![1, 15, 0] {
            return Err(ModuleError::new("Unsupported dpkg version (<1.15.0)."));
        }
        let no_rename = version >= vec![1, 19, 1];
        let (wanted, args) = self.wanted();
        let mut main = vec![TOOL.to_string()];
        if self.rename {
            main.push("--rename".into());
        } else if no_rename {
            main.push("--no-rename".into());
        }
        main.extend(args);
        let maincommand = main.join(" ");
        let mut test = main.clone();
        test.insert(1, "--test".into());
        let tested = query(&test)?;
        let mut plan = Plan {
            commands: vec![maincommand.clone()],
            messages: Vec::new(),
            changes: Vec::new(),
            move_file: None,
        };
        if tested.ok() {
            plan.messages.push(tested.stdout.trim_end().to_string());
            if wanted != *before {
                plan.changes.push(exec(&main, format!("run {maincommand}")));
            }
            return Ok((wanted, plan));
        }
        let fail = |msg: &str| {
            ModuleError::new(format!(
                "{msg} (cmd: {maincommand}, rc={}): {}{}",
                tested.rc, tested.stdout, tested.stderr
            ))
        };
        if wanted.present != before.present {
            let path_exists = Path::new(&self.path).exists();
            let in_the_way = if self.present {
                wanted
                    .divert
                    .as_deref()
                    .is_some_and(|t| Path::new(t).exists())
            } else {
                before
                    .divert
                    .as_deref()
                    .is_some_and(|t| Path::new(t).exists())
            };
            if !(self.rename && path_exists && in_the_way) {
                return Err(fail(
                    "Unexpected error while changing state of the diversion.",
                ));
            }
            if !self.force {
                return Err(fail(
                    "Set 'force' param to True to force renaming of files.",
                ));
            }
            let to_remove = if self.present {
                wanted.divert.clone().unwrap_or_default()
            } else {
                self.path.clone()
            };
            plan.changes.push(Change::Remove {
                path: to_remove.into(),
            });
            plan.changes.push(exec(&main, format!("run {maincommand}")));
            return Ok((wanted, plan));
        }
        // Same state, other holder or target: remove, then add again.
        let mut rm = vec![TOOL.to_string()];
        if no_rename {
            rm.push("--no-rename".into());
        }
        rm.extend(["--remove".to_string(), self.path.clone()]);
        if self.rename {
            main.retain(|a| a != "--rename");
            if no_rename {
                main.insert(1, "--no-rename".into());
            }
        }
        plan.commands = vec![rm.join(" "), main.join(" ")];
        let mut rm_test = rm.clone();
        rm_test.insert(1, "--test".into());
        let r = checked(&rm_test.iter().map(String::as_str).collect::<Vec<_>>())?;
        plan.messages = vec![r.stdout.trim_end().to_string()];
        plan.changes
            .push(exec(&rm, format!("run {}", rm.join(" "))));
        plan.changes
            .push(exec(&main, format!("run {}", main.join(" "))));
        if let (Some(old), Some(new)) = (&before.divert, &wanted.divert) {
            if old != new {
                plan.move_file = Some((old.clone(), new.clone()));
            }
        }
        Ok((wanted, plan))
    }

    fn outcome(&self, before: &Diversion, after: &Diversion, plan: &Plan) -> Outcome {
        let diff = if self.diff {
            dict([("before", before.value()), ("after", after.value())])
        } else {
            dict(Vec::<(String, Value)>::new())
        };
        Outcome::default()
            .with("diversion", after.value())
            .with(
                "commands",
                Value::from_iter(plan.commands.iter().map(|c| Value::from(c.as_str()))),
            )
            .with(
                "messages",
                Value::from_iter(plan.messages.iter().map(|c| Value::from(c.as_str()))),
            )
            .with("diff", diff)
    }
}

impl Resource for DivertResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let before = diversion_state(&self.path)?;
        let (wanted, plan) = self.plan(&before)?;
        let mut plan = plan;
        if plan.changes.len() == 2 && plan.commands.len() == 2 {
            plan.messages.push("Running in check mode".into());
        }
        let outcome = self.outcome(&before, &wanted, &plan);
        Ok(Check::new(plan.changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let before = diversion_state(&self.path)?;
        let (wanted, mut plan) = self.plan(&before)?;
        plan.messages.retain(|m| m != "Running in check mode");
        let mut messages = Vec::new();
        for change in &check.changes {
            match change {
                Change::Exec { .. } => {
                    let ran = run_exec(change)?;
                    if !ran.ok() {
                        return Err(ModuleError::new(ran.failure()));
                    }
                    messages.push(ran.stdout.trim_end().to_string());
                }
                Change::Remove { path } => std::fs::remove_file(path).map_err(|e| {
                    ModuleError::new(format!("Failed to remove {}: {e}", path.display()))
                })?,
                other => crate::fsops::apply(other).map(|_| ())?,
            }
        }
        if let Some((old, new)) = &plan.move_file {
            if Path::new(old).exists() && !Path::new(new).exists() {
                // As dpkg_divert.py: a failed move is not an error.
                let _ = std::fs::rename(old, new);
            }
        }
        plan.messages = messages;
        let after = diversion_state(&self.path)?;
        if after != wanted {
            return Err(ModuleError::new(
                "Unexpected error: see stdout and stderr for details.",
            ));
        }
        Ok(self.outcome(&before, &after, &plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_diversion_and_command() {
        let r = DivertResource {
            path: "/etc/x".into(),
            present: true,
            holder: None,
            divert: None,
            rename: false,
            force: false,
            diff: false,
        };
        let (w, args) = r.wanted();
        assert_eq!(w.divert.as_deref(), Some("/etc/x.distrib"));
        assert_eq!(w.holder.as_deref(), Some("LOCAL"));
        assert_eq!(args, ["--local", "--add", "/etc/x"]);
        let r = DivertResource {
            holder: Some("pkg".into()),
            divert: Some("/etc/x.orig".into()),
            ..r
        };
        assert_eq!(
            r.wanted().1,
            [
                "--package",
                "pkg",
                "--divert",
                "/etc/x.orig",
                "--add",
                "/etc/x"
            ]
        );
        assert!(version_parts("1.21.22") >= vec![1, 19, 1]);
        assert!(version_parts("1.14.9") < vec![1, 15, 0]);
    }
}
