//! The `pip` module: Python packages in a virtualenv (created if missing) or the system
//! Python, as ansible-core's pip.py installs them.
//!
//! pip.py always runs `pip install`/`uninstall` and reads "Successfully installed" in its output
//! to say `changed`; its check mode asks `pip list --format=freeze` and compares versions with
//! the requirements' PEP 440 specifiers. The agent plans the same way: when every named package
//! is already as wanted (what pip.py's check mode answers), nothing runs; in the cases where
//! pip.py cannot know without running pip (`requirements`, `extra_args`, `state: latest` or
//! `forcereinstall`, a name that is not a plain requirement) pip runs on each converge and its
//! output says whether that changed anything, exactly as in Ansible.

mod pep440;
mod requirement;

use std::path::{Path, PathBuf};
use std::process::Command;

use minijinja::Value;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::process::Ran;
use crate::resource::{
    Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};
use requirement::{canonicalize, recover_package_names, Package};

pub struct PipModule;

static SPEC: ArgSpec = ArgSpec {
    module: "pip",
    args: &[
        ArgDef::new("state", ArgType::Str).choices(&[
            "present",
            "absent",
            "latest",
            "forcereinstall",
        ]),
        ArgDef::new("name", ArgType::List),
        ArgDef::new("version", ArgType::Str),
        ArgDef::new("requirements", ArgType::Str),
        ArgDef::new("virtualenv", ArgType::Path),
        ArgDef::new("virtualenv_site_packages", ArgType::Bool),
        ArgDef::new("virtualenv_command", ArgType::Path),
        ArgDef::new("virtualenv_python", ArgType::Str),
        ArgDef::new("extra_args", ArgType::Str),
        ArgDef::new("editable", ArgType::Bool),
        ArgDef::new("chdir", ArgType::Path),
        ArgDef::new("executable", ArgType::Path),
        ArgDef::new("umask", ArgType::Str),
        ArgDef::new("break_system_packages", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[&["name", "requirements"], &["executable", "virtualenv"]],
    required_one_of: &[&["name", "requirements"]],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Present,
    Absent,
    Latest,
    ForceReinstall,
}

impl State {
    fn pip_args(self) -> &'static [&'static str] {
        match self {
            State::Present => &["install"],
            State::Absent => &["uninstall", "-y"],
            State::Latest => &["install", "-U"],
            State::ForceReinstall => &["install", "-U", "--force-reinstall"],
        }
    }
    fn name(self) -> &'static str {
        match self {
            State::Present => "present",
            State::Absent => "absent",
            State::Latest => "latest",
            State::ForceReinstall => "forcereinstall",
        }
    }
}

/// How to run the tools: in `chdir`, with the virtualenv's `bin` first in `PATH`.
struct Runner {
    chdir: PathBuf,
    env: Vec<(String, String)>,
}

impl Runner {
    fn run(&self, argv: &[String]) -> Result<Ran, ModuleError> {
        let Some((program, args)) = argv.split_first() else {
            return Err(ModuleError::new("empty command"));
        };
        let mut cmd = Command::new(program);
        cmd.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        if self.chdir.is_dir() {
            cmd.current_dir(&self.chdir);
        }
        crate::process::run(&mut cmd)
    }
}

struct PipResource {
    state: State,
    /// `name` as given (for the result).
    names: Option<Vec<String>>,
    packages: Vec<Package>,
    version: Option<String>,
    requirements: Option<String>,
    virtualenv: Option<PathBuf>,
    venv_missing: bool,
    /// The command creating the virtualenv, when it is missing (not looked for in check mode).
    venv_command: Option<Vec<String>>,
    pip: Vec<String>,
    /// The whole `pip install|uninstall ...` command.
    command: Vec<String>,
    extra_args: bool,
    /// A `name` is a VCS URL: pip.py compares `pip list` before and after to say `changed`.
    has_vcs: bool,
    /// Why `name`/`version` cannot be used, reported after a missing virtualenv is created.
    package_error: Option<String>,
    runner: Runner,
    check_mode: bool,
}

fn fail(msg: impl Into<String>) -> ModuleError {
    ModuleError::new(msg)
}

