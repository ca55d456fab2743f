//! The module contract, after mgmt's Validate / CheckApply:
//!
//! - at load time, [`Module::validate`] refuses what the arguments' types cannot (a missing
//!   `src`, a malformed key), and [`Module::host_queries`] says what the task will ask of the
//!   host (packages, units), so that the engine reads them with one query for all tasks
//!   (accounts are read once per run without asking);
//! - at run time, [`Module::prepare`] turns the rendered, typed arguments into a [`Resource`],
//!   which can **check** (what differs from the desired state, as a typed [`Check`], without
//!   touching the host) and **apply** (make exactly the changes of that check, with what the
//!   check read: never reading it again). Check mode, `--diff`, idempotence and drift
//!   detection all come from this one split.

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;

use crate::args::{ArgSpec, Args};
use crate::error::{LoadError, Location};
pub use crate::host::{HostQueries, HostState};
pub use crate::modules::accounts::AccountStep;
use crate::source::{RepoPath, Source};
use crate::template::Templar;
use crate::yaml::Node;

/// What a module needs from the engine to build its resource.
pub struct ModuleContext<'a> {
    pub templar: &'a Templar,
    /// The task's variables (for `template`, `debug var=`, `assert that=`).
    pub vars: &'a Value,
    /// The repository the playbook comes from.
    pub source: &'a dyn Source,
    /// Directories searched for a relative `src`, most specific first: the role's directory
    /// (if any), then the playbook's. Modules add `files/` or `templates/` as Ansible does.
    pub search: &'a [RepoPath],
    /// The directory of the task's role, if it comes from one (`include_vars dir:`).
    pub role_dir: Option<&'a RepoPath>,
    /// The directory of the file the task is written in.
    pub task_dir: &'a RepoPath,
    pub check_mode: bool,
    pub diff: bool,
    /// The task's `environment` keyword, rendered: extra variables for commands it runs.
    pub env: &'a [(String, String)],
    /// State of the host read once per run and shared by tasks (package, unit and account
    /// databases).
    pub host: &'a Arc<HostState>,
}

/// An error that makes the task fail (not a validation error: those come before any run).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ModuleError(pub String);

impl ModuleError {
    pub fn new(msg: impl Into<String>) -> ModuleError {
        ModuleError(msg.into())
    }
}

impl From<crate::args::ArgError> for ModuleError {
    fn from(e: crate::args::ArgError) -> Self {
        ModuleError(e.to_string())
    }
}

impl From<std::io::Error> for ModuleError {
    fn from(e: std::io::Error) -> Self {
        ModuleError(e.to_string())
    }
}

/// A kind of module, registered by name in `modules/mod.rs`.
pub trait Module: Sync {
    /// The arguments it accepts (checked statically at load time, then bound at run time).
    fn spec(&self) -> &'static ArgSpec;
    /// Load-time checks beyond the argument types, on the arguments as written (literal values
    /// only: templates are rendered at run time). Runs after `spec()` accepted them.
    fn validate(&self, _args: &TaskArgs, _ctx: &LoadContext) -> Result<(), LoadError> {
        Ok(())
    }
    /// What the task will ask of the host, from its arguments as written, so that the engine
    /// reads the state of every package and unit of a playbook with one query.
    fn host_queries(&self, _args: &IndexMap<String, Value>, _queries: &mut HostQueries) {}
    /// Builds the resource the task describes from its rendered, typed arguments.
    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError>;
    /// For a module whose argument names are free (`set_fact`'s variables): the errors in its
    /// arguments as written, checked instead of by `spec()`. `None` (the default): `spec()`
    /// checks them, then `validate`.
    fn check_free_args(&self, _args: &TaskArgs, _ctx: &LoadContext) -> Option<Vec<LoadError>> {
        None
    }
    /// For a module whose argument names are free: its resource, from the rendered arguments
    /// as they are. `None` (the default): they are bound to `spec()` and `prepare` builds it.
    fn prepare_free(&self, _rendered: &IndexMap<String, Value>) -> Option<Box<dyn Resource>> {
        None
    }
}

/// A task's arguments as written in the YAML, for [`Module::validate`].
pub struct TaskArgs<'a> {
    pub pairs: &'a [(String, Node)],
}

impl TaskArgs<'_> {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A literal text value (not a template), with its node for the line.
    pub fn literal_str(&self, key: &str) -> Option<(&str, &Node)> {
        let node = self.get(key)?;
        let text = node.as_str()?;
        (!Templar::is_template(text)).then_some((text, node))
    }

    /// True when the argument is given and reads as Ansible's true.
    pub fn is_true(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|n| crate::args::to_bool(&n.to_value()).unwrap_or(false))
    }
}

/// What [`Module::validate`] may look at besides the arguments.
pub struct LoadContext<'a> {
    pub source: &'a dyn Source,
    pub templar: &'a Templar,
    /// The file the task is written in.
    pub file: &'a Arc<str>,
    /// Where the task starts.
    pub task: &'a Location,
    /// Directories searched for a relative `src`, most specific first (as [`ModuleContext`]).
    pub search: &'a [RepoPath],
}

