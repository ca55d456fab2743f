//! Owners and groups: names to ids for `owner`/`group` arguments, ids to names for the facts
//! a module reports (`owner`, `group`). Lookups go to the system's name service (NSS: local
//! files, LDAP, ...) and are cached in an [`IdCache`] that the run's
//! [`HostState`](crate::host::HostState) holds and forgets with the account databases.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::stat::{lstat, Stat};
use crate::resource::{ModuleError, Outcome};

/// Where user and group ids and names come from.
pub trait IdSource: Send + Sync {
    /// The id of the user (or group) `name`, if there is one.
    fn id(&self, group: bool, name: &str) -> Option<u32>;
    /// The name of the user (or group) `id`, if there is one.
    fn name(&self, group: bool, id: u32) -> Option<String>;
}

/// The system's name service, as getpwnam/getgrnam and getpwuid/getgrgid answer: not only the
/// local `/etc` files, so network accounts resolve too.
struct Nss;

impl IdSource for Nss {
    fn id(&self, group: bool, name: &str) -> Option<u32> {
        if group {
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
        } else {
            nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw())
        }
    }

    fn name(&self, group: bool, id: u32) -> Option<String> {
        if group {
            nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(id))
                .ok()
                .flatten()
                .map(|g| g.name)
        } else {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(id))
                .ok()
                .flatten()
                .map(|u| u.name)
        }
    }
}

/// User and group lookups already answered in this run. Only answers found are kept: a name
/// not found is asked again (a later task may create it).
pub struct IdCache {
    source: Box<dyn IdSource>,
    ids: Mutex<HashMap<(bool, String), u32>>,
    names: Mutex<HashMap<(bool, u32), String>>,
}

impl Default for IdCache {
    fn default() -> Self {
        IdCache::new()
    }
}

impl IdCache {
    /// A cache over the system's name service.
    pub fn new() -> IdCache {
        IdCache::with_source(Box::new(Nss))
    }

    /// A cache over another source (tests).
    pub fn with_source(source: Box<dyn IdSource>) -> IdCache {
        IdCache {
            source,
            ids: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets every answer (after a task that may have created or changed users or groups).
    pub fn clear(&self) {
        lock(&self.ids).clear();
        lock(&self.names).clear();
    }

    fn id(&self, group: bool, name: &str) -> Option<u32> {
        let key = (group, name.to_string());
        if let Some(id) = lock(&self.ids).get(&key) {
            return Some(*id);
        }
        let id = self.source.id(group, name)?;
        lock(&self.ids).insert(key, id);
        Some(id)
    }

    fn name(&self, group: bool, id: u32) -> String {
        if let Some(n) = lock(&self.names).get(&(group, id)) {
            return n.clone();
        }
        match self.source.name(group, id) {
            Some(n) => {
                lock(&self.names).insert((group, id), n.clone());
                n
            }
            None => id.to_string(),
        }
    }

    /// An `owner` argument as a uid: a user name, or a number (Ansible tries the number first).
    pub fn uid_for(&self, owner: &str) -> Result<u32, ModuleError> {
        if let Ok(n) = owner.parse::<u32>() {
            return Ok(n);
        }
        self.id(false, owner).ok_or_else(|| {
            ModuleError::new(format!("chown failed: failed to look up user {owner}"))
        })
    }

    /// A `group` argument as a gid.
    pub fn gid_for(&self, group: &str) -> Result<u32, ModuleError> {
        if let Ok(n) = group.parse::<u32>() {
            return Ok(n);
        }
        self.id(true, group).ok_or_else(|| {
            ModuleError::new(format!("chgrp failed: failed to look up group {group}"))
        })
    }

    /// A uid's user name, or the number as text (as Ansible reports `owner`).
    pub fn user_name(&self, uid: u32) -> String {
        self.name(false, uid)
    }

    /// A gid's group name, or the number as text.
    pub fn group_name(&self, gid: u32) -> String {
        self.name(true, gid)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a cache, not an invariant: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds Ansible's path facts (`owner`, `group`, `mode`, `uid`, `gid`, `size`, `state`) for
/// `st` to an outcome, as `add_path_info` does.
pub fn path_facts(out: &mut Outcome, st: &Stat, ids: &IdCache) {
    let data = &mut out.data;
    data.insert("uid".into(), st.uid.into());
    data.insert("gid".into(), st.gid.into());
    data.insert("owner".into(), ids.user_name(st.uid).into());
    data.insert("group".into(), ids.group_name(st.gid).into());
    data.insert("mode".into(), crate::mode::format(st.mode).into());
    data.insert("state".into(), st.ansible_state().into());
    data.insert("size".into(), st.size.into());
}

/// Adds the facts of what now is at `path` (after apply), or `state: absent`.
pub fn path_facts_at(out: &mut Outcome, path: &Path, ids: &IdCache) {
    match lstat(path) {
        Ok(Some(st)) => path_facts(out, &st, ids),
        _ => {
            out.data.insert("state".into(), "absent".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        let ids = IdCache::new();
        assert_eq!(ids.uid_for("0").unwrap(), 0);
        assert_eq!(ids.uid_for("root").unwrap(), 0);
        assert_eq!(ids.gid_for("root").unwrap(), 0);
        assert_eq!(
            ids.uid_for("no-such-user-xyz").unwrap_err().to_string(),
            "chown failed: failed to look up user no-such-user-xyz"
        );
        assert_eq!(
            ids.gid_for("no-such-group-xyz").unwrap_err().to_string(),
            "chgrp failed: failed to look up group no-such-group-xyz"
        );
        assert_eq!(ids.user_name(0), "root");
        assert_eq!(ids.group_name(0), "root");
    }
}
