//! The `file` module: the state of a path (file, directory, link, hard link, absent, touch) and
//! its owner, group and mode, as ansible-core 2.19's `file` module decides them.
//!
//! - No `state`: the current state if the path exists, else `file` (which fails: "file (...) is
//!   absent, cannot continue"), or `directory` with `recurse`.
//! - `follow` (default yes, as in Ansible): attributes of a symlink's target are managed
//!   instead of the link. Following is what the task asks for here; with `follow: no`, only
//!   the link's owner is changed (Linux has no mode for links).
//! - `recurse` applies owner/group/mode to everything below a directory. Symlinks below get
//!   their own owner changed; with `follow`, their target's attributes are set too, but linked
//!   directories are not descended into (Ansible does descend: not followed here on purpose).
//! - `access_time`/`modification_time`: `now` or `preserve` only (both the same); `touch` is
//!   changed on every run unless both are `preserve`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::fsops::{self, Kind, Stat};
use crate::host::HostState;
use crate::mode::{self, Mode};
use crate::resource::{
    Attrs, Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};

pub struct FileModule;

static SPEC: ArgSpec = ArgSpec {
    module: "file",
    args: &[
        ArgDef::new("path", ArgType::Path)
            .aliases(&["dest", "name"])
            .required(),
        ArgDef::new("state", ArgType::Str).choices(&[
            "absent",
            "directory",
            "file",
            "hard",
            "link",
            "touch",
        ]),
        ArgDef::new("owner", ArgType::Str),
        ArgDef::new("group", ArgType::Str),
        ArgDef::new("mode", ArgType::Mode),
        ArgDef::new("recurse", ArgType::Bool),
        ArgDef::new("force", ArgType::Bool),
        ArgDef::new("follow", ArgType::Bool),
        ArgDef::new("src", ArgType::Path),
        ArgDef::new("access_time", ArgType::Str),
        ArgDef::new("modification_time", ArgType::Str),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for FileModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let mode = args
            .get("mode")
            .map(Mode::parse)
            .transpose()
            .map_err(ModuleError::new)?;
        if mode == Some(Mode::Preserve) {
            return Err(ModuleError::new(
                "mode must be in octal or symbolic form: preserve is only for copy and template",
            ));
        }
        let time = |name: &str| -> Result<Option<bool>, ModuleError> {
            match args.str(name).as_deref() {
                None => Ok(None),
                Some("now") => Ok(Some(true)),
                Some("preserve") => Ok(Some(false)),
                Some(other) => Err(ModuleError::new(format!(
                    "{name}: `{other}` is not supported (only `now` and `preserve`)"
                ))),
            }
        };
        let atime = time("access_time")?;
        let mtime = time("modification_time")?;
        if atime.is_some() && mtime.is_some() && atime != mtime {
            return Err(ModuleError::new(
                "access_time and modification_time must both be `now` or both `preserve`",
            ));
        }
        let ids = ctx.host.ids();
        Ok(Box::new(FileResource {
            path: PathBuf::from(args.str("path").unwrap_or_default()),
            state: args.str("state"),
            mode,
            uid: args.str("owner").map(|o| ids.uid_for(&o)).transpose()?,
            gid: args.str("group").map(|g| ids.gid_for(&g)).transpose()?,
            recurse: args.bool_or("recurse", false),
            force: args.bool_or("force", false),
            follow: args.bool_or("follow", true),
            src: args.str("src"),
            times_now: atime.or(mtime),
            host: ctx.host.clone(),
        }))
    }
}

struct FileResource {
    path: PathBuf,
    state: Option<String>,
    mode: Option<Mode>,
    uid: Option<u32>,
    gid: Option<u32>,
    recurse: bool,
    force: bool,
    follow: bool,
    src: Option<String>,
    /// `Some(true)`: times set to now; `Some(false)`: preserved; `None`: the state's default.
    times_now: Option<bool>,
    /// For the owner and group names of the facts reported.
    host: Arc<HostState>,
}

fn fail(msg: String) -> ModuleError {
    ModuleError::new(msg)
}

impl FileResource {
    /// Owner/group/mode wanted for something whose current stat is `st`.
    fn attrs_for(&self, st: &Stat) -> Attrs {
        Attrs {
            mode: self
                .mode
                .as_ref()
                .map(|m| m.resolve(st.mode, st.kind == Kind::Dir, mode::umask())),
            uid: self.uid,
            gid: self.gid,
        }
    }

