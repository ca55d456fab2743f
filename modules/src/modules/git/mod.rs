//! The `git` module: a working tree cloned and kept at a `version` (branch, tag, commit), as
//! ansible-core's git.py does it.
//!
//! Why the system `git` and not gix (which the agent uses for its own repository): updating an
//! existing working tree means checking out another commit over it — deleting the files the new
//! commit no longer has, refusing or discarding local modifications — and gix 0.90 only checks
//! out into an empty directory (no `checkout`/`reset --hard` of an existing worktree). git.py is
//! itself a sequence of `git` commands whose output it reads; running the same commands gives the
//! same answers, messages and edge cases (shallow clones, annotated tags, detached HEADs), and
//! Ansible's module needs `git` on the host just the same. The check reads (`rev-parse`,
//! `status`, `ls-remote`) and plans the commands; `apply` runs exactly those.

mod plan;
mod query;

use std::path::{Path, PathBuf};

use minijinja::Value;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{
    Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};
use query::{GitTool, RemoteHead};

pub struct GitModule;

static SPEC: ArgSpec = ArgSpec {
    module: "git",
    args: &[
        ArgDef::new("repo", ArgType::Str)
            .aliases(&["name"])
            .required(),
        ArgDef::new("dest", ArgType::Path),
        ArgDef::new("version", ArgType::Str),
        ArgDef::new("remote", ArgType::Str),
        ArgDef::new("refspec", ArgType::Str),
        ArgDef::new("reference", ArgType::Str),
        ArgDef::new("force", ArgType::Bool),
        ArgDef::new("depth", ArgType::Int),
        ArgDef::new("clone", ArgType::Bool),
        ArgDef::new("update", ArgType::Bool),
        ArgDef::new("verify_commit", ArgType::Bool),
        ArgDef::new("gpg_allowlist", ArgType::List).aliases(&["gpg_whitelist"]),
        ArgDef::new("accept_hostkey", ArgType::Bool),
        ArgDef::new("accept_newhostkey", ArgType::Bool),
        ArgDef::new("key_file", ArgType::Path),
        ArgDef::new("ssh_opts", ArgType::Str),
        ArgDef::new("executable", ArgType::Path),
        ArgDef::new("bare", ArgType::Bool),
        ArgDef::new("recursive", ArgType::Bool),
        ArgDef::new("single_branch", ArgType::Bool),
        ArgDef::new("track_submodules", ArgType::Bool),
        ArgDef::new("umask", ArgType::Raw),
        ArgDef::new("archive", ArgType::Path),
        ArgDef::new("archive_prefix", ArgType::Str),
        ArgDef::new("separate_git_dir", ArgType::Path),
    ],
    free_form: false,
    mutually_exclusive: &[
        &["separate_git_dir", "bare"],
        &["accept_hostkey", "accept_newhostkey"],
    ],
    required_one_of: &[],
};

/// The task's arguments, as git.py reads them.
pub(crate) struct GitSpec {
    /// The `git` program (`executable`).
    pub git: String,
    /// The repository URL (a local absolute path gets `file://`, as git.py does for `depth`).
    pub repo: String,
    pub dest: Option<PathBuf>,
    pub version: String,
    pub remote: String,
    pub refspec: Option<String>,
    pub force: bool,
    pub depth: Option<u32>,
    pub clone: bool,
    pub update: bool,
    pub recursive: bool,
    pub single_branch: bool,
}

/// Arguments whose Ansible meaning the agent does not implement: refused when given.
const NOT_IMPLEMENTED: &[(&str, &str)] = &[
    (
        "reference",
        "clones borrowing objects from another repository",
    ),
    ("archive", "archives of the checkout"),
    ("archive_prefix", "archives of the checkout"),
    (
        "separate_git_dir",
        "a git directory apart from the working tree",
    ),
    (
        "umask",
        "a umask for the checkout (set it in the unit running the agent)",
    ),
];

/// Boolean arguments refused when true.
const NOT_IMPLEMENTED_TRUE: &[(&str, &str)] = &[
    ("bare", "bare repositories"),
    ("verify_commit", "GPG verification of the commit"),
    ("track_submodules", "submodules"),
];

fn refuse(arg: &str, what: &str) -> ModuleError {
    ModuleError::new(format!(
        "git: `{arg}` is not supported by the agent ({what} are not implemented)"
    ))
}

