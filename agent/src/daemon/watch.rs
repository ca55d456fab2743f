//! The drift watch: one inotify instance on the parent directories of everything the applied
//! playbook manages, read by one thread that hands relevant changes to the daemon's loop.
//!
//! Why inotify directly (through `nix`, already a dependency) rather than the `notify` crate:
//! we need exactly one Linux backend, the raw masks (a directory watch filtered by entry name,
//! `IN_DONT_FOLLOW`, `IN_Q_OVERFLOW`), and the `ENOSPC`/`EMFILE` errors that say the watch
//! limits are reached (the daemon then falls back to periodic checks); `notify` would add a
//! thread, crossbeam and walkdir for a portability we do not use.
//!
//! What is watched:
//! - a managed path: its parent directory, filtered on the path's name (content written,
//!   attributes, created, deleted, renamed over); when the parent is missing, the nearest
//!   ancestor that exists, filtered on the next component. A watched directory that is itself
//!   deleted or renamed (replaced by a symbolic link, say) counts as a change of everything
//!   under it.
//! - a managed package: `/var/lib/dpkg/status` and `/var/lib/rpm/`.
//! - systemd units are not watched here: see `units.rs` (a periodic batched `systemctl show`).
//!
//! The agent's own writes are masked by the daemon: events while a worker runs, and shortly
//! after, to paths its run changed are dropped (see `Daemon::run`), and the watch is set again
//! after each run (keeping the watches of directories still planned).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gitops_modules::resource::Owned;
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};

/// Where dpkg and rpm keep their databases.
const PACKAGE_DBS: &[(&str, Option<&str>)] =
    &[("/var/lib/dpkg", Some("status")), ("/var/lib/rpm", None)];

/// Test hook: pretend the kernel allows only this many watches (`fs.inotify.max_user_watches`).
pub const ENV_WATCH_LIMIT: &str = "GITOPS_AGENT_WATCH_LIMIT";

/// A watched directory: which entries matter (`None`: all).
struct DirWatch {
    dir: PathBuf,
    names: Option<BTreeSet<OsString>>,
}

type Table = Arc<Mutex<HashMap<WatchDescriptor, DirWatch>>>;

pub struct Watch {
    inotify: Option<Arc<Inotify>>,
    table: Table,
    /// Why watches cannot be had (the daemon then checks periodically).
    pub fallback: Option<String>,
    /// For the status document and the log.
    pub describe: String,
    limit: Option<usize>,
}

impl Watch {
    /// Opens the inotify instance and starts the thread that reads it; changes go to `tx`.
    pub fn start(tx: UnboundedSender<(Instant, PathBuf)>) -> Watch {
        let table: Table = Arc::new(Mutex::new(HashMap::new()));
        let limit = std::env::var(ENV_WATCH_LIMIT)
            .ok()
            .and_then(|v| v.parse().ok());
        let inotify = match Inotify::init(InitFlags::IN_CLOEXEC) {
            Ok(i) => Arc::new(i),
            Err(e) => {
                let why = if e == Errno::EMFILE {
                    "no inotify instance left (fs.inotify.max_user_instances)".to_string()
                } else {
                    format!("inotify: {e}")
                };
                return Watch {
                    inotify: None,
                    table,
                    describe: String::new(),
                    fallback: Some(why),
                    limit,
                };
            }
        };
        let reader = inotify.clone();
        let rtable = table.clone();
        let spawned = std::thread::Builder::new()
            .name("gitops-agent-watch".into())
            .spawn(move || read_loop(&reader, &rtable, &tx));
        if let Err(e) = spawned {
            return Watch {
                inotify: None,
                table,
                describe: String::new(),
                fallback: Some(format!("cannot start the watch thread: {e}")),
                limit,
            };
        }
        Watch {
            inotify: Some(inotify),
            table,
            fallback: None,
            // the first run's status is written before its targets are known
            describe: "inotify: starts after this run".into(),
            limit,
        }
    }

