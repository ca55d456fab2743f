//! `ansible_failed_task` and `ansible_failed_result`: what a `rescue` (and everything after it
//! in the run) sees of the task that failed inside a block with a `rescue`. Ansible stores
//! them as non-persistent host facts (set_fact's level): they outlive the block and the play.

use indexmap::IndexMap;
use minijinja::Value;

use super::{Engine, Inherit};
use crate::playbook::{Action, Flag, Task};
use crate::report::TaskReport;

impl Engine<'_> {
    /// Records the failure of `task` for a `rescue`, when the task is inside the `block:` of a
    /// block that has one (Ansible's `is_any_block_rescuing`) and its errors are not ignored.
    pub(super) fn record_failure(&mut self, task: &Task, inh: &Inherit, report: &TaskReport) {
        let result = self.pending_result.take();
        if !inh.rescuing {
            return;
        }
        let result = result.unwrap_or_else(|| {
            let mut res = IndexMap::new();
            res.insert("failed".to_string(), Value::from(true));
            res.insert("changed".to_string(), Value::from(false));
            if let Some(m) = &report.msg {
                res.insert("msg".to_string(), Value::from(m.as_str()));
            }
            res
        });
        self.host_facts
            .insert("ansible_failed_task".into(), failed_task(task));
        self.host_facts.insert(
            "ansible_failed_result".into(),
            crate::vars::map_value(result),
        );
    }
}

/// The task as Ansible serializes it (the attributes roles read: `name`, `action`, `args`…).
fn failed_task(task: &Task) -> Value {
    let (action, resolved, args) = match &task.action {
        Action::Module {
            name,
            written,
            args,
            ..
        } => {
            let resolved = if written.contains('.') {
                written.clone()
            } else if crate::modules::canonical_name(&format!("ansible.posix.{name}")).is_some() {
                format!("ansible.posix.{name}")
            } else {
                format!("ansible.builtin.{name}")
            };
            (
                written.clone(),
                resolved,
                crate::vars::map_value(args.iter().map(|(k, v)| (k.as_str(), v.clone()))),
            )
        }
        other => {
            let short = match other {
                Action::IncludeTasks { import: true, .. } => "import_tasks",
                Action::IncludeTasks { .. } => "include_tasks",
                Action::IncludeRole { import: true, .. } => "import_role",
                Action::IncludeRole { .. } => "include_role",
                _ => "meta",
            };
            (
                short.to_string(),
                format!("ansible.builtin.{short}"),
                crate::vars::map_value(Vec::<(&str, Value)>::new()),
            )
        }
    };
    let opt = |s: &Option<String>| s.as_deref().map(Value::from).unwrap_or(Value::from(()));
    crate::vars::map_value([
        ("name", Value::from(task.name.clone().unwrap_or_default())),
        ("action", Value::from(action)),
        ("_resolved_action", Value::from(resolved)),
        ("args", args),
        ("when", Value::from(task.common.when.clone())),
        ("tags", Value::from(task.common.tags.clone())),
        ("register", opt(&task.register)),
        (
            "notify",
            if task.notify.is_empty() {
                Value::from(())
            } else {
                Value::from(task.notify.clone())
            },
        ),
        (
            "ignore_errors",
            task.common
                .ignore_errors
                .as_ref()
                .map(Flag::as_value)
                .unwrap_or(Value::from(())),
        ),
        (
            "no_log",
            task.common
                .no_log
                .as_ref()
                .map(Flag::as_value)
                .unwrap_or(Value::from(false)),
        ),
        (
            "vars",
            crate::vars::map_value(
                task.common
                    .vars
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone())),
            ),
        ),
        (
            "loop",
            task.loop_items
                .as_ref()
                .map(|l| l.items.clone())
                .unwrap_or(Value::from(())),
        ),
    ])
}
