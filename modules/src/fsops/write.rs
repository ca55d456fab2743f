//! Writing a whole file atomically (temporary file in the same directory, created with its
//! final owner and mode, fsynced, renamed over the old path), with Ansible's backup files.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, OFlags};

use super::stat::{cname, fstat, is_absent_io, open_at, open_parent, stat_at, Kind};
use super::validate::run_validate;
use crate::resource::{Attrs, ModuleError};

/// What applying a change produced beyond the change itself.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The backup made before a file was replaced.
    pub backup_file: Option<PathBuf>,
}

/// A fresh name for a temporary entry next to `name` (hidden, unique by pid and 64 random
/// bits; created with `O_EXCL` or an `*at` call that fails on an existing name).
pub(super) fn temp_name(name: &CStr) -> CString {
    let r = fastrand::u64(..);
    let base = String::from_utf8_lossy(name.to_bytes());
    // Keep the name short enough for NAME_MAX whatever the base is.
    let base: String = base.chars().take(150).collect();
    CString::new(format!(".{base}.{}.{r:016x}.tmp", std::process::id()))
        .expect("no NUL in a temp name")
}

/// Ansible's `backup_local` name: `path.<pid>.<YYYY-MM-DD@HH:MM:SS>~`, local time.
pub fn backup_name(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{}.{}", std::process::id(), local_timestamp()));
    PathBuf::from(s)
}

/// Now in the system's time zone (`TZ`, else `/etc/localtime`), as `backup_local` writes it.
fn local_timestamp() -> String {
    jiff::Zoned::now()
        .strftime("%Y-%m-%d@%H:%M:%S~")
        .to_string()
}

/// Keeps the regular file `name` (in `dir`) as its backup, with its content, mode, owner and
/// times: a hard link to the old inode, which the following rename leaves alone. Falls back to a
/// copy where hard links are not possible.
fn backup_at(dir: &OwnedFd, path: &Path, name: &CStr) -> io::Result<PathBuf> {
    let dest = backup_name(path);
    let dest_name = cname(dest.file_name().unwrap_or_default())?;
    if rustix::fs::linkat(dir, name, dir, &dest_name, AtFlags::empty()).is_ok() {
        return Ok(dest);
    }
    // Copy with attributes preserved.
    let src = open_at(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW, 0)?;
    let st = fstat(&src)?;
    let out = open_at(
        dir,
        &dest_name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
        0o600,
    )?;
    let mut out = File::from(out);
    let _ = std::os::unix::fs::fchown(&out, Some(st.uid), Some(st.gid));
    out.set_permissions(PermissionsExt::from_mode(st.mode))?;
    io::copy(&mut File::from(src), &mut out)?;
    out.sync_all()?;
    Ok(dest)
}

/// Removes the temporary entry `tmp` after a failure (best effort: the failure is what the
/// caller reports).
pub(super) fn discard(dir: impl AsFd, tmp: &CStr) {
    let _ = rustix::fs::unlinkat(dir, tmp, AtFlags::empty());
}

