//! What extracting the members would change, compared member by member with what is on disk
//! as `tar --diff` does for ansible-core's unarchive: a file differs by type, size, content or
//! modification time (re-extracted); mode and owner differences are fixed in place.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::archive::{Body, Member};
use crate::fsops::{self, IdCache, Kind};
use crate::mode::{self, Mode};
use crate::resource::{Attrs, Change, ModuleError};

/// The attributes the task asks for (`mode`, `owner`, `group`), else the archive's.
pub struct Wanted<'a> {
    pub mode: Option<&'a Mode>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub keep_newer: bool,
    /// Running as root: owners come from the archive and modes are exact (GNU tar's
    /// `--same-owner --same-permissions` defaults for root); otherwise the umask applies.
    pub root: bool,
    pub ids: &'a IdCache,
}

/// The changes, and the modification times to give to what gets extracted (after the changes).
#[derive(Debug, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub times: Vec<(PathBuf, i64)>,
}

pub fn plan(dest: &Path, members: &[&Member], want: &Wanted) -> Result<Plan, ModuleError> {
    let mut plan = Plan::default();
    // Paths (re)written by this plan: a hard link to them must be made again.
    let mut rewritten: HashSet<PathBuf> = HashSet::new();
    let mut dirs_made: HashSet<PathBuf> = HashSet::new();
    for m in members.iter().filter(|m| !m.listed_only) {
        let path = if m.path.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(&m.path)
        };
        plan_parents(dest, &path, &mut dirs_made, &mut plan.changes)?;
        let current = fsops::lstat(&path)?;
        let attrs = attrs_for(m, current.as_ref().map(|s| s.mode), want);
        match &m.body {
            Body::File(data) => {
                let meta = std::fs::symlink_metadata(&path).ok();
                if let (true, Some(md)) = (want.keep_newer, &meta) {
                    if md.is_file() && md.mtime() > m.mtime {
                        continue;
                    }
                }
                let same = match (&current, &meta) {
                    (Some(st), Some(md)) if st.kind == Kind::File => {
                        st.size == data.len() as u64
                            && md.mtime() == m.mtime
                            && std::fs::read(&path)?.as_slice() == &data[..]
                    }
                    _ => false,
                };
                if current.as_ref().is_some_and(|s| s.kind == Kind::Dir) {
                    return Err(ModuleError::new(format!(
                        "{} is a directory, the archive has a file there",
                        path.display()
                    )));
                }
                if same {
                    let st = current.as_ref().expect("same implies present");
                    plan.changes.extend(fsops::attr_changes(&path, st, &attrs));
                } else {
                    if current.as_ref().is_some_and(|s| s.kind == Kind::Symlink) {
                        plan.changes.push(Change::Remove { path: path.clone() });
                    }
                    plan.changes.push(Change::WriteFile {
                        path: path.clone(),
                        content: data.clone(),
                        before: None,
                        attrs,
                        backup: false,
                        validate: None,
                    });
                    plan.times.push((path.clone(), m.mtime));
                    rewritten.insert(path);
                }
            }
            Body::Dir => match &current {
                None => {
                    plan.changes.push(Change::CreateDir {
                        path: path.clone(),
                        attrs,
                    });
                    dirs_made.insert(path.clone());
                    plan.times.push((path, m.mtime));
                }
                Some(st) if st.kind == Kind::Dir => {
                    plan.changes.extend(fsops::attr_changes(&path, st, &attrs));
                }
                Some(_) => {
                    return Err(ModuleError::new(format!(
                        "{} exists and is not a directory, the archive has a directory there",
                        path.display()
                    )))
                }
            },
            Body::Symlink(target) => {
                let same = current.as_ref().is_some_and(|s| s.kind == Kind::Symlink)
                    && std::fs::read_link(&path)?.as_os_str() == target.as_str();
                if current.as_ref().is_some_and(|s| s.kind == Kind::Dir) {
                    return Err(ModuleError::new(format!(
                        "{} is a directory, the archive has a link there",
                        path.display()
                    )));
                }
                if !same {
                    plan.changes.push(Change::Symlink {
                        path,
                        target: target.clone(),
                        replace: true,
                    });
                }
            }
            Body::Hardlink(target) => {
                let target = dest.join(target);
                let linked = match (&current, fsops::lstat(&target)?) {
                    (Some(a), Some(b)) => a.ino == b.ino && a.dev == b.dev,
                    _ => false,
                };
                if !linked || rewritten.contains(&target) {
                    plan.changes.push(Change::HardLink {
                        path,
                        target,
                        replace: true,
                    });
                }
            }
        }
    }
    top_folders(dest, members, want, &dirs_made, &mut plan.changes)?;
    Ok(plan)
}