impl LoadContext<'_> {
    /// Where an argument's value is.
    pub fn at(&self, node: &Node) -> Location {
        Location::new(self.file.clone(), node.line)
    }
}

/// Something on the host a task owns, so the daemon can watch it for drift.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Owned {
    Path(PathBuf),
    /// A package by name (watched through the package database).
    Package(String),
    /// A systemd unit by name.
    Unit(String),
}

/// A task's desired state, ready to be checked and applied.
pub trait Resource {
    /// Reads the host and says what differs, as the plan `apply` will carry out. Never changes
    /// anything.
    fn check(&self) -> Result<Check, ModuleError>;
    /// Makes exactly the changes of `check` (the one `check` returned, with everything it read
    /// in its changes and outcome) and reports the result.
    fn apply(&self, check: Check) -> Result<Outcome, ModuleError>;
    /// False for modules that cannot predict their effect (commands): in check mode the task is
    /// skipped when it has changes to make.
    fn supports_check_mode(&self) -> bool {
        true
    }
    /// What on the host this resource manages.
    fn owns(&self) -> Vec<Owned> {
        Vec::new()
    }
}

/// The result of a check, the plan `apply` receives: the changes to make (each carrying what
/// applying it needs), and what to report even if nothing changes.
#[derive(Debug, Default)]
pub struct Check {
    pub changes: Vec<Change>,
    pub outcome: Outcome,
    /// The path the task manages as the check resolved it (a file inside a directory given
    /// as `path`), when the result reports its facts after the change.
    pub path: Option<PathBuf>,
}

impl Check {
    /// A check that found `changes` and reports `outcome`.
    pub fn new(changes: Vec<Change>, outcome: Outcome) -> Check {
        Check {
            changes,
            outcome,
            path: None,
        }
    }
}

/// What a task reports: fields of the registered result (`rc`, `stdout`, `msg`, `ansible_facts`,
/// ...) and a failure message if it failed.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub data: IndexMap<String, Value>,
    pub failed: Option<String>,
    /// A module's own verdict on `changed` when it differs from "there were changes"
    /// (a failing command counts as changed).
    pub changed: Option<bool>,
}

impl Outcome {
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Outcome {
        self.data.insert(key.to_string(), value.into());
        self
    }
}

/// File attributes a change sets; `None` leaves the attribute as the system makes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// One typed change to the host. Modules return these from `check`; `apply` performs them.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Write a whole regular file atomically (temporary file in the same directory with the
    /// final attributes from the first byte, fsync, rename). `before` is the old content for
    /// diffs. `backup` keeps the old file as `path.<pid>.<time>~`. `validate` is a command with
    /// `%s` run on the temporary file first.
    WriteFile {
        path: PathBuf,
        content: Arc<[u8]>,
        before: Option<Arc<[u8]>>,
        attrs: Attrs,
        backup: bool,
        validate: Option<String>,
    },
    CreateDir {
        path: PathBuf,
        attrs: Attrs,
    },
    /// Create (or replace, if `replace`) a symbolic link.
    Symlink {
        path: PathBuf,
        target: String,
        replace: bool,
    },
    HardLink {
        path: PathBuf,
        target: PathBuf,
        replace: bool,
    },
    /// Remove a file, link or (recursively) a directory.
    Remove {
        path: PathBuf,
    },
    SetMode {
        path: PathBuf,
        from: u32,
        to: u32,
    },
    SetOwner {
        path: PathBuf,
        from: (u32, u32),
        to: (u32, u32),
    },
    /// Create the file if missing and/or update its times.
    Touch {
        path: PathBuf,
        create: bool,
        attrs: Attrs,
    },
    /// Run a command (`command`/`shell`).
    Run {
        command: String,
    },
    /// Run a system tool, without a shell, for a change that is neither a file nor a package,
    /// unit or account (`sysctl -w`, `mount`, `crontab`, `locale-gen`): `summary` says what it
    /// does, for humans. [`Change::exec`] runs it; a non-zero exit fails the task.
    Exec {
        argv: Vec<String>,
        summary: String,
    },
    /// One package-manager transaction on a set of packages (`apt`, `dnf`).
    Package {
        op: PackageOp,
        /// Package specs as given to the manager (`nginx`, `nginx=1.22-1`, a .deb path).
        names: Vec<String>,
    },
    /// One operation on a systemd unit (`service`, `systemd`).
    Unit {
        name: String,
        op: UnitOp,
    },
    /// Create, modify or remove a user or group account (`user`, `group`). `fields` names
    /// what is set or differs (`uid 1001 -> 1002`, `shell /bin/bash`), for humans; `steps`
    /// are the commands that make the change.
    Account {
        kind: AccountKind,
        name: String,
        op: AccountOp,
        fields: Vec<String>,
        steps: Vec<AccountStep>,
    },
}

/// What a package transaction does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageOp {
    UpdateCache,
    Install,
    Upgrade,
    Remove,
    Purge,
    Autoremove,
}

