//! Performing the file [`Change`]s a module planned: directories, links, removal, owner, mode
//! and times; whole files go through [`write_file`].

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{AtFlags, OFlags, Timespec, Timestamps, CWD, UTIME_NOW};
use rustix::io::Errno;

use super::stat::{cstr, fstat, lstat, open_at, open_parent, stat, stat_at, Kind, Stat};
use super::write::{discard, temp_name, write_file, Applied};
use crate::resource::{Attrs, Change, ModuleError};

/// The owner/mode changes needed to bring `st` to `want` (owner before mode, as Ansible does
/// them: a chown clears setuid/setgid).
pub fn attr_changes(path: &Path, st: &Stat, want: &Attrs) -> Vec<Change> {
    let mut out = Vec::new();
    let uid = want.uid.unwrap_or(st.uid);
    let gid = want.gid.unwrap_or(st.gid);
    if (uid, gid) != (st.uid, st.gid) {
        out.push(Change::SetOwner {
            path: path.to_path_buf(),
            from: (st.uid, st.gid),
            to: (uid, gid),
        });
    }
    // Linux cannot change a symlink's own mode (no lchmod): Ansible leaves it as is too.
    if let Some(mode) = want.mode {
        if mode != st.mode && st.kind != Kind::Symlink {
            out.push(Change::SetMode {
                path: path.to_path_buf(),
                from: st.mode,
                to: mode,
            });
        }
    }
    out
}

/// Performs every file change in order; the backups made are collected.
pub fn apply_all(changes: &[Change]) -> Result<Applied, ModuleError> {
    let mut applied = Applied::default();
    for change in changes {
        let a = apply(change)?;
        if a.backup_file.is_some() {
            applied.backup_file = a.backup_file;
        }
    }
    Ok(applied)
}

/// Performs one file change.
pub fn apply(change: &Change) -> Result<Applied, ModuleError> {
    let ctx = |e: io::Error, what: &str, path: &Path| {
        ModuleError::new(format!("{what} {}: {e}", path.display()))
    };
    match change {
        Change::WriteFile {
            path,
            content,
            attrs,
            backup,
            validate,
            ..
        } => return write_file(path, content, attrs, *backup, validate.as_deref()),
        Change::CreateDir { path, attrs } => create_dirs(path, attrs).map_err(|e| {
            ModuleError::new(format!(
                "There was an issue creating {} as requested: {e}",
                path.display()
            ))
        })?,
        Change::Symlink {
            path,
            target,
            replace,
        } => symlink(path, target, *replace).map_err(|e| ctx(e, "Error while linking", path))?,
        Change::HardLink {
            path,
            target,
            replace,
        } => hard_link(path, target, *replace).map_err(|e| ctx(e, "Error while linking", path))?,
        Change::Remove { path } => remove(path).map_err(|e| ctx(e, "cannot remove", path))?,
        Change::SetMode { path, to, .. } => {
            set_mode(path, *to).map_err(|e| ctx(e, "chmod failed on", path))?
        }
        Change::SetOwner { path, to, .. } => {
            set_owner(path, to.0, to.1).map_err(|e| ctx(e, "chown failed on", path))?
        }
        Change::Touch {
            path,
            create,
            attrs,
        } => touch(path, *create, attrs).map_err(|e| ctx(e, "Error, could not touch", path))?,
        other @ (Change::Run { .. }
        | Change::Exec { .. }
        | Change::Package { .. }
        | Change::Unit { .. }
        | Change::Account { .. }) => {
            return Err(ModuleError::new(format!(
                "internal error: `{}` is not a file change",
                other.describe()
            )))
        }
    }
    Ok(Applied::default())
}

/// Gives the open file `f` the owner and mode in `attrs` (owner first: a chown clears the
/// setuid/setgid bits).
fn set_attrs(f: &File, attrs: &Attrs) -> io::Result<()> {
    if attrs.uid.is_some() || attrs.gid.is_some() {
        std::os::unix::fs::fchown(f, attrs.uid, attrs.gid)?;
    }
    if let Some(m) = attrs.mode {
        f.set_permissions(PermissionsExt::from_mode(m))?;
    }
    Ok(())
}

