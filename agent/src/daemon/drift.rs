//! What the drift watch saw and when the drift pass it starts is due ([`Pending`]), and the
//! directories a drift pass must not change anything through ([`guard_dirs`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gitops_modules::resource::Owned;
use tracing::debug;

/// A drift pass starts this long after the last change seen (edits come in bursts) ...
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// ... but no later than this after the first.
pub const DEBOUNCE_MAX: Duration = Duration::from_secs(1);
/// Drift passes start at least this far apart (something rewriting a managed file in a loop
/// does not keep the agent busy).
pub const DRIFT_MIN_GAP: Duration = Duration::from_secs(1);
/// At most this many changed paths are named in a drift status.
const SEEN_MAX: usize = 10;

/// Changes seen and not yet checked.
#[derive(Default)]
pub struct Pending {
    pub seen: Vec<String>,
    first_seen: Option<SystemTime>,
    first_at: Option<tokio::time::Instant>,
    /// When the drift pass starts.
    pub at: Option<tokio::time::Instant>,
}

impl Pending {
    pub fn add(
        &mut self,
        path: &Path,
        now: tokio::time::Instant,
        last_drift: tokio::time::Instant,
    ) {
        debug!("drift watch: {} changed", path.display());
        let path = path.display().to_string();
        if self.seen.len() < SEEN_MAX && !self.seen.contains(&path) {
            self.seen.push(path);
        }
        self.first_seen.get_or_insert_with(SystemTime::now);
        let first = *self.first_at.get_or_insert(now);
        self.at = Some(
            (now + DEBOUNCE)
                .min(first + DEBOUNCE_MAX)
                .max(last_drift + DRIFT_MIN_GAP),
        );
    }

    pub fn take(&mut self) -> (Vec<String>, Option<SystemTime>) {
        self.at = None;
        self.first_at = None;
        (std::mem::take(&mut self.seen), self.first_seen.take())
    }
}

/// Every real directory above a managed path: a drift pass changes nothing through one of
/// them that has become a symbolic link since.
pub fn guard_dirs(owns: &[Owned]) -> Vec<PathBuf> {
    let mut dirs = BTreeSet::new();
    for o in owns {
        if let Owned::Path(p) = o {
            for a in p.ancestors().skip(1) {
                if a.as_os_str().is_empty() || a == Path::new("/") || dirs.contains(a) {
                    continue;
                }
                if a.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                    dirs.insert(a.to_path_buf());
                }
            }
        }
    }
    dirs.into_iter().collect()
}