/// Writes `content` to `path` atomically (see the module docs). Attributes not given are kept
/// from the file being replaced, or are the defaults for a new file (mode `0666 & ~umask`, the
/// process's owner), as Ansible's `atomic_move`.
///
/// A symlink at `path` is *replaced* by the regular file, never written through: this is what
/// Ansible's `copy` does with `follow: no` (its default), and the only safe choice here (a
/// module that wants to write through a link resolves it first, because the task said so).
pub fn write_file(
    path: &Path,
    content: &[u8],
    attrs: &Attrs,
    backup: bool,
    validate: Option<&str>,
) -> Result<Applied, ModuleError> {
    let err = |e: io::Error| ModuleError::new(format!("Failed to write {}: {e}", path.display()));
    let (dir, name) = open_parent(path).map_err(|e| {
        if is_absent_io(&e) {
            ModuleError::new(format!(
                "Destination directory {} does not exist",
                path.parent().unwrap_or(Path::new(".")).display()
            ))
        } else {
            err(e)
        }
    })?;
    let existing = stat_at(&dir, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(err)?;
    let old_file = existing.filter(|st| st.kind == Kind::File);
    if existing.is_some_and(|st| st.kind == Kind::Dir) {
        return Err(ModuleError::new(format!(
            "{} is a directory, cannot replace it with a file",
            path.display()
        )));
    }
    let mode = attrs
        .mode
        .or(old_file.map(|s| s.mode))
        .unwrap_or(0o666 & !crate::mode::umask());
    let uid = attrs.uid.or(old_file.map(|s| s.uid));
    let gid = attrs.gid.or(old_file.map(|s| s.gid));

    let tmp = temp_name(&name);
    let fd = open_at(
        &dir,
        &tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
        0o600,
    )
    .map_err(err)?;
    let result = (|| -> Result<(), ModuleError> {
        let mut f = File::from(fd);
        if uid.is_some() || gid.is_some() {
            let current_uid = nix::unistd::geteuid().as_raw();
            // Only root may give a file away; keeping one's own uid is always allowed.
            if uid.is_some_and(|u| u != current_uid) || gid.is_some() {
                std::os::unix::fs::fchown(&f, uid, gid).map_err(|e| {
                    ModuleError::new(format!("chown failed on {}: {e}", path.display()))
                })?;
            }
        }
        // After the chown, which clears setuid/setgid bits.
        f.set_permissions(PermissionsExt::from_mode(mode))
            .map_err(err)?;
        f.write_all(content).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        if let Some(cmd) = validate {
            let mut tmp_path = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            tmp_path.push(OsStr::from_bytes(tmp.as_bytes()));
            run_validate(cmd, &tmp_path)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        discard(&dir, &tmp);
        return Err(e);
    }
    let mut applied = Applied::default();
    if backup && old_file.is_some() {
        match backup_at(&dir, path, &name) {
            Ok(b) => applied.backup_file = Some(b),
            Err(e) => {
                discard(&dir, &tmp);
                return Err(ModuleError::new(format!(
                    "Could not make backup of {}: {e}",
                    path.display()
                )));
            }
        }
    }
    if let Err(e) = rustix::fs::renameat(&dir, &tmp, &dir, &name) {
        discard(&dir, &tmp);
        return Err(err(e.into()));
    }
    let _ = rustix::fs::fsync(&dir);
    Ok(applied)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::fsops::{apply, lstat, read_current, Current};
    use crate::resource::Change;
    use std::sync::Arc;

    pub(crate) fn write_change(path: &Path, content: &str, attrs: Attrs, backup: bool) -> Change {
        Change::WriteFile {
            path: path.to_path_buf(),
            content: Arc::from(content.as_bytes()),
            before: None,
            attrs,
            backup,
            validate: None,
        }
    }

    #[test]
    fn atomic_write_sets_mode_and_keeps_old_attrs() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let a = Attrs {
            mode: Some(0o640),
            ..Attrs::default()
        };
        apply(&write_change(&p, "one", a, false)).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one");
        assert_eq!(lstat(&p).unwrap().unwrap().mode, 0o640);
        // No mode given: the old file's mode is kept.
        apply(&write_change(&p, "two", Attrs::default(), false)).unwrap();
        assert_eq!(lstat(&p).unwrap().unwrap().mode, 0o640);
        // New file, no mode: 0666 & ~umask.
        let q = d.path().join("g");
        apply(&write_change(&q, "x", Attrs::default(), false)).unwrap();
        assert_eq!(
            lstat(&q).unwrap().unwrap().mode,
            0o666 & !crate::mode::umask()
        );
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn write_replaces_a_symlink_never_writes_through() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("secret");
        std::fs::write(&target, "keep").unwrap();
        let p = d.path().join("link");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert!(
            matches!(read_current(&p).unwrap(), Current::Other(st) if st.kind == Kind::Symlink)
        );
        apply(&write_change(&p, "new", Attrs::default(), false)).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(lstat(&p).unwrap().unwrap().kind, Kind::File);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
    }

    #[test]
    fn backup_keeps_old_content_with_ansible_name() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("conf");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let a = apply(&write_change(&p, "new", Attrs::default(), true)).unwrap();
        let b = a.backup_file.unwrap();
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "old");
        assert_eq!(lstat(&b).unwrap().unwrap().mode, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        let name = b.file_name().unwrap().to_string_lossy().into_owned();
        let re = regex::Regex::new(r"^conf\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$").unwrap();
        assert!(re.is_match(&name), "{name}");
    }

    #[test]
    fn failed_validation_leaves_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("conf");
        std::fs::write(&p, "old").unwrap();
        let e = write_file(&p, b"bad", &Attrs::default(), true, Some("false %s")).unwrap_err();
        assert!(e.0.starts_with("failed to validate"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        let e = write_file(&p, b"bad", &Attrs::default(), false, Some("true")).unwrap_err();
        assert!(e.0.contains("validate must contain %s"), "{e}");
        write_file(
            &p,
            b"good",
            &Attrs::default(),
            false,
            Some("grep -q good %s"),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "good");
    }

    #[test]
    fn temp_names_are_hidden_unique_and_short() {
        let long = CString::new("x".repeat(255)).unwrap();
        let a = temp_name(&long);
        assert!(a.to_bytes().len() <= 255, "{a:?}");
        assert!(a.to_bytes().starts_with(b".xxx"));
        assert_ne!(temp_name(&long), a);
    }
}