/// `mkdir -p`, giving each directory it creates `attrs` (as Ansible's file module does for
/// `state: directory`). Existing components are left alone.
pub fn create_dirs(path: &Path, attrs: &Attrs) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut p = path;
    loop {
        match stat(p)? {
            Some(st) if st.kind == Kind::Dir => break,
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", p.display()),
                ))
            }
            None => {
                if lstat(p)?.is_some() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} is a dangling symlink", p.display()),
                    ));
                }
                missing.push(p);
            }
        }
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => break,
        }
    }
    for dir in missing.into_iter().rev() {
        let (dirfd, name) = open_parent(dir)?;
        if let Err(e) = rustix::fs::mkdirat(&dirfd, &name, rustix::fs::Mode::from_raw_mode(0o777)) {
            // Made by someone else meanwhile: fine, as long as it is a directory.
            if e == Errno::EXIST && stat(dir)?.is_some_and(|s| s.kind == Kind::Dir) {
                continue;
            }
            return Err(e.into());
        }
        if attrs.mode.is_some() || attrs.uid.is_some() || attrs.gid.is_some() {
            let fd = open_at(
                &dirfd,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                0,
            )?;
            set_attrs(&File::from(fd), attrs)?;
        }
    }
    Ok(())
}

/// Creates the symlink `path -> target`; with `replace`, atomically over what is there (an
/// empty directory is removed first, as Ansible does with `force`).
pub fn symlink(path: &Path, target: &str, replace: bool) -> io::Result<()> {
    let (dirfd, name) = open_parent(path)?;
    let target = std::ffi::CString::new(target)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in link target"))?;
    let existing = stat_at(&dirfd, &name, AtFlags::SYMLINK_NOFOLLOW)?;
    if existing.is_none() || !replace {
        rustix::fs::symlinkat(&target, &dirfd, &name)?;
        return Ok(());
    }
    if existing.is_some_and(|s| s.kind == Kind::Dir) {
        rustix::fs::unlinkat(&dirfd, &name, AtFlags::REMOVEDIR)?;
    }
    let tmp = temp_name(&name);
    rustix::fs::symlinkat(&target, &dirfd, &tmp)?;
    rename_or_discard(&dirfd, &tmp, &name)
}

fn rename_or_discard(dirfd: &OwnedFd, tmp: &CStr, name: &CStr) -> io::Result<()> {
    if let Err(e) = rustix::fs::renameat(dirfd, tmp, dirfd, name) {
        discard(dirfd, tmp);
        return Err(e.into());
    }
    Ok(())
}

/// Creates the hard link `path` to `target` (never following a symlink at `target`: the link
/// is to what is there); with `replace`, atomically over what is there.
pub fn hard_link(path: &Path, target: &Path, replace: bool) -> io::Result<()> {
    let (dirfd, name) = open_parent(path)?;
    let target = cstr(target)?;
    let existing = stat_at(&dirfd, &name, AtFlags::SYMLINK_NOFOLLOW)?;
    if existing.is_none() || !replace {
        rustix::fs::linkat(CWD, &target, &dirfd, &name, AtFlags::empty())?;
        return Ok(());
    }
    if existing.is_some_and(|s| s.kind == Kind::Dir) {
        rustix::fs::unlinkat(&dirfd, &name, AtFlags::REMOVEDIR)?;
    }
    let tmp = temp_name(&name);
    rustix::fs::linkat(CWD, &target, &dirfd, &tmp, AtFlags::empty())?;
    rename_or_discard(&dirfd, &tmp, &name)
}

/// Removes a file or link, or a directory recursively (symlinks inside are removed, never
/// followed). Nothing there is not an error.
pub fn remove(path: &Path) -> io::Result<()> {
    match lstat(path)? {
        None => Ok(()),
        Some(st) if st.kind == Kind::Dir => std::fs::remove_dir_all(path),
        Some(_) => match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
    }
}

/// Sets the mode of what is at `path` without following a symlink there (Linux cannot change a
/// link's own mode: a symlink is left alone, as Ansible leaves it).
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    let fd = open_at(CWD, &cstr(path)?, OFlags::PATH | OFlags::NOFOLLOW, 0)?;
    if fstat(&fd)?.kind == Kind::Symlink {
        return Ok(());
    }
    // chmod through the O_PATH descriptor (fchmod refuses O_PATH descriptors): works for files
    // we cannot open for reading, and cannot be redirected by a swapped path.
    let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    match rustix::fs::chmod(proc_path.as_str(), rustix::fs::Mode::from_raw_mode(mode)) {
        Ok(()) => Ok(()),
        // No /proc: the O_NOFOLLOW open above checked the last component.
        Err(Errno::NOENT) => std::fs::set_permissions(path, PermissionsExt::from_mode(mode)),
        Err(e) => Err(e.into()),
    }
}

