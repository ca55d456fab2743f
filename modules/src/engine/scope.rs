//! A task's variables, its conditions and its loop items.

use std::sync::Arc;

use minijinja::Value;

use super::{Engine, Inherit};
use crate::args::python_str;
use crate::playbook::{RawVars, Task};
use crate::vars::{Layer, Scope};

/// A run-time error in a task's keywords (`when`, `changed_when`, `failed_when`, `loop`).
#[derive(Debug, thiserror::Error)]
pub(super) enum EvalError {
    #[error("condition `{expr}`: {detail}")]
    Condition { expr: String, detail: String },
    #[error("loop: {0}")]
    Loop(String),
    #[error("Invalid data passed to 'loop', it requires a list, got this instead: {0}")]
    LoopOfText(String),
    #[error("The `loop` value must resolve to a 'list', not 'NoneType'.")]
    LoopOfNone,
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
            magic.insert("ansible_role_name".into(), Value::from(r.fqcn.as_str()));
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
        // (layer, host-level: seen through `hostvars`, literal: final data never rendered)
        let var = |host_level| Layer {
            host_level,
            literal: false,
        };
        let mut layers: Vec<(&RawVars, Layer)> = Vec::with_capacity(20);
        layers.extend(
            self.play_role_defaults
                .iter()
                .map(|a| (a.as_ref(), var(false))),
        );
        layers.push((role_defaults, var(false)));
        // group_vars, host_vars and facts are host-level; play vars and vars_files are not.
        layers.extend(
            self.play_vars
                .iter()
                .enumerate()
                .map(|(i, a)| (a.as_ref(), var(i < 3))),
        );
        layers.extend(self.play_role_vars.iter().map(|a| (a.as_ref(), var(false))));
        layers.push((role_vars, var(false)));
        layers.extend(inherit.vars.iter().map(|a| (a.as_ref(), var(false))));
        layers.push((task_vars, var(false)));
        // include_vars, then set_fact/registered results (Ansible's order: set_fact wins).
        layers.push((&self.included_vars, var(true)));
        layers.push((
            &self.host_facts,
            Layer {
                host_level: true,
                literal: true,
            },
        ));
        layers.push((role_params, var(false)));
        layers.push((&self.opts.extra_vars, var(true)));
        if let Some(x) = extra {
            layers.push((
                x,
                Layer {
                    host_level: false,
                    literal: true,
                },
            ));
        }
        layers.push((&magic, var(true)));
        // The run's and the play's magic variables: above all, not merged (see `Scope::over`).
        Scope::with_layers(self.templar.clone(), layers, self.hash_merge)
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

    /// The variables of item `index` of `items`: the loop variable, `index_var`, and with
    /// `loop_control.extended`, `ansible_loop`.
    pub(super) fn loop_vars(&self, task: &Task, items: &[Value], index: usize) -> RawVars {
        let mut lv = RawVars::new();
        let item = items.get(index).cloned().unwrap_or_default();
        lv.insert(task.loop_var.clone(), item);
        lv.insert(
            "ansible_loop_var".into(),
            Value::from(task.loop_var.as_str()),
        );
        if let Some(iv) = &task.index_var {
            lv.insert(iv.clone(), Value::from(index));
            lv.insert("ansible_index_var".into(), Value::from(iv.as_str()));
        }
        if let Some(l) = task.loop_items.as_ref().filter(|l| l.extended) {
            lv.insert(
                "ansible_loop".into(),
                extended_loop(items, index, l.extended_allitems),
            );
        }
        lv
    }