    /// Attributes for a path that does not exist yet, created with `base` permissions.
    fn attrs_new(&self, base: u32, is_dir: bool) -> Attrs {
        Attrs {
            mode: self
                .mode
                .as_ref()
                .map(|m| m.resolve(base, is_dir, mode::umask())),
            uid: self.uid,
            gid: self.gid,
        }
    }

    fn attr_changes(&self, path: &Path, st: &Stat, changes: &mut Vec<Change>) {
        changes.extend(fsops::attr_changes(path, st, &self.attrs_for(st)));
    }

    fn touch_now(&self, state: &str) -> bool {
        self.times_now.unwrap_or(state == "touch")
    }

    /// The real path of a symlink, for `follow`.
    fn real(path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }

    fn plan(&self) -> Result<(Vec<Change>, Outcome, PathBuf), ModuleError> {
        let mut path = self.path.clone();
        let mut changes = Vec::new();
        let given_state = self.state.as_deref();
        // Ansible: a directory path with a `src` (state hard/touch/file...) means the file
        // inside it.
        if !matches!(given_state, Some("link") | Some("absent")) {
            if let Some(src) = &self.src {
                if fsops::stat(&path)?.is_some_and(|s| s.kind == Kind::Dir) {
                    if let Some(base) = Path::new(src).file_name() {
                        path = path.join(base);
                    }
                }
            }
        }
        let cur = fsops::lstat(&path)?;
        let prev = cur.map(|s| s.ansible_state()).unwrap_or("absent");
        let state = match given_state {
            Some(s) => s,
            None if prev != "absent" => prev,
            None if self.recurse => "directory",
            None => "file",
        };
        let p = path.display().to_string();
        if self.recurse && state != "directory" {
            return Err(fail(
                "recurse option requires state to be 'directory'".to_string(),
            ));
        }
        if self.src.is_some() && !matches!(state, "link" | "hard") {
            return Err(fail(
                "src option requires state to be 'link' or 'hard'".to_string(),
            ));
        }
        let mut out = Outcome::default();
        match state {
            "absent" => {
                out = out.with("path", p.clone());
                if cur.is_some() {
                    changes.push(Change::Remove { path: path.clone() });
                }
            }
            "file" => {
                let (target, st) = self.followed(&path, cur)?;
                let prev = st.map(|s| s.ansible_state()).unwrap_or("absent");
                if !matches!(prev, "file" | "hard") {
                    return Err(fail(format!(
                        "file ({}) is {prev}, cannot continue",
                        target.display()
                    )));
                }
                let st = st.expect("exists");
                self.attr_changes(&target, &st, &mut changes);
                if self.touch_now(state) {
                    changes.push(touch(&target));
                }
                out = out.with("path", target.display().to_string());
                path = target;
            }
            "directory" => {
                let (target, st) = self.followed(&path, cur)?;
                match st {
                    None => changes.push(Change::CreateDir {
                        path: target.clone(),
                        attrs: self.attrs_new(0o777 & !mode::umask(), true),
                    }),
                    Some(st) if st.kind != Kind::Dir => {
                        return Err(fail(format!(
                            "{} already exists as a {}",
                            target.display(),
                            st.ansible_state()
                        )))
                    }
                    Some(st) => {
                        self.attr_changes(&target, &st, &mut changes);
                        if self.touch_now(state) {
                            changes.push(touch(&target));
                        }
                        if self.recurse {
                            self.recurse_plan(&target, &mut changes)?;
                        }
                    }
                }
                out = out.with("path", target.display().to_string());
                path = target;
            }
            "link" => {
                self.plan_link(&path, cur, &mut changes)?;
                out = out.with("dest", p.clone());
                if let Some(src) = self.link_src(&path)? {
                    out = out.with("src", src);
                }
            }
            "hard" => {
                self.plan_hard(&path, cur, &mut changes)?;
                out = out.with("dest", p.clone());
                if let Some(src) = &self.src {
                    out = out.with("src", src.clone());
                }
            }
            _ => {
                // touch
                out = out.with("dest", p.clone());
                match cur {
                    None => changes.push(Change::Touch {
                        path: path.clone(),
                        create: true,
                        attrs: self.attrs_new(0o666 & !mode::umask(), false),
                    }),
                    Some(_) => {
                        let (target, st) = self.followed(&path, cur)?;
                        if let Some(st) = st {
                            self.attr_changes(&target, &st, &mut changes);
                        }
                        if self.touch_now(state) {
                            changes.push(touch(&target));
                        }
                    }
                }
            }
        }
        Ok((changes, out, path))
    }

