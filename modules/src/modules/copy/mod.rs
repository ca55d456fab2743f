//! The `copy` module: a file (or a directory tree) from the repository, inline `content`, or a
//! file already on the host (`remote_src`), written to `dest` with owner, group and mode.
//!
//! Ansible 2.19 behaviours kept here (checked against ansible-core):
//! - A new file without `mode` gets `0666 & ~umask` (0644), also when copied from a source
//!   file with other bits; an existing file keeps its mode, owner and group.
//! - `dest` ending in `/` or naming an existing directory receives `basename(src)`; `content`
//!   with such a `dest` fails ("can not use content with a dir as dest").
//! - `force: no` on an existing `dest` does nothing at all, not even its mode.
//! - A symlink at `dest` is replaced by the file (`follow: no`, the default), even when the
//!   link's target already has the same content; the target is never written. With
//!   `follow: yes` (asked by the task), the link is resolved and its target written.
//! - A directory `src` is copied recursively; `src` ending in `/` copies its contents.
//!   Directories created get `directory_mode` (else `0777 & ~umask`), files `mode`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::Value;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::error::LoadError;
use crate::fsops::{self, Current, IdCache, Kind};
use crate::host::HostState;
use crate::mode::{self, Mode};
use crate::resource::{
    Attrs, Change, Check, LoadContext, Module, ModuleContext, ModuleError, Outcome, Owned,
    Resource, TaskArgs,
};
use crate::source::{RepoPath, SourceKind};

pub struct CopyModule;

static SPEC: ArgSpec = ArgSpec {
    module: "copy",
    args: &[
        ArgDef::new("src", ArgType::Str),
        ArgDef::new("content", ArgType::Raw),
        ArgDef::new("dest", ArgType::Path).required(),
        ArgDef::new("mode", ArgType::Mode),
        ArgDef::new("owner", ArgType::Str),
        ArgDef::new("group", ArgType::Str),
        ArgDef::new("backup", ArgType::Bool),
        ArgDef::new("force", ArgType::Bool).aliases(&["thirsty"]),
        ArgDef::new("validate", ArgType::Str),
        ArgDef::new("remote_src", ArgType::Bool),
        ArgDef::new("directory_mode", ArgType::Mode),
        ArgDef::new("follow", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[&["src", "content"]],
    required_one_of: &[&["src", "content"]],
};

impl Module for CopyModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn validate(&self, args: &TaskArgs, ctx: &LoadContext) -> Result<(), LoadError> {
        if args.is_true("remote_src") {
            return Ok(());
        }
        validate_src(args, ctx, "files", false)
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let common = Common::from_args(args, ctx.host.ids())?;
        let dest = args.str("dest").unwrap_or_default();
        if let Some(content) = args.get("content") {
            if dest.ends_with('/')
                || fsops::stat(Path::new(&dest))?.is_some_and(|s| s.kind == Kind::Dir)
            {
                return Err(ModuleError::new("can not use content with a dir as dest"));
            }
            let bytes = content_bytes(content)?;
            return Ok(Box::new(FileCopy {
                dest: PathBuf::from(dest),
                content: Arc::from(bytes),
                src_mode: 0o644,
                src: None,
                common,
                create_parent: false,
                host: ctx.host.clone(),
            }));
        }
        let src = args.str("src").unwrap_or_default();
        if args.bool_or("remote_src", false) {
            return prepare_remote(&src, &dest, common, ctx.host);
        }
        let (path, kind) = find_source(ctx, "files", &src)?;
        match kind {
            SourceKind::File => {
                let bytes = ctx
                    .source
                    .read(&path)
                    .map_err(|e| ModuleError::new(e.to_string()))?
                    .ok_or_else(|| ModuleError::new(format!("could not read {path}")))?;
                Ok(Box::new(FileCopy {
                    dest: file_dest(&dest, path.file_name())?,
                    content: Arc::from(bytes),
                    src_mode: source_mode(ctx, &path),
                    src: Some(path.to_string()),
                    common,
                    create_parent: dest.ends_with('/'),
                    host: ctx.host.clone(),
                }))
            }
            SourceKind::Dir => {
                let root = if src.ends_with('/') {
                    PathBuf::from(&dest)
                } else {
                    Path::new(&dest).join(path.file_name())
                };
                let mut items = Vec::new();
                collect_tree(ctx, &path, &root, &mut items)?;
                Ok(Box::new(TreeCopy {
                    dest: PathBuf::from(dest),
                    root,
                    items,
                    common,
                    host: ctx.host.clone(),
                }))
            }
        }
    }
}

/// `content` as bytes: text as is; a list or dictionary as `json.dumps`, another value as
/// Python's `str()`, as ansible-core's copy action writes them.
fn content_bytes(content: &Value) -> Result<Vec<u8>, ModuleError> {
    match content.as_str() {
        Some(s) => Ok(s.as_bytes().to_vec()),
        None => crate::template::python_text(content)
            .map(String::into_bytes)
            .map_err(|e| ModuleError::new(e.to_string())),
    }
}

/// Options shared by `copy` and `template`.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub mode: Option<Mode>,
    pub directory_mode: Option<Mode>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub backup: bool,
    pub force: bool,
    pub validate: Option<String>,
    pub follow: bool,
}