    /// A loop's items: `loop`'s rendered list, or the results of a `with_<lookup>`.
    pub(super) fn loop_items(
        &self,
        raw: &Value,
        with: Option<&str>,
        vars: &Value,
        scope: &Scope,
    ) -> Result<Vec<Value>, EvalError> {
        let rendered = if with == Some("first_found") {
            self.render_omitting_undefined(raw, vars, scope)?
                .unwrap_or_default()
        } else {
            self.templar
                .render_value(raw, vars)
                .map_err(|e| EvalError::Loop(scope.take_error().unwrap_or_else(|| e.to_string())))?
        };
        if let Some(name) = with {
            return crate::lookup::with_items(name, rendered).map_err(EvalError::Loop);
        }
        if rendered.is_none() || rendered.is_undefined() {
            return Err(EvalError::LoopOfNone);
        }
        if rendered.as_str().is_some() {
            return Err(EvalError::LoopOfText(rendered.to_string()));
        }
        let iter = rendered
            .try_iter()
            .map_err(|_| EvalError::Loop(format!("expected a list, got {rendered}")))?;
        Ok(iter.collect())
    }

    /// Renders `with_first_found` terms as ansible-core does: a term (in a list or a mapping)
    /// that renders undefined is left out; any other error fails the loop.
    fn render_omitting_undefined(
        &self,
        raw: &Value,
        vars: &Value,
        scope: &Scope,
    ) -> Result<Option<Value>, EvalError> {
        use minijinja::value::ValueKind;
        match raw.kind() {
            ValueKind::Seq => {
                let mut out = Vec::new();
                for v in raw.try_iter().into_iter().flatten() {
                    if let Some(r) = self.render_omitting_undefined(&v, vars, scope)? {
                        out.push(r);
                    }
                }
                Ok(Some(Value::from(out)))
            }
            ValueKind::Map => {
                let mut out = indexmap::IndexMap::new();
                for k in raw.try_iter().into_iter().flatten() {
                    let v = raw.get_item(&k).unwrap_or_default();
                    if let Some(r) = self.render_omitting_undefined(&v, vars, scope)? {
                        out.insert(k, r);
                    }
                }
                Ok(Some(Value::from(out)))
            }
            _ => match self.templar.render_value(raw, vars) {
                Ok(v) if v.is_undefined() => Ok(None),
                Ok(v) => Ok(Some(v)),
                Err(e) => {
                    let detail = scope.take_error().unwrap_or_else(|| e.to_string());
                    if detail.contains("undefined") {
                        Ok(None)
                    } else {
                        Err(EvalError::Loop(detail))
                    }
                }
            },
        }
    }

    /// `loop_control.pause`: the seconds to wait between items.
    pub(super) fn loop_pause(&self, task: &Task, vars: &Value) -> Result<f64, EvalError> {
        let Some(p) = task.loop_items.as_ref().and_then(|l| l.pause.as_ref()) else {
            return Ok(0.0);
        };
        let v = self
            .templar
            .render_value(p, vars)
            .map_err(|e| EvalError::Loop(format!("loop_control.pause: {e}")))?;
        let secs = match v.as_str() {
            Some(s) => s.trim().parse::<f64>().ok(),
            None => f64::try_from(v.clone()).ok(),
        };
        match secs {
            Some(s) if s >= 0.0 && s.is_finite() => Ok(s),
            _ => Err(EvalError::Loop(format!(
                "loop_control.pause must be a number of seconds, got {v}"
            ))),
        }
    }
}

/// `ansible_loop` for item `index` of `items` (ansible-core's keys).
fn extended_loop(items: &[Value], index: usize, allitems: bool) -> Value {
    let len = items.len();
    let mut m = RawVars::new();
    if allitems {
        m.insert("allitems".into(), Value::from(items.to_vec()));
    }
    m.insert("index".into(), Value::from(index + 1));
    m.insert("index0".into(), Value::from(index));
    m.insert("first".into(), Value::from(index == 0));
    m.insert("last".into(), Value::from(index + 1 == len));
    m.insert("length".into(), Value::from(len));
    m.insert("revindex".into(), Value::from(len - index));
    m.insert("revindex0".into(), Value::from(len - index - 1));
    if let Some(next) = items.get(index + 1) {
        m.insert("nextitem".into(), next.clone());
    }
    if index > 0 {
        m.insert("previtem".into(), items[index - 1].clone());
    }
    crate::vars::map_value(m)
}