    /// With `follow`, a symlink's target (and its stat, `None` when it does not exist).
    fn followed(
        &self,
        path: &Path,
        cur: Option<Stat>,
    ) -> Result<(PathBuf, Option<Stat>), ModuleError> {
        if self.follow && cur.is_some_and(|s| s.kind == Kind::Symlink) {
            let real = Self::real(path);
            let st = if real.as_path() == path {
                cur
            } else {
                fsops::lstat(&real)?
            };
            // A dangling link: Ansible's realpath gives the missing target.
            if fsops::stat(path)?.is_none() {
                let target = std::fs::read_link(path)?;
                let abs = path.parent().unwrap_or(Path::new("/")).join(target);
                return Ok((abs, None));
            }
            return Ok((real, st));
        }
        Ok((path.to_path_buf(), cur))
    }

    fn recurse_plan(&self, dir: &Path, changes: &mut Vec<Change>) -> Result<(), ModuleError> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            let Some(st) = fsops::lstat(&p)? else {
                continue;
            };
            match st.kind {
                Kind::Symlink => {
                    // The link's own owner (lchown); its mode cannot change.
                    self.attr_changes(&p, &st, changes);
                    if self.follow {
                        if let Some(tst) = fsops::stat(&p)? {
                            let real = Self::real(&p);
                            self.attr_changes(&real, &tst, changes);
                        }
                    }
                }
                Kind::Dir => {
                    self.attr_changes(&p, &st, changes);
                    self.recurse_plan(&p, changes)?;
                }
                _ => self.attr_changes(&p, &st, changes),
            }
        }
        Ok(())
    }

    /// The link source to report: `src`, or with `follow` the current target of the link.
    fn link_src(&self, path: &Path) -> Result<Option<String>, ModuleError> {
        if let Some(s) = &self.src {
            return Ok(Some(s.clone()));
        }
        if self.follow && fsops::stat(path)?.is_some() {
            if let Ok(t) = std::fs::read_link(path) {
                return Ok(Some(t.display().to_string()));
            }
        }
        Ok(None)
    }

    fn plan_link(
        &self,
        path: &Path,
        cur: Option<Stat>,
        changes: &mut Vec<Change>,
    ) -> Result<(), ModuleError> {
        let p = path.display();
        let prev = cur.map(|s| s.ansible_state()).unwrap_or("absent");
        let src = self.link_src(path)?;
        let base = if cur.is_some_and(|s| s.kind == Kind::Dir) {
            path.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new("")).to_path_buf()
        };
        let absrc = src.as_ref().map(|s| base.join(s));
        if let (false, Some(abs)) = (self.force, &absrc) {
            if fsops::stat(abs)?.is_none() {
                return Err(fail(format!(
                    "src file does not exist, use 'force=yes' if you really want to create the \
                     link: {}",
                    abs.display()
                )));
            }
        }
        match prev {
            "directory" if !self.force => {
                return Err(fail(format!(
                    "refusing to convert from directory to symlink for {p}"
                )))
            }
            "directory" if std::fs::read_dir(path)?.next().is_some() => {
                return Err(fail(format!(
                    "the directory {p} is not empty, refusing to convert it"
                )))
            }
            "file" | "hard" if !self.force => {
                return Err(fail(format!(
                    "refusing to convert from {prev} to symlink for {p}"
                )))
            }
            _ => {}
        }
        let Some(src) = src else {
            if prev != "link" {
                return Err(fail(
                    "src is required for creating new symlinks".to_string(),
                ));
            }
            return Ok(());
        };
        let needs_link = match prev {
            "link" => std::fs::read_link(path)?.as_os_str() != std::ffi::OsStr::new(&src),
            _ => true,
        };
        if needs_link {
            changes.push(Change::Symlink {
                path: path.to_path_buf(),
                target: src.clone(),
                replace: prev != "absent",
            });
        }
        // Attributes: with `follow`, on the link's (future) target when it exists; without,
        // the link's own owner.
        if self.follow {
            if let Some(abs) = &absrc {
                if let Some(st) = fsops::stat(abs)? {
                    let real = Self::real(abs);
                    self.attr_changes(&real, &st, changes);
                }
            }
        } else if let (false, Some(st)) = (needs_link, cur) {
            self.attr_changes(path, &st, changes);
        } else if needs_link && (self.uid.is_some() || self.gid.is_some()) {
            // The new link is owned by us: chown it after creation.
            let me = (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            );
            let to = (self.uid.unwrap_or(me.0), self.gid.unwrap_or(me.1));
            if to != me {
                changes.push(Change::SetOwner {
                    path: path.to_path_buf(),
                    from: me,
                    to,
                });
            }
        }
        Ok(())
    }

    fn plan_hard(
        &self,
        path: &Path,
        cur: Option<Stat>,
        changes: &mut Vec<Change>,
    ) -> Result<(), ModuleError> {
        let prev = cur.map(|s| s.ansible_state()).unwrap_or("absent");
        let Some(src) = &self.src else {
            if prev != "hard" {
                return Err(fail(
                    "src is required for creating new hardlinks".to_string(),
                ));
            }
            if let Some(st) = cur {
                self.attr_changes(path, &st, changes);
            }
            return Ok(());
        };
        let Some(src_st) = fsops::stat(Path::new(src))? else {
            return Err(fail("src does not exist".to_string()));
        };
        let replace = match prev {
            "absent" => Some(false),
            "link" => Some(true),
            "hard" => {
                let st = cur.expect("exists");
                if (st.ino, st.dev) != (src_st.ino, src_st.dev) {
                    if !self.force {
                        return Err(fail(
                            "Cannot link, different hard link exists at destination".to_string(),
                        ));
                    }
                    Some(true)
                } else {
                    None
                }
            }
            "file" => {
                if !self.force {
                    return Err(fail("Cannot link, file exists at destination".to_string()));
                }
                Some(true)
            }
            _ => {
                if !self.force {
                    return Err(fail(
                        "Cannot link: different hard link exists at destination".to_string(),
                    ));
                }
                Some(true)
            }
        };
        if let Some(replace) = replace {
            changes.push(Change::HardLink {
                path: path.to_path_buf(),
                target: PathBuf::from(src),
                replace,
            });
            // Same inode as src after linking.
            self.attr_changes(
                path,
                &Stat {
                    kind: Kind::File,
                    ..src_st
                },
                changes,
            );
        } else if let Some(st) = cur {
            self.attr_changes(path, &st, changes);
        }
        Ok(())
    }
}