/// Ansible's `get_bin_path`: `PATH`, then the sbin directories.
fn bin_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(["/sbin", "/usr/sbin", "/usr/local/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

impl Module for PipModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        if args.has("umask") {
            return Err(fail(
                "pip: `umask` is not supported by the agent (set it in the unit running the agent)",
            ));
        }
        let state = match args.str("state").as_deref() {
            None | Some("present") => State::Present,
            Some("absent") => State::Absent,
            Some("latest") => State::Latest,
            _ => State::ForceReinstall,
        };
        let version = args.str("version");
        if state == State::Latest && version.is_some() {
            return Err(fail("version is incompatible with state=latest"));
        }
        let chdir = args.str("chdir").map(PathBuf::from);
        let virtualenv = args.str("virtualenv").map(|e| match &chdir {
            Some(c) => c.join(e),
            None => PathBuf::from(e),
        });
        let chdir = chdir.unwrap_or_else(std::env::temp_dir);
        let names = args.list_str("name");
        let has_vcs = names
            .as_ref()
            .is_some_and(|ns| ns.iter().any(|n| is_vcs_url(n)));
        // pip.py reads the names after creating a missing virtualenv: an error in them fails the
        // task then (and check mode, which stops at the missing virtualenv, never sees it).
        let (packages, package_error) = match &names {
            Some(names) => match packages_of(names, version.as_deref()) {
                Ok(p) => (p, None),
                Err(e) => (Vec::new(), Some(e.0)),
            },
            None => (Vec::new(), None),
        };
        let venv_missing = virtualenv
            .as_ref()
            .is_some_and(|env| !env.join("bin").join("activate").exists());
        // pip.py's check mode stops at a missing virtualenv before finding the tool.
        let venv_command = match &virtualenv {
            Some(env) if venv_missing && !ctx.check_mode => Some(venv_command(args, env)?),
            _ => None,
        };
        let pip = pip_command(args.str("executable"), virtualenv.as_deref(), venv_missing)?;
        let mut extra_args = args.str("extra_args");
        if args.bool_or("editable", false) {
            let mut words: Vec<String> = extra_args
                .as_deref()
                .map(|e| e.split(' ').map(str::to_string).collect())
                .unwrap_or_default();
            if !words.iter().any(|w| w == "-e") {
                words.push("-e".into());
                extra_args = Some(words.join(" "));
            }
        }
        let mut command = pip.clone();
        command.extend(state.pip_args().iter().map(|s| s.to_string()));
        if let Some(extra) = &extra_args {
            let words = crate::shlex::split(extra)
                .map_err(|e| fail(format!("argument `extra_args`: {e}")))?;
            command.extend(words);
        }
        let requirements = args.str("requirements");
        if names.is_some() {
            command.extend(packages.iter().map(|p| p.text.clone()));
        } else if let Some(r) = &requirements {
            command.extend(["-r".to_string(), r.clone()]);
        }
        let mut env = ctx.env.to_vec();
        if let Some(venv) = &virtualenv {
            // Prefixed to the PATH the task's environment gives, else the agent's.
            let path = ctx
                .env
                .iter()
                .rev()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| std::env::var("PATH").unwrap_or_default());
            env.push((
                "PATH".into(),
                format!("{}:{path}", venv.join("bin").display()),
            ));
        }
        if args.bool_or("break_system_packages", false) {
            env.push(("PIP_BREAK_SYSTEM_PACKAGES".into(), "1".into()));
        }
        Ok(Box::new(PipResource {
            state,
            names,
            packages,
            version,
            requirements,
            virtualenv,
            venv_missing,
            venv_command,
            pip,
            command,
            extra_args: extra_args.is_some(),
            has_vcs,
            package_error,
            runner: Runner { chdir, env },
            check_mode: ctx.check_mode,
        }))
    }
}

