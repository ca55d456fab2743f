//! `systemd` (also `systemd_service`) and `service`: systemd units, with the meaning Ansible's
//! systemd module gives them (its `service` module delegates to it on systemd hosts).
//!
//! Check reads unit state from one `systemctl show` shared by every unit of the play
//! ([`HostState`]); apply runs `systemctl` once per change, in Ansible's order: daemon-reload,
//! daemon-reexec, mask/unmask, enable/disable, then start/stop/restart/reload.
//!
//! Kept from Ansible: `enabled` counts as true for `enabled`, `static`, `generated` and
//! `transient` unit-file states and false for `enabled-runtime`, `indirect` and `alias` (so
//! `enabled: no` on a static unit runs `disable` and reports changed each time, as there);
//! `restarted`/`reloaded` always act (a stopped unit is started); `daemon_reload` and
//! `daemon_reexec` are never a change. `service` takes the `systemd` arguments, as Ansible's service action hands
//! them to the systemd module on a systemd host. Without a running systemd: [`offline`].

mod offline;

use std::process::Command;
use std::sync::{Arc, OnceLock};

use indexmap::IndexMap;
use minijinja::Value;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::host::{unit_name, HostQueries, HostState, UnitState};
use crate::process;
use crate::resource::{
    Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource, UnitOp,
};

pub struct SystemdModule;
pub struct ServiceModule;

const STATES: &[&str] = &["reloaded", "restarted", "started", "stopped"];