impl Common {
    pub fn from_args(args: &Args, ids: &IdCache) -> Result<Common, ModuleError> {
        let mode = args
            .get("mode")
            .map(Mode::parse)
            .transpose()
            .map_err(ModuleError::new)?;
        let directory_mode = args
            .get("directory_mode")
            .map(Mode::parse)
            .transpose()
            .map_err(ModuleError::new)?;
        if let Some(v) = args.str("validate") {
            if !v.contains("%s") {
                return Err(ModuleError::new(format!("validate must contain %s: {v}")));
            }
        }
        Ok(Common {
            mode,
            directory_mode,
            uid: args.str("owner").map(|o| ids.uid_for(&o)).transpose()?,
            gid: args.str("group").map(|g| ids.gid_for(&g)).transpose()?,
            backup: args.bool_or("backup", false),
            force: args.bool_or("force", true),
            validate: args.str("validate"),
            follow: args.bool_or("follow", false),
        })
    }
}

/// Finds a relative `src` as Ansible's search does: for each search directory (role, then
/// playbook), `<dir>/<sub>/<src>` then `<dir>/<src>`.
pub(crate) fn find_source(
    ctx: &ModuleContext,
    sub: &str,
    src: &str,
) -> Result<(RepoPath, SourceKind), ModuleError> {
    if src.starts_with('/') && crate::source::repo_relative(ctx.source, src).is_none() {
        return Err(ModuleError::new(format!(
            "src `{src}` is an absolute path: a source must be inside the repository \
             (use remote_src for a file on the host)"
        )));
    }
    if let Some(found) = crate::source::find_in(ctx.source, ctx.search, sub, src)
        .map_err(|e| ModuleError::new(e.to_string()))?
    {
        return Ok(found);
    }
    Err(ModuleError::new(format!(
        "Could not find or access '{src}'\nSearched in:\n{}",
        ctx.search
            .iter()
            .flat_map(|d| [format!("\t{d}/{sub}/{src}"), format!("\t{d}/{src}")])
            .collect::<Vec<_>>()
            .join("\n")
    )))
}

/// The mode of a repository file for `mode: preserve`: Git keeps only the executable bit.
pub(crate) fn source_mode(ctx: &ModuleContext, path: &RepoPath) -> u32 {
    if ctx.source.is_executable(path).unwrap_or(false) {
        0o755
    } else {
        0o644
    }
}

/// Where a single file goes: `dest`, or `dest/<name>` when `dest` ends in `/` or is an
/// existing directory.
pub(crate) fn file_dest(dest: &str, name: &str) -> Result<PathBuf, ModuleError> {
    if dest.ends_with('/') || fsops::stat(Path::new(dest))?.is_some_and(|s| s.kind == Kind::Dir) {
        Ok(Path::new(dest).join(name))
    } else {
        Ok(PathBuf::from(dest))
    }
}

fn prepare_remote(
    src: &str,
    dest: &str,
    common: Common,
    host: &Arc<HostState>,
) -> Result<Box<dyn Resource>, ModuleError> {
    let p = Path::new(src);
    match fsops::stat(p)? {
        None => Err(ModuleError::new(format!("Source {src} not found"))),
        Some(st) if st.kind == Kind::Dir => Err(ModuleError::new(
            "copy with remote_src of a directory is not supported yet",
        )),
        Some(st) => {
            let bytes = std::fs::read(p)
                .map_err(|e| ModuleError::new(format!("Source {src} not readable: {e}")))?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(Box::new(FileCopy {
                dest: file_dest(dest, &name)?,
                content: Arc::from(bytes),
                src_mode: st.mode,
                src: Some(src.to_string()),
                common,
                create_parent: dest.ends_with('/'),
                host: host.clone(),
            }))
        }
    }
}

