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
        if let Some(flow) = self.run_meta(task, &inh) {
            return flow;
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
        let role = task.role.as_ref().or(inh.role.as_ref());
        let search = crate::playbook::search_dirs(role, &task.location.file, &self.base);
        let search_path = lookup_search_path(role, &task.location.file);
        let source = self.source;
        let playbook_dir = self.playbook_dir.clone();
        let state_dir = self.opts.state_dir.clone();
        let hostname = self.opts.inventory_hostname.clone();
        let templar = self.templar.clone();
        let frame = crate::lookup::Frame {
            source,
            search,
            search_path,
            playbook_dir: &playbook_dir,
            state_dir: state_dir.as_deref(),
            templar: &templar,
            vars: vars.clone(),
            action: task.action_name(),
            inventory_hostname: &hostname,
        };
        // Lookups in anything this task renders see where the task is (see `crate::lookup`).
        crate::lookup::scoped(&frame, || {
            self.run_task_keywords(task, &inh, report, &vars, &scope)
        })
    }

    /// A task's loop (or none), once its variables are known.
    fn run_task_keywords(
        &mut self,
        task: &Arc<Task>,
        inh: &Inherit,
        report: TaskReport,
        vars: &Value,
        scope: &Scope,
    ) -> Flow {
        let Some(l) = &task.loop_items else {
            return self.run_once(task, inh, report, vars, scope);
        };
        let items = match self.loop_items(&l.items, l.with, vars, scope) {
            Ok(items) => items,
            // ansible-core's TaskExecutor keeps a loop's undefined-variable error and raises it
            // only if the task's `when` (evaluated without an item) holds: `loop: "{{ x.keys }}"`
            // with `when: x.keys is defined` is skipped.
            Err(msg) if msg.to_string().contains("undefined") => {
                return match self.conditions(&inh.when, vars, scope) {
                    Ok(false) => self.skip_task(task, report),
                    _ => self.fail_task(task, inh, report, msg),
                };
            }
            Err(msg) => return self.fail_task(task, inh, report, msg),
        };
        let pause = match self.loop_pause(task, vars) {
            Ok(p) => p,
            Err(msg) => return self.fail_task(task, inh, report, msg),
        };
        if let Action::IncludeTasks { .. } | Action::IncludeRole { .. } = &task.action {
            return self.run_include_loop(task, inh, report, items, pause);
        }
        self.run_loop(task, inh, report, items, pause)
    }

    /// Static imports run their tasks in place, inheriting the import's keywords. None for a
    /// task that runs by itself.
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
                Some(match self.run_items(&role.tasks, &rinh) {
                    Flow::EndRole => Flow::Continue,
                    flow => flow,
                })
            }
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
            Ok(false) => return self.skip_task(task, report),
            Err(msg) => return self.fail_task(task, inh, report, msg),
        }
        if let Action::IncludeTasks { .. } | Action::IncludeRole { .. } = &task.action {
            return self.run_include(task, inh, None);
        }
        let exec = self.run_module(task, inh, vars, scope, None);
        self.report_exec(&mut report, &exec, inh);
        if let Some(r) = &task.register {
            self.host_facts
                .insert(r.clone(), crate::vars::map_value(public(&exec.result)));
        }
        self.absorb_facts(task, &exec.result);
        self.pending_result = Some(public(&exec.result));
        self.finish_task(task, inh, report, exec.changed)
    }

    /// A task whose `when` is false: skipped, its registered variable says so.
    fn skip_task(&mut self, task: &Task, mut report: TaskReport) -> Flow {
        report.status = Status::Skipped;
        if let Some(r) = &task.register {
            self.host_facts
                .insert(r.clone(), crate::vars::map_value(skipped_result()));
        }
        self.push_report(report);
        Flow::Continue
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
        if exec.via_ansible {
            report.via = Some(VIA_ANSIBLE.into());
        }
        report.warnings = exec.warnings.clone();
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
        pause: f64,
    ) -> Flow {
        let mut flow = Flow::Continue;
        for index in 0..items.len() {
            pause_between(index, pause);
            let lv = self.loop_vars(task, &items, index);
            let (ivars, iscope) = self.scope(Some(task), inh, Some(&lv));
            match self.conditions(&inh.when, &ivars, &iscope) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(msg) => return self.fail_task(task, inh, report, msg),
            }
            flow = self.run_include(task, inh, Some(&lv));
            if flow != Flow::Continue {
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
        pause: f64,
    ) -> Flow {
        let mut totals = LoopTotals {
            all_skipped: true,
            ..LoopTotals::default()
        };
        let total = items.len();
        for index in 0..total {
            pause_between(index, pause);
            let (mut res, item_report) =
                self.run_item(task, inh, &mut report, &mut totals, &items, index);
            // As ansible-core: the item, `ansible_loop_var`, `index_var`/`ansible_index_var`
            // and `ansible_loop` in each result.
            res.extend(self.loop_vars(task, &items, index));
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
        self.pending_notify = Some(std::mem::take(&mut totals.notify));
        let any_changed = totals.any_changed;
        let failed_msg = totals.failed_msg.take();
        let agg = loop_result(totals.results, any_changed, failed_msg.is_some(), skipped);
        if let Some(r) = &task.register {
            self.host_facts
                .insert(r.clone(), crate::vars::map_value(agg.clone()));
        }
        self.pending_result = Some(agg);
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
        items: &[Value],
        index: usize,
    ) -> (IndexMap<String, Value>, ItemReport) {
        let item = &items[index];
        let lv = self.loop_vars(task, items, index);
        let (ivars, iscope) = self.scope(Some(task), inh, Some(&lv));
        // The label is rendered after the item ran, as ansible-core does: one that does not
        // render fails the item (its changes stay made), never shown as something else.
        let label = match &task.label {
            Some(l) => self.templar.render_value(l, &ivars).map_err(|e| {
                format!(
                    "Failed to template loop_control.label: {}",
                    iscope.take_error().unwrap_or_else(|| e.to_string())
                )
            }),
            None => Ok(item.clone()),
        };
        let condition = self
            .conditions(&inh.when, &ivars, &iscope)
            .map_err(|e| e.to_string());
        let (label, label_error) = match label {
            Ok(l) => (l, None),
            Err(msg) => (item.clone(), Some(msg)),
        };
        let condition = match (condition, &label_error) {
            (Ok(false), Some(msg)) => Err(msg.clone()),
            (c, _) => c,
        };
        match condition {
            Ok(false) => (
                skipped_result(),
                ItemReport {
                    item: to_json(&label),
                    status: Status::Skipped,
                    changed: false,
                    msg: None,
                },
            ),
            Err(msg) => {
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
                let exec = self.run_module(task, inh, &ivars, &iscope, Some(&lv));
                if exec.status != Status::Skipped {
                    totals.all_skipped = false;
                    // Every run item's handlers are notified if the task changed (Ansible).
                    match self.notify_names(task, inh, Some(&lv)) {
                        Ok(names) => {
                            for n in names {
                                if !totals.notify.contains(&n) {
                                    totals.notify.push(n);
                                }
                            }
                        }
                        Err(e) => {
                            totals.failed_msg.get_or_insert(e.to_string());
                        }
                    }
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
                if exec.via_ansible {
                    report.via = Some(VIA_ANSIBLE.into());
                }
                for w in &exec.warnings {
                    if !report.warnings.contains(w) {
                        report.warnings.push(w.clone());
                    }
                }
                report.drift = match (report.drift, self.drift_of(&exec, inh.handler)) {
                    (Some(Drift::Reported), _) | (_, Some(Drift::Reported)) => {
                        Some(Drift::Reported)
                    }
                    (a, b) => a.or(b),
                };
                self.absorb_facts(task, &exec.result);
                let mut res = public(&exec.result);
                let mut status = exec.status;
                let mut failed = exec.failed;
                if let Some(msg) = label_error {
                    res.insert("failed".into(), Value::from(true));
                    res.insert("msg".into(), Value::from(msg.as_str()));
                    totals.failed_msg.get_or_insert(msg.clone());
                    status = Status::Failed;
                    failed = Some(msg);
                }
                let msg = if report.no_log {
                    None
                } else {
                    failed.or_else(|| res.get("msg").map(python_str))
                };
                let item_report = ItemReport {
                    item: to_json(&label),
                    status,
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
            if inh.ignore_errors.unwrap_or(false) {
                report.status = Status::Ignored;
            } else {
                self.record_failure(task, inh, &report);
                flow = Flow::Failed;
            }
        }
        self.pending_result = None;
        // A failed task (even ignored) notifies nothing; in a drift pass, a change only
        // reported (check mode) notifies no handler either.
        let pending = self.pending_notify.take();
        if changed
            && report.drift != Some(Drift::Reported)
            && !matches!(report.status, Status::Failed | Status::Ignored)
        {
            let names = match pending {
                Some(n) => Ok(n),
                None => self
                    .notify_names(task, inh, None)
                    .map_err(|e| e.to_string()),
            };
            let missing = match names {
                Ok(names) => names.into_iter().find(|n| !self.notify(n, task)).map(|n| {
                    format!(
                        "{}: notify: the requested handler '{n}' was not found in either \
                             the main handlers list nor in the listening handlers list",
                        task.location
                    )
                }),
                Err(e) => Some(e),
            };
            if let Some(msg) = missing {
                report.status = Status::Failed;
                report.msg = Some(msg);
                if inh.ignore_errors.unwrap_or(false) {
                    report.status = Status::Ignored;
                } else {
                    flow = Flow::Failed;
                }
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

    /// Marks the handlers `name` designates (by name, `role : name` or `listen`); false when
    /// there is none.
    pub(super) fn notify(&mut self, name: &str, from: &Task) -> bool {
        let role_prefixed = |h: &Handler| {
            h.task
                .role
                .as_ref()
                .map(|r| format!("{} : {}", r.name, h.task.name.clone().unwrap_or_default()))
        };
        let _ = from;
        let mut found = false;
        for (i, h) in self.handlers.iter().enumerate() {
            if h.task.name.as_deref() == Some(name)
                || h.task.listen.iter().any(|l| l == name)
                || role_prefixed(h).as_deref() == Some(name)
            {
                self.notified[i] = true;
                found = true;
            }
        }
        found
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
            match self.run_task(&task, &inh, true) {
                Flow::Continue | Flow::EndRole => {}
                flow => return flow,
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
                match self.run_items(&role.tasks, &inner) {
                    Flow::EndRole => Flow::Continue,
                    flow => flow,
                }
            }
            _ => Flow::Continue,
        }
    }
}

/// The `via` of a task run through the host's ansible-core.
pub const VIA_ANSIBLE: &str = "ansible";

/// A result without Ansible's internal `_ansible_*` keys (as a registered value shows it).
fn public(result: &IndexMap<String, Value>) -> IndexMap<String, Value> {
    result
        .iter()
        .filter(|(k, _)| !k.starts_with("_ansible_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What the items of a loop add up to.
#[derive(Default)]
struct LoopTotals {
    results: Vec<Value>,
    any_changed: bool,
    failed_msg: Option<String>,
    all_skipped: bool,
    /// Handler names notified by the items that ran.
    notify: Vec<String>,
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
    if results.is_empty() {
        // Ansible's result for an empty loop.
        agg.insert("skipped".to_string(), Value::from(true));
        agg.insert(
            "skipped_reason".to_string(),
            Value::from("No items in the list"),
        );
        agg.insert("results".to_string(), Value::from(results));
        return agg;
    }
    agg.insert("failed".to_string(), Value::from(failed));
    agg.insert("skipped".to_string(), Value::from(skipped));
    agg.insert(
        "msg".to_string(),
        Value::from(if skipped {
            "All items skipped"
        } else if failed {
            "One or more items failed"
        } else {
            "All items completed"
        }),
    );
    agg.insert("results".to_string(), Value::from(results));
    agg
}

/// `loop_control.pause`: waits before every item but the first.
fn pause_between(index: usize, pause: f64) {
    if index > 0 && pause > 0.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(pause));
    }
}

/// Ansible's `ansible_search_path` of a task: its role's directory, then its task file's.
fn lookup_search_path(role: Option<&Arc<crate::playbook::Role>>, task_file: &str) -> Vec<RepoPath> {
    let mut out = Vec::with_capacity(2);
    if let Some(r) = role {
        out.push(r.path.clone());
    }
    let dir = RepoPath::new(task_file)
        .map(|p| p.parent())
        .unwrap_or_default();
    if !out.contains(&dir) {
        out.push(dir);
    }
    out
}