    /// Watches what `owned` names, instead of what was watched before.
    pub fn set(&mut self, owned: &[Owned]) {
        let Some(inotify) = &self.inotify else {
            return;
        };
        let plan = plan(owned);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        // The new table is built beside the old one, and only the watches no longer wanted are
        // removed at the end: a directory watched before and after keeps its watch (adding it
        // again returns the same descriptor), so a change made while the watch is set again,
        // or seen but not yet read, is not lost.
        let mut next: HashMap<WatchDescriptor, DirWatch> = HashMap::new();
        self.fallback = None;
        let mask = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_DONT_FOLLOW;
        // what the playbook manages (the directories include those above it)
        let paths = owned
            .iter()
            .filter(|o| matches!(o, Owned::Path(p) if p.is_absolute()))
            .count();
        for (dir, names) in &plan {
            if self.limit.is_some_and(|l| next.len() >= l) {
                self.fallback = Some(format!("inotify watch limit reached ({ENV_WATCH_LIMIT})"));
                break;
            }
            match inotify.add_watch(dir.as_path(), mask) {
                Ok(wd) => {
                    next.insert(
                        wd,
                        DirWatch {
                            dir: dir.clone(),
                            names: names.clone(),
                        },
                    );
                }
                Err(Errno::ENOSPC) => {
                    self.fallback =
                        Some("inotify watch limit reached (fs.inotify.max_user_watches)".into());
                    break;
                }
                // Gone since it was planned, or not readable: the next pass sees it.
                Err(e) => debug!("watch {}: {e}", dir.display()),
            }
        }
        if self.fallback.is_some() {
            next.clear();
        }
        for wd in table.keys() {
            if !next.contains_key(wd) {
                // Gone already when its directory was deleted: nothing to do about an error.
                let _ = inotify.rm_watch(*wd);
            }
        }
        *table = next;
        if self.fallback.is_none() {
            self.describe = format!("inotify: {paths} paths in {} directories", table.len());
        }
    }
}

/// Directory → the entries that matter in it (`None`: all).
fn plan(owned: &[Owned]) -> BTreeMap<PathBuf, Option<BTreeSet<OsString>>> {
    let mut plan: BTreeMap<PathBuf, Option<BTreeSet<OsString>>> = BTreeMap::new();
    let mut add = |dir: PathBuf, name: Option<OsString>| {
        let slot = plan.entry(dir).or_insert_with(|| Some(BTreeSet::new()));
        match (slot.as_mut(), name) {
            (Some(set), Some(n)) => {
                set.insert(n);
            }
            (_, None) => *slot = None,
            (None, Some(_)) => {}
        }
    };
    let mut packages = false;
    for o in owned {
        match o {
            Owned::Path(p) if p.is_absolute() => {
                let (dir, name) = nearest_existing(p);
                // The directories above it too, each filtered on the next component: one of
                // them renamed, deleted or replaced takes the path away without an event in
                // `dir` (whose watch moves along with its directory).
                let mut child = dir.as_path();
                while let (Some(parent), Some(component)) = (child.parent(), child.file_name()) {
                    add(parent.to_path_buf(), Some(component.to_os_string()));
                    child = parent;
                }
                add(dir, name);
            }
            Owned::Package(_) => packages = true,
            _ => {}
        }
    }
    if packages {
        for (dir, name) in PACKAGE_DBS {
            if Path::new(dir).is_dir() {
                add(PathBuf::from(dir), name.map(OsString::from));
            }
        }
    }
    plan
}

/// The nearest ancestor of `path` that exists (a symbolic link counts: it is watched itself),
/// and the component of `path` right under it.
fn nearest_existing(path: &Path) -> (PathBuf, Option<OsString>) {
    let mut child = path;
    while let Some(parent) = child.parent() {
        if parent.as_os_str().is_empty() {
            break;
        }
        if parent.symlink_metadata().is_ok() {
            return (parent.to_path_buf(), child.file_name().map(OsString::from));
        }
        child = parent;
    }
    (PathBuf::from("/"), child.file_name().map(OsString::from))
}

