//! The `cron` module (ansible.builtin): a job or an environment variable in a user's crontab
//! (read with `crontab -l`, installed with `crontab FILE`, `-u USER` for another user, as
//! ansible-core does) or in a `cron_file` (a file under `/etc/cron.d`, or an absolute path,
//! written directly), with ansible-core 2.19's `CronTab` logic (see [`crontab`]).
//!
//! A job or variable value with a line break is refused (Ansible only warns and writes a
//! crontab that reads back differently). A symlink at `cron_file` is refused, as for the
//! other file editors.

mod crontab;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::crontab::{splitlines, CronTab, JobSpec, MARKER};
use super::lineinfile::read_edited;
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::fsops;
use crate::resource::{
    Attrs, Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};

pub struct CronModule;

static SPEC: ArgSpec = ArgSpec {
    module: "cron",
    args: &[
        ArgDef::new("name", ArgType::Str).required(),
        ArgDef::new("user", ArgType::Str),
        ArgDef::new("job", ArgType::Str).aliases(&["value"]),
        ArgDef::new("cron_file", ArgType::Path),
        ArgDef::new("state", ArgType::Str).choices(&["present", "absent"]),
        ArgDef::new("backup", ArgType::Bool),
        ArgDef::new("minute", ArgType::Str),
        ArgDef::new("hour", ArgType::Str),
        ArgDef::new("day", ArgType::Str).aliases(&["dom"]),
        ArgDef::new("month", ArgType::Str),
        ArgDef::new("weekday", ArgType::Str).aliases(&["dow"]),
        ArgDef::new("special_time", ArgType::Str).choices(&[
            "reboot", "yearly", "annually", "monthly", "weekly", "daily", "hourly",
        ]),
        ArgDef::new("disabled", ArgType::Bool),
        ArgDef::new("env", ArgType::Bool),
        ArgDef::new("insertafter", ArgType::Str),
        ArgDef::new("insertbefore", ArgType::Str),
    ],
    free_form: false,
    mutually_exclusive: &[&["insertafter", "insertbefore"]],
    required_one_of: &[],
};

/// Where the crontab lives.
#[derive(Debug, Clone)]
enum Target {
    /// A file written directly (`cron_file`).
    File(PathBuf),
    /// A user's crontab, through the `crontab` tool; `-u USER` when it is not the agent's own.
    User { user: Option<String>, other: bool },
}

/// What the task does to the crontab.
#[derive(Debug, Clone)]
enum Entry {
    /// `env: true`: `NAME="value"`.
    Env {
        decl: String,
        insertafter: Option<String>,
        insertbefore: Option<String>,
    },
    /// A job line under its `#Ansible: NAME` marker.
    Job(String),
}

fn err(msg: impl Into<String>) -> ModuleError {
    ModuleError::new(msg)
}

impl Module for CronModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let name = args.str("name").unwrap_or_default();
        let user = args.str("user");
        let job = args.str("job");
        let present = args.str("state").as_deref() != Some("absent");
        let env = args.bool_or("env", false);
        let field = |k: &str| args.str(k).unwrap_or_else(|| "*".into());
        let (minute, hour, day, month, weekday) = (
            field("minute"),
            field("hour"),
            field("day"),
            field("month"),
            field("weekday"),
        );
        let special = args.str("special_time");
        let insertafter = args.str("insertafter");
        let insertbefore = args.str("insertbefore");
        let cron_file = args.str("cron_file");
        if cron_file.as_deref() == Some("/etc/crontab") {
            return Err(err(
                "Will not manage /etc/crontab via cron_file, see documentation.",
            ));
        }
        let target = match &cron_file {
            Some(f) if Path::new(f).is_absolute() => Target::File(PathBuf::from(f)),
            Some(f) => Target::File(Path::new("/etc/cron.d").join(f)),
            None => {
                let me = ctx.host.ids().user_name(nix::unistd::getuid().as_raw());
                let other = user.as_ref().is_some_and(|u| *u != me);
                Target::User {
                    user: user.clone(),
                    other,
                }
            }
        };
        if special.is_some()
            && [&minute, &hour, &day, &month, &weekday]
                .iter()
                .any(|f| *f != "*")
        {
            return Err(err(
                "You cannot combine special_time with any of the time or day/date parameters.",
            ));
        }
        if present {
            if cron_file.is_some() && user.is_none() {
                return Err(err(
                    "To use cron_file=... parameter you must specify user=... as well",
                ));
            }
            if job.is_none() {
                return Err(err(
                    "You must specify 'job' to install a new cron job or variable",
                ));
            }
            if (insertafter.is_some() || insertbefore.is_some()) && !env {
                return Err(err(
                    "Insertafter and insertbefore parameters are valid only with env=yes",
                ));
            }
        }
        let job_text = job.clone().unwrap_or_else(|| "None".into());
        if present && job_text.trim_matches(['\r', '\n']).contains(['\r', '\n']) {
            return Err(err(format!(
                "cron {name}: the {} contains a line break, which a crontab cannot hold \
                 (Ansible warns and writes a crontab that reads back differently): refused",
                if env { "variable's value" } else { "job" }
            )));
        }
        let entry = if env {
            if name.contains(' ') {
                return Err(err("Invalid name for environment variable"));
            }
            Entry::Env {
                decl: format!("{name}=\"{job_text}\""),
                insertafter,
                insertbefore,
            }
        } else {
            let spec = JobSpec {
                minute: &minute,
                hour: &hour,
                day: &day,
                month: &month,
                weekday: &weekday,
                special: special.as_deref(),
                disabled: args.bool_or("disabled", false),
                file_user: cron_file.as_ref().and(user.as_deref()),
            };
            Entry::Job(spec.line(&job_text))
        };
        let env_re = if env {
            Some(CronTab::env_pattern(&name)?)
        } else {
            None
        };
        Ok(Box::new(Cron {
            name,
            target,
            entry,
            env_re,
            present,
            backup: args.bool_or("backup", false),
            cron_file,
        }))
    }
}

