//! The `reboot` module. The agent runs on the host it would reboot, so it never reboots in the
//! middle of a run: the task records that a reboot is owed (it reports `changed`, with
//! `reboot_owed: true` and `rebooted: false`), the run goes on to its end, and the agent reboots
//! afterwards only if its configuration says `reboot: allow` (default: it does not; the status
//! and the state say a reboot is owed). See [`crate::report::RunReport::reboot_owed`].
//!
//! Arguments about how Ansible's controller waits for the host to come back (`reboot_timeout`,
//! `connect_timeout`, `post_reboot_delay`, `test_command`) hold trivially: nothing waits, the
//! next run after the boot is the check. Refused: `reboot_command`, `boot_time_command`,
//! `search_paths`, `pre_reboot_delay` (the agent's reboot is its own).

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Change, Check, Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct RebootModule;

/// The module's name in task reports, by which the agent finds a reboot owed.
pub const MODULE_NAME: &str = "reboot";

static SPEC: ArgSpec = ArgSpec {
    module: MODULE_NAME,
    args: &[
        ArgDef::new("msg", ArgType::Str),
        ArgDef::new("reboot_timeout", ArgType::Int),
        ArgDef::new("connect_timeout", ArgType::Int),
        ArgDef::new("post_reboot_delay", ArgType::Int),
        ArgDef::new("test_command", ArgType::Str),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// Ansible's default `msg`.
const DEFAULT_MSG: &str = "Reboot initiated by Ansible";

impl Module for RebootModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        Ok(Box::new(Reboot {
            msg: args.str("msg").unwrap_or_else(|| DEFAULT_MSG.to_string()),
        }))
    }
}

struct Reboot {
    msg: String,
}

impl Reboot {
    fn outcome(&self) -> Outcome {
        Outcome::default()
            .with("rebooted", false)
            .with("reboot_owed", true)
            .with("elapsed", 0)
            .with(
                "msg",
                format!(
                    "reboot owed ({}): the agent reboots at the end of the run if its \
                     configuration allows it (reboot: allow)",
                    self.msg
                ),
            )
    }
}

impl Resource for Reboot {
    fn check(&self) -> Result<Check, ModuleError> {
        Ok(Check::new(
            vec![Change::Run {
                command: format!("reboot owed: {}", self.msg),
            }],
            self.outcome(),
        ))
    }

    /// Not checkable: in check mode (and in the daemon's drift passes, which must never owe a
    /// reboot because some file drifted) the task is skipped. Ansible's check mode reports it
    /// changed.
    fn supports_check_mode(&self) -> bool {
        false
    }

    /// Records the reboot owed: the run's report carries it to the agent (nothing else happens
    /// here).
    fn apply(&self, _check: Check) -> Result<Outcome, ModuleError> {
        let mut out = self.outcome();
        out.changed = Some(true);
        Ok(out)
    }
}