fn read_loop(inotify: &Inotify, table: &Table, tx: &UnboundedSender<(Instant, PathBuf)>) {
    loop {
        let events = match inotify.read_events() {
            Ok(e) => e,
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
            Err(e) => {
                warn!("drift watch stopped: reading inotify: {e}");
                return;
            }
        };
        for ev in events {
            if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                // Events were lost: whatever changed, a full check finds it.
                let at = Instant::now();
                if tx
                    .send((at, PathBuf::from("(inotify queue overflow)")))
                    .is_err()
                {
                    return;
                }
                continue;
            }
            let seen = relevant(table, &ev);
            if let Some(path) = seen {
                if tx.send((Instant::now(), path)).is_err() {
                    return;
                }
            }
        }
    }
}

/// The managed path an event is about, if it is about one (books a watch the kernel dropped).
fn relevant(table: &Table, ev: &nix::sys::inotify::InotifyEvent) -> Option<PathBuf> {
    let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
    if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
        table.remove(&ev.wd);
        return None;
    }
    let w = table.get(&ev.wd)?;
    match &ev.name {
        Some(name) => w
            .names
            .as_ref()
            .is_none_or(|n| n.contains(name))
            .then(|| w.dir.join(name)),
        None if ev
            .mask
            .intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF) =>
        {
            Some(w.dir.clone())
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parents_filtered_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        let owned = vec![
            Owned::Path(d.join("conf.d/a.conf")),
            Owned::Path(d.join("conf.d/b.conf")),
            Owned::Path(d.join("missing/deeper/c.conf")),
            Owned::Unit("nginx.service".into()),
        ];
        let plan = plan(&owned);
        let names = |p: &Path| plan.get(p).cloned().flatten().unwrap();
        assert_eq!(
            names(&d.join("conf.d")),
            ["a.conf", "b.conf"].iter().map(OsString::from).collect()
        );
        // `d` holds a missing path's first component and is above conf.d: both names
        assert_eq!(
            names(d),
            ["conf.d", "missing"].iter().map(OsString::from).collect()
        );
        // every directory above, filtered on the component on the way down
        let parent = d.parent().unwrap();
        assert_eq!(
            names(parent),
            [d.file_name().unwrap()]
                .into_iter()
                .map(OsString::from)
                .collect()
        );
        assert_eq!(names(Path::new("/")).len(), 1);
        assert_eq!(plan.len(), d.ancestors().count() + 1);
    }

    #[test]
    fn sees_an_edit_and_not_a_sibling() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("managed"), "x").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut w = Watch::start(tx);
        w.set(&[Owned::Path(d.join("managed"))]);
        assert!(w.fallback.is_none(), "{:?}", w.fallback);
        std::fs::write(d.join("sibling"), "y").unwrap();
        std::fs::write(d.join("managed"), "z").unwrap();
        let (_, got) = rx.blocking_recv().unwrap();
        assert_eq!(got, d.join("managed"));
    }

    #[test]
    fn limit_means_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut w = Watch::start(tx);
        w.limit = Some(0);
        w.set(&[Owned::Path(dir.path().join("x"))]);
        assert!(w.fallback.is_some());
    }

    #[test]
    fn a_change_not_yet_read_survives_setting_the_watch_again() {
        // No reader thread: the event stays queued while the watch is set again, as it may
        // when the daemon sets it after a run while the reader is behind.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("managed"), "x").unwrap();
        let inotify =
            Arc::new(Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).unwrap());
        let mut w = Watch {
            inotify: Some(inotify.clone()),
            table: Arc::new(Mutex::new(HashMap::new())),
            fallback: None,
            describe: String::new(),
            limit: None,
        };
        let owned = [Owned::Path(d.join("managed"))];
        w.set(&owned);
        std::fs::write(d.join("managed"), "edited by hand").unwrap();
        w.set(&owned);
        let seen: Vec<PathBuf> = inotify
            .read_events()
            .unwrap()
            .iter()
            .filter_map(|ev| relevant(&w.table, ev))
            .collect();
        assert!(seen.contains(&d.join("managed")), "{seen:?}");
    }
}
