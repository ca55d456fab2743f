//! The `mount` module (`ansible.posix.mount`): an fstab entry and the mount state of a path,
//! as the collection's `mount.py` handles them on Linux.
//!
//! - `present` / `absent_from_fstab` only edit the fstab (`fstab:` chooses the file, so a
//!   scratch root works); `absent` also unmounts and removes the mount point directory when the
//!   line was there; `unmounted` runs `umount`; `remounted` runs `mount -o remount[,OPTS]`
//!   (falling back to `umount` + `mount`); `mounted` creates the mount point, sets the line,
//!   then mounts (or remounts when the line changed and the path is mounted).
//! - As mount.py: when `mounted` fails to mount, the fstab is written back as it was and the
//!   directories it created are removed, then the task fails (`Error mounting PATH: ...`).
//! - Mount state is read from `/proc/self/mountinfo` and `ismount` (device/inode of the path
//!   and its parent), with mount.py's rules; the tools run are `mount`/`umount` (`-T FSTAB`
//!   when the fstab is not `/etc/fstab`).
//! - Refused when reached: `state: ephemeral`, `opts_no_log: true`.
//! - Unlike mount.py, check mode never creates a missing fstab (mount.py creates it empty
//!   even then), and `absent` of a line not there leaves a missing fstab missing.

mod fstab;
mod mountinfo;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::error::LoadError;
use crate::fsops;
use crate::resource::{
    Attrs, Change, Check, LoadContext, Module, ModuleContext, ModuleError, Outcome, Owned,
    Resource, TaskArgs,
};
use fstab::Entry;
use mountinfo::{ismount, Mounts};

pub struct MountModule;

static SPEC: ArgSpec = ArgSpec {
    module: "mount",
    args: &[
        ArgDef::new("path", ArgType::Path)
            .aliases(&["name"])
            .required(),
        ArgDef::new("src", ArgType::Path),
        ArgDef::new("fstype", ArgType::Str),
        ArgDef::new("opts", ArgType::Str),
        ArgDef::new("opts_no_log", ArgType::Bool),
        ArgDef::new("dump", ArgType::Str),
        ArgDef::new("passno", ArgType::Str),
        ArgDef::new("fstab", ArgType::Str),
        ArgDef::new("backup", ArgType::Bool),
        ArgDef::new("boot", ArgType::Bool),
        ArgDef::new("state", ArgType::Str)
            .choices(&[
                "absent",
                "absent_from_fstab",
                "mounted",
                "present",
                "unmounted",
                "remounted",
                "ephemeral",
            ])
            .required(),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

const DEFAULT_FSTAB: &str = "/etc/fstab";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Absent,
    AbsentFromFstab,
    Mounted,
    Present,
    Unmounted,
    Remounted,
}

impl Module for MountModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn validate(&self, args: &TaskArgs, ctx: &LoadContext) -> Result<(), LoadError> {
        // What the agent does not implement (`ephemeral`, `opts_no_log`) fails when reached
        // (prepare), so that a role's branch for other hosts still loads.
        if let Some((state @ ("mounted" | "present"), _)) = args.literal_str("state") {
            let missing: Vec<&str> = ["src", "fstype"]
                .into_iter()
                .filter(|k| args.get(k).is_none())
                .collect();
            if !missing.is_empty() {
                return Err(LoadError::at(
                    ctx.task.clone(),
                    format!(
                        "state is {state} but all of the following are missing: {}",
                        missing.join(", ")
                    ),
                )
                .with_key("state"));
            }
        }
        Ok(())
    }

    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        Ok(Box::new(MountResource::new(args)?))
    }
}