fn touch(path: &Path) -> Change {
    Change::Touch {
        path: path.to_path_buf(),
        create: false,
        attrs: Attrs::default(),
    }
}

impl Resource for FileResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let (changes, mut outcome, path) = self.plan()?;
        if changes.is_empty() {
            if let Some(st) = fsops::lstat(&path)? {
                fsops::path_facts(&mut outcome, &st, self.host.ids());
            } else {
                outcome = outcome.with("state", "absent");
            }
        }
        Ok(Check {
            changes,
            outcome,
            path: Some(path),
        })
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        fsops::apply_all(&check.changes)?;
        let mut outcome = check.outcome;
        if let Some(path) = &check.path {
            fsops::path_facts_at(&mut outcome, path, self.host.ids());
        }
        Ok(outcome)
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.path.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn directory_with_symbolic_mode_and_recurse() {
        let h = Harness::new();
        let args = [
            ("path", v(&h.hs("a/b"))),
            ("state", v("directory")),
            ("mode", v("u=rwX,g=rX,o=")),
        ];
        assert_eq!(h.changes(&FileModule, &args).len(), 1);
        assert!(!h.h("a").exists());
        assert!(h.run(&FileModule, &args).unwrap().0);
        assert_eq!(mode_of(&h.h("a/b")), 0o750);
        assert_eq!(mode_of(&h.h("a")), 0o750);
        assert!(h.changes(&FileModule, &args).is_empty());
        std::fs::write(h.h("a/b/f"), "x").unwrap();
        std::fs::set_permissions(h.h("a/b/f"), std::fs::Permissions::from_mode(0o666)).unwrap();
        let rec = [
            ("path", v(&h.hs("a"))),
            ("state", v("directory")),
            ("mode", v("u=rwX,g=rX,o=")),
            ("recurse", v("yes")),
        ];
        assert!(h.run(&FileModule, &rec).unwrap().0);
        assert_eq!(mode_of(&h.h("a/b/f")), 0o640);
        assert!(h.changes(&FileModule, &rec).is_empty());
        // An existing file where a directory is wanted.
        let e = h
            .run(
                &FileModule,
                &[("path", v(&h.hs("a/b/f"))), ("state", v("directory"))],
            )
            .unwrap_err();
        assert!(e.0.ends_with("already exists as a file"), "{e}");
    }

    #[test]
    fn default_state_and_absent() {
        let h = Harness::new();
        let e = h
            .run(
                &FileModule,
                &[("path", v(&h.hs("nope"))), ("mode", v("0600"))],
            )
            .unwrap_err();
        assert_eq!(
            e.0,
            format!("file ({}) is absent, cannot continue", h.hs("nope"))
        );
        std::fs::write(h.h("f"), "x").unwrap();
        let args = [("path", v(&h.hs("f"))), ("mode", v("0600"))];
        assert!(h.run(&FileModule, &args).unwrap().0);
        assert_eq!(mode_of(&h.h("f")), 0o600);
        assert!(h.changes(&FileModule, &args).is_empty());
        let args = [("path", v(&h.hs("f"))), ("state", v("absent"))];
        assert!(h.run(&FileModule, &args).unwrap().0);
        assert!(!h.h("f").exists());
        assert!(!h.run(&FileModule, &args).unwrap().0);
    }

    #[test]
    fn links_and_force() {
        let h = Harness::new();
        std::fs::write(h.h("t"), "x").unwrap();
        let args = [
            ("path", v(&h.hs("l"))),
            ("src", v("t")),
            ("state", v("link")),
        ];
        assert!(h.run(&FileModule, &args).unwrap().0);
        assert_eq!(std::fs::read_link(h.h("l")).unwrap(), Path::new("t"));
        assert!(h.changes(&FileModule, &args).is_empty());
        // Missing src without force.
        let e = h
            .run(
                &FileModule,
                &[
                    ("path", v(&h.hs("m"))),
                    ("src", v("missing")),
                    ("state", v("link")),
                ],
            )
            .unwrap_err();
        assert!(e.0.starts_with("src file does not exist"), "{e}");
        // A file in the way needs force.
        std::fs::write(h.h("f"), "x").unwrap();
        let args = [
            ("path", v(&h.hs("f"))),
            ("src", v("t")),
            ("state", v("link")),
        ];
        assert!(h
            .run(&FileModule, &args)
            .unwrap_err()
            .0
            .starts_with("refusing to convert from file"));
        let args = [
            ("path", v(&h.hs("f"))),
            ("src", v("t")),
            ("state", v("link")),
            ("force", v("yes")),
        ];
        assert!(h.run(&FileModule, &args).unwrap().0);
        assert!(std::fs::symlink_metadata(h.h("f"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(h.changes(&FileModule, &args).is_empty());
        // Hard link.
        let args = [
            ("path", v(&h.hs("hl"))),
            ("src", v(&h.hs("t"))),
            ("state", v("hard")),
        ];
        assert!(h.run(&FileModule, &args).unwrap().0);
        assert!(h.changes(&FileModule, &args).is_empty());
    }

    #[test]
    fn touch_idempotent_only_with_preserve() {
        let h = Harness::new();
        let args = [
            ("path", v(&h.hs("t"))),
            ("state", v("touch")),
            ("mode", v("0600")),
        ];
        assert!(h.run(&FileModule, &args).unwrap().0);
        assert_eq!(mode_of(&h.h("t")), 0o600);
        // Changed on every run with the default times.
        assert!(h.run(&FileModule, &args).unwrap().0);
        let args = [
            ("path", v(&h.hs("t"))),
            ("state", v("touch")),
            ("mode", v("0600")),
            ("access_time", v("preserve")),
            ("modification_time", v("preserve")),
        ];
        assert!(!h.run(&FileModule, &args).unwrap().0);
    }

    #[test]
    fn follow_and_nofollow_on_symlinks() {
        let h = Harness::new();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("t");
        std::fs::write(&target, "x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&target, h.h("l")).unwrap();
        // follow: no never touches the target.
        let args = [
            ("path", v(&h.hs("l"))),
            ("mode", v("0600")),
            ("follow", v("no")),
        ];
        h.run(&FileModule, &args).unwrap();
        assert_eq!(mode_of(&target), 0o644);
        // follow (the default) manages the target, as Ansible does.
        let args = [
            ("path", v(&h.hs("l"))),
            ("state", v("file")),
            ("mode", v("0600")),
        ];
        assert!(h.run(&FileModule, &args).unwrap().0);
        assert_eq!(mode_of(&target), 0o600);
    }
}
