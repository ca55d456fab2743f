//! `meta` actions, as ansible-core's strategy runs them for this one host: `flush_handlers`,
//! `end_host`/`end_play`/`end_batch` (the play ends here without failing; notified handlers
//! do not run; the next play goes on), `end_role`, `clear_facts`, `clear_host_errors`, and the
//! ones with nothing to do locally (`noop`, `reset_connection`, `refresh_inventory`,
//! `role_complete`), which ignore `when` as Ansible does.

use super::{Engine, Flow, Inherit};
use crate::playbook::{Action, Meta, Task};

impl Engine<'_> {
    /// Runs a meta task; None for any other task.
    pub(super) fn run_meta(&mut self, task: &Task, inh: &Inherit) -> Option<Flow> {
        let meta = match &task.action {
            Action::FlushHandlers => None,
            Action::MetaNoop(_) => return Some(Flow::Continue),
            Action::Meta(Meta::ResetConnection | Meta::RefreshInventory | Meta::RoleComplete) => {
                return Some(Flow::Continue)
            }
            Action::Meta(m) => Some(*m),
            _ => return None,
        };
        let (vars, scope) = self.scope(Some(task), inh, None);
        match self.conditions(&inh.when, &vars, &scope) {
            Ok(true) => {}
            Ok(false) => return Some(Flow::Continue),
            Err(e) => {
                let report = self.base_report(task, inh.handler, false);
                return Some(self.fail_task(task, inh, report, e));
            }
        }
        Some(match meta {
            None if inh.handler => {
                let report = self.base_report(task, true, false);
                self.fail_task(
                    task,
                    inh,
                    report,
                    format!(
                        "{}: flush_handlers cannot be used as a handler",
                        task.location
                    ),
                )
            }
            None => self.flush_handlers(),
            Some(Meta::EndHost | Meta::EndPlay | Meta::EndBatch) => Flow::EndPlay,
            Some(Meta::EndRole) => Flow::EndRole,
            Some(Meta::ClearFacts) => {
                self.clear_facts();
                Flow::Continue
            }
            Some(Meta::ClearHostErrors) => {
                self.errors_cleared = true;
                Flow::Continue
            }
            Some(Meta::ResetConnection | Meta::RefreshInventory | Meta::RoleComplete) => {
                Flow::Continue
            }
        })
    }
}
