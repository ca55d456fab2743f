//! Drift of systemd units: no inotify for those. After each run of the playbook the worker reads
//! the state of every unit a task manages with one `systemctl show`; every [`CHECK_EVERY`] the
//! daemon reads it again (one process for all units) and reports each unit whose load, active
//! or unit-file state differs as a change, which starts a drift pass like a file change does.

use std::time::Duration;

use gitops_modules::host::HostState;

/// How often the units are read again.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// What is compared of a unit: id, load state, active state, unit-file state.
pub type UnitKey = (String, String, String, String);

/// The units' states now; `None` when systemctl cannot tell (no systemd).
pub fn snapshot(names: &[String]) -> Option<Vec<UnitKey>> {
    if names.is_empty() {
        return None;
    }
    let states = HostState::new().units(names).ok()?;
    Some(
        states
            .into_iter()
            .map(|u| (u.id, u.load_state, u.active_state, u.unit_file_state))
            .collect(),
    )
}

/// One line per unit whose state differs between `before` and `now`.
pub fn differences(before: &[UnitKey], now: &[UnitKey]) -> Vec<String> {
    let mut out = Vec::new();
    for (b, n) in before.iter().zip(now) {
        let mut what = Vec::new();
        if b.1 != n.1 {
            what.push(format!("load {} -> {}", b.1, n.1));
        }
        if b.2 != n.2 {
            what.push(format!("active {} -> {}", b.2, n.2));
        }
        if b.3 != n.3 {
            what.push(format!("unit file {} -> {}", b.3, n.3));
        }
        if !what.is_empty() {
            out.push(format!("unit {}: {}", b.0, what.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(id: &str, a: &str, f: &str) -> UnitKey {
        (id.into(), "loaded".into(), a.into(), f.into())
    }

    #[test]
    fn a_stopped_and_a_disabled_unit_differ() {
        let before = [
            k("a.service", "active", "enabled"),
            k("b.service", "active", "enabled"),
        ];
        let now = [
            k("a.service", "inactive", "enabled"),
            k("b.service", "active", "disabled"),
        ];
        assert_eq!(
            differences(&before, &now),
            [
                "unit a.service: active active -> inactive",
                "unit b.service: unit file enabled -> disabled"
            ]
        );
        assert!(differences(&before, &before).is_empty());
    }
}