impl MountResource {
    fn new(args: &Args) -> Result<MountResource, ModuleError> {
        let state_name = args.str("state").unwrap_or_default();
        let state = match state_name.as_str() {
            "absent" => State::Absent,
            "absent_from_fstab" => State::AbsentFromFstab,
            "mounted" => State::Mounted,
            "present" => State::Present,
            "unmounted" => State::Unmounted,
            "remounted" => State::Remounted,
            other => {
                return Err(ModuleError::new(format!(
                    "mount: state {other} is not supported by the agent (supported: mounted, \
                     present, unmounted, absent, absent_from_fstab, remounted)"
                )))
            }
        };
        if args.bool_or("opts_no_log", false) {
            return Err(ModuleError::new(
                "mount: opts_no_log is not supported by the agent (use the task's no_log)",
            ));
        }
        if matches!(state, State::Mounted | State::Present) {
            let missing: Vec<&str> = ["src", "fstype"]
                .into_iter()
                .filter(|k| !args.has(k))
                .collect();
            if !missing.is_empty() {
                return Err(ModuleError::new(format!(
                    "state is {state_name} but all of the following are missing: {}",
                    missing.join(", ")
                )));
            }
        }
        let boot = args.bool_or("boot", true);
        let mut opts = args.str("opts").unwrap_or_else(|| "defaults".into());
        if !boot {
            opts.push_str(",noauto");
        }
        Ok(MountResource {
            state,
            name: args.str("path").unwrap_or_default(),
            src: args.str("src"),
            fstype: args.str("fstype"),
            opts,
            dump: args.str("dump").unwrap_or_else(|| "0".into()),
            passno: args.str("passno").unwrap_or_else(|| "0".into()),
            fstab: args.str("fstab").unwrap_or_else(|| DEFAULT_FSTAB.into()),
            backup: args.bool_or("backup", false),
            boot,
            tools: Tools::system(),
        })
    }
}

/// The programs run (replaced in the unit tests: they must never mount on the test machine).
#[derive(Debug, Clone)]
struct Tools {
    mount: String,
    umount: String,
}

impl Tools {
    fn system() -> Tools {
        Tools {
            mount: "mount".into(),
            umount: "umount".into(),
        }
    }
}

struct MountResource {
    state: State,
    name: String,
    src: Option<String>,
    fstype: Option<String>,
    opts: String,
    dump: String,
    passno: String,
    fstab: String,
    backup: bool,
    boot: bool,
    tools: Tools,
}

/// A tool run of the plan, told apart in `apply` by its summary's first word.
const MOUNT: &str = "mount";
const UMOUNT: &str = "unmount";
const REMOUNT: &str = "remount";

impl MountResource {
    fn entry(&self) -> Entry {
        Entry {
            src: self.src.clone().unwrap_or_default(),
            name: self.name.clone(),
            fstype: self.fstype.clone().unwrap_or_default(),
            opts: self.opts.clone(),
            dump: self.dump.clone(),
            passno: self.passno.clone(),
        }
    }

    /// `-T FSTAB` for another file than `/etc/fstab`.
    fn fstab_args(&self) -> Vec<String> {
        if self.fstab != DEFAULT_FSTAB {
            vec!["-T".into(), self.fstab.clone()]
        } else {
            Vec::new()
        }
    }

    fn mount_change(&self) -> Change {
        let mut argv = vec![self.tools.mount.clone()];
        argv.extend(self.fstab_args());
        argv.push(self.name.clone());
        Change::Exec {
            argv,
            summary: format!("{MOUNT} {}", self.name),
        }
    }

    fn umount_change(&self) -> Change {
        Change::Exec {
            argv: vec![self.tools.umount.clone(), self.name.clone()],
            summary: format!("{UMOUNT} {}", self.name),
        }
    }

    /// The option of `mount -o`: `remount`, with the task's options for `remounted`.
    fn remount_opt(&self) -> String {
        if self.state == State::Remounted && self.opts != "defaults" {
            format!("remount,{}", self.opts)
        } else {
            "remount".into()
        }
    }

    fn remount_change(&self) -> Change {
        let mut argv = vec![self.tools.mount.clone(), "-o".into(), self.remount_opt()];
        argv.extend(self.fstab_args());
        argv.push(self.name.clone());
        Change::Exec {
            argv,
            summary: format!("{REMOUNT} {}", self.name),
        }
    }

    fn is_mounted(&self, mounts: &Mounts, src: Option<&str>) -> bool {
        ismount(Path::new(&self.name)) || mounts.has(&self.name, src)
    }

