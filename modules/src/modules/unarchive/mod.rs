//! The `unarchive` module: a tar archive (plain, gzip, bzip2, xz or zstd) from the repository's
//! `files/`, from the host (`remote_src`), or from a URL (`remote_src` with `http(s)://` or
//! `file://`, through `get_url`'s client), extracted into an existing `dest`.
//!
//! As ansible-core 2.19 (whose unarchive runs GNU tar):
//! - `creates` naming an existing path skips the task (its action plugin does, before anything);
//! - the members are compared with `dest` as `tar --diff` does: a file is extracted again when its
//!   type, size, content or modification time differ; mode and owner differences count unless
//!   `mode`/`owner`/`group` are given, which are then set on every member;
//! - extracted files get the archive's modification times, modes and (as root) owners;
//! - check mode: the task is skipped (ansible-core's tar handler does not support check mode).
//!
//! Stricter than GNU tar: a member with an absolute path or a `..` component, a link pointing
//! outside `dest`, or a member under a link refuses the whole archive before anything is
//! extracted (GNU tar strips `/` and skips `..` members with a warning).

mod archive;
mod plan;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use minijinja::Value;

use self::archive::{Format, Member};
use super::get_url::{file_common, refuse_scheme, Fetch};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::error::LoadError;
use crate::fsops::{self, Kind};
use crate::host::HostState;
use crate::modules::command::fnmatch;
use crate::modules::copy::{find_source, validate_src, Common};
use crate::resource::{
    Check, LoadContext, Module, ModuleContext, ModuleError, Outcome, Owned, Resource, TaskArgs,
};
use crate::source::SourceKind;

pub struct UnarchiveModule;

static SPEC: ArgSpec = ArgSpec {
    module: "unarchive",
    args: &[
        ArgDef::new("src", ArgType::Str).required(),
        ArgDef::new("dest", ArgType::Path).required(),
        ArgDef::new("remote_src", ArgType::Bool),
        ArgDef::new("creates", ArgType::Path),
        ArgDef::new("list_files", ArgType::Bool),
        ArgDef::new("keep_newer", ArgType::Bool),
        ArgDef::new("exclude", ArgType::List),
        ArgDef::new("include", ArgType::List),
        ArgDef::new("extra_opts", ArgType::List),
        ArgDef::new("validate_certs", ArgType::Bool),
        ArgDef::new("mode", ArgType::Mode),
        ArgDef::new("owner", ArgType::Str),
        ArgDef::new("group", ArgType::Str),
    ],
    free_form: false,
    mutually_exclusive: &[&["include", "exclude"]],
    required_one_of: &[],
};

impl Module for UnarchiveModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn validate(&self, args: &TaskArgs, ctx: &LoadContext) -> Result<(), LoadError> {
        if !args.is_true("remote_src") {
            return validate_src(args, ctx, "files", false);
        }
        match args.literal_str("src") {
            Some((text, _)) if text.contains("://") => refuse_scheme(args, ctx, "src"),
            _ => Ok(()),
        }
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let src_arg = args.str("src").unwrap_or_default();
        let src = if !args.bool_or("remote_src", false) {
            let (path, kind) = find_source(ctx, "files", &src_arg)?;
            if kind != SourceKind::File {
                return Err(ModuleError::new(format!(
                    "Source '{src_arg}' is a directory"
                )));
            }
            let bytes = ctx
                .source
                .read(&path)
                .map_err(|e| ModuleError::new(e.to_string()))?
                .ok_or_else(|| {
                    ModuleError::new(format!("Source '{src_arg}' failed to transfer"))
                })?;
            Src::Repo(path.to_string(), Arc::from(bytes))
        } else if src_arg.contains("://") {
            crate::http::check_scheme(&src_arg).map_err(|e| ModuleError::new(e.to_string()))?;
            let mut fetch = Fetch::from_args(args, 10)?;
            fetch.client.http_agent = "ansible-httpget".into();
            Src::Url(src_arg.clone(), fetch)
        } else {
            Src::Host(PathBuf::from(&src_arg))
        };
        let common = file_common(args, ctx.host.ids())?;
        Ok(Box::new(Unarchive {
            src,
            dest: PathBuf::from(args.str("dest").unwrap_or_default()),
            creates: args
                .str("creates")
                .filter(|c| !c.is_empty())
                .map(PathBuf::from),
            list_files: args.bool_or("list_files", false),
            keep_newer: args.bool_or("keep_newer", false),
            exclude: list(args, "exclude"),
            include: list(args, "include"),
            strip: strip_components(&list(args, "extra_opts"))?,
            common,
            check_mode: ctx.check_mode,
            host: ctx.host.clone(),
        }))
    }
}

