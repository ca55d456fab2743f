//! Filesystem operations for the file modules: reading the current state without following
//! symlinks, and performing file [`Change`]s safely.
//!
//! Rules kept everywhere here:
//! - The last component of a managed path is never followed when it is a symlink, unless the
//!   module resolved the link itself because the task asked for it (`follow`). Parent
//!   directories are resolved normally (`/var/run -> /run` is ordinary), but each operation
//!   opens the parent once and works relative to that descriptor (`*at` calls), so the parent
//!   cannot be swapped in the middle of a write.
//! - A file is written atomically: a temporary file is created next to it with `O_EXCL`, given
//!   its final owner and mode before the first byte, written, fsynced and renamed over the old
//!   path. A failure (validation included) leaves the old file untouched.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::libc;

use crate::resource::{Attrs, Change, ModuleError, Outcome};

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
    // The field types of `libc::stat` differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    fn from_libc(st: &libc::stat) -> Stat {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        };
        Stat {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
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

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn cname(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn raw_stat(dirfd: RawFd, name: &CString, flags: libc::c_int) -> io::Result<Option<Stat>> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer, `name` a NUL-terminated string.
    let r = unsafe { libc::fstatat(dirfd, name.as_ptr(), st.as_mut_ptr(), flags) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: fstatat succeeded, so `st` is initialized.
    Ok(Some(Stat::from_libc(unsafe { &st.assume_init() })))
}

/// `lstat`: what is at `path` itself, `None` when nothing.
pub fn lstat(path: &Path) -> io::Result<Option<Stat>> {
    raw_stat(libc::AT_FDCWD, &cstr(path)?, libc::AT_SYMLINK_NOFOLLOW)
}

/// `stat` (follows symlinks), `None` when nothing or a dangling link.
pub fn stat(path: &Path) -> io::Result<Option<Stat>> {
    match raw_stat(libc::AT_FDCWD, &cstr(path)?, 0) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Ok(None),
        other => other,
    }
}

fn fstat(fd: RawFd) -> io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid out-pointer.
    cvt(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded.
    Ok(Stat::from_libc(unsafe { &st.assume_init() }))
}

fn open_raw(dirfd: RawFd, name: &CString, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; the returned descriptor is owned by us.
    let fd = cvt(unsafe {
        libc::openat(
            dirfd,
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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
    let c = cstr(path)?;
    match open_raw(
        libc::AT_FDCWD,
        &c,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    ) {
        Ok(fd) => {
            let st = fstat(fd.as_raw_fd())?;
            if st.kind != Kind::File {
                return Ok(Current::Other(st));
            }
            let mut f = File::from(fd);
            let mut buf = Vec::with_capacity(st.size as usize);
            f.read_to_end(&mut buf)?;
            Ok(Current::File(st, buf))
        }
        Err(e) => match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(Current::Absent),
            // O_NOFOLLOW on a symlink; opening a fifo/socket/dir may also fail: lstat tells.
            _ => match lstat(path)? {
                None => Ok(Current::Absent),
                Some(st) if st.kind != Kind::File => Ok(Current::Other(st)),
                Some(_) => Err(e),
            },
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Owners and groups

static NAMES: Mutex<Option<HashMap<(bool, u32), String>>> = Mutex::new(None);
static IDS: Mutex<Option<HashMap<(bool, String), u32>>> = Mutex::new(None);

/// Forgets cached user/group lookups (call after creating or changing users or groups).
pub fn invalidate_id_cache() {
    *NAMES.lock().unwrap_or_else(|e| e.into_inner()) = None;
    *IDS.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

fn cached_id(group: bool, name: &str) -> Option<u32> {
    let ids = IDS.lock().unwrap_or_else(|e| e.into_inner());
    ids.as_ref()?.get(&(group, name.to_string())).copied()
}

fn cache_id(group: bool, name: &str, id: u32) {
    let mut ids = IDS.lock().unwrap_or_else(|e| e.into_inner());
    ids.get_or_insert_with(HashMap::new)
        .insert((group, name.to_string()), id);
}

/// An `owner` argument as a uid: a user name, or a number (Ansible tries the number first).
pub fn uid_for(owner: &str) -> Result<u32, ModuleError> {
    if let Ok(n) = owner.parse::<u32>() {
        return Ok(n);
    }
    if let Some(id) = cached_id(false, owner) {
        return Ok(id);
    }
    match nix::unistd::User::from_name(owner) {
        Ok(Some(u)) => {
            cache_id(false, owner, u.uid.as_raw());
            Ok(u.uid.as_raw())
        }
        _ => Err(ModuleError::new(format!(
            "chown failed: failed to look up user {owner}"
        ))),
    }
}

/// A `group` argument as a gid.
pub fn gid_for(group: &str) -> Result<u32, ModuleError> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    if let Some(id) = cached_id(true, group) {
        return Ok(id);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => {
            cache_id(true, group, g.gid.as_raw());
            Ok(g.gid.as_raw())
        }
        _ => Err(ModuleError::new(format!(
            "chgrp failed: failed to look up group {group}"
        ))),
    }
}

fn name_of(group: bool, id: u32) -> String {
    {
        let names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = names.as_ref().and_then(|m| m.get(&(group, id))) {
            return n.clone();
        }
    }
    let found = if group {
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(id))
            .ok()
            .flatten()
            .map(|g| g.name)
    } else {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(id))
            .ok()
            .flatten()
            .map(|u| u.name)
    };
    match found {
        Some(n) => {
            let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
            names
                .get_or_insert_with(HashMap::new)
                .insert((group, id), n.clone());
            n
        }
        None => id.to_string(),
    }
}

/// A uid's user name, or the number as text (as Ansible reports `owner`).
pub fn user_name(uid: u32) -> String {
    name_of(false, uid)
}

/// A gid's group name, or the number as text.
pub fn group_name(gid: u32) -> String {
    name_of(true, gid)
}

/// Adds Ansible's path facts (`owner`, `group`, `mode`, `uid`, `gid`, `size`, `state`) for
/// `st` to an outcome, as `add_path_info` does.
pub fn path_facts(out: &mut Outcome, st: &Stat) {
    let data = &mut out.data;
    data.insert("uid".into(), st.uid.into());
    data.insert("gid".into(), st.gid.into());
    data.insert("owner".into(), user_name(st.uid).into());
    data.insert("group".into(), group_name(st.gid).into());
    data.insert("mode".into(), crate::mode::format(st.mode).into());
    let state = match st.kind {
        Kind::Symlink => "link",
        Kind::Dir => "directory",
        _ if st.nlink > 1 => "hard",
        _ => "file",
    };
    data.insert("state".into(), state.into());
    data.insert("size".into(), st.size.into());
}

/// Adds the facts of what now is at `path` (after apply), or `state: absent`.
pub fn path_facts_at(out: &mut Outcome, path: &Path) {
    match lstat(path) {
        Ok(Some(st)) => path_facts(out, &st),
        _ => {
            out.data.insert("state".into(), "absent".into());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Attribute changes a module plans

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

// ---------------------------------------------------------------------------------------------
// Performing changes

/// What applying a change produced beyond the change itself.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The backup made before a file was replaced.
    pub backup_file: Option<PathBuf>,
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
        } => write_file(path, content, attrs, *backup, validate.as_deref()),
        Change::CreateDir { path, attrs } => {
            create_dirs(path, attrs).map_err(|e| {
                ModuleError::new(format!(
                    "There was an issue creating {} as requested: {e}",
                    path.display()
                ))
            })?;
            Ok(Applied::default())
        }
        Change::Symlink {
            path,
            target,
            replace,
        } => {
            symlink(path, target, *replace).map_err(|e| ctx(e, "Error while linking", path))?;
            Ok(Applied::default())
        }
        Change::HardLink {
            path,
            target,
            replace,
        } => {
            hard_link(path, target, *replace).map_err(|e| ctx(e, "Error while linking", path))?;
            Ok(Applied::default())
        }
        Change::Remove { path } => {
            remove(path).map_err(|e| ctx(e, "cannot remove", path))?;
            Ok(Applied::default())
        }
        Change::SetMode { path, to, .. } => {
            set_mode(path, *to).map_err(|e| ctx(e, "chmod failed on", path))?;
            Ok(Applied::default())
        }
        Change::SetOwner { path, to, .. } => {
            set_owner(path, to.0, to.1).map_err(|e| ctx(e, "chown failed on", path))?;
            Ok(Applied::default())
        }
        Change::Touch {
            path,
            create,
            attrs,
        } => {
            touch(path, *create, attrs).map_err(|e| ctx(e, "Error, could not touch", path))?;
            Ok(Applied::default())
        }
        other @ (Change::Run { .. }
        | Change::Package { .. }
        | Change::Unit { .. }
        | Change::Account { .. }) => Err(ModuleError::new(format!(
            "internal error: `{}` is not a file change",
            other.describe()
        ))),
    }
}

/// The parent directory (opened) and the final name of `path`.
fn open_parent(path: &Path) -> io::Result<(OwnedFd, CString)> {
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
    let fd = open_raw(
        libc::AT_FDCWD,
        &cstr(parent)?,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )?;
    Ok((fd, cname(name)?))
}

fn temp_name(name: &CString) -> CString {
    use rand::Rng;
    let r: u64 = rand::thread_rng().gen();
    let base = String::from_utf8_lossy(name.as_bytes());
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

fn local_timestamp() -> String {
    // SAFETY: time/localtime_r with valid pointers.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm = std::mem::zeroed::<libc::tm>();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return t.to_string();
        }
        format!(
            "{:04}-{:02}-{:02}@{:02}:{:02}:{:02}~",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    }
}

/// Keeps the regular file `name` (in `dirfd`) as its backup, with its content, mode, owner and
/// times: a hard link to the old inode, which the following rename leaves alone. Falls back to a
/// copy where hard links are not possible.
fn backup_at(dirfd: &OwnedFd, path: &Path, name: &CString) -> io::Result<PathBuf> {
    let dest = backup_name(path);
    let dest_name = cname(dest.file_name().unwrap_or_default())?;
    // SAFETY: valid descriptors and NUL-terminated names.
    let r = unsafe {
        libc::linkat(
            dirfd.as_raw_fd(),
            name.as_ptr(),
            dirfd.as_raw_fd(),
            dest_name.as_ptr(),
            0,
        )
    };
    if r == 0 {
        return Ok(dest);
    }
    // Copy with attributes preserved.
    let src = open_raw(
        dirfd.as_raw_fd(),
        name,
        libc::O_RDONLY | libc::O_NOFOLLOW,
        0,
    )?;
    let st = fstat(src.as_raw_fd())?;
    let out = open_raw(
        dirfd.as_raw_fd(),
        &dest_name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        0o600,
    )?;
    let mut out = File::from(out);
    let _ = std::os::unix::fs::fchown(&out, Some(st.uid), Some(st.gid));
    out.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(st.mode))?;
    io::copy(&mut File::from(src), &mut out)?;
    out.sync_all()?;
    Ok(dest)
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
    let (dirfd, name) = open_parent(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => ModuleError::new(format!(
            "Destination directory {} does not exist",
            path.parent().unwrap_or(Path::new(".")).display()
        )),
        _ => err(e),
    })?;
    let existing = raw_stat(dirfd.as_raw_fd(), &name, libc::AT_SYMLINK_NOFOLLOW).map_err(err)?;
    let old_file = existing.filter(|st| st.kind == Kind::File);
    if let Some(st) = existing {
        if st.kind == Kind::Dir {
            return Err(ModuleError::new(format!(
                "{} is a directory, cannot replace it with a file",
                path.display()
            )));
        }
    }
    let mode = attrs
        .mode
        .or(old_file.map(|s| s.mode))
        .unwrap_or(0o666 & !crate::mode::umask());
    let uid = attrs.uid.or(old_file.map(|s| s.uid));
    let gid = attrs.gid.or(old_file.map(|s| s.gid));

    let tmp = temp_name(&name);
    let fd = open_raw(
        dirfd.as_raw_fd(),
        &tmp,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        0o600,
    )
    .map_err(err)?;
    let cleanup = || {
        // SAFETY: valid descriptor and name.
        unsafe { libc::unlinkat(dirfd.as_raw_fd(), tmp.as_ptr(), 0) };
    };
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
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
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
        cleanup();
        return Err(e);
    }
    let mut applied = Applied::default();
    if backup && old_file.is_some() {
        match backup_at(&dirfd, path, &name) {
            Ok(b) => applied.backup_file = Some(b),
            Err(e) => {
                cleanup();
                return Err(ModuleError::new(format!(
                    "Could not make backup of {}: {e}",
                    path.display()
                )));
            }
        }
    }
    // SAFETY: valid descriptor and names.
    let r = unsafe {
        libc::renameat(
            dirfd.as_raw_fd(),
            tmp.as_ptr(),
            dirfd.as_raw_fd(),
            name.as_ptr(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        cleanup();
        return Err(err(e));
    }
    let _ = nix::unistd::fsync(dirfd.as_raw_fd());
    Ok(applied)
}

/// Runs a `validate` command (`%s` is the temporary file), as Ansible's `run_command` does with
/// a string: split like a shell would, no shell.
pub fn run_validate(validate: &str, file: &Path) -> Result<(), ModuleError> {
    if !validate.contains("%s") {
        return Err(ModuleError::new(format!(
            "validate must contain %s: {validate}"
        )));
    }
    let cmd = validate.replace("%s", &file.to_string_lossy());
    let argv = shlex_split(&cmd).map_err(ModuleError::new)?;
    let Some((prog, args)) = argv.split_first() else {
        return Err(ModuleError::new("validate is empty"));
    };
    let out = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| ModuleError::new(format!("failed to validate: {prog}: {e}")))?;
    if !out.status.success() {
        // Ansible's message is exactly "failed to validate" (with exit_status/stdout/stderr as
        // separate fields); ours carries the command's error output for the status report.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim();
        return Err(ModuleError::new(if stderr.is_empty() {
            "failed to validate".to_string()
        } else {
            format!("failed to validate: {stderr}")
        }));
    }
    Ok(())
}

/// Splits a command line as Python's `shlex.split` (POSIX mode): whitespace separates words,
/// single quotes keep everything, double quotes keep everything but `\"`, `\\`, `\$`, `` \` ``
/// and `\<newline>`, a backslash outside quotes escapes the next character, `#` is not special.
pub fn shlex_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`' | '\n')) => cur.push(n),
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err("No closing quotation".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err("No escaped character".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
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
        // SAFETY: valid descriptor and name.
        let r = unsafe { libc::mkdirat(dirfd.as_raw_fd(), name.as_ptr(), 0o777) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EEXIST)
                && stat(dir)?.is_some_and(|s| s.kind == Kind::Dir)
            {
                continue;
            }
            return Err(e);
        }
        if attrs.mode.is_some() || attrs.uid.is_some() || attrs.gid.is_some() {
            let fd = open_raw(
                dirfd.as_raw_fd(),
                &name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            let f = File::from(fd);
            if attrs.uid.is_some() || attrs.gid.is_some() {
                std::os::unix::fs::fchown(&f, attrs.uid, attrs.gid)?;
            }
            if let Some(m) = attrs.mode {
                f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(m))?;
            }
        }
    }
    Ok(())
}

/// Creates the symlink `path -> target`; with `replace`, atomically over what is there (an
/// empty directory is removed first, as Ansible does with `force`).
pub fn symlink(path: &Path, target: &str, replace: bool) -> io::Result<()> {
    let (dirfd, name) = open_parent(path)?;
    let target = CString::new(target)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in link target"))?;
    let existing = raw_stat(dirfd.as_raw_fd(), &name, libc::AT_SYMLINK_NOFOLLOW)?;
    if existing.is_none() || !replace {
        // SAFETY: valid descriptor and names.
        cvt(unsafe { libc::symlinkat(target.as_ptr(), dirfd.as_raw_fd(), name.as_ptr()) })?;
        return Ok(());
    }
    if existing.is_some_and(|s| s.kind == Kind::Dir) {
        // SAFETY: valid descriptor and name.
        cvt(unsafe { libc::unlinkat(dirfd.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })?;
    }
    let tmp = temp_name(&name);
    // SAFETY: valid descriptor and names.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dirfd.as_raw_fd(), tmp.as_ptr()) })?;
    rename_or_cleanup(&dirfd, &tmp, &name)
}

fn rename_or_cleanup(dirfd: &OwnedFd, tmp: &CString, name: &CString) -> io::Result<()> {
    let fd = dirfd.as_raw_fd();
    // SAFETY: valid descriptor and names.
    let r = unsafe { libc::renameat(fd, tmp.as_ptr(), fd, name.as_ptr()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: as above.
        unsafe { libc::unlinkat(fd, tmp.as_ptr(), 0) };
        return Err(e);
    }
    Ok(())
}

/// Creates the hard link `path` to `target` (never following a symlink at `target`: the link
/// is to what is there); with `replace`, atomically over what is there.
pub fn hard_link(path: &Path, target: &Path, replace: bool) -> io::Result<()> {
    let (dirfd, name) = open_parent(path)?;
    let target = cstr(target)?;
    let existing = raw_stat(dirfd.as_raw_fd(), &name, libc::AT_SYMLINK_NOFOLLOW)?;
    if existing.is_none() || !replace {
        // SAFETY: valid descriptor and names.
        cvt(unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                target.as_ptr(),
                dirfd.as_raw_fd(),
                name.as_ptr(),
                0,
            )
        })?;
        return Ok(());
    }
    if existing.is_some_and(|s| s.kind == Kind::Dir) {
        // SAFETY: valid descriptor and name.
        cvt(unsafe { libc::unlinkat(dirfd.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })?;
    }
    let tmp = temp_name(&name);
    // SAFETY: valid descriptor and names.
    cvt(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            target.as_ptr(),
            dirfd.as_raw_fd(),
            tmp.as_ptr(),
            0,
        )
    })?;
    rename_or_cleanup(&dirfd, &tmp, &name)
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
    let fd = open_raw(
        libc::AT_FDCWD,
        &cstr(path)?,
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
    )?;
    if fstat(fd.as_raw_fd())?.kind == Kind::Symlink {
        return Ok(());
    }
    // chmod through the O_PATH descriptor: works for files we cannot open for reading.
    let proc_path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL");
    // SAFETY: NUL-terminated path.
    let r = unsafe { libc::chmod(proc_path.as_ptr(), mode as libc::mode_t) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            // No /proc: the O_NOFOLLOW open above checked the last component.
            return std::fs::set_permissions(
                path,
                std::os::unix::fs::PermissionsExt::from_mode(mode),
            );
        }
        return Err(e);
    }
    Ok(())
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
        let fd = open_raw(
            dirfd.as_raw_fd(),
            &name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0o666,
        )?;
        let f = File::from(fd);
        if attrs.uid.is_some() || attrs.gid.is_some() {
            std::os::unix::fs::fchown(&f, attrs.uid, attrs.gid)?;
        }
        if let Some(m) = attrs.mode {
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(m))?;
        }
        return Ok(());
    }
    // SAFETY: valid descriptor and name; a null `times` means "now" for both.
    cvt(unsafe {
        libc::utimensat(
            dirfd.as_raw_fd(),
            name.as_ptr(),
            std::ptr::null(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    fn write_change(path: &Path, content: &str, attrs: Attrs, backup: bool) -> Change {
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
    fn shlex() {
        assert_eq!(
            shlex_split(r#"echo 'a b' "c \"d\" \q" e\ f"#).unwrap(),
            vec!["echo", "a b", "c \"d\" \\q", "e f"]
        );
        assert_eq!(shlex_split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(shlex_split("a '' b").unwrap(), vec!["a", "", "b"]);
        assert!(shlex_split("echo 'x").is_err());
    }

    #[test]
    fn owners() {
        assert_eq!(uid_for("0").unwrap(), 0);
        assert_eq!(uid_for("root").unwrap(), 0);
        assert_eq!(gid_for("root").unwrap(), 0);
        assert!(uid_for("no-such-user-xyz").is_err());
        assert_eq!(user_name(0), "root");
    }
}
