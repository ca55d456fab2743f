//! A task run through the host's ansible-core ([`crate::bridge`]): a module the agent does not
//! implement (or an argument it lacks), or one forced there by `ansible_modules_force`.

use indexmap::IndexMap;
use minijinja::Value;

use super::execute::{env_pairs, CACHEABLE};
use super::{to_json, Engine, Exec, Inherit};
use crate::bridge::plugins::{self, Route};
use crate::bridge::{Invocation, ModuleResult};
use crate::playbook::{Action, Task};
use crate::report::Status;
use crate::vars::Scope;

impl Engine<'_> {
    /// The module and arguments (as written) a task runs through ansible-core, when the bridge
    /// is on and the task is one for it.
    pub(super) fn bridge_target<'t>(
        &self,
        task: &'t Task,
    ) -> Option<(&'t str, &'t IndexMap<String, Value>)> {
        let bridge = self.opts.ansible.as_ref()?;
        match &task.action {
            Action::Unsupported {
                call: Some(call), ..
            } => Some((call.module.as_str(), &call.args)),
            Action::Module {
                name,
                written,
                args,
                ..
            } if bridge.forced(name, written) => Some((written.as_str(), args)),
            _ => None,
        }
    }

    /// Renders the arguments, lets the plugin rules choose (or refuse), runs the module.
    pub(super) fn execute_bridged(
        &self,
        task: &Task,
        inh: &Inherit,
        vars: &Value,
        scope: &Scope,
        module: &str,
        args: &IndexMap<String, Value>,
    ) -> Exec {
        let via = |mut e: Exec| {
            e.via_ansible = true;
            e
        };
        let Some(bridge) = self.opts.ansible.as_ref() else {
            return via(Exec::failure(
                "the ansible module bridge is off".into(),
                Vec::new(),
            ));
        };
        let rendered = match self.render_args(task, args, vars, scope) {
            Ok(r) => r,
            Err(e) => return via(Exec::failure(e.to_string(), Vec::new())),
        };
        let facts = vars.get_attr("ansible_facts").unwrap_or_default();
        let (run, mut warnings) = match plugins::route(module, &rendered, &facts) {
            Route::Module {
                name,
                args,
                warnings,
            } => ((name, args), warnings),
            Route::Refused(msg) => {
                return via(Exec::failure(
                    format!("{}: {msg}", task.location),
                    Vec::new(),
                ))
            }
        };
        let env = match &inh.environment {
            Some(e) => match self.templar.render_value(e, vars) {
                Ok(v) => env_pairs(&v),
                Err(e) => {
                    return via(Exec::failure(format!("environment: {e}"), Vec::new()));
                }
            },
            None => Vec::new(),
        };
        let check_mode = inh.check_mode.unwrap_or(self.opts.check);
        // A drift pass only reports what such a module would change: the agent cannot tell
        // whether it is declarative.
        let drift_check_only = !check_mode && !inh.handler && self.opts.drift.is_some();
        let mut json_args = serde_json::Map::new();
        for (k, v) in &run.1 {
            if let Some(j) = without_omit(to_json(v)) {
                json_args.insert(k.clone(), j);
            }
        }
        // Collections beside the playbook, as ansible-playbook (and ansible-pull) find them.
        let beside = std::path::Path::new(&self.playbook_dir)
            .join(self.base.as_str())
            .join("collections");
        let collections: Vec<std::path::PathBuf> = vec![beside];
        let outcome = bridge.run(Invocation {
            module: &run.0,
            args: json_args,
            check_mode: check_mode || drift_check_only,
            diff: inh.diff.unwrap_or(self.opts.diff),
            no_log: inh.no_log.unwrap_or(false),
            env: &env,
            collections: &collections,
        });
        match outcome {
            Ok(res) => {
                warnings.extend(res.warnings.iter().cloned());
                let mut exec = exec_of(&run.0, res);
                exec.drift_check_only = drift_check_only;
                exec.warnings = warnings;
                exec
            }
            Err(e) => via(Exec::failure(format!("{}: {e}", task.location), Vec::new())),
        }
    }
}

/// A value with Ansible's `omit` removed: an argument (or a mapping key, a list element) whose
/// value is the placeholder is left out, as ansible-core 2.19 does; `None` when omitted itself.
fn without_omit(v: serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    match v {
        J::String(s) if s == crate::template::OMIT => None,
        J::Array(items) => Some(J::Array(
            items.into_iter().filter_map(without_omit).collect(),
        )),
        J::Object(m) => Some(J::Object(
            m.into_iter()
                .filter_map(|(k, v)| without_omit(v).map(|v| (k, v)))
                .collect(),
        )),
        other => Some(other),
    }
}

/// A module's result as the task's outcome.
fn exec_of(module: &str, res: ModuleResult) -> Exec {
    let status = if res.failed.is_some() {
        Status::Failed
    } else if res.skipped {
        Status::Skipped
    } else if res.changed {
        Status::Changed
    } else {
        Status::Ok
    };
    let mut result: IndexMap<String, Value> = res
        .data
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                crate::template::filters::encoding::json_to_value(v.clone()),
            )
        })
        .collect();
    // Facts a module returns become the host's facts, as `set_fact: cacheable` ones do
    // (ansible-core's set_host_facts for both).
    if res.failed.is_none() && result.contains_key("ansible_facts") {
        result.insert(CACHEABLE.into(), Value::from(true));
    }
    let changes = if res.changed {
        vec![format!("ansible module {module}: changed")]
    } else {
        Vec::new()
    };
    Exec {
        status,
        changed: res.changed && res.failed.is_none(),
        failed: res.failed,
        result,
        diff: res.diff,
        changes,
        owns: Vec::new(),
        drift_check_only: false,
        via_ansible: true,
        warnings: res.warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_arguments_are_left_out_at_every_level() {
        let omit = crate::template::OMIT;
        let v = serde_json::json!({"a": omit, "b": [1, omit, {"c": omit, "d": 2}], "e": "x"});
        assert_eq!(
            without_omit(v),
            Some(serde_json::json!({"b": [1, {"d": 2}], "e": "x"}))
        );
        assert_eq!(without_omit(serde_json::json!(omit)), None);
    }

    #[test]
    fn results_map_to_statuses_and_facts() {
        let r = crate::bridge::result::parse(
            "stat",
            r#"{"changed": false, "stat": {"exists": true}, "ansible_facts": {"x": 1}}"#,
            "",
            Some(0),
        );
        let e = exec_of("stat", r);
        assert_eq!(e.status, Status::Ok);
        assert!(e.via_ansible);
        assert!(e.result.contains_key(CACHEABLE));
        assert_eq!(
            e.result["stat"].get_attr("exists").unwrap(),
            Value::from(true)
        );
        let r = crate::bridge::result::parse("x", r#"{"changed": true}"#, "", Some(0));
        let e = exec_of("x", r);
        assert_eq!(e.status, Status::Changed);
        assert_eq!(e.changes, vec!["ansible module x: changed".to_string()]);
        let r = crate::bridge::result::parse("x", r#"{"skipped": true}"#, "", Some(0));
        assert_eq!(exec_of("x", r).status, Status::Skipped);
        let r = crate::bridge::result::parse(
            "x",
            r#"{"failed": true, "msg": "m", "changed": true, "ansible_facts": {"a": 1}}"#,
            "",
            Some(1),
        );
        let e = exec_of("x", r);
        assert_eq!(e.status, Status::Failed);
        assert!(!e.changed);
        assert_eq!(e.failed.as_deref(), Some("m"));
        assert!(!e.result.contains_key(CACHEABLE));
    }
}