impl Module for GitModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        for (arg, what) in NOT_IMPLEMENTED {
            if args.has(arg) {
                return Err(refuse(arg, what));
            }
        }
        for (arg, what) in NOT_IMPLEMENTED_TRUE {
            if args.bool_or(arg, false) {
                return Err(refuse(arg, what));
            }
        }
        if args
            .list_str("gpg_allowlist")
            .is_some_and(|l| !l.is_empty())
        {
            return Err(refuse("gpg_allowlist", "GPG verification of the commit"));
        }
        let repo = args.str("repo").unwrap_or_default();
        // git.py: "Certain features such as depth require a file:/// protocol for path based urls".
        let expanded = expand_user(&repo);
        let repo = if expanded.starts_with('/') {
            format!("file://{expanded}")
        } else {
            repo
        };
        let depth = match args.int("depth") {
            None | Some(0) => None,
            Some(d) => Some(u32::try_from(d).map_err(|_| {
                ModuleError::new(format!("argument `depth`: {d} is not a valid depth"))
            })?),
        };
        let clone = args.bool_or("clone", true);
        let dest = args.str("dest").map(|d| absolute(&expand_user(&d)));
        if dest.is_none() && clone {
            return Err(ModuleError::new(
                "the destination directory must be specified unless clone=no",
            ));
        }
        let spec = GitSpec {
            git: args.str("executable").unwrap_or_else(|| "git".into()),
            repo,
            dest,
            version: args.str("version").unwrap_or_else(|| "HEAD".into()),
            remote: args.str("remote").unwrap_or_else(|| "origin".into()),
            refspec: args.str("refspec"),
            force: args.bool_or("force", false),
            depth,
            clone,
            update: args.bool_or("update", true),
            recursive: args.bool_or("recursive", true),
            single_branch: args.bool_or("single_branch", false),
        };
        let mut env = ctx.env.to_vec();
        env.push(("GIT_SSH_COMMAND".into(), ssh_command(args, ctx.env)));
        let git = GitTool::new(spec.git.clone(), &env);
        Ok(Box::new(GitResource {
            spec,
            git,
            check_mode: ctx.check_mode,
        }))
    }
}

/// git.py's `set_git_ssh_env`: the ssh command git runs, with host key acceptance, batch mode
/// and the key file.
fn ssh_command(args: &Args, task_env: &[(String, String)]) -> String {
    let var = |k: &str| {
        task_env
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(k).ok())
    };
    // main(): accept_hostkey / accept_newhostkey add to ssh_opts unless one is already there.
    let mut param = args.str("ssh_opts");
    for (arg, opt) in [
        ("accept_hostkey", "-o StrictHostKeyChecking=no"),
        ("accept_newhostkey", "-o StrictHostKeyChecking=accept-new"),
    ] {
        if args.bool_or(arg, false) {
            param = Some(match param {
                Some(p)
                    if !p.contains("-o StrictHostKeyChecking=no")
                        && !p.contains("-o StrictHostKeyChecking=accept-new") =>
                {
                    format!("{p} {opt}")
                }
                Some(p) => p,
                None => opt.to_string(),
            });
        }
    }
    let env_opts = var("GIT_SSH_OPTS").unwrap_or_default();
    let mut opts = match param {
        Some(p) => format!("{env_opts} {p}"),
        None => env_opts,
    };
    if args.bool_or("accept_hostkey", false) && !opts.contains("StrictHostKeyChecking=no") {
        opts.push_str(" -o StrictHostKeyChecking=no");
    }
    if !opts.contains("BatchMode=yes") {
        opts.push_str(" -o BatchMode=yes");
    }
    if let Some(key) = args.str("key_file") {
        let key_opt = format!("-i {key}");
        if !opts.contains(&key_opt) {
            opts.push_str(&format!("  {key_opt}"));
        }
        if !opts.contains("IdentitiesOnly=yes") {
            opts.push_str(" -o IdentitiesOnly=yes");
        }
    }
    let base = var("GIT_SSH")
        .or_else(|| var("GIT_SSH_COMMAND"))
        .unwrap_or_else(|| "ssh".into());
    if opts.is_empty() {
        base
    } else {
        format!("{base} {opts}")
    }
}

fn expand_user(path: &str) -> String {
    match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            std::env::var("HOME").unwrap_or_default() + rest
        }
        _ => path.to_string(),
    }
}

fn absolute(path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    }
}

struct GitResource {
    spec: GitSpec,
    git: GitTool,
    check_mode: bool,
}

/// A failed task's outcome with the result fields known so far.
fn failed(outcome: Outcome, msg: String) -> Outcome {
    let mut out = outcome.with("msg", msg.clone());
    out.failed = Some(msg);
    out
}

const SUBMODULES: &str = "submodules are not supported by the agent's git module (the checkout \
                          has a .gitmodules file): set `recursive: no`";

impl GitResource {
    /// No configuration at `dest` (or no `dest` with `clone: no`): clone, or only say what the
    /// remote has.
    fn check_clone(&self) -> Result<Check, ModuleError> {
        let spec = &self.spec;
        let dest = spec.dest.as_deref().filter(|_| spec.clone);
        // The would-be `after` is the remote's (git.py asks only in check mode or without
        // clone; a real clone reports the commit it checked out).
        let after = if self.check_mode || dest.is_none() {
            Value::from(self.git.remote_head(&RemoteHead {
                version: &spec.version,
                remote: &spec.repo,
                cloning: true,
                dest: None,
                repo_path: None,
            })?)
        } else {
            Value::from(())
        };
        let outcome = Outcome::default()
            .with("before", Value::from(()))
            .with("after", after);
        let Some(dest) = dest else {
            // clone: no — git.py reports changed (the repository is missing) and stops.
            let mut outcome = outcome;
            outcome.changed = Some(true);
            return Ok(Check::new(Vec::new(), outcome));
        };
        let (changes, warnings) = plan::clone(spec, &self.git, dest)?;
        let outcome = if warnings.is_empty() {
            outcome
        } else {
            outcome.with("warnings", Value::from(warnings))
        };
        Ok(Check::new(changes, outcome))
    }