/// pip.py's packages of `name`, with `version` applied to the only one.
fn packages_of(names: &[String], version: Option<&str>) -> Result<Vec<Package>, ModuleError> {
    let mut packages = Vec::new();
    for n in recover_package_names(names) {
        packages.push(Package::new(&n, None).map_err(|e| fail(e.to_string()))?);
    }
    if let Some(v) = version {
        if packages.len() > 1 {
            return Err(fail(
                "'version' argument is ambiguous when installing multiple package \
                 distributions. Please specify version restrictions next to each package \
                 in 'name' argument.",
            ));
        }
        if packages[0].has_version_specifier() {
            return Err(fail(
                "The 'version' argument conflicts with any version specifier provided \
                 along with a package name. Please keep the version specifier, but \
                 remove the 'version' argument.",
            ));
        }
        let first = packages[0].text.clone();
        packages[0] = Package::new(&first, Some(v)).map_err(|e| fail(e.to_string()))?;
    }
    Ok(packages)
}

fn is_vcs_url(name: &str) -> bool {
    ["svn+", "git+", "hg+", "bzr+"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// pip.py's `_is_venv_command`: `pyvenv`, or `-m venv`.
fn is_venv_command(argv: &[String]) -> bool {
    if argv.first().map(String::as_str) == Some("pyvenv") {
        return true;
    }
    argv.iter().skip(1).enumerate().any(|(i, a)| {
        a == "-mvenv"
            || a == "-m=venv"
            || (a == "-m" && argv.get(i + 2).map(String::as_str) == Some("venv"))
    })
}

/// pip.py's `setup_virtualenv`: the command that creates `env`.
fn venv_command(args: &Args, env: &Path) -> Result<Vec<String>, ModuleError> {
    let text = args
        .str("virtualenv_command")
        .unwrap_or_else(|| "virtualenv".into());
    let mut cmd = crate::shlex::split(&text)
        .map_err(|e| fail(format!("argument `virtualenv_command`: {e}")))?;
    if cmd.is_empty() {
        return Err(fail("argument `virtualenv_command` is empty"));
    }
    let is_venv = is_venv_command(&cmd);
    if !cmd[0].contains('/') {
        cmd[0] = bin_path(&cmd[0])
            .ok_or_else(|| {
                fail(format!(
                    "Failed to find required executable \"{}\" in paths: {}",
                    cmd[0],
                    std::env::var("PATH").unwrap_or_default()
                ))
            })?
            .display()
            .to_string();
    }
    if args.bool_or("virtualenv_site_packages", false) {
        cmd.push("--system-site-packages".into());
    } else {
        // pip.py asks the tool's --help whether it knows --no-site-packages (old virtualenv).
        let help = crate::process::run(Command::new(&cmd[0]).arg("--help"))?;
        if !help.ok() {
            return Err(fail(format!(
                "Could not get output from {} --help: {}{}",
                cmd[0], help.stdout, help.stderr
            )));
        }
        if help
            .stdout
            .split_whitespace()
            .any(|w| w == "--no-site-packages")
        {
            cmd.push("--no-site-packages".into());
        }
    }
    let python = args.str("virtualenv_python");
    if !is_venv {
        // pip.py passes the Python running the module; the agent's is the host's python3.
        let py = match python {
            Some(p) => p,
            None => bin_path("python3")
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "python3".into()),
        };
        cmd.push(format!("-p{py}"));
    } else if python.is_some() {
        return Err(fail(
            "virtualenv_python should not be used when using the venv module or pyvenv as \
             virtualenv_command",
        ));
    }
    cmd.push(env.display().to_string());
    Ok(cmd)
}

/// pip.py's `_get_pip`.
fn pip_command(
    executable: Option<String>,
    env: Option<&Path>,
    venv_missing: bool,
) -> Result<Vec<String>, ModuleError> {
    if let Some(exe) = executable {
        if exe.starts_with('/') {
            return Ok(vec![exe]);
        }
        return bin_path(&exe)
            .map(|p| vec![p.display().to_string()])
            .ok_or_else(|| {
                fail(format!(
                    "Unable to find any of {exe} to use.  pip needs to be installed."
                ))
            });
    }
    if let Some(env) = env {
        let bin = env.join("bin");
        if venv_missing {
            // Created by this task first: its pip3.
            return Ok(vec![bin.join("pip3").display().to_string()]);
        }
        return ["pip3", "pip"]
            .iter()
            .map(|b| bin.join(b))
            .find(|p| p.is_file())
            .map(|p| vec![p.display().to_string()])
            .ok_or_else(|| {
                fail(format!(
                    "Unable to find pip in the virtualenv, {}, under any of these names: pip3, \
                     pip. Make sure pip is present in the virtualenv.",
                    env.display()
                ))
            });
    }
    // pip.py uses the pip module of the Python running it; the agent's Python is the host's
    // python3, when it has pip.
    if let Some(py) = bin_path("python3") {
        let has_pip = crate::process::run(Command::new(&py).args(["-c", "import pip"]))?;
        if has_pip.ok() {
            return Ok(vec![py.display().to_string(), "-m".into(), "pip".into()]);
        }
    }
    bin_path("pip3")
        .map(|p| vec![p.display().to_string()])
        .ok_or_else(|| fail("Unable to find any of pip3 to use.  pip needs to be installed."))
}

fn exec(argv: &[String], summary: String) -> Change {
    Change::Exec {
        argv: argv.to_vec(),
        summary,
    }
}

/// pip.py's `_fail` message.
fn failure_msg(out: &str, err: &str) -> String {
    let mut msg = String::new();
    if !out.is_empty() {
        msg.push_str(&format!("stdout: {out}"));
    }
    if !err.is_empty() {
        msg.push_str(&format!("\n:stderr: {err}"));
    }
    msg
}

impl PipResource {
    /// `pip list --format=freeze` (or `pip freeze` for a pip too old for it): the command line
    /// and its output.
    fn installed(&self) -> Result<(String, Ran), ModuleError> {
        let mut cmd = self.pip.clone();
        cmd.extend(["list".into(), "--format=freeze".into()]);
        let ran = self.runner.run(&cmd)?;
        if ran.ok() {
            return Ok((cmd.join(" "), ran));
        }
        let mut cmd = self.pip.clone();
        cmd.push("freeze".into());
        let ran = self.runner.run(&cmd)?;
        if !ran.ok() {
            return Err(fail(failure_msg(&ran.stdout, &ran.stderr)));
        }
        Ok((cmd.join(" "), ran))
    }

    /// pip.py's `_is_present` over `pip list` lines (`name==version`).
    fn is_present(package: &Package, listed: &str) -> bool {
        listed.lines().any(|line| {
            line.split_once("==")
                .is_some_and(|(n, v)| canonicalize(n) == package.name && package.is_satisfied_by(v))
        })
    }

    /// Installed at any version (what `pip uninstall` acts on).
    fn is_installed(package: &Package, listed: &str) -> bool {
        listed.lines().any(|line| {
            line.split_once("==")
                .is_some_and(|(n, _)| canonicalize(n) == package.name)
        })
    }

    fn planned(&self) -> Vec<Change> {
        let mut changes = Vec::new();
        if let (true, Some(env)) = (self.venv_missing, &self.virtualenv) {
            let cmd = self.venv_command.clone().unwrap_or_default();
            changes.push(exec(&cmd, format!("create virtualenv {}", env.display())));
        }
        let what = self
            .names
            .as_ref()
            .map(|_| {
                self.packages
                    .iter()
                    .map(|p| p.text.clone())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .or_else(|| self.requirements.as_ref().map(|r| format!("-r {r}")))
            .unwrap_or_default();
        changes.push(exec(
            &self.command,
            format!("pip {} {what}", self.state.pip_args().join(" ")),
        ));
        changes
    }

    /// The cases where pip.py's check mode answers `changed` without asking pip.
    fn always_runs(&self) -> bool {
        self.extra_args
            || self.requirements.is_some()
            || self.state == State::Latest
            || self.names.is_none()
    }

    fn result(&self, stdout: String, stderr: String) -> Outcome {
        let opt = |v: &Option<String>| v.clone().map(Value::from).unwrap_or(Value::from(()));
        Outcome::default()
            .with("cmd", Value::from(self.command.clone()))
            .with(
                "name",
                self.names
                    .clone()
                    .map(Value::from)
                    .unwrap_or(Value::from(())),
            )
            .with("version", opt(&self.version))
            .with("state", self.state.name())
            .with("requirements", opt(&self.requirements))
            .with(
                "virtualenv",
                opt(&self.virtualenv.as_ref().map(|p| p.display().to_string())),
            )
            .with("stdout", stdout)
            .with("stderr", stderr)
    }
}

impl Resource for PipResource {
    fn check(&self) -> Result<Check, ModuleError> {
        if self.venv_missing {
            // pip.py's check mode stops here: changed.
            return Ok(Check::new(self.planned(), Outcome::default()));
        }
        if let Some(e) = &self.package_error {
            return Err(fail(e.clone()));
        }
        let ansible_always = self.always_runs();
        if self.check_mode && ansible_always {
            return Ok(Check::new(self.planned(), Outcome::default()));
        }
        let runs_anyway = ansible_always
            || self.state == State::ForceReinstall
            || self.packages.iter().any(|p| p.spec.is_none());
        if runs_anyway {
            return Ok(Check::new(
                self.planned(),
                self.result(String::new(), String::new()),
            ));
        }
        let (list_cmd, listed) = self.installed()?;
        let differs = |p: &Package| match self.state {
            State::Present => !Self::is_present(p, &listed.stdout),
            State::Absent => Self::is_present(p, &listed.stdout),
            _ => false,
        };
        let changed_in_check = self.packages.iter().any(differs);
        if self.check_mode {
            let mut outcome = Outcome::default()
                .with("cmd", list_cmd)
                .with("stdout", listed.stdout.clone())
                .with("stderr", listed.stderr.clone());
            outcome.changed = Some(changed_in_check);
            let changes = if changed_in_check || self.state == State::ForceReinstall {
                self.planned()
            } else {
                Vec::new()
            };
            return Ok(Check::new(changes, outcome));
        }
        // `pip uninstall` removes a package whatever its version.
        let needed = match self.state {
            State::Absent => self
                .packages
                .iter()
                .any(|p| Self::is_installed(p, &listed.stdout)),
            _ => changed_in_check,
        };
        let changes = if needed { self.planned() } else { Vec::new() };
        Ok(Check::new(
            changes,
            self.result(String::new(), String::new()),
        ))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let mut out = String::new();
        let mut err = String::new();
        let mut venv_created = false;
        let mut freeze_before = None;
        for change in &check.changes {
            let Change::Exec { argv, .. } = change else {
                continue;
            };
            if *argv != self.command {
                let ran = self.runner.run(argv)?;
                out.push_str(&ran.stdout);
                err.push_str(&ran.stderr);
                if !ran.ok() {
                    let msg = failure_msg(&out, &err);
                    let mut o = Outcome::default().with("cmd", Value::from(argv.clone()));
                    o = o.with("msg", msg.clone());
                    o.failed = Some(msg);
                    return Ok(o);
                }
                venv_created = true;
                if let Some(e) = &self.package_error {
                    let mut o = Outcome::default().with("msg", e.clone());
                    o.failed = Some(e.clone());
                    o.changed = Some(false);
                    return Ok(o);
                }
                continue;
            }
            if self.requirements.is_some() || self.has_vcs {
                freeze_before = Some(self.installed()?.1.stdout);
            }
            let ran = self.runner.run(argv)?;
            out.push_str(&ran.stdout);
            err.push_str(&ran.stderr);
            let not_installed =
                ran.stdout.contains("not installed") || ran.stderr.contains("not installed");
            // pip exits 1 when asked to uninstall what is not installed: not a failure.
            let absent_already = ran.rc == 1 && self.state == State::Absent && not_installed;
            if !ran.ok() && !absent_already {
                let msg = failure_msg(&out, &err);
                let mut o = Outcome::default().with("cmd", Value::from(argv.clone()));
                o = o.with("msg", msg.clone());
                o.failed = Some(msg);
                return Ok(o);
            }
            let changed = if self.state == State::Absent {
                ran.stdout.contains("Successfully uninstalled")
            } else if let Some(before) = &freeze_before {
                *before != self.installed()?.1.stdout
            } else {
                ran.stdout.contains("Successfully installed")
            };
            let mut outcome = self.result(out, err);
            outcome.changed = Some(changed || venv_created);
            return Ok(outcome);
        }
        Ok(check.outcome)
    }

    fn owns(&self) -> Vec<Owned> {
        self.virtualenv.iter().cloned().map(Owned::Path).collect()
    }
}

#[cfg(test)]
mod tests;
