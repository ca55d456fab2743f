//! A task's variables, its conditions and its loop items.

use std::sync::Arc;

use minijinja::Value;

use super::{Engine, Inherit};
use crate::args::python_str;
use crate::playbook::{RawVars, Task};
use crate::vars::Scope;

/// A run-time error in a task's keywords (`when`, `changed_when`, `failed_when`, `loop`).
#[derive(Debug, thiserror::Error)]
pub(super) enum EvalError {
    #[error("condition `{expr}`: {detail}")]
    Condition { expr: String, detail: String },
    #[error("loop: {0}")]
    Loop(String),
    #[error("Invalid data passed to 'loop', it requires a list, got this instead: {0}")]
    LoopOfText(String),
}

impl Engine<'_> {
    /// Builds a task's variables.
    pub(super) fn scope(
        &self,
        task: Option<&Task>,
        inherit: &Inherit,
        extra: Option<&RawVars>,
    ) -> (Value, Arc<Scope>) {
        let role = task.and_then(|t| t.role.clone()).or(inherit.role.clone());
        let mut magic = RawVars::new();
        magic.insert(
            "inventory_hostname".into(),
            Value::from(self.opts.inventory_hostname.as_str()),
        );
        magic.insert(
            "inventory_hostname_short".into(),
            Value::from(
                self.opts
                    .inventory_hostname
                    .split('.')
                    .next()
                    .unwrap_or_default(),
            ),
        );
        // The playbook's own directory (the repository's top unless it is in a subdirectory).
        let playbook_dir = match self.base.as_str() {
            "" => self.playbook_dir.clone(),
            sub => format!("{}/{sub}", self.playbook_dir),
        };
        magic.insert("playbook_dir".into(), Value::from(playbook_dir));
        magic.insert("ansible_check_mode".into(), Value::from(self.opts.check));
        magic.insert("ansible_diff_mode".into(), Value::from(self.opts.diff));
        magic.insert(
            "ansible_play_name".into(),
            Value::from(self.play_name.as_str()),
        );
        if let Some(r) = &role {
            magic.insert("role_name".into(), Value::from(r.name.as_str()));
            magic.insert(
                "role_path".into(),
                Value::from(format!("{}/{}", self.playbook_dir, r.path)),
            );
        }
        let empty = RawVars::new();
        let role_defaults = role.as_ref().map(|r| &r.defaults).unwrap_or(&empty);
        let role_vars = role.as_ref().map(|r| &r.vars).unwrap_or(&empty);
        let role_params = role.as_ref().map(|r| &r.params).unwrap_or(&empty);
        let task_vars = task.map(|t| &t.common.vars).unwrap_or(&empty);
        // (layer, host-level: seen through `hostvars`)
        let mut layers: Vec<(&RawVars, bool)> = Vec::with_capacity(20);
        layers.extend(self.play_role_defaults.iter().map(|a| (a.as_ref(), false)));
        layers.push((role_defaults, false));
        // group_vars, host_vars and facts are host-level; play vars and vars_files are not.
        layers.extend(
            self.play_vars
                .iter()
                .enumerate()
                .map(|(i, a)| (a.as_ref(), i < 3)),
        );
        layers.extend(self.play_role_vars.iter().map(|a| (a.as_ref(), false)));
        layers.push((role_vars, false));
        layers.extend(inherit.vars.iter().map(|a| (a.as_ref(), false)));
        layers.push((task_vars, false));
        layers.push((&self.host_facts, true));
        layers.push((role_params, false));
        if let Some(rv) = &inherit.rescue_vars {
            layers.push((rv, false));
        }
        layers.push((&self.opts.extra_vars, true));
        if let Some(x) = extra {
            layers.push((x, false));
        }
        layers.push((&magic, true));
        // The run's and the play's magic variables: above all, not merged (see `Scope::over`).
        Scope::with_host_layers(self.templar.clone(), layers, self.hash_merge)
            .with_over(vec![self.play_magic.clone()])
            .into_value()
    }

    /// Evaluates conditions (all must hold). Err is a run-time error in a condition.
    pub(super) fn conditions(
        &self,
        conds: &[Value],
        vars: &Value,
        scope: &Scope,
    ) -> Result<bool, EvalError> {
        for c in conds {
            let ok = match c.kind() {
                minijinja::value::ValueKind::Bool => c.is_true(),
                _ => {
                    let text = python_str(c);
                    self.templar
                        .eval_bool(&text, vars)
                        .map_err(|e| EvalError::Condition {
                            detail: scope.take_error().unwrap_or_else(|| e.to_string()),
                            expr: text,
                        })?
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(super) fn loop_vars(&self, task: &Task, item: &Value, index: usize) -> RawVars {
        let mut lv = RawVars::new();
        lv.insert(task.loop_var.clone(), item.clone());
        lv.insert(
            "ansible_loop_var".into(),
            Value::from(task.loop_var.as_str()),
        );
        if let Some(iv) = &task.index_var {
            lv.insert(iv.clone(), Value::from(index));
        }
        lv
    }

    pub(super) fn loop_items(
        &self,
        raw: &Value,
        flatten: bool,
        vars: &Value,
        scope: &Scope,
    ) -> Result<Vec<Value>, EvalError> {
        let rendered = self
            .templar
            .render_value(raw, vars)
            .map_err(|e| EvalError::Loop(scope.take_error().unwrap_or_else(|| e.to_string())))?;
        if rendered.is_none() || rendered.is_undefined() {
            return Ok(Vec::new());
        }
        if rendered.as_str().is_some() {
            if flatten {
                return Ok(vec![rendered]);
            }
            return Err(EvalError::LoopOfText(rendered.to_string()));
        }
        let iter = rendered
            .try_iter()
            .map_err(|_| EvalError::Loop(format!("expected a list, got {rendered}")))?;
        let mut out = Vec::new();
        for v in iter {
            if flatten && v.kind() == minijinja::value::ValueKind::Seq {
                out.extend(v.try_iter().into_iter().flatten());
            } else {
                out.push(v);
            }
        }
        Ok(out)
    }
}