impl PackageOp {
    pub fn verb(self) -> &'static str {
        match self {
            PackageOp::UpdateCache => "update package cache",
            PackageOp::Install => "install",
            PackageOp::Upgrade => "upgrade",
            PackageOp::Remove => "remove",
            PackageOp::Purge => "purge",
            PackageOp::Autoremove => "autoremove",
        }
    }
}

/// What is done to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitOp {
    DaemonReload,
    DaemonReexec,
    Start,
    Stop,
    Restart,
    Reload,
    Enable,
    Disable,
    Mask,
    Unmask,
}

impl UnitOp {
    /// The `systemctl` verb.
    pub fn verb(self) -> &'static str {
        match self {
            UnitOp::DaemonReload => "daemon-reload",
            UnitOp::DaemonReexec => "daemon-reexec",
            UnitOp::Start => "start",
            UnitOp::Stop => "stop",
            UnitOp::Restart => "restart",
            UnitOp::Reload => "reload",
            UnitOp::Enable => "enable",
            UnitOp::Disable => "disable",
            UnitOp::Mask => "mask",
            UnitOp::Unmask => "unmask",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    User,
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountOp {
    Create,
    Modify,
    Remove,
}

impl Change {
    /// A whole file written with `mode` (owner as the system makes it), without backup or
    /// validation; `before` is what it held, if it existed.
    pub fn write_with_mode(
        path: PathBuf,
        content: Vec<u8>,
        before: Option<Vec<u8>>,
        mode: u32,
    ) -> Change {
        Change::WriteFile {
            path,
            content: Arc::from(content),
            before: before.map(Arc::from),
            attrs: Attrs {
                mode: Some(mode),
                uid: None,
                gid: None,
            },
            backup: false,
            validate: None,
        }
    }

    /// Runs a [`Change::Exec`] (stdin closed, output captured, a non-zero exit is the error
    /// with the tool's stderr). Other changes are not this function's: an error.
    pub fn exec(&self) -> Result<crate::process::Ran, ModuleError> {
        let Change::Exec { argv, .. } = self else {
            return Err(ModuleError::new(format!(
                "not a command: {}",
                self.describe()
            )));
        };
        let Some((program, args)) = argv.split_first() else {
            return Err(ModuleError::new("empty command"));
        };
        let ran = crate::process::run(std::process::Command::new(program).args(args))?;
        if ran.ok() {
            Ok(ran)
        } else {
            Err(ModuleError::new(ran.failure()))
        }
    }

    /// One line for humans (`--diff`, status, logs).
    pub fn describe(&self) -> String {
        match self {
            Change::WriteFile { path, before, .. } => match before {
                Some(_) => format!("update {}", path.display()),
                None => format!("write {}", path.display()),
            },
            Change::CreateDir { path, .. } => format!("create directory {}", path.display()),
            Change::Symlink { path, target, .. } => {
                format!("link {} -> {}", path.display(), target)
            }
            Change::HardLink { path, target, .. } => {
                format!("hard link {} => {}", path.display(), target.display())
            }
            Change::Remove { path } => format!("remove {}", path.display()),
            Change::SetMode { path, from, to } => {
                format!("mode of {} {:04o} -> {:04o}", path.display(), from, to)
            }
            Change::SetOwner { path, from, to } => format!(
                "owner of {} {}:{} -> {}:{}",
                path.display(),
                from.0,
                from.1,
                to.0,
                to.1
            ),
            Change::Touch { path, create, .. } => {
                if *create {
                    format!("create {}", path.display())
                } else {
                    format!("touch {}", path.display())
                }
            }
            Change::Run { command } => format!("run {command}"),
            Change::Exec { summary, .. } => summary.clone(),
            Change::Package { op, names } => {
                if names.is_empty() {
                    op.verb().to_string()
                } else {
                    format!("{} {}", op.verb(), names.join(" "))
                }
            }
            Change::Unit { name, op } => match op {
                UnitOp::DaemonReload | UnitOp::DaemonReexec => format!("systemctl {}", op.verb()),
                _ => format!("{} {name}", op.verb()),
            },
            Change::Account {
                kind,
                name,
                op,
                fields,
                ..
            } => {
                let kind = match kind {
                    AccountKind::User => "user",
                    AccountKind::Group => "group",
                };
                let verb = match op {
                    AccountOp::Create => "create",
                    AccountOp::Modify => "modify",
                    AccountOp::Remove => "remove",
                };
                if fields.is_empty() {
                    format!("{verb} {kind} {name}")
                } else {
                    format!("{verb} {kind} {name} ({})", fields.join(", "))
                }
            }
        }
    }

    /// Before/after text for `--diff`, when the change is to a file's content.
    pub fn diff(&self) -> Option<(PathBuf, String, String)> {
        match self {
            Change::WriteFile {
                path,
                content,
                before,
                ..
            } => {
                let after = String::from_utf8_lossy(content).into_owned();
                let before = before
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Some((path.clone(), before, after))
            }
            _ => None,
        }
    }
}
