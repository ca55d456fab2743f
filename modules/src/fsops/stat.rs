//! What is at a path: `lstat`/`stat`, a regular file's bytes read without following a symlink,
//! and the descriptor helpers the writing side shares (`open_parent`).

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

/// What is at a path (from `lstat`: a symlink is reported as such).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// The parts of `stat` the modules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    /// Permission bits, special bits included (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u64,
    pub ino: u64,
    pub dev: u64,
}

impl Stat {
    // The field types of `stat` differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    fn from_sys(st: &rustix::fs::Stat) -> Stat {
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        };
        Stat {
            kind,
            mode: st.st_mode as u32 & 0o7777,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            size: st.st_size as u64,
            nlink: st.st_nlink as u64,
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
        }
    }

    /// Ansible's `get_state`: link, directory, hard (a file with several links), file.
    pub fn ansible_state(&self) -> &'static str {
        match self.kind {
            Kind::Symlink => "link",
            Kind::Dir => "directory",
            _ if self.nlink > 1 => "hard",
            _ => "file",
        }
    }
}

/// `path` as a C string (a NUL inside is refused with a message saying so).
pub(super) fn cstr(path: &Path) -> io::Result<CString> {
    cname(path.as_os_str())
}

pub(super) fn cname(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// True for the errors that mean "nothing there" (a missing component, or a file where a
/// directory was expected).
pub(super) fn is_absent(e: Errno) -> bool {
    e == Errno::NOENT || e == Errno::NOTDIR
}

/// [`is_absent`] for an error already converted to `io::Error`.
pub(super) fn is_absent_io(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|n| n == Errno::NOENT.raw_os_error() || n == Errno::NOTDIR.raw_os_error())
}

/// `fstatat` in `dir`; `None` when nothing is there.
pub(super) fn stat_at(dir: impl AsFd, name: &CStr, flags: AtFlags) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, flags) {
        Ok(st) => Ok(Some(Stat::from_sys(&st))),
        Err(e) if is_absent(e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `lstat`: what is at `path` itself, `None` when nothing.
pub fn lstat(path: &Path) -> io::Result<Option<Stat>> {
    stat_at(CWD, &cstr(path)?, AtFlags::SYMLINK_NOFOLLOW)
}

/// `stat` (follows symlinks), `None` when nothing or a dangling link.
pub fn stat(path: &Path) -> io::Result<Option<Stat>> {
    match stat_at(CWD, &cstr(path)?, AtFlags::empty()) {
        Err(e) if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => Ok(None),
        other => other,
    }
}

pub(super) fn fstat(fd: impl AsFd) -> io::Result<Stat> {
    Ok(Stat::from_sys(&rustix::fs::fstat(fd)?))
}

/// `openat` with `O_CLOEXEC`; `mode` is used when the call creates the file.
pub(super) fn open_at(
    dir: impl AsFd,
    name: &CStr,
    flags: OFlags,
    mode: u32,
) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        flags | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(io::Error::from)
}

/// The parent directory (opened) and the final name of `path`.
pub(super) fn open_parent(path: &Path) -> io::Result<(OwnedFd, CString)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fd = open_at(CWD, &cstr(parent)?, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
    Ok((fd, cname(name)?))
}

/// The current state of a path a module writes whole files to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    Absent,
    /// A regular file and its bytes.
    File(Stat, Vec<u8>),
    /// Something else (directory, symlink — never followed —, device...).
    Other(Stat),
}

impl Current {
    pub fn stat(&self) -> Option<&Stat> {
        match self {
            Current::Absent => None,
            Current::File(st, _) | Current::Other(st) => Some(st),
        }
    }
}

/// Reads a regular file without following a symlink at `path`: one open, one fstat, one read.
pub fn read_current(path: &Path) -> io::Result<Current> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    match rustix::fs::openat(
        CWD,
        cstr(path)?.as_c_str(),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => {
            let st = fstat(&fd)?;
            if st.kind != Kind::File {
                return Ok(Current::Other(st));
            }
            let mut f = File::from(fd);
            let mut buf = Vec::with_capacity(st.size as usize);
            f.read_to_end(&mut buf)?;
            Ok(Current::File(st, buf))
        }
        Err(e) if is_absent(e) => Ok(Current::Absent),
        // O_NOFOLLOW on a symlink; opening a fifo/socket/dir may also fail: lstat tells.
        Err(e) => match lstat(path)? {
            None => Ok(Current::Absent),
            Some(st) if st.kind != Kind::File => Ok(Current::Other(st)),
            Some(_) => Err(e.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lstat_sees_the_link_stat_its_target() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "abc").unwrap();
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert_eq!(lstat(&l).unwrap().unwrap().kind, Kind::Symlink);
        let st = stat(&l).unwrap().unwrap();
        assert_eq!((st.kind, st.size, st.nlink), (Kind::File, 3, 1));
        assert_eq!(st.ansible_state(), "file");
        assert!(lstat(&d.path().join("none")).unwrap().is_none());
        // A file where a directory is expected is "nothing there" too.
        assert!(lstat(&f.join("below")).unwrap().is_none());
        // A dangling link: lstat sees it, stat does not.
        let dangling = d.path().join("dangling");
        std::os::unix::fs::symlink(d.path().join("gone"), &dangling).unwrap();
        assert!(stat(&dangling).unwrap().is_none());
        assert!(lstat(&dangling).unwrap().is_some());
        let e = lstat(Path::new("a\0b")).unwrap_err();
        assert_eq!(e.to_string(), "path contains a NUL byte");
    }

    #[test]
    fn read_current_reads_files_not_links_or_dirs() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "abc").unwrap();
        match read_current(&f).unwrap() {
            Current::File(st, bytes) => {
                assert_eq!(bytes, b"abc");
                assert_eq!(st.kind, Kind::File);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(read_current(d.path()).unwrap(), Current::Other(st) if st.kind == Kind::Dir)
        );
        assert_eq!(
            read_current(&d.path().join("none")).unwrap(),
            Current::Absent
        );
    }
}
