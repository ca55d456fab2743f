//! `service`/`systemd` on a host where systemd is not running (a chroot, a container or image
//! build, an installer): detected as Ansible's `service_mgr` fact does, by the absence of
//! `/run/systemd/system`.
//!
//! What still works, as in Ansible: `enabled` and `masked` (systemctl reads and writes the unit
//! files' `[Install]` symlinks offline, and runs `systemd-sysv-install` for init scripts);
//! `daemon_reload`/`daemon_reexec` have no manager to talk to and are skipped with a warning
//! (Ansible warns in a chroot). Started/stopped: the `service` module runs `/etc/init.d/<name>`
//! when the service has one (its `status` decides); without one, `stopped` holds (no unit runs
//! without a running systemd) and the other states are refused naming the service. The `systemd`
//! module does as Ansible's `systemd_service`: in a chroot (or with `SYSTEMD_OFFLINE=1`) it
//! warns and changes nothing, elsewhere it fails ("Service is in unknown state").

use std::path::{Path, PathBuf};
use std::process::Command;

use indexmap::IndexMap;
use minijinja::Value;

use super::UnitResource;
use crate::host::unit_name;
use crate::process;
use crate::resource::{Change, Check, ModuleError, Outcome, UnitOp};

/// Where systemd says it is running (`sd_booted()`), as Ansible's `is_systemd_managed`.
const BOOTED_CANARY: &str = "/run/systemd/system";

/// True when no systemd is running as this system's manager.
pub(super) fn systemd_offline() -> bool {
    !Path::new(BOOTED_CANARY).exists()
}

/// Ansible's `is_chroot`: `debian_chroot` set, or `/` is not PID 1's root.
fn is_chroot() -> bool {
    if std::env::var_os("debian_chroot").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata("/"), std::fs::metadata("/proc/1/root/.")) {
        (Ok(me), Ok(init)) => me.ino() != init.ino() || me.dev() != init.dev(),
        _ => false,
    }
}

/// Ansible's `is_chroot(module) or os.environ.get('SYSTEMD_OFFLINE') == '1'` (the module's
/// environment includes the task's): then a failed daemon-reload and an unknown unit state are
/// warnings, not failures.
fn tolerated(r: &UnitResource) -> bool {
    r.offline_env || std::env::var("SYSTEMD_OFFLINE").as_deref() == Ok("1") || is_chroot()
}

