//! Running a role's argument validation task ([`Action::ValidateArgs`]): the role's
//! parameters and the variables its spec names, rendered, checked against the spec.

use indexmap::IndexMap;
use minijinja::Value;

use super::{Engine, Exec};
use crate::playbook::{option_names, validate_arguments, RawVars};
use crate::report::Status;

impl Engine<'_> {
    pub(super) fn validate_role_args(
        &self,
        options: &Value,
        params: &RawVars,
        vars: &Value,
    ) -> Exec {
        let mut provided: Vec<(String, Value)> = Vec::new();
        let render = |name: &str, out: &mut Vec<(String, Value)>| -> Result<(), String> {
            let v = self
                .templar
                .render_str(&format!("{{{{ {name} }}}}"), vars)
                .map_err(|e| format!("argument_specs: `{name}`: {e}"))?;
            out.retain(|(k, _)| k != name);
            out.push((name.to_string(), v));
            Ok(())
        };
        let mut result = Ok(());
        for name in option_names(options) {
            if !crate::playbook::is_identifier(&name) {
                continue;
            }
            let defined = self
                .templar
                .eval_bool(&format!("{name} is defined"), vars)
                .unwrap_or(false);
            if defined {
                result = result.and_then(|()| render(&name, &mut provided));
            }
        }
        // The role's parameters are given whether the spec names them or not.
        for name in params.keys() {
            result = result.and_then(|()| render(name, &mut provided));
        }
        let result = result.and_then(|()| validate_arguments(options, &provided));
        match result {
            Ok(()) => Exec {
                status: Status::Ok,
                changed: false,
                failed: None,
                result: IndexMap::from_iter([
                    ("changed".to_string(), Value::from(false)),
                    (
                        "msg".to_string(),
                        Value::from("The arg spec validation passed"),
                    ),
                ]),
                diff: Vec::new(),
                changes: Vec::new(),
                owns: Vec::new(),
                drift_check_only: false,
                via_ansible: false,
                warnings: Vec::new(),
            },
            Err(msg) => Exec::failure(msg, Vec::new()),
        }
    }
}