/// `lchown`: the owner of what is at `path`, a symlink itself when it is one.
pub fn set_owner(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// Creates `path` if missing (with `attrs`) and/or sets its times to now (on a symlink itself,
/// never its target).
pub fn touch(path: &Path, create: bool, attrs: &Attrs) -> io::Result<()> {
    let (dirfd, name) = open_parent(path)?;
    if create {
        let fd = open_at(
            &dirfd,
            &name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK,
            0o666,
        )?;
        return set_attrs(&File::from(fd), attrs);
    }
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_NOW,
    };
    let times = Timestamps {
        last_access: now,
        last_modification: now,
    };
    rustix::fs::utimensat(&dirfd, &name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_dirs_remove_touch_and_modes() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/b/c");
        create_dirs(
            &dir,
            &Attrs {
                mode: Some(0o750),
                ..Attrs::default()
            },
        )
        .unwrap();
        assert_eq!(lstat(&dir).unwrap().unwrap().mode, 0o750);
        assert_eq!(lstat(&d.path().join("a")).unwrap().unwrap().mode, 0o750);
        let l = d.path().join("l");
        symlink(&l, "a/b", false).unwrap();
        symlink(&l, "a", true).unwrap();
        assert_eq!(std::fs::read_link(&l).unwrap(), Path::new("a"));
        // set_mode on a symlink leaves the target alone.
        set_mode(&l, 0o700).unwrap();
        assert_eq!(lstat(&d.path().join("a")).unwrap().unwrap().mode, 0o750);
        let f = d.path().join("f");
        touch(
            &f,
            true,
            &Attrs {
                mode: Some(0o600),
                ..Attrs::default()
            },
        )
        .unwrap();
        assert_eq!(lstat(&f).unwrap().unwrap().mode, 0o600);
        touch(&f, false, &Attrs::default()).unwrap();
        let h = d.path().join("h");
        hard_link(&h, &f, false).unwrap();
        assert_eq!(lstat(&h).unwrap().unwrap().ansible_state(), "hard");
        set_mode(&f, 0o644).unwrap();
        assert_eq!(lstat(&h).unwrap().unwrap().mode, 0o644);
        remove(&d.path().join("a")).unwrap();
        remove(&l).unwrap();
        assert!(lstat(&l).unwrap().is_none());
        assert!(lstat(&d.path().join("a")).unwrap().is_none());
    }

    #[test]
    fn touch_sets_times_on_a_link_itself_never_its_target() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let l = d.path().join("l");
        std::fs::write(&f, "x").unwrap();
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        touch(&l, false, &Attrs::default()).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), old);
        assert!(std::fs::symlink_metadata(&l).unwrap().modified().unwrap() > old);
        touch(&f, false, &Attrs::default()).unwrap();
        assert!(std::fs::metadata(&f).unwrap().modified().unwrap() > old);
        // Creating over an existing file keeps its content.
        touch(&f, true, &Attrs::default()).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "x");
        let e = touch(&d.path().join("none/f"), false, &Attrs::default()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn replacing_links_and_refusals() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "x").unwrap();
        // Without replace an existing entry is an error; with it, an empty directory goes.
        let l = d.path().join("l");
        std::fs::create_dir(&l).unwrap();
        assert!(symlink(&l, "f", false).is_err());
        symlink(&l, "f", true).unwrap();
        assert_eq!(std::fs::read_link(&l).unwrap(), Path::new("f"));
        // A hard link to a symlink links the symlink itself.
        let h = d.path().join("h");
        hard_link(&h, &l, false).unwrap();
        assert_eq!(lstat(&h).unwrap().unwrap().kind, Kind::Symlink);
        let g = d.path().join("g");
        std::fs::write(&g, "y").unwrap();
        hard_link(&h, &g, true).unwrap();
        assert_eq!(std::fs::read_to_string(&h).unwrap(), "y");
        // No temporary entry left behind.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 4);
        // mkdir -p through a file fails and says why.
        let e = create_dirs(&f.join("sub"), &Attrs::default()).unwrap_err();
        assert!(
            e.to_string().contains("exists and is not a directory"),
            "{e}"
        );
        assert!(apply(&Change::Remove {
            path: d.path().join("none")
        })
        .is_ok());
    }
}
