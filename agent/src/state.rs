//! What must survive a crash or a reboot, under `state_dir` (`/var/lib/gitops-agent`):
//! `state.json` (the commits last applied, last good and last seen, the time of the last
//! converge, a suspension flag) and `lock`, which makes converges exclusive.
//!
//! `state.json` is replaced atomically (temporary file in the same directory, fsync, rename,
//! fsync of the directory): after a crash it holds either the old or the new state, never a mix.
//! A file that does not parse is an error naming it, never a silent reset: forgetting the last
//! applied commit would disable the rollback protection.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// Now, in seconds since 1970: the clock of the times `state.json` records.
pub fn unix_now() -> u64 {
    jiff::Timestamp::now().as_second().max(0) as u64
}

/// The state file's name inside `state_dir`.
pub const STATE_FILE: &str = "state.json";
/// The lock file's name inside `state_dir`.
pub const LOCK_FILE: &str = "lock";
/// The format version written; a newer one is refused (written by a newer agent).
pub const STATE_VERSION: u32 = 1;

/// The agent's local state. Commits are full hexadecimal object ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Format version of the file.
    pub version: u32,
    /// The commit whose playbook was last applied (whatever the outcome): the base of the
    /// no-rollback check.
    pub last_applied: Option<String>,
    /// The last commit that converged without a failed task.
    pub last_good: Option<String>,
    /// The tip of the host branch at the last fetch, even if it was not applied (invalid,
    /// unsigned, a rollback).
    pub last_seen: Option<String>,
    /// When the last converge ended, in seconds since the Unix epoch.
    pub last_converge: Option<u64>,
    /// Converging is suspended (`gitops-agent suspend`): polls go on, nothing is applied.
    pub suspended: bool,
    /// Why, when `suspended`.
    pub suspended_reason: Option<String>,
    /// The result of the last converge (`converged`, `changed`, `failed`, `refused`, `invalid`).
    pub last_result: Option<String>,
    /// A digest of the substance of the last status document committed (everything but
    /// timestamps and durations): an identical document is not committed again before the
    /// heartbeat is due.
    pub last_status_digest: Option<String>,
    /// When the last status commit was made, in seconds since the Unix epoch.
    pub last_status_at: Option<u64>,
    /// When the playbook last ran (whatever its result), in seconds since the Unix epoch: the
    /// daemon re-converges when `enforce` has passed since.
    pub last_run: Option<u64>,
    /// When the last converge that went through (`converged` or `changed`) ended.
    pub last_success: Option<u64>,
    /// How long the last run of the playbook took, in milliseconds.
    pub last_duration_ms: Option<u64>,
    /// Tasks changed and failed in the last run of the playbook.
    pub last_changed: Option<u64>,
    pub last_failed: Option<u64>,
    /// Drifted tasks found by the daemon since the state was created: put back, and only
    /// reported (counters for the metrics).
    pub drift_corrected: u64,
    pub drift_reported: u64,
    /// When the last poll (not a drift pass) ended and whether its fetch worked, for the
    /// metrics a drift pass writes.
    pub last_poll: Option<u64>,
    pub last_fetch_ok: Option<bool>,
    /// A `reboot` task ran: which (`file:line: task `name``), since when, in which boot (the
    /// kernel's boot id; a new boot means the reboot happened). See `run::reboot`.
    pub reboot_owed: Option<String>,
    pub reboot_owed_since: Option<u64>,
    pub reboot_owed_boot: Option<String>,
}

impl Default for State {
    fn default() -> State {
        State {
            version: STATE_VERSION,
            last_applied: None,
            last_good: None,
            last_seen: None,
            last_converge: None,
            suspended: false,
            suspended_reason: None,
            last_result: None,
            last_status_digest: None,
            last_status_at: None,
            last_run: None,
            last_success: None,
            last_duration_ms: None,
            last_changed: None,
            last_failed: None,
            drift_corrected: 0,
            drift_reported: 0,
            last_poll: None,
            last_fetch_ok: None,
            reboot_owed: None,
            reboot_owed_since: None,
            reboot_owed_boot: None,
        }
    }
}

