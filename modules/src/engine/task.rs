//! Running one task: its keywords (`when`, loops, includes), its report, its handlers.

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;

use super::{to_json, Engine, Exec, Flow, Handler, Inherit, NO_LOG_MSG};
use crate::args::python_str;
use crate::playbook::{Action, RawVars, Task};
use crate::report::{Drift, ItemReport, Status, TaskReport};
use crate::source::RepoPath;
use crate::vars::Scope;

impl Engine<'_> {
    pub(super) fn base_report(&self, task: &Task, handler: bool, no_log: bool) -> TaskReport {
        TaskReport {
            handler,
            no_log,
            ..TaskReport::new(
                &self.play_name,
                task.display_name(),
                task.action_name(),
                &task.location,
            )
        }
    }

    pub(super) fn push_report(&mut self, report: TaskReport) {
        self.reporter.task_done(&report);
        self.reports.push(report);
    }

    pub(super) fn run_task(&mut self, task: &Arc<Task>, inherit: &Inherit, handler: bool) -> Flow {
        let mut inh = inherit.with(&task.common);
        inh.handler = handler;
        if task.role.is_some() {
            inh.role = task.role.clone();
        }
        if let Some(flow) = self.run_in_place(task, &inh) {
            return flow;
        }
        if !handler && !self.selected(&inh.tags) {
            return Flow::Continue;
        }
        let (vars, scope) = self.scope(Some(task), &inh, None);
        if let Err(msg) = inh.resolve_flags(&self.templar, &vars) {
            // Only a task that runs needs its keywords.
            if !matches!(self.conditions(&inh.when, &vars, &scope), Ok(false)) {
                let report = self.base_report(task, handler, false);
                return self.fail_task(task, &inh, report, msg);
            }
        }
        let no_log = inh.no_log.unwrap_or(false);
        let report = self.base_report(task, handler, no_log);
        let Some(l) = &task.loop_items else {
            return self.run_once(task, &inh, report, &vars, &scope);
        };
        let items = match self.loop_items(&l.items, l.flatten, &vars, &scope) {
            Ok(items) => items,
            Err(msg) => return self.fail_task(task, &inh, report, msg),
        };
        if let Action::IncludeTasks { .. } | Action::IncludeRole { .. } = &task.action {
            return self.run_include_loop(task, &inh, report, items);
        }
        self.run_loop(task, &inh, report, items)
    }

    /// Static imports run their tasks in place, inheriting the import's keywords; `meta`
    /// actions act on the engine. None for a task that runs by itself.
    fn run_in_place(&mut self, task: &Task, inh: &Inherit) -> Option<Flow> {
        match &task.action {
            Action::IncludeTasks {
                preloaded: Some(items),
                import: true,
                ..
            } => Some(self.run_items(items, inh)),
            Action::IncludeRole {
                role, import: true, ..
            } => {
                let mut rinh = inh.clone();
                rinh.role = Some(role.clone());
                Some(self.run_items(&role.tasks, &rinh))
            }
            Action::FlushHandlers => Some(self.flush_handlers()),
            Action::MetaNoop(_) => Some(Flow::Continue),
            _ => None,
        }
    }

    /// A task without a loop: `when`, then the include or the module.
    fn run_once(
        &mut self,
        task: &Task,
        inh: &Inherit,
        mut report: TaskReport,
        vars: &Value,
        scope: &Scope,
    ) -> Flow {
        match self.conditions(&inh.when, vars, scope) {
            Ok(true) => {}
            Ok(false) => {
                report.status = Status::Skipped;
                if let Some(r) = &task.register {
                    self.host_facts
                        .insert(r.clone(), crate::vars::map_value(skipped_result()));
                }
                self.push_report(report);
                return Flow::Continue;
            }
            Err(msg) => return self.fail_task(task, inh, report, msg),
        }
        if let Action::IncludeTasks { .. } | Action::IncludeRole { .. } = &task.action {
            return self.run_include(task, inh, None);
        }
        let exec = self.execute(task, inh, vars, scope);
        let exec = self.judge(task, inh, exec, None);
        self.report_exec(&mut report, &exec, inh);
        if let Some(r) = &task.register {
            self.host_facts
                .insert(r.clone(), crate::vars::map_value(exec.result.clone()));
        }
        self.absorb_facts(&exec.result);
        self.finish_task(task, inh, report, exec.changed)
    }

    /// What a task's report says of its one module run.
    fn report_exec(&self, report: &mut TaskReport, exec: &Exec, inh: &Inherit) {
        let no_log = report.no_log;
        report.status = exec.status;
        report.changed = exec.changed;
        report.owns = exec.owns.clone();
        report.drift = self.drift_of(exec, inh.handler);
        report.diff = if no_log {
            Vec::new()
        } else {
            exec.diff.clone()
        };
        report.changes = exec.changes.clone();
        report.msg = if no_log {
            exec.failed.as_ref().map(|_| NO_LOG_MSG.to_string())
        } else {
            exec.failed.clone().or_else(|| {
                exec.result
                    .get("msg")
                    .filter(|_| report.module != "debug")
                    .map(python_str)
            })
        };
        if report.module == "debug" && !no_log {
            report.output = exec
                .result
                .iter()
                .find(|(k, _)| !matches!(k.as_str(), "changed" | "failed"))
                .map(|(k, v)| serde_json::json!({ k.clone(): to_json(v) }));
        }
    }

    /// An include in a loop: the included tasks once per item whose `when` holds.
    fn run_include_loop(
        &mut self,
        task: &Task,
        inh: &Inherit,
        report: TaskReport,
        items: Vec<Value>,
    ) -> Flow {
        let mut flow = Flow::Continue;
        for (index, item) in items.into_iter().enumerate() {
            let lv = self.loop_vars(task, &item, index);
            let (ivars, iscope) = self.scope(Some(task), inh, Some(&lv));
            match self.conditions(&inh.when, &ivars, &iscope) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(msg) => return self.fail_task(task, inh, report, msg),
            }
            flow = self.run_include(task, inh, Some(&lv));
            if flow == Flow::Failed {
                break;
            }
        }
        flow
    }

    /// A module in a loop: each item in turn, `when` per item, then one result for all.
    fn run_loop(
        &mut self,
        task: &Task,
        inh: &Inherit,
        mut report: TaskReport,
        items: Vec<Value>,
    ) -> Flow {
        let mut totals = LoopTotals {
            all_skipped: true,
            ..LoopTotals::default()
        };
        let total = items.len();
        for (index, item) in items.into_iter().enumerate() {
            let (mut res, item_report) =
                self.run_item(task, inh, &mut report, &mut totals, &item, index);
            res.insert(task.loop_var.clone(), item.clone());
            res.insert(
                "ansible_loop_var".into(),
                Value::from(task.loop_var.as_str()),
            );
            if report.no_log {
                report.items.push(ItemReport {
                    item: serde_json::Value::String("(no_log)".into()),
                    ..item_report
                });
            } else {
                report.items.push(item_report);
            }
            totals.results.push(crate::vars::map_value(res));
        }
        let skipped = total == 0 || totals.all_skipped;
        let any_changed = totals.any_changed;
        let failed_msg = totals.failed_msg.take();
        if let Some(r) = &task.register {
            let agg = loop_result(totals.results, any_changed, failed_msg.is_some(), skipped);
            self.host_facts
                .insert(r.clone(), crate::vars::map_value(agg));
        }
        report.changed = any_changed;
        report.status = if failed_msg.is_some() {
            Status::Failed
        } else if skipped {
            Status::Skipped
        } else if any_changed {
            Status::Changed
        } else {
            Status::Ok
        };
        if let Some(msg) = failed_msg {
            report.msg = Some(if report.no_log {
                NO_LOG_MSG.to_string()
            } else {
                msg
            });
        }
        self.finish_task(task, inh, report, any_changed)
    }

    /// One item of a loop: its result and its line in the report; what the task's report
    /// gathers of it (diffs, changes, drift) goes into `report` and `totals`.
    fn run_item(
        &mut self,
        task: &Task,
        inh: &Inherit,
        report: &mut TaskReport,
        totals: &mut LoopTotals,
        item: &Value,
        index: usize,
    ) -> (IndexMap<String, Value>, ItemReport) {
        let lv = self.loop_vars(task, item, index);
        let (ivars, iscope) = self.scope(Some(task), inh, Some(&lv));
        let label = match &task.label {
            Some(l) => self
                .templar
                .render_value(l, &ivars)
                .unwrap_or_else(|_| item.clone()),
            None => item.clone(),
        };
        match self.conditions(&inh.when, &ivars, &iscope) {
            Ok(false) => (
                skipped_result(),
                ItemReport {
                    item: to_json(&label),
                    status: Status::Skipped,
                    changed: false,
                    msg: None,
                },
            ),
            Err(e) => {
                let msg = e.to_string();
                let mut res = IndexMap::new();
                res.insert("failed".into(), Value::from(true));
                res.insert("msg".into(), Value::from(msg.as_str()));
                totals.all_skipped = false;
                totals.failed_msg.get_or_insert(msg.clone());
                (
                    res,
                    ItemReport {
                        item: to_json(&label),
                        status: Status::Failed,
                        changed: false,
                        msg: Some(msg),
                    },
                )
            }
            Ok(true) => {
                let exec = self.execute(task, inh, &ivars, &iscope);
                let exec = self.judge(task, inh, exec, Some(&lv));
                if exec.status != Status::Skipped {
                    totals.all_skipped = false;
                }
                totals.any_changed |= exec.changed;
                if exec.status == Status::Failed {
                    totals
                        .failed_msg
                        .get_or_insert(exec.failed.clone().unwrap_or_default());
                }
                if !report.no_log {
                    report.diff.extend(exec.diff.iter().cloned());
                }
                report.changes.extend(exec.changes.iter().cloned());
                report.owns.extend(exec.owns.iter().cloned());
                report.drift = match (report.drift, self.drift_of(&exec, inh.handler)) {
                    (Some(Drift::Reported), _) | (_, Some(Drift::Reported)) => {
                        Some(Drift::Reported)
                    }
                    (a, b) => a.or(b),
                };
                self.absorb_facts(&exec.result);
                let res = exec.result;
                let msg = if report.no_log {
                    None
                } else {
                    exec.failed.or_else(|| res.get("msg").map(python_str))
                };
                let item_report = ItemReport {
                    item: to_json(&label),
                    status: exec.status,
                    changed: exec.changed,
                    msg,
                };
                (res, item_report)
            }
        }
    }

    /// Records the report, notifies handlers, and turns a failure into ignored or fatal.
    pub(super) fn finish_task(
        &mut self,
        task: &Task,
        inh: &Inherit,
        mut report: TaskReport,
        changed: bool,
    ) -> Flow {
        let mut flow = Flow::Continue;
        if report.status == Status::Failed {
            let mut res = vec![
                ("failed", Value::from(true)),
                ("changed", Value::from(changed)),
            ];
            if let Some(m) = &report.msg {
                res.push(("msg", Value::from(m.as_str())));
            }
            self.last_failure = Some(crate::vars::map_value(res));
            if inh.ignore_errors.unwrap_or(false) {
                report.status = Status::Ignored;
            } else {
                flow = Flow::Failed;
            }
        }
        // In a drift pass, a change only reported (check mode) notifies no handler.
        if changed && report.drift != Some(Drift::Reported) {
            let notify = task.notify.clone();
            for name in &notify {
                self.notify(name, task);
            }
        }
        self.push_report(report);
        flow
    }

    pub(super) fn fail_task(
        &mut self,
        task: &Task,
        inh: &Inherit,
        mut report: TaskReport,
        msg: impl std::fmt::Display,
    ) -> Flow {
        report.status = Status::Failed;
        report.msg = Some(msg.to_string());
        self.finish_task(task, inh, report, false)
    }

    pub(super) fn notify(&mut self, name: &str, from: &Task) {
        let role_prefixed = |h: &Handler| {
            h.task
                .role
                .as_ref()
                .map(|r| format!("{} : {}", r.name, h.task.name.clone().unwrap_or_default()))
        };
        let _ = from;
        for (i, h) in self.handlers.iter().enumerate() {
            if h.task.name.as_deref() == Some(name)
                || h.task.listen.iter().any(|l| l == name)
                || role_prefixed(h).as_deref() == Some(name)
            {
                self.notified[i] = true;
            }
        }
    }

    /// Runs notified handlers in the order they are defined, each once, until none is pending.
    pub(super) fn flush_handlers(&mut self) -> Flow {
        loop {
            let Some(i) = self.notified.iter().position(|n| *n) else {
                return Flow::Continue;
            };
            self.notified[i] = false;
            let task = self.handlers[i].task.clone();
            let inh = self.handlers[i].inherit.clone();
            if self.run_task(&task, &inh, true) == Flow::Failed {
                return Flow::Failed;
            }
        }
    }

    /// Includes: load (if not preloaded) and run the included tasks or role.
    pub(super) fn run_include(
        &mut self,
        task: &Task,
        inh: &Inherit,
        loop_vars: Option<&RawVars>,
    ) -> Flow {
        let mut inner = inh.clone();
        if let Some(lv) = loop_vars {
            inner.vars.push(Arc::new(lv.clone()));
        }
        // An include's own `when` and tags apply to the include itself, not to the included
        // tasks (Ansible's dynamic include semantics).
        inner.when.clear();
        let own_tags = task.common.tags.len();
        inner
            .tags
            .truncate(inner.tags.len().saturating_sub(own_tags));
        match &task.action {
            Action::IncludeTasks {
                preloaded: Some(items),
                ..
            } => self.run_items(items, &inner),
            Action::IncludeTasks {
                file,
                preloaded: None,
                ..
            } => {
                let (vars, _scope) = self.scope(Some(task), &inner, None);
                let name = match self.templar.render_value(file, &vars) {
                    Ok(v) => python_str(&v),
                    Err(e) => {
                        let report = self.base_report(task, false, false);
                        return self.fail_task(task, inh, report, format!("include_tasks: {e}"));
                    }
                };
                let dir = RepoPath::new(&task.location.file)
                    .map(|p| p.parent())
                    .unwrap_or_default();
                let loaded = crate::playbook::load_task_file(
                    self.source,
                    &self.templar,
                    &dir,
                    task.role.clone(),
                    &name,
                );
                match loaded {
                    Ok(items) => self.run_items(&items, &inner),
                    Err(e) => {
                        let report = self.base_report(task, false, false);
                        self.fail_task(task, inh, report, e.to_string())
                    }
                }
            }
            Action::IncludeRole { role, .. } => {
                inner.role = Some(role.clone());
                // Handlers of an included role join the play's handlers (once per role).
                let known = self.handlers.iter().any(|h| {
                    h.task
                        .role
                        .as_ref()
                        .is_some_and(|r| Arc::ptr_eq(r, role) || r.path == role.path)
                });
                if !known {
                    let hinh = Inherit {
                        role: Some(role.clone()),
                        ..Inherit::default()
                    };
                    for h in &role.handlers {
                        self.collect_handlers(h, &hinh);
                    }
                    self.notified.resize(self.handlers.len(), false);
                }
                self.run_items(&role.tasks, &inner)
            }
            _ => Flow::Continue,
        }
    }
}

/// What the items of a loop add up to.
#[derive(Default)]
struct LoopTotals {
    results: Vec<Value>,
    any_changed: bool,
    failed_msg: Option<String>,
    all_skipped: bool,
}

/// The registered result of a task (or item) whose `when` was false.
fn skipped_result() -> IndexMap<String, Value> {
    let mut res = IndexMap::new();
    res.insert("changed".to_string(), Value::from(false));
    res.insert("skipped".to_string(), Value::from(true));
    res.insert(
        "skip_reason".to_string(),
        Value::from("Conditional result was False"),
    );
    res
}

/// The registered result of a loop: every item's result under `results`.
fn loop_result(
    results: Vec<Value>,
    changed: bool,
    failed: bool,
    skipped: bool,
) -> IndexMap<String, Value> {
    let mut agg = IndexMap::new();
    agg.insert("changed".to_string(), Value::from(changed));
    agg.insert("failed".to_string(), Value::from(failed));
    if skipped {
        agg.insert("skipped".to_string(), Value::from(true));
    }
    agg.insert(
        "msg".to_string(),
        Value::from(if failed {
            "One or more items failed"
        } else {
            "All items completed"
        }),
    );
    agg.insert("results".to_string(), Value::from(results));
    agg
}