fn list(args: &Args, key: &str) -> Vec<String> {
    args.list_str(key).unwrap_or_default()
}

/// `extra_opts`: only `--strip-components=N` (or `--strip-components N`) is implemented; any
/// other option is refused rather than ignored.
fn strip_components(opts: &[String]) -> Result<usize, ModuleError> {
    let mut strip = 0;
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        let value = if let Some(v) = o.strip_prefix("--strip-components=") {
            v.to_string()
        } else if o == "--strip-components" {
            it.next().cloned().unwrap_or_default()
        } else {
            return Err(ModuleError::new(format!(
                "extra_opts: {o} is not supported by the agent's unarchive (only \
                 --strip-components=N is)"
            )));
        };
        strip = value.parse().map_err(|_| {
            ModuleError::new(format!(
                "extra_opts: --strip-components needs a number, got {value:?}"
            ))
        })?;
    }
    Ok(strip)
}

/// Where the archive comes from.
enum Src {
    /// A file of the repository (path for the result, content).
    Repo(String, Arc<[u8]>),
    /// A file on the host.
    Host(PathBuf),
    /// A URL, downloaded on every run (as Ansible does).
    Url(String, Fetch),
}

struct Unarchive {
    src: Src,
    dest: PathBuf,
    creates: Option<PathBuf>,
    list_files: bool,
    keep_newer: bool,
    exclude: Vec<String>,
    include: Vec<String>,
    strip: usize,
    common: Common,
    check_mode: bool,
    host: Arc<HostState>,
}

impl Unarchive {
    /// The archive's bytes and the `src` to report.
    fn read_src(&self) -> Result<(Arc<[u8]>, String), ModuleError> {
        match &self.src {
            Src::Repo(name, bytes) => Ok((bytes.clone(), name.clone())),
            Src::Host(path) => {
                let shown = path.display().to_string();
                match std::fs::read(path) {
                    Ok(b) => Ok((Arc::from(b), shown)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Err(ModuleError::new(format!("Source '{shown}' does not exist")))
                    }
                    Err(e) => Err(ModuleError::new(format!(
                        "Source '{shown}' not readable, {e}"
                    ))),
                }
            }
            Src::Url(url, fetch) => {
                let resp = fetch.send(&fetch.request("GET", url))?;
                if resp.status != 200 && !url.starts_with("file:") {
                    return Err(ModuleError::new(format!(
                        "Failure downloading {url}, {}",
                        resp.msg
                    )));
                }
                Ok((Arc::from(resp.body), url.clone()))
            }
        }
    }

    /// Whether `member` is extracted, with tar's rules: `exclude` patterns match the name or
    /// any of its trailing parts (a directory excluded excludes its content); `include` names
    /// members or directories whose content is taken.
    fn selected(&self, m: &Member) -> bool {
        let name = m.listed.trim_end_matches('/');
        if self
            .exclude
            .iter()
            .any(|p| tar_excluded(name, p.trim_end_matches('/')))
        {
            return false;
        }
        self.include.is_empty()
            || self.include.iter().any(|i| {
                let i = i.trim_end_matches('/');
                name == i || (name.starts_with(i) && name.as_bytes().get(i.len()) == Some(&b'/'))
            })
    }

    fn base(&self, src: &str, format: Format) -> Outcome {
        Outcome::default()
            .with("handler", format.handler())
            .with("dest", self.dest.display().to_string())
            .with("src", src.to_string())
    }
}