/// The state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: corrupt state file: {message} (it is not reset automatically: repair or remove it)",
        path.display()
    )]
    Corrupt { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl State {
    /// Reads `<dir>/state.json`; a missing file (or directory) is the default state.
    pub fn load(dir: &Path) -> Result<State, StateError> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let corrupt = |message: String| StateError::Corrupt {
            path: path.clone(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if !value.is_object() {
            return Err(corrupt("not a JSON object".to_string()));
        }
        let state: State = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        if state.version == 0 || state.version > STATE_VERSION {
            return Err(corrupt(format!(
                "format version {} (this agent reads version {STATE_VERSION})",
                state.version
            )));
        }
        for (key, commit) in [
            ("last_applied", &state.last_applied),
            ("last_good", &state.last_good),
            ("last_seen", &state.last_seen),
        ] {
            if let Some(c) = commit {
                if !is_commit_id(c) {
                    return Err(corrupt(format!("`{key}` is not a commit id: `{c}`")));
                }
            }
        }
        Ok(state)
    }

    /// Writes `<dir>/state.json` atomically, creating `dir` if needed.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(STATE_FILE);
        let mut text = serde_json::to_string_pretty(self).expect("state serializes");
        text.push('\n');
        let mut tmp = tempfile::Builder::new()
            .prefix(".state.json.")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io_err(dir))?;
        let write = |f: &mut File| -> std::io::Result<()> {
            f.write_all(text.as_bytes())?;
            f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            f.sync_all()
        };
        write(tmp.as_file_mut()).map_err(io_err(tmp.path()))?;
        // On failure the temporary file is removed when `tmp` drops.
        tmp.persist(&path).map_err(|e| io_err(&path)(e.error))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))
    }

    /// Sets `last_converge` to `at`.
    pub fn set_last_converge(&mut self, at: SystemTime) {
        self.last_converge = at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs());
    }

    /// `last_converge` as a time.
    pub fn last_converge_time(&self) -> Option<SystemTime> {
        self.last_converge
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
    }
}

/// A full SHA-1 or SHA-256 object id in lower-case hexadecimal.
pub fn is_commit_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

// ---------------------------------------------------------------------------------------------
// The lock

/// An exclusive `flock` on `<state_dir>/lock`, held while converging; released on drop.
///
/// The holder's pid is written into the file so that a second agent can say who holds it. The
/// lock belongs to the open file description (not the process), and the descriptor is
/// close-on-exec, so commands run by tasks do not inherit it.
#[derive(Debug)]
pub struct StateLock {
    file: Flock<File>,
    path: PathBuf,
}

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Held by another converge (its pid when the lock file says it).
    #[error("another gitops-agent converge is running ({}) (lock {})", pid_text(.pid), path.display())]
    Busy { pid: Option<u32>, path: PathBuf },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn pid_text(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    }
}

impl StateLock {
    /// Takes the lock in `dir` (created if needed). `wait: false` fails at once with
    /// [`LockError::Busy`] when it is held; `wait: true` blocks until it is free (telling the
    /// user that it waits is the caller's job: try [`StateLock::try_acquire`] first).
    pub fn acquire(dir: &Path, wait: bool) -> Result<StateLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io)?;
        let arg = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        let file = match Flock::lock(file, arg) {
            Ok(locked) => locked,
            Err((file, Errno::EWOULDBLOCK)) => {
                return Err(LockError::Busy {
                    pid: read_pid(&file),
                    path,
                })
            }
            Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
        };
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
            .map_err(io)?;
        Ok(StateLock { file, path })
    }

    /// Takes the lock if it is free, else fails with [`LockError::Busy`].
    pub fn try_acquire(dir: &Path) -> Result<StateLock, LockError> {
        StateLock::acquire(dir, false)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Clear the pid while still holding the lock; the flock is released when `file` drops.
        let _ = self.file.set_len(0);
    }
}