/// `/etc/init.d/<name>` when it is an executable script (Ansible's `sysv_exists`).
fn init_script(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let base = name.strip_suffix(".service").unwrap_or(name);
    let path = Path::new("/etc/init.d").join(base);
    let meta = std::fs::metadata(&path).ok()?;
    (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(path)
}

/// `systemctl is-enabled UNIT`: its first line and whether it succeeded.
fn is_enabled(unit: &str) -> Result<(String, bool), ModuleError> {
    let ran = process::run(
        Command::new("systemctl")
            .env("SYSTEMD_PAGER", "")
            .arg("is-enabled")
            .arg(unit),
    )?;
    let first = ran.stdout.lines().next().unwrap_or("").trim().to_string();
    Ok((first, ran.ok()))
}

/// Unit-file states `systemctl is-enabled` prints for a unit it knows (systemctl(1)).
const KNOWN_STATES: &[&str] = &[
    "enabled",
    "enabled-runtime",
    "linked",
    "linked-runtime",
    "masked",
    "masked-runtime",
    "static",
    "indirect",
    "disabled",
    "generated",
    "transient",
    "alias",
];

/// The plan for `r` on a host without a running systemd.
pub(super) fn check(r: &UnitResource) -> Result<Check, ModuleError> {
    let mut changes = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    if r.daemon_reload || r.daemon_reexec {
        if tolerated(r) {
            warnings.push(
                "daemon-reload/daemon-reexec skipped: the target is a chroot or systemd is \
                 offline (no /run/systemd/system)"
                    .into(),
            );
        } else {
            // As Ansible: systemctl is run and its failure fails the task (not in check mode).
            for (asked, op) in [
                (r.daemon_reload, UnitOp::DaemonReload),
                (r.daemon_reexec, UnitOp::DaemonReexec),
            ] {
                if asked {
                    changes.push(Change::Unit {
                        name: String::new(),
                        op,
                    });
                }
            }
        }
    }
    let Some(name) = &r.unit else {
        // daemon-reload/daemon-reexec alone: never a change, as in Ansible.
        let mut out = outcome(r, None, &warnings);
        out.changed = Some(false);
        return Ok(Check::new(changes, out));
    };
    let unit = unit_name(name);
    let (file_state, enabled_rc_ok) = is_enabled(&unit)?;
    let script = init_script(name);
    let found = KNOWN_STATES.contains(&file_state.as_str()) || script.is_some();
    let missing = || ModuleError::new(format!("Could not find the requested service {name}: host"));
    if !found && !r.service_module {
        // Ansible's systemd module, not finding the unit, runs `systemctl` alone with
        // check_rc: without a running systemd that fails the task with systemctl's error,
        // whatever the task asked (a status query too).
        let ran = process::run(&mut Command::new("systemctl"))?;
        if !ran.ok() {
            let detail = if ran.stderr.trim().is_empty() {
                ran.stdout.trim()
            } else {
                ran.stderr.trim()
            };
            return Err(ModuleError::new(detail.to_string()));
        }
    }
    if let Some(m) = r.masked {
        if (file_state == "masked") != m {
            changes.push(Change::Unit {
                name: unit.clone(),
                op: if m { UnitOp::Mask } else { UnitOp::Unmask },
            });
        }
    }
    let mut enabled_now = None;
    if let Some(want) = r.enabled {
        if !found {
            return Err(missing());
        }
        // As Ansible: a zero exit of is-enabled counts as enabled, except these states.
        let is = enabled_rc_ok
            && !matches!(
                file_state.as_str(),
                "enabled-runtime" | "indirect" | "alias"
            );
        enabled_now = Some(is);
        if is != want {
            changes.push(Change::Unit {
                name: unit.clone(),
                op: if want {
                    UnitOp::Enable
                } else {
                    UnitOp::Disable
                },
            });
        }
    }
    if let Some(state) = &r.state {
        if !found {
            return Err(missing());
        }
        match (r.service_module, &script) {
            (true, Some(script)) => {
                let running = process::run(Command::new(script).arg("status"))?.ok();
                let verb = match state.as_str() {
                    "started" => (!running).then_some("start"),
                    "stopped" => running.then_some("stop"),
                    "restarted" => Some("restart"),
                    "reloaded" if running => Some("reload"),
                    _ => Some("start"),
                };
                if let Some(verb) = verb {
                    changes.push(Change::Exec {
                        argv: vec![script.display().to_string(), verb.to_string()],
                        summary: format!(
                            "{verb} {name} through its init script (systemd is not running)"
                        ),
                    });
                }
            }
            // Nothing runs as a unit without a running systemd.
            (true, None) if state == "stopped" => {}
            (true, None) => {
                return Err(ModuleError::new(format!(
                    "cannot make service {name} {state}: systemd is not running on this host \
                     (no /run/systemd/system: a chroot, a container or an image build) and \
                     there is no /etc/init.d/{name} to run instead; `enabled` works offline, \
                     starting it does not"
                )))
            }
            (false, _) if tolerated(r) => warnings.push(
                "Target is a chroot or systemd is offline. This can lead to false positives or \
                 prevent the init system tools from working."
                    .into(),
            ),
            (false, _) => {
                return Err(ModuleError::new(format!(
                    "Service is in unknown state: systemd is not running on this host (no \
                     /run/systemd/system), so {name} cannot be made {state} (Ansible's systemd \
                     module fails the same way outside a chroot; `enabled`/`masked` work offline, \
                     and the `service` module runs an init script when there is one)"
                )))
            }
        }
    }
    let mut out = outcome(r, enabled_now, &warnings);
    if changes.iter().all(|c| {
        matches!(
            c,
            Change::Unit {
                op: UnitOp::DaemonReload | UnitOp::DaemonReexec,
                ..
            }
        )
    }) {
        out.changed = Some(false);
    }
    Ok(Check::new(changes, out))
}

/// Carries out an offline plan: systemctl for unit files, the init script for the rest.
pub(super) fn apply(r: &UnitResource, check: Check) -> Result<Outcome, ModuleError> {
    let mut out = check.outcome;
    let mut enabled_now = None;
    for change in &check.changes {
        match change {
            Change::Unit { name, op } => {
                let unit = (!name.is_empty()).then_some(name.as_str());
                let ran = process::run(&mut r.systemctl(*op, unit))?;
                if !ran.ok() {
                    // As Ansible's fail_json(msg=...): the message alone.
                    return Ok(Outcome {
                        failed: Some(super::failure_message(*op, name, &ran)),
                        ..Outcome::default()
                    });
                }
                match op {
                    UnitOp::Enable => enabled_now = Some(true),
                    UnitOp::Disable => enabled_now = Some(false),
                    _ => {}
                }
            }
            Change::Exec { argv, .. } => {
                let Some((program, args)) = argv.split_first() else {
                    continue;
                };
                let ran = process::run(Command::new(program).args(args))?;
                let verb = argv.get(1).map(String::as_str).unwrap_or("run");
                if !ran.ok() {
                    out.failed = Some(format!(
                        "Unable to {verb} service {}: {}",
                        r.unit.as_deref().unwrap_or(""),
                        ran.stderr.trim()
                    ));
                    return Ok(out);
                }
            }
            _ => {}
        }
    }
    if let Some(e) = enabled_now {
        out.data.insert("enabled".into(), Value::from(e));
    }
    Ok(out)
}

fn outcome(r: &UnitResource, enabled_now: Option<bool>, warnings: &[String]) -> Outcome {
    let mut out = r.outcome(None, enabled_now);
    // Ansible reports an empty status when `systemctl show` cannot answer.
    out = out.with(
        "status",
        Value::from_object(IndexMap::<Value, Value>::new()),
    );
    if !warnings.is_empty() {
        out = out.with(
            "warnings",
            Value::from(
                warnings
                    .iter()
                    .map(|w| Value::from(w.as_str()))
                    .collect::<Vec<_>>(),
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_must_be_an_executable_file() {
        // /etc/init.d/<name> on this host is not assumed; a name that cannot exist has none.
        assert!(init_script("gitops-agent-no-such-service").is_none());
    }
}