    /// The fstab's text; a missing file reads as empty (mount.py creates it empty).
    fn read_fstab(&self) -> Result<Option<String>, ModuleError> {
        match std::fs::read(&self.fstab) {
            Ok(b) => String::from_utf8(b).map(Some).map_err(|_| {
                ModuleError::new(format!(
                    "Failed to open {} due to invalid UTF-8",
                    self.fstab
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ModuleError::new(format!(
                "Failed to open {} due to {e}",
                self.fstab
            ))),
        }
    }

    /// The changes writing `text` over the fstab (creating its directory if needed).
    fn write_fstab(&self, before: Option<&str>, text: String) -> Vec<Change> {
        let path = PathBuf::from(&self.fstab);
        let mut out = Vec::new();
        if before.is_none() {
            if let Some(dir) = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty() && !d.exists())
            {
                out.push(Change::CreateDir {
                    path: dir.to_path_buf(),
                    attrs: Attrs::default(),
                });
            }
        }
        out.push(Change::WriteFile {
            path,
            content: Arc::from(text.into_bytes()),
            before: before.map(|b| Arc::from(b.as_bytes().to_vec())),
            attrs: Attrs::default(),
            backup: self.backup && before.is_some(),
            validate: None,
        });
        out
    }

    /// The registered result: mount.py's `args`.
    fn outcome(&self) -> Outcome {
        let mut out = Outcome::default()
            .with("name", self.name.clone())
            .with("opts", self.opts.clone())
            .with("dump", self.dump.clone())
            .with("passno", self.passno.clone())
            .with("fstab", self.fstab.clone())
            .with("boot", if self.boot { "yes" } else { "no" })
            .with("backup_file", "");
        if let Some(s) = &self.src {
            out = out.with("src", s.clone());
        }
        if let Some(t) = &self.fstype {
            out = out.with("fstype", t.clone());
        }
        out
    }
}

impl Resource for MountResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let current = self.read_fstab()?;
        let text = current.as_deref().unwrap_or("");
        let mounts = Mounts::read().map_err(ModuleError::new)?;
        let mut changes = Vec::new();
        let outcome = self.outcome();
        match self.state {
            State::AbsentFromFstab | State::Absent => {
                if let Some(new) = fstab::unset(text, &self.name, self.src.as_deref()) {
                    changes.extend(self.write_fstab(current.as_deref(), new));
                    if self.state == State::Absent {
                        if self.is_mounted(&mounts, None) {
                            changes.push(self.umount_change());
                        }
                        // The mount point directory goes too (rmdir: only when empty).
                        if Path::new(&self.name).exists() {
                            changes.push(Change::Remove {
                                path: PathBuf::from(&self.name),
                            });
                        }
                    }
                }
            }
            State::Present => {
                let set = fstab::set(text, &self.entry());
                if set.changed {
                    changes.extend(self.write_fstab(current.as_deref(), set.text));
                }
            }
            State::Unmounted => {
                if self.is_mounted(&mounts, None) {
                    changes.push(self.umount_change());
                }
            }
            State::Remounted => {
                changes.push(self.remount_change());
            }
            State::Mounted => {
                if !Path::new(&self.name).exists() {
                    changes.push(Change::CreateDir {
                        path: PathBuf::from(&self.name),
                        attrs: Attrs::default(),
                    });
                }
                let set = fstab::set(text, &self.entry());
                if set.changed {
                    changes.extend(self.write_fstab(current.as_deref(), set.text));
                }
                if self.is_mounted(&mounts, self.src.as_deref()) {
                    if set.changed {
                        changes.push(self.remount_change());
                    }
                } else {
                    changes.push(self.mount_change());
                }
            }
        }
        Ok(Check::new(changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let mut outcome = check.outcome;
        // What is written back if the mount fails: the old lines, each ending in a newline.
        let old_fstab = check.changes.iter().find_map(|c| match c {
            Change::WriteFile { before, .. } => {
                let mut old =
                    String::from_utf8_lossy(before.as_deref().unwrap_or(b"")).into_owned();
                if !old.is_empty() && !old.ends_with('\n') {
                    old.push('\n');
                }
                Some(old)
            }
            _ => None,
        });
        let mut created: Vec<PathBuf> = Vec::new();
        for change in &check.changes {
            match change {
                Change::CreateDir { path, .. } if path == Path::new(&self.name) => {
                    created = make_dirs(path).map_err(|e| {
                        ModuleError::new(format!("Error making dir {}: {e}", self.name))
                    })?;
                }
                Change::WriteFile { .. } | Change::CreateDir { .. } => {
                    let applied = fsops::apply(change)?;
                    if let Some(b) = applied.backup_file {
                        outcome = outcome.with("backup_file", b.display().to_string());
                    }
                }
                Change::Remove { path } => std::fs::remove_dir(path).map_err(|e| {
                    ModuleError::new(format!("Error rmdir {}: {e}", path.display()))
                })?,
                Change::Exec { summary, .. } => {
                    let result = if summary.starts_with(REMOUNT) {
                        self.remount()
                    } else {
                        run(change)
                    };
                    if let Err(msg) = result {
                        return Err(self.failed(summary, msg, old_fstab.as_deref(), &created));
                    }
                }
                other => {
                    return Err(ModuleError::new(format!(
                        "mount: unexpected change {}",
                        other.describe()
                    )))
                }
            }
        }
        Ok(outcome)
    }

    fn owns(&self) -> Vec<Owned> {
        if matches!(self.state, State::Unmounted | State::Remounted) {
            return Vec::new();
        }
        vec![Owned::Path(PathBuf::from(&self.fstab))]
    }
}

impl MountResource {
    /// mount.py's `remount`: `mount -o remount`, else `umount` then `mount` (refused when the
    /// task asked for options with `remounted`: they would be lost).
    fn remount(&self) -> Result<(), String> {
        if run(&self.remount_change()).is_ok() {
            return Ok(());
        }
        if self.state == State::Remounted && self.opts != "defaults" {
            return Err(REMOUNT_OPTS_FAILED.into());
        }
        run(&self.umount_change())?;
        run(&self.mount_change())
    }

    /// The task's failure for a tool run that failed; a failed mount (state `mounted`) first
    /// puts back the fstab and removes the directories it created, as mount.py does.
    fn failed(
        &self,
        summary: &str,
        msg: String,
        old_fstab: Option<&str>,
        created: &[PathBuf],
    ) -> ModuleError {
        let name = &self.name;
        match self.state {
            State::Mounted => {
                if let Some(old) = old_fstab {
                    let restore = Change::WriteFile {
                        path: PathBuf::from(&self.fstab),
                        content: Arc::from(old.as_bytes().to_vec()),
                        before: None,
                        attrs: Attrs::default(),
                        backup: self.backup,
                        validate: None,
                    };
                    let _ = fsops::apply(&restore);
                }
                for dir in created.iter().rev() {
                    let _ = std::fs::remove_dir(dir);
                }
                ModuleError::new(format!("Error mounting {name}: {msg}"))
            }
            State::Remounted if msg == REMOUNT_OPTS_FAILED => ModuleError::new(msg),
            State::Remounted => ModuleError::new(format!("Error remounting {name}: {msg}")),
            _ if summary.starts_with(UMOUNT) => {
                ModuleError::new(format!("Error unmounting {name}: {msg}"))
            }
            _ => ModuleError::new(format!("Error mounting {name}: {msg}")),
        }
    }
}

const REMOUNT_OPTS_FAILED: &str = "Options were specified with remounted, but the remount command \
failed. Failing in order to prevent an unexpected mount result. Try replacing this command with a \
\"state: unmounted\" followed by a \"state: mounted\" using the full desired mount options instead.";

/// Runs a tool of the plan; its output (stdout then stderr) is the error, as mount.py reports.
fn run(change: &Change) -> Result<(), String> {
    let Change::Exec { argv, .. } = change else {
        return Err(format!("not a command: {}", change.describe()));
    };
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let ran =
        crate::process::run(std::process::Command::new(program).args(args)).map_err(|e| e.0)?;
    if ran.ok() {
        Ok(())
    } else {
        Err(format!("{}{}", ran.stdout, ran.stderr))
    }
}

/// Creates `path` and its missing parents one by one (mode from the umask, as `os.mkdir`),
/// returning those created, outermost first.
fn make_dirs(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    let mut cur = PathBuf::new();
    for comp in path.components() {
        cur.push(comp);
        if !cur.exists() {
            match std::fs::create_dir(&cur) {
                Ok(()) => created.push(cur.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && cur.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests;
