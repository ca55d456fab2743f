//! Owners and groups: names to ids for `owner`/`group` arguments, ids to names for the facts
//! a module reports (`owner`, `group`), both cached per process.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use super::stat::{lstat, Stat};
use crate::resource::{ModuleError, Outcome};

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
    data.insert("state".into(), st.ansible_state().into());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        assert_eq!(uid_for("0").unwrap(), 0);
        assert_eq!(uid_for("root").unwrap(), 0);
        assert_eq!(gid_for("root").unwrap(), 0);
        assert!(uid_for("no-such-user-xyz").is_err());
        assert_eq!(user_name(0), "root");
    }
}