/// A `cron_file` as read: its stat and bytes.
type FileNow = (fsops::Stat, Vec<u8>);

struct Cron {
    name: String,
    target: Target,
    entry: Entry,
    env_re: Option<regex::Regex>,
    present: bool,
    backup: bool,
    cron_file: Option<String>,
}

/// Lines `crontab -l` prints before the table on some systems, which Ansible drops (its
/// three `re.match` patterns).
fn is_crontab_header(l: &str) -> bool {
    static HEADERS: std::sync::LazyLock<[regex::Regex; 3]> = std::sync::LazyLock::new(|| {
        [
            r"^# DO NOT EDIT THIS FILE - edit the master and reinstall.",
            r"^# \(/tmp/.*installed on.*\)",
            r"^# \(.*version.*\)",
        ]
        .map(|p| regex::Regex::new(p).expect("valid header pattern"))
    });
    HEADERS.iter().any(|re| re.is_match(l))
}

fn crontab_cmd(user: &Option<String>, other: bool) -> Vec<String> {
    let mut argv = vec!["crontab".to_string()];
    if let (Some(u), true) = (user, other) {
        argv.push("-u".into());
        argv.push(u.clone());
    }
    argv
}

impl Cron {
    /// The crontab as it is: its lines, the text Ansible compares and diffs (`n_existing`),
    /// and the file's bytes and stat for a `cron_file`.
    fn read(&self) -> Result<(CronTab, String, Option<FileNow>), ModuleError> {
        match &self.target {
            Target::File(path) => {
                let current = read_edited(path)?;
                let text = match &current {
                    Some((_, b)) => String::from_utf8(b.clone())
                        .map_err(|e| err(format!("{} is not valid UTF-8: {e}", path.display())))?,
                    None => String::new(),
                };
                let tab = CronTab {
                    lines: splitlines(&text),
                };
                Ok((tab, text, current))
            }
            Target::User { user, other } => {
                let mut argv = crontab_cmd(user, *other);
                argv.push("-l".into());
                let ran =
                    crate::process::run(std::process::Command::new(&argv[0]).args(&argv[1..]))
                        .map_err(|e| err(format!("cannot run crontab: {e}")))?;
                if ran.rc != 0 && ran.rc != 1 {
                    return Err(err(format!("Unable to read crontab: {}", ran.failure())));
                }
                let mut existing = ran.stdout.clone();
                let mut lines = Vec::new();
                for (count, l) in splitlines(&ran.stdout).into_iter().enumerate() {
                    if count > 2 || !is_crontab_header(&l) {
                        lines.push(l);
                    } else {
                        // Ansible removes the header's first occurrence and its line break.
                        if let Some(at) = existing.find(&l) {
                            let mut end = at + l.len();
                            if existing[end..].starts_with(['\r', '\n']) {
                                end += 1;
                            }
                            existing.replace_range(at..end, "");
                        }
                    }
                }
                Ok((CronTab { lines }, existing, None))
            }
        }
    }