/// Plans writing `content` to `dest` (one file); returns the changes and the final path.
/// Only reads: one open/read of `dest` (plus the link's target with `follow`).
pub(crate) fn plan_file(
    dest: &Path,
    content: &Arc<[u8]>,
    src_mode: u32,
    common: &Common,
    changes: &mut Vec<Change>,
) -> Result<PathBuf, ModuleError> {
    let mut path = dest.to_path_buf();
    let mut current = fsops::read_current(&path)?;
    if let Current::Other(st) = &current {
        if st.kind == Kind::Symlink {
            if !common.force {
                return Ok(path);
            }
            if common.follow {
                // The task asked for the link to be followed: write its target.
                if let Ok(real) = std::fs::canonicalize(&path) {
                    path = real;
                    current = fsops::read_current(&path)?;
                }
            }
        }
    }
    if !matches!(current, Current::Absent) && !common.force {
        return Ok(path);
    }
    let umask = mode::umask();
    let want_mode = |current_mode: u32| match &common.mode {
        None => None,
        Some(Mode::Preserve) => Some(src_mode),
        Some(m) => Some(m.resolve(current_mode, false, umask)),
    };
    match current {
        Current::File(st, old) => {
            let attrs = Attrs {
                mode: want_mode(st.mode),
                uid: common.uid,
                gid: common.gid,
            };
            if old.as_slice() == &content[..] {
                changes.extend(fsops::attr_changes(&path, &st, &attrs));
            } else {
                changes.push(Change::WriteFile {
                    path: path.clone(),
                    content: content.clone(),
                    before: Some(Arc::from(old)),
                    attrs,
                    backup: common.backup,
                    validate: common.validate.clone(),
                });
            }
        }
        Current::Other(st) if st.kind == Kind::Dir => {
            return Err(ModuleError::new(format!(
                "{} is a directory, cannot replace it with a file",
                path.display()
            )));
        }
        Current::Other(st) if st.kind != Kind::Symlink => {
            return Err(ModuleError::new(format!(
                "{} exists and is not a regular file",
                path.display()
            )));
        }
        // Absent, or a symlink to replace with the file.
        _ => {
            let attrs = Attrs {
                mode: want_mode(0o666 & !umask),
                uid: common.uid,
                gid: common.gid,
            };
            changes.push(Change::WriteFile {
                path: path.clone(),
                content: content.clone(),
                before: None,
                attrs,
                backup: false,
                validate: common.validate.clone(),
            });
        }
    }
    Ok(path)
}

/// Creates the missing parent directories of `dest` when `dest` ended in `/` (Ansible creates
/// them for a directory destination).
fn plan_parent_dirs(
    dest: &Path,
    common: &Common,
    changes: &mut Vec<Change>,
) -> Result<(), ModuleError> {
    if let Some(parent) = dest.parent() {
        if !parent.as_os_str().is_empty() && fsops::stat(parent)?.is_none() {
            changes.push(Change::CreateDir {
                path: parent.to_path_buf(),
                attrs: dir_attrs(common),
            });
        }
    }
    Ok(())
}

fn dir_attrs(common: &Common) -> Attrs {
    let umask = mode::umask();
    Attrs {
        mode: common
            .directory_mode
            .as_ref()
            .map(|m| m.resolve(0o777 & !umask, true, umask)),
        uid: common.uid,
        gid: common.gid,
    }
}

/// One file to write (copy of a file or of `content`, and `template`).
pub(crate) struct FileCopy {
    pub dest: PathBuf,
    pub content: Arc<[u8]>,
    pub src_mode: u32,
    pub src: Option<String>,
    pub common: Common,
    /// `dest` ended in `/`: missing parent directories are created.
    pub create_parent: bool,
    /// For the owner and group names of the facts reported.
    pub host: Arc<HostState>,
}

impl FileCopy {
    fn base_outcome(&self, dest: &Path) -> Outcome {
        let mut out = Outcome::default().with("dest", dest.display().to_string());
        if let Some(src) = &self.src {
            out = out.with("src", src.clone());
        }
        out
    }

    fn plan(&self) -> Result<(Vec<Change>, PathBuf), ModuleError> {
        let mut changes = Vec::new();
        if self.create_parent {
            plan_parent_dirs(&self.dest, &self.common, &mut changes)?;
        }
        let path = plan_file(
            &self.dest,
            &self.content,
            self.src_mode,
            &self.common,
            &mut changes,
        )?;
        Ok((changes, path))
    }
}

impl Resource for FileCopy {
    fn check(&self) -> Result<Check, ModuleError> {
        let (changes, path) = self.plan()?;
        let mut outcome = self.base_outcome(&path);
        if changes.is_empty() && self.common.force {
            if let Some(st) = fsops::lstat(&path)? {
                fsops::path_facts(&mut outcome, &st, self.host.ids());
            }
        } else if changes.is_empty() {
            outcome = outcome.with("msg", "file already exists");
        }
        Ok(Check::new(changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let changes = &check.changes;
        let applied = fsops::apply_all(changes)?;
        let path = changes
            .iter()
            .find_map(|c| match c {
                Change::WriteFile { path, .. } => Some(path.clone()),
                _ => None,
            })
            .unwrap_or_else(|| self.dest.clone());
        let mut outcome = self.base_outcome(&path);
        if let Some(b) = applied.backup_file {
            outcome = outcome.with("backup_file", b.display().to_string());
        }
        fsops::path_facts_at(&mut outcome, &path, self.host.ids());
        Ok(outcome)
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.dest.clone())]
    }
}