fn read_pid(file: &File) -> Option<u32> {
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "89abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn missing_file_is_the_default_state() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), State::default());
        assert_eq!(
            State::load(&dir.path().join("not-yet")).unwrap(),
            State::default()
        );
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("state");
        let mut s = State {
            last_applied: Some(A.to_string()),
            last_good: Some(B.to_string()),
            last_seen: Some(A.to_string()),
            suspended: true,
            suspended_reason: Some("maintenance".to_string()),
            ..State::default()
        };
        let now = SystemTime::now();
        s.set_last_converge(now);
        s.save(&sub).unwrap();
        let back = State::load(&sub).unwrap();
        assert_eq!(back, s);
        let t = back.last_converge_time().unwrap();
        assert!(now.duration_since(t).unwrap() < Duration::from_secs(1));
        // Saved again over the old file.
        s.last_applied = Some(B.to_string());
        s.save(&sub).unwrap();
        assert_eq!(State::load(&sub).unwrap(), s);
        // The file is readable JSON with the documented keys.
        let text = std::fs::read_to_string(sub.join(STATE_FILE)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["last_good"], B);
        // Missing keys take their defaults (an older file).
        std::fs::write(
            sub.join(STATE_FILE),
            format!("{{\"last_applied\": \"{A}\"}}"),
        )
        .unwrap();
        let s = State::load(&sub).unwrap();
        assert_eq!(s.last_applied.as_deref(), Some(A));
        assert_eq!(s.version, STATE_VERSION);
        assert!(!s.suspended);
    }

    #[test]
    fn atomic_save_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        State::default().save(dir.path()).unwrap();
        State::default().save(dir.path()).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![STATE_FILE.to_string()]);
        let mode = std::fs::metadata(dir.path().join(STATE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn failed_save_keeps_the_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let s = State {
            last_good: Some(A.to_string()),
            ..State::default()
        };
        s.save(dir.path()).unwrap();
        // A directory where the file goes makes the rename fail.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join(STATE_FILE).join("x")).unwrap();
        let e = State::default().save(&blocked).unwrap_err();
        assert!(e.to_string().contains("state.json"), "{e}");
        let left: Vec<_> = std::fs::read_dir(&blocked).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary file left behind");
        assert_eq!(State::load(dir.path()).unwrap(), s);
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        for text in [
            "{not json",
            "",
            "[]",
            "{\"last_applied\": 3}",
            "{\"last_applied\": \"main\"}",
            "{\"last_good\": \"0123\"}",
            "{\"version\": 99}",
        ] {
            std::fs::write(&path, text).unwrap();
            let e = State::load(dir.path()).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, StateError::Corrupt { .. }), "{text}: {msg}");
            assert!(
                msg.starts_with(&format!("{}: corrupt state file", path.display())),
                "{msg}"
            );
        }
        // Unreadable (a directory) is an I/O error, not corruption.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(
            State::load(dir.path()),
            Err(StateError::Io { .. })
        ));
    }

    #[test]
    fn lock_is_exclusive_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::try_acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));

        // A second open file description conflicts, even in the same process.
        let e = StateLock::try_acquire(dir.path()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "another gitops-agent converge is running (pid {})",
                std::process::id()
            )),
            "{msg}"
        );
        assert!(
            matches!(e, LockError::Busy { pid: Some(p), .. } if p == std::process::id()),
            "{e:?}"
        );
        let e = StateLock::acquire(dir.path(), false).unwrap_err();
        assert!(matches!(e, LockError::Busy { .. }));

        drop(first);
        let again = StateLock::try_acquire(dir.path()).unwrap();
        assert_eq!(again.path(), dir.path().join(LOCK_FILE));
    }

    #[test]
    fn waiting_acquire_blocks_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::try_acquire(dir.path()).unwrap();
        let d = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let lock = StateLock::acquire(&d, true).unwrap();
            tx.send(()).unwrap();
            drop(lock);
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(first);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }

    #[test]
    fn busy_with_an_unknown_pid() {
        let e = LockError::Busy {
            pid: None,
            path: PathBuf::from("/var/lib/gitops-agent/lock"),
        };
        assert_eq!(
            e.to_string(),
            "another gitops-agent converge is running (pid unknown) (lock /var/lib/gitops-agent/lock)"
        );
    }
}