impl Resource for Unarchive {
    fn check(&self) -> Result<Check, ModuleError> {
        if let Some(c) = &self.creates {
            if fsops::lstat(c)?.is_some() {
                let mut out = Outcome::default()
                    .with("skipped", true)
                    .with("msg", format!("skipped, since {} exists", c.display()));
                out.changed = Some(false);
                return Ok(Check::new(Vec::new(), out));
            }
        }
        let (data, src) = self.read_src()?;
        if data.is_empty() {
            return Err(ModuleError::new(format!(
                "Invalid archive '{src}', the file is 0 bytes"
            )));
        }
        if !fsops::stat(&self.dest)?.is_some_and(|s| s.kind == Kind::Dir) {
            return Err(ModuleError::new(format!(
                "Destination '{}' is not a directory",
                self.dest.display()
            )));
        }
        let format = Format::detect(&data, &src).map_err(ModuleError::new)?;
        if self.check_mode {
            let out = Outcome::default().with("skipped", true).with(
                "msg",
                "remote module (unarchive) does not support check mode when using gtar",
            );
            return Ok(Check::new(Vec::new(), out));
        }
        let tar = format.decompress(&data).map_err(ModuleError::new)?;
        let members = archive::tar_members(&tar, self.strip).map_err(ModuleError::new)?;
        let chosen: Vec<&Member> = members.iter().filter(|m| self.selected(m)).collect();
        let want = plan::Wanted {
            mode: self.common.mode.as_ref(),
            uid: self.common.uid,
            gid: self.common.gid,
            keep_newer: self.keep_newer,
            root: nix::unistd::geteuid().is_root(),
            ids: self.host.ids(),
        };
        let planned = plan::plan(&self.dest, &chosen, &want)?;
        let mut out = self.base(&src, format);
        if self.list_files {
            let files: Vec<Value> = chosen
                .iter()
                .map(|m| Value::from(m.listed.clone()))
                .collect();
            out = out.with("files", files);
        }
        let mut check = Check::new(planned.changes, out);
        check.path = Some(self.dest.clone());
        fsops::path_facts_at(&mut check.outcome, &self.dest, self.host.ids());
        // The times travel in the outcome's private field, read back by apply.
        check.outcome.data.insert(
            TIMES.into(),
            Value::from(
                planned
                    .times
                    .iter()
                    .map(|(p, t)| {
                        Value::from(vec![Value::from(p.display().to_string()), Value::from(*t)])
                    })
                    .collect::<Vec<_>>(),
            ),
        );
        if check.changes.is_empty() {
            check.outcome.data.shift_remove(TIMES);
        }
        Ok(check)
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let mut out = check.outcome;
        let times = out.data.shift_remove(TIMES);
        fsops::apply_all(&check.changes)?;
        if let Some(times) = times {
            let times: Vec<(PathBuf, i64)> = times
                .try_iter()
                .map_err(|e| ModuleError::new(e.to_string()))?
                .filter_map(|pair| {
                    let p = pair.get_item_by_index(0).ok()?;
                    let t = pair.get_item_by_index(1).ok()?;
                    Some((PathBuf::from(p.as_str()?), i64::try_from(t).ok()?))
                })
                .collect();
            plan::set_times(&times)?;
        }
        out = out.with(
            "extract_results",
            Value::from_pairs([
                ("rc", Value::from(0)),
                ("out", Value::from("")),
                ("err", Value::from("")),
                ("cmd", Value::from(Vec::<Value>::new())),
            ]),
        );
        fsops::path_facts_at(&mut out, &self.dest, self.host.ids());
        Ok(out)
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.dest.clone())]
    }
}

/// The outcome key carrying the modification times from check to apply (removed before the
/// result is reported).
const TIMES: &str = "__unarchive_times";

/// GNU tar's `--exclude` (not anchored, wildcards match `/`): the pattern matches the whole
/// name or a part of it starting after a `/`, and a directory excluded takes its content along.
fn tar_excluded(name: &str, pat: &str) -> bool {
    let starts = std::iter::once(0).chain(name.match_indices('/').map(|(i, _)| i + 1));
    for s in starts {
        let rest = &name[s..];
        let ends = rest
            .match_indices('/')
            .map(|(i, _)| i)
            .chain(std::iter::once(rest.len()));
        for e in ends {
            if fnmatch(pat.as_bytes(), &rest.as_bytes()[..e]) {
                return true;
            }
        }
    }
    false
}