    /// The edit: `changed` and the failure message, if the edit cannot be made.
    fn edit(&self, tab: &mut CronTab) -> Result<bool, String> {
        match &self.entry {
            Entry::Env {
                decl,
                insertafter,
                insertbefore,
            } => {
                let re = self
                    .env_re
                    .as_ref()
                    .ok_or("internal error: no env pattern")?;
                let old = tab.find_env(re);
                if self.present {
                    match old {
                        None => {
                            tab.add_env(decl, insertafter.as_deref(), insertbefore.as_deref())?;
                            Ok(true)
                        }
                        Some((_, line)) if line != *decl => {
                            tab.update_env(re, Some(decl));
                            Ok(true)
                        }
                        Some(_) => Ok(false),
                    }
                } else if old.is_some() {
                    tab.update_env(re, None);
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            Entry::Job(job) => {
                if self.present {
                    match tab.find_job(&self.name, Some(job)) {
                        None => {
                            tab.add_job(&self.name, job);
                            Ok(true)
                        }
                        Some(found) => {
                            let update = found.job_line != *job || found.adopted;
                            if update {
                                tab.update_job(&self.name, Some(job));
                            }
                            Ok(update)
                        }
                    }
                } else if tab.find_job(&self.name, None).is_some() {
                    tab.update_job(&self.name, None);
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
        }
    }

    /// A fresh name under the temporary directory, as `tempfile.mkstemp(prefix='crontab')`.
    fn temp_path() -> PathBuf {
        std::env::temp_dir().join(format!("crontab{:016x}", fastrand::u64(..)))
    }
}

impl Resource for Cron {
    fn check(&self) -> Result<Check, ModuleError> {
        let (mut tab, existing, current) = self.read()?;
        let old_render = tab.render();
        let mut changed = match self.edit(&mut tab) {
            Ok(c) => c,
            Err(msg) => {
                let mut out = Outcome::default().with("msg", msg.clone());
                out.failed = Some(msg);
                return Ok(Check::new(Vec::new(), out));
            }
        };
        let mut changes = Vec::new();
        if self.backup && changed {
            changes.push(Change::write_with_mode(
                Self::temp_path(),
                old_render.into_bytes(),
                None,
                0o600,
            ));
        }
        // A cron_file left without jobs is removed (not a variable's removal).
        if let (Target::File(path), Entry::Job(_), false, true) =
            (&self.target, &self.entry, self.present, changed)
        {
            if tab.is_empty() {
                let mut out = Outcome::default()
                    .with("cron_file", self.cron_file.clone().unwrap_or_default())
                    .with("state", "absent");
                if current.is_some() {
                    changes.push(Change::Remove { path: path.clone() });
                } else {
                    out.changed = Some(false);
                }
                return Ok(Check::new(changes, out));
            }
        }
        if !changed && !existing.is_empty() && !existing.ends_with(['\r', '\n']) {
            changed = true;
        }
        let mut out = Outcome::default()
            .with("jobs", tab.job_names())
            .with("envs", tab.env_names());
        if let Some(f) = &self.cron_file {
            out = out.with("cron_file", f.clone());
        }
        if !changed {
            return Ok(Check::new(Vec::new(), out));
        }
        let content = tab.render().into_bytes();
        match &self.target {
            Target::File(path) => changes.push(Change::WriteFile {
                path: path.clone(),
                content: Arc::from(content),
                before: current.as_ref().map(|(_, b)| Arc::from(b.as_slice())),
                // ansible-core writes with umask 022.
                attrs: Attrs {
                    mode: current.is_none().then_some(0o644),
                    ..Attrs::default()
                },
                backup: false,
                validate: None,
            }),
            Target::User { user, other } => {
                let tmp = Self::temp_path();
                // `before` is the crontab as it was, for --diff.
                changes.push(Change::write_with_mode(
                    tmp.clone(),
                    content,
                    Some(existing.into_bytes()),
                    0o644,
                ));
                let mut argv = crontab_cmd(user, *other);
                argv.push(tmp.display().to_string());
                let whose = match (user, other) {
                    (Some(u), true) => format!("user {u}"),
                    _ => "the agent's user".into(),
                };
                changes.push(Change::Exec {
                    argv,
                    summary: format!("install the crontab of {whose} ({MARKER}{})", self.name),
                });
                changes.push(Change::Remove { path: tmp });
            }
        }
        Ok(Check::new(changes, out))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let mut out = check.outcome;
        let mut temp: Option<PathBuf> = None;
        let mut result = Ok(());
        for (i, change) in check.changes.iter().enumerate() {
            if i == 0 && self.backup {
                if let Change::WriteFile { path, .. } = change {
                    out = out.with("backup_file", path.display().to_string());
                }
            }
            let step = match change {
                Change::Exec { .. } => change.exec().map(|_| ()),
                Change::WriteFile { path, .. } if matches!(self.target, Target::User { .. }) => {
                    temp = Some(path.clone());
                    fsops::apply(change).map(|_| ())
                }
                _ => fsops::apply(change).map(|_| ()),
            };
            if let Err(e) = step {
                result = Err(e);
                break;
            }
        }
        if let (Err(_), Some(t)) = (&result, &temp) {
            // The crontab was not installed: do not leave its copy behind.
            let _ = std::fs::remove_file(t);
        }
        result.map(|()| out)
    }

    fn owns(&self) -> Vec<Owned> {
        match &self.target {
            Target::File(p) => vec![Owned::Path(p.clone())],
            Target::User { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