static SYSTEMD_SPEC: ArgSpec = ArgSpec {
    module: "systemd",
    args: &[
        ArgDef::new("name", ArgType::Str).aliases(&["service", "unit"]),
        ArgDef::new("state", ArgType::Str).choices(STATES),
        ArgDef::new("enabled", ArgType::Bool),
        ArgDef::new("masked", ArgType::Bool),
        ArgDef::new("daemon_reload", ArgType::Bool).aliases(&["daemon-reload"]),
        ArgDef::new("daemon_reexec", ArgType::Bool).aliases(&["daemon-reexec"]),
        ArgDef::new("scope", ArgType::Str).choices(&["system", "user", "global"]),
        ArgDef::new("force", ArgType::Bool),
        ArgDef::new("no_block", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    // Ansible's required_one_of here names an argument with a default (set before the check
    // runs), so it never fails: `systemd: name=x` alone reports the unit's status,
    // `apt: cache_valid_time=N` alone updates the cache.
    required_one_of: &[],
};

static SERVICE_SPEC: ArgSpec = ArgSpec {
    module: "service",
    args: &[
        ArgDef::new("name", ArgType::Str).aliases(&["service", "unit"]),
        ArgDef::new("state", ArgType::Str).choices(STATES),
        ArgDef::new("enabled", ArgType::Bool),
        ArgDef::new("masked", ArgType::Bool),
        ArgDef::new("daemon_reload", ArgType::Bool).aliases(&["daemon-reload"]),
        ArgDef::new("daemon_reexec", ArgType::Bool).aliases(&["daemon-reexec"]),
        ArgDef::new("scope", ArgType::Str).choices(&["system", "user", "global"]),
        ArgDef::new("force", ArgType::Bool),
        ArgDef::new("no_block", ArgType::Bool),
        ArgDef::new("use", ArgType::Str),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for SystemdModule {
    fn spec(&self) -> &'static ArgSpec {
        &SYSTEMD_SPEC
    }

    fn host_queries(&self, args: &IndexMap<String, Value>, queries: &mut HostQueries) {
        queries.units_named(args);
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        unit_resource(args, ctx, false)
    }
}

/// The resource of a `systemd` or `service` task (`service`: the init-script fallback offline).
fn unit_resource(
    args: &Args,
    ctx: &ModuleContext,
    service_module: bool,
) -> Result<Box<dyn Resource>, ModuleError> {
    if let Some(scope) = args.str("scope").filter(|s| s != "system") {
        return Err(ModuleError::new(format!(
            "scope={scope} is not supported: the agent manages system units"
        )));
    }
    let unit = args.str("name").filter(|n| !n.is_empty());
    if unit.is_none() && (args.has("state") || args.has("enabled") || args.has("masked")) {
        return Err(ModuleError::new(
            "missing required arguments: name (with state, enabled or masked)",
        ));
    }
    if let Some(u) = unit.as_deref().filter(|u| u.contains(['*', '?', '['])) {
        return Err(ModuleError::new(format!(
            "This module does not currently support using glob patterns, found in service name: {u}"
        )));
    }
    let mut r = UnitResource::from_args(unit, args, ctx);
    r.service_module = service_module;
    Ok(Box::new(r))
}

impl Module for ServiceModule {
    fn spec(&self) -> &'static ArgSpec {
        &SERVICE_SPEC
    }

    fn host_queries(&self, args: &IndexMap<String, Value>, queries: &mut HostQueries) {
        queries.units_named(args);
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        if let Some(u) = args.str("use").filter(|u| u != "auto" && u != "systemd") {
            return Err(ModuleError::new(format!(
                "service manager '{u}' is not supported: the agent manages systemd units"
            )));
        }
        unit_resource(args, ctx, true)
    }
}

struct UnitResource {
    unit: Option<String>,
    state: Option<String>,
    enabled: Option<bool>,
    masked: Option<bool>,
    daemon_reload: bool,
    daemon_reexec: bool,
    force: bool,
    no_block: bool,
    /// A `service` task (offline, it may run the init script).
    service_module: bool,
    /// The task's `environment` sets `SYSTEMD_OFFLINE=1` (Ansible's module then tolerates an
    /// offline systemd as in a chroot).
    offline_env: bool,
    /// Whether check found systemd not running (apply follows the same path).
    offline: OnceLock<bool>,
    host: Arc<HostState>,
}

impl UnitResource {
    fn from_args(unit: Option<String>, args: &Args, ctx: &ModuleContext) -> UnitResource {
        UnitResource {
            unit,
            state: args.str("state"),
            enabled: args.bool("enabled"),
            masked: args.bool("masked"),
            daemon_reload: args.bool_or("daemon_reload", false),
            daemon_reexec: args.bool_or("daemon_reexec", false),
            force: args.bool_or("force", false),
            no_block: args.bool_or("no_block", false),
            service_module: false,
            offline_env: ctx
                .env
                .iter()
                .any(|(k, v)| k == "SYSTEMD_OFFLINE" && v == "1"),
            offline: OnceLock::new(),
            host: Arc::clone(ctx.host),
        }
    }

    fn systemctl(&self, op: UnitOp, unit: Option<&str>) -> Command {
        let mut cmd = Command::new("systemctl");
        cmd.env("SYSTEMD_PAGER", "");
        if self.no_block
            && matches!(
                op,
                UnitOp::Start | UnitOp::Stop | UnitOp::Restart | UnitOp::Reload
            )
        {
            cmd.arg("--no-block");
        }
        if self.force && matches!(op, UnitOp::Enable | UnitOp::Mask) {
            cmd.arg("--force");
        }
        cmd.arg(op.verb());
        if let Some(u) = unit {
            cmd.arg(u);
        }
        cmd
    }

    /// The registered result, from what was read and what was asked.
    fn outcome(&self, st: Option<&UnitState>, enabled_now: Option<bool>) -> Outcome {
        let mut out = Outcome::default();
        if let Some(u) = &self.unit {
            out = out.with("name", u.as_str());
        }
        if let Some(s) = &self.state {
            let shown = if s == "restarted" || s == "reloaded" {
                "started"
            } else {
                s.as_str()
            };
            out = out.with("state", shown);
        }
        if let Some(e) = self.enabled {
            out = out.with("enabled", enabled_now.unwrap_or(e));
        }
        if let Some(st) = st {
            let status: IndexMap<Value, Value> = st
                .properties
                .iter()
                .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
                .collect();
            out = out.with("status", Value::from_object(status));
        }
        out
    }
}

/// Ansible's `fail_json` message for a systemctl call that failed.
fn failure_message(op: UnitOp, name: &str, ran: &process::Ran) -> String {
    match op {
        UnitOp::DaemonReload | UnitOp::DaemonReexec => {
            format!("failure {} during {}: {}", ran.rc, op.verb(), ran.stderr)
        }
        UnitOp::Mask | UnitOp::Unmask => format!(
            "Failed to {} the service ({name}): {}",
            op.verb(),
            ran.stderr.trim()
        ),
        _ => format!(
            "Unable to {} service {name}: {}{}",
            op.verb(),
            ran.stdout,
            ran.stderr.trim()
        ),
    }
}

/// Ansible's notion of "enabled" for `systemctl is-enabled` output.
fn counts_as_enabled(unit_file_state: &str) -> bool {
    matches!(
        unit_file_state,
        "enabled" | "static" | "generated" | "transient"
    )
}

impl Resource for UnitResource {
    fn check(&self) -> Result<Check, ModuleError> {
        if *self.offline.get_or_init(offline::systemd_offline) {
            return offline::check(self);
        }
        let mut changes = Vec::new();
        if self.daemon_reload {
            changes.push(Change::Unit {
                name: String::new(),
                op: UnitOp::DaemonReload,
            });
        }
        if self.daemon_reexec {
            changes.push(Change::Unit {
                name: String::new(),
                op: UnitOp::DaemonReexec,
            });
        }
        let Some(name) = &self.unit else {
            let mut outcome = self.outcome(None, None);
            outcome.changed = Some(false);
            return Ok(Check::new(changes, outcome));
        };
        let st = self.host.unit(name)?;
        let found = st.exists();
        let unit = if found && !st.id.is_empty() {
            name.clone()
        } else {
            unit_name(name)
        };
        let missing =
            || ModuleError::new(format!("Could not find the requested service {name}: host"));
        if let Some(m) = self.masked {
            if st.is_masked() != m {
                changes.push(Change::Unit {
                    name: unit.clone(),
                    op: if m { UnitOp::Mask } else { UnitOp::Unmask },
                });
            }
        }
        let mut enabled_now = None;
        if let Some(want) = self.enabled {
            if !found {
                return Err(missing());
            }
            let is = counts_as_enabled(&st.unit_file_state);
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
        if let Some(state) = &self.state {
            if !found {
                return Err(missing());
            }
            let running = matches!(st.active_state.as_str(), "active" | "activating");
            let op = match state.as_str() {
                "started" => (!running).then_some(UnitOp::Start),
                "stopped" => (running || st.active_state == "deactivating").then_some(UnitOp::Stop),
                "restarted" if running => Some(UnitOp::Restart),
                "reloaded" if running => Some(UnitOp::Reload),
                _ => Some(UnitOp::Start),
            };
            if let Some(op) = op {
                changes.push(Change::Unit {
                    name: unit.clone(),
                    op,
                });
            }
        }
        let mut outcome = self.outcome(Some(&st), enabled_now);
        if changes.iter().all(|c| {
            matches!(
                c,
                Change::Unit {
                    op: UnitOp::DaemonReload | UnitOp::DaemonReexec,
                    ..
                }
            )
        }) {
            outcome.changed = Some(false);
        }
        Ok(Check::new(changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        if self.offline.get() == Some(&true) {
            return offline::apply(self, check);
        }
        let changes = &check.changes;
        let mut enabled_now = None;
        let mut only_reload = true;
        for change in changes {
            let Change::Unit { name, op } = change else {
                continue;
            };
            let unit = (!name.is_empty()).then_some(name.as_str());
            let ran = process::run(&mut self.systemctl(*op, unit))?;
            // Whatever happened, what systemd knows has changed.
            self.host.invalidate_units();
            if !ran.ok() {
                let msg = failure_message(*op, name, &ran);
                let mut out = self.outcome(None, None);
                out.failed = Some(msg);
                return Ok(out);
            }
            match op {
                UnitOp::Enable => enabled_now = Some(true),
                UnitOp::Disable => enabled_now = Some(false),
                _ => {}
            }
            if !matches!(op, UnitOp::DaemonReload | UnitOp::DaemonReexec) {
                only_reload = false;
            }
        }
        let st = match &self.unit {
            Some(u) => Some(self.host.unit(u)?),
            None => None,
        };
        let mut out = self.outcome(st.as_ref(), enabled_now);
        if only_reload {
            out.changed = Some(false);
        }
        Ok(out)
    }

    fn owns(&self) -> Vec<Owned> {
        self.unit
            .iter()
            .map(|u| Owned::Unit(unit_name(u)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_as_ansible_reads_is_enabled() {
        for s in ["enabled", "static", "generated", "transient"] {
            assert!(counts_as_enabled(s), "{s}");
        }
        for s in [
            "disabled",
            "enabled-runtime",
            "indirect",
            "alias",
            "masked",
            "",
        ] {
            assert!(!counts_as_enabled(s), "{s}");
        }
    }
}