    fn check_update(&self, dest: &Path, repo_path: &Path) -> Result<Check, ModuleError> {
        let spec = &self.spec;
        if spec.recursive && dest.join(".gitmodules").exists() {
            return Err(ModuleError::new(SUBMODULES));
        }
        let local_mods = self.git.has_local_mods(dest)?;
        let before = self.git.rev_parse(dest, "HEAD")?;
        let outcome = Outcome::default().with("before", before.clone());
        if local_mods && !spec.force {
            // As git.py: a failure, in check mode too.
            let msg = format!(
                "Local modifications exist in the destination: {} (force=no).",
                dest.display()
            );
            return Ok(Check::new(Vec::new(), failed(outcome, msg)));
        }
        let remote_url = self.git.remote_url(dest, &spec.remote)?;
        let url_changed = remote_url.as_deref().is_some_and(|url| {
            url != spec.repo && query::unfrack(url) != query::unfrack(&spec.repo)
        });
        let remote_head = self.git.remote_head(&RemoteHead {
            version: &spec.version,
            remote: &spec.remote,
            cloning: false,
            dest: Some(dest),
            repo_path: Some(repo_path),
        })?;
        // A commit id (not a branch or tag) is compared as the commit it names here.
        let target = if remote_head == spec.version {
            self.git
                .local_commit(dest, &spec.version)?
                .unwrap_or(remote_head.clone())
        } else {
            remote_head.clone()
        };
        let mut outcome = outcome.with("remote_url_changed", url_changed);
        if local_mods {
            let msg = format!(
                "Local modifications exist in the destination: {}",
                dest.display()
            );
            outcome = outcome.with("msg", msg);
        }
        let needed = before != target || url_changed || local_mods;
        let changes = if needed {
            let state = plan::UpdateState {
                repo_path,
                local_mods,
                url_changed,
            };
            plan::update(spec, &self.git, dest, &state)?
        } else {
            Vec::new()
        };
        if self.check_mode {
            // git.py's check mode: the would-be `after` is the remote's, and local
            // modifications alone are not a change.
            outcome = outcome.with("after", remote_head.clone());
            outcome.changed = Some(before != remote_head || url_changed);
        } else {
            outcome = outcome.with("after", before);
        }
        Ok(Check::new(changes, outcome))
    }
}

impl Resource for GitResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let spec = &self.spec;
        let Some(dest) = spec.dest.as_deref() else {
            return self.check_clone();
        };
        let repo_path = query::repo_path(dest, false).map_err(|e| {
            ModuleError::new(format!(
                "Current repo does not have a valid reference to a separate Git dir or it \
                 refers to the invalid path: {e}"
            ))
        })?;
        if !repo_path.join("config").exists() {
            return self.check_clone();
        }
        if !spec.update {
            // git.py: a repository is there; whether it is the one asked for is not checked.
            let before = self.git.rev_parse(dest, "HEAD")?;
            let outcome = Outcome::default()
                .with("before", before.clone())
                .with("after", before);
            return Ok(Check::new(Vec::new(), outcome));
        }
        self.check_update(dest, &repo_path)
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let mut outcome = check.outcome;
        for change in &check.changes {
            let Change::Exec { argv, .. } = change else {
                continue;
            };
            let ran = self.git.run(argv, None)?;
            if !ran.ok() {
                let msg = ran.failure();
                return Ok(failed(outcome.with("rc", ran.rc), msg));
            }
        }
        let Some(dest) = self.spec.dest.as_deref() else {
            return Ok(outcome);
        };
        let after = self.git.rev_parse(dest, "HEAD")?;
        if self.spec.recursive && dest.join(".gitmodules").exists() {
            return Ok(failed(outcome.with("after", after), SUBMODULES.to_string()));
        }
        let before = outcome.data.get("before").cloned().unwrap_or_default();
        // The check words a `msg` only when it planned to discard local modifications.
        let local_mods = outcome.data.contains_key("msg");
        let url_changed = outcome
            .data
            .get("remote_url_changed")
            .is_some_and(Value::is_true);
        outcome.changed =
            Some(before.as_str() != Some(after.as_str()) || local_mods || url_changed);
        Ok(outcome.with("after", after))
    }

    fn owns(&self) -> Vec<Owned> {
        self.spec.dest.iter().cloned().map(Owned::Path).collect()
    }
}

#[cfg(test)]
mod tests;