/// `mode`, `owner` and `group` also go to the top folder of every member (ansible-core sets
/// them on `dest/<first component>`), which may be a directory tar created as a parent.
fn top_folders(
    dest: &Path,
    members: &[&Member],
    want: &Wanted,
    made: &HashSet<PathBuf>,
    changes: &mut Vec<Change>,
) -> Result<(), ModuleError> {
    if want.mode.is_none() && want.uid.is_none() && want.gid.is_none() {
        return Ok(());
    }
    let mut seen = HashSet::new();
    for m in members.iter().filter(|m| !m.listed_only) {
        let Some((top, _)) = m.path.split_once('/') else {
            continue;
        };
        if !seen.insert(top.to_string()) || members.iter().any(|o| o.path == top) {
            continue;
        }
        let path = dest.join(top);
        let umask = mode::umask();
        let resolve = |current: u32| Attrs {
            mode: want.mode.map(|md| md.resolve(current, true, umask)),
            uid: want.uid,
            gid: want.gid,
        };
        if made.contains(&path) {
            for c in changes.iter_mut() {
                if let Change::CreateDir { path: p, attrs } = c {
                    if *p == path {
                        *attrs = resolve(0o777 & !umask);
                    }
                }
            }
        } else if let Some(st) = fsops::lstat(&path)?.filter(|s| s.kind == Kind::Dir) {
            changes.extend(fsops::attr_changes(&path, &st, &resolve(st.mode)));
        }
    }
    Ok(())
}

/// Parent directories of `path` (below `dest`) that are missing and not members: created as
/// tar creates them (the umask's mode, the running user). An existing parent that is a link is
/// refused: a member is never written through a link.
fn plan_parents(
    dest: &Path,
    path: &Path,
    made: &mut HashSet<PathBuf>,
    changes: &mut Vec<Change>,
) -> Result<(), ModuleError> {
    let Ok(rel) = path.strip_prefix(dest) else {
        return Ok(());
    };
    let mut at = dest.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        at.push(part);
        if made.contains(&at) {
            continue;
        }
        match fsops::lstat(&at)? {
            Some(st) if st.kind == Kind::Dir => {}
            Some(st) if st.kind == Kind::Symlink => {
                return Err(ModuleError::new(format!(
                    "{} is a link: refused to extract {} through it",
                    at.display(),
                    path.display()
                )))
            }
            Some(_) => {
                return Err(ModuleError::new(format!(
                    "{} exists and is not a directory",
                    at.display()
                )))
            }
            None => {
                changes.push(Change::CreateDir {
                    path: at.clone(),
                    attrs: Attrs::default(),
                });
                made.insert(at.clone());
            }
        }
    }
    Ok(())
}

fn attrs_for(m: &Member, current_mode: Option<u32>, want: &Wanted) -> Attrs {
    let umask = mode::umask();
    let archived = if want.root { m.mode } else { m.mode & !umask };
    let is_dir = m.body == Body::Dir;
    let mode = match want.mode {
        Some(Mode::Preserve) | None => archived,
        Some(md) => md.resolve(current_mode.unwrap_or(archived), is_dir, umask),
    };
    let uid = want.uid.or_else(|| {
        want.root.then(|| {
            (!m.uname.is_empty())
                .then(|| want.ids.uid_for(&m.uname).ok())
                .flatten()
                .unwrap_or(m.uid)
        })
    });
    let gid = want.gid.or_else(|| {
        want.root.then(|| {
            (!m.gname.is_empty())
                .then(|| want.ids.gid_for(&m.gname).ok())
                .flatten()
                .unwrap_or(m.gid)
        })
    });
    let symlink = matches!(m.body, Body::Symlink(_) | Body::Hardlink(_));
    Attrs {
        mode: (!symlink).then_some(mode),
        uid: if symlink { None } else { uid },
        gid: if symlink { None } else { gid },
    }
}

/// Gives what was extracted the archive's modification times (directories last, deepest
/// first, so that writing into them does not move their time again).
pub fn set_times(times: &[(PathBuf, i64)]) -> Result<(), ModuleError> {
    let (mut dirs, files): (Vec<_>, Vec<_>) = times.iter().partition(|(p, _)| p.is_dir());
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, mtime) in files.into_iter().chain(dirs) {
        let t = if *mtime >= 0 {
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(*mtime as u64)
        } else {
            std::time::UNIX_EPOCH
        };
        let f = std::fs::File::open(path)
            .map_err(|e| ModuleError::new(format!("{}: {e}", path.display())))?;
        f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))
            .map_err(|e| ModuleError::new(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}