/// A static `src` (of `copy`, `template`) must exist in the repository under `sub` (`files`,
/// `templates`) of the search directories, and a template must parse: found at load time,
/// before anything is applied, rather than half-way through a run.
pub(crate) fn validate_src(
    args: &TaskArgs,
    ctx: &LoadContext,
    sub: &str,
    is_template: bool,
) -> Result<(), LoadError> {
    let Some((src, node)) = args.literal_str("src") else {
        return Ok(());
    };
    let found = crate::source::find_in(ctx.source, ctx.search, sub, src)
        .map_err(|e| LoadError::at(ctx.at(node), format!("src `{src}`: {e}")).with_key("src"))?;
    match found {
        None => Err(LoadError::at(
            ctx.at(node),
            format!("src `{src}` not found (searched {sub}/ of the role and the playbook)"),
        )
        .with_key("src")),
        Some((path, SourceKind::File)) if is_template => {
            let text = ctx
                .source
                .read(&path)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            ctx.templar.check_syntax(&text).map_err(|e| {
                LoadError::at(ctx.task.clone(), format!("template {path}: {e}")).with_key("src")
            })
        }
        Some(_) => Ok(()),
    }
}

/// An entry of a directory copy.
enum TreeItem {
    Dir(PathBuf),
    File {
        dest: PathBuf,
        content: Arc<[u8]>,
        src_mode: u32,
    },
}

fn collect_tree(
    ctx: &ModuleContext,
    src: &RepoPath,
    dest: &Path,
    items: &mut Vec<TreeItem>,
) -> Result<(), ModuleError> {
    let err = |e: crate::source::SourceError| ModuleError::new(e.to_string());
    items.push(TreeItem::Dir(dest.to_path_buf()));
    for entry in ctx.source.list(src).map_err(err)? {
        let child = src
            .join(&entry.name)
            .map_err(|e| ModuleError::new(e.to_string()))?;
        let child_dest = dest.join(&entry.name);
        match entry.kind {
            SourceKind::Dir => collect_tree(ctx, &child, &child_dest, items)?,
            SourceKind::File => {
                let bytes = ctx
                    .source
                    .read(&child)
                    .map_err(err)?
                    .ok_or_else(|| ModuleError::new(format!("could not read {child}")))?;
                items.push(TreeItem::File {
                    dest: child_dest,
                    content: Arc::from(bytes),
                    src_mode: if entry.executable { 0o755 } else { 0o644 },
                });
            }
        }
    }
    Ok(())
}

/// A recursive copy of a repository directory.
struct TreeCopy {
    dest: PathBuf,
    root: PathBuf,
    items: Vec<TreeItem>,
    common: Common,
    /// For the owner and group names of the facts reported.
    host: Arc<HostState>,
}

impl Resource for TreeCopy {
    fn check(&self) -> Result<Check, ModuleError> {
        let mut changes = Vec::new();
        let dattrs = dir_attrs(&self.common);
        for item in &self.items {
            match item {
                TreeItem::Dir(path) => match fsops::lstat(path)? {
                    None => changes.push(Change::CreateDir {
                        path: path.clone(),
                        attrs: dattrs,
                    }),
                    Some(st) if st.kind == Kind::Dir => {
                        changes.extend(fsops::attr_changes(path, &st, &dattrs))
                    }
                    Some(_) => {
                        return Err(ModuleError::new(format!(
                            "{} exists and is not a directory",
                            path.display()
                        )))
                    }
                },
                TreeItem::File {
                    dest,
                    content,
                    src_mode,
                } => {
                    plan_file(dest, content, *src_mode, &self.common, &mut changes)?;
                }
            }
        }
        let outcome = Outcome::default().with("dest", self.dest.display().to_string());
        Ok(Check::new(changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let changes = &check.changes;
        fsops::apply_all(changes)?;
        let mut outcome = Outcome::default().with("dest", self.dest.display().to_string());
        fsops::path_facts_at(&mut outcome, &self.root, self.host.ids());
        Ok(outcome)
    }

    fn owns(&self) -> Vec<Owned> {
        self.items
            .iter()
            .filter_map(|i| match i {
                TreeItem::File { dest, .. } => Some(Owned::Path(dest.clone())),
                TreeItem::Dir(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
