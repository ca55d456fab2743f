//! A reboot owed by a `reboot` task: recorded in the state (until the host has booted again) and
//! shown in the status document; carried out after the run only with `reboot: allow`.
//!
//! The engine never reboots: a `reboot` task reports what it owes
//! ([`gitops_modules::report::RunReport::reboot_owed`]). After the run has been recorded and its
//! status published, [`decide`] says whether to reboot now: only for a reboot owed by this
//! run, never in check mode, and only when the configuration allows it.

use serde::Serialize;

use crate::config::RebootPolicy;
use crate::state::{unix_now, State};

/// The kernel's id of the current boot: a reboot changes it.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

fn boot_id() -> Option<String> {
    std::fs::read_to_string(BOOT_ID)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Records in `state` the reboot this run owes (`owed`: the task's `file:line: task`), and
/// forgets a reboot owed before the host booted again.
pub fn record(state: &mut State, owed: Option<&str>) {
    record_at(state, owed, boot_id().as_deref(), unix_now())
}

fn record_at(state: &mut State, owed: Option<&str>, boot: Option<&str>, now: u64) {
    if state.reboot_owed.is_some() && state.reboot_owed_boot.as_deref() != boot {
        // The host has booted since: the reboot happened.
        state.reboot_owed = None;
        state.reboot_owed_boot = None;
        state.reboot_owed_since = None;
    }
    if let Some(by) = owed {
        if state.reboot_owed.is_none() {
            state.reboot_owed_since = Some(now);
        }
        state.reboot_owed = Some(by.to_string());
        state.reboot_owed_boot = boot.map(str::to_string);
    }
}

/// The `reboot:` section of the status document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebootStatus {
    /// The task that owes it: `file:line: task `name``.
    pub owed_by: String,
    /// Since when (RFC 3339, UTC).
    pub since: String,
    /// `rebooting` (after this run), or why not.
    pub action: String,
}

/// What the status document says about a reboot owed, if one is.
pub fn status(state: &State, action: RebootAction) -> Option<RebootStatus> {
    let by = state.reboot_owed.clone()?;
    let since = state
        .reboot_owed_since
        .map(|s| crate::status::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)))
        .unwrap_or_default();
    Some(RebootStatus {
        owed_by: by,
        since,
        action: match action {
            RebootAction::Reboot => "rebooting after this run".to_string(),
            RebootAction::Owed => {
                "not rebooting: the configuration does not allow it (reboot: allow)".to_string()
            }
            RebootAction::Nothing => "owed by an earlier run, not rebooting".to_string(),
        },
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootAction {
    /// No reboot owed by this run.
    Nothing,
    /// Owed by this run, left to a person (`reboot: deny`).
    Owed,
    /// Owed by this run and allowed: reboot once the run is recorded.
    Reboot,
}

/// Whether to reboot after this run.
pub fn decide(owed_by_this_run: bool, policy: RebootPolicy, check: bool) -> RebootAction {
    match (owed_by_this_run && !check, policy) {
        (false, _) => RebootAction::Nothing,
        (true, RebootPolicy::Deny) => RebootAction::Owed,
        (true, RebootPolicy::Allow) => RebootAction::Reboot,
    }
}

/// Asks systemd to reboot the host (returns once the request is queued). Only reached with
/// `reboot: allow` and a reboot owed by the run that just ended.
pub fn reboot_now(by: &str) -> Result<(), String> {
    let out = std::process::Command::new("systemctl")
        .arg("reboot")
        .arg(format!("--message=gitops-agent: reboot owed by {by}"))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run systemctl reboot: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "systemctl reboot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_allowed_reboot_owed_by_this_run_reboots() {
        use RebootPolicy::*;
        assert_eq!(decide(true, Deny, false), RebootAction::Owed);
        assert_eq!(decide(true, Allow, false), RebootAction::Reboot);
        assert_eq!(decide(true, Allow, true), RebootAction::Nothing);
        assert_eq!(decide(false, Allow, false), RebootAction::Nothing);
    }

    #[test]
    fn the_default_configuration_does_not_reboot() {
        let key = crate::config::keys::find("reboot").expect("the reboot key");
        assert_eq!(key.default, Some("deny"));
        let policy = RebootPolicy::parse(key.default.unwrap_or_default()).unwrap();
        assert_eq!(decide(true, policy, false), RebootAction::Owed);
    }

    #[test]
    fn owed_until_the_host_boots_again() {
        let mut s = State::default();
        record_at(&mut s, Some("site.yml:3: task `r`"), Some("boot-a"), 100);
        assert_eq!(s.reboot_owed.as_deref(), Some("site.yml:3: task `r`"));
        // A later run in the same boot that owes nothing: still owed, since the first time.
        record_at(&mut s, None, Some("boot-a"), 200);
        assert!(s.reboot_owed.is_some());
        assert_eq!(s.reboot_owed_since, Some(100));
        let st = status(&s, RebootAction::Nothing).unwrap();
        assert_eq!(st.owed_by, "site.yml:3: task `r`");
        // After a boot: forgotten.
        record_at(&mut s, None, Some("boot-b"), 300);
        assert!(s.reboot_owed.is_none() && s.reboot_owed_since.is_none());
        assert!(status(&s, RebootAction::Nothing).is_none());
    }
}
