//! The engine: runs a loaded playbook against this host. For each task: evaluate `when`, render
//! the arguments, let the module **check**, then **apply** what differs (or only report it in
//! check mode); register results, notify handlers and run them at flush points, handle
//! `block`/`rescue`/`always`, and stop the play on an unhandled failure as Ansible does.

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;

use crate::args::python_str;
use crate::facts::Facts;
use crate::modules::control::set_fact_resource;
use crate::playbook::{Action, Block, Common, Item, Play, Playbook, RawVars, Role, Task};
use crate::report::{Drift, ItemReport, Reporter, RunReport, RunResult, Stats, Status, TaskReport};
use crate::resource::{Change, HostState, ModuleContext, Outcome, Owned, Resource};
use crate::source::{RepoPath, Source};
use crate::template::Templar;
use crate::vars::Scope;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub check: bool,
    pub diff: bool,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub extra_vars: RawVars,
    /// The name plays' `hosts` and `host_vars/` are matched against.
    pub inventory_hostname: String,
    /// A drift pass (the daemon, after a watched target changed): see [`DriftOptions`].
    pub drift: Option<DriftOptions>,
}

/// How a drift pass runs. The whole playbook runs again, but only declarative tasks whose
/// policy is `correct` apply their changes; every other task runs in check mode (a command
/// that would run is skipped, a task whose policy is `report` only reports). A change made is
/// marked [`Drift::Corrected`], one only found [`Drift::Reported`]; tasks in check mode notify
/// no handler, so a handler runs only after a correction.
///
/// A task's policy: the tag `drift_report` or `drift_correct`, else the variable
/// `gitops_drift` (`report` or `correct`), else the host's default.
#[derive(Debug, Clone, Default)]
pub struct DriftOptions {
    /// The host's default policy is `report` (the config's `drift: report`).
    pub report: bool,
    /// Directories that were real directories when the playbook last ran: a change under one
    /// that is now a symbolic link is refused (the task fails) rather than made through it.
    pub guard: Arc<Vec<std::path::PathBuf>>,
}

/// The tag that makes a task's drift only reported.
pub const TAG_DRIFT_REPORT: &str = "drift_report";
/// The tag that makes a task's drift corrected (over a host default of `report`).
pub const TAG_DRIFT_CORRECT: &str = "drift_correct";
/// The variable that sets a task's drift policy: `report` or `correct`.
pub const VAR_DRIFT: &str = "gitops_drift";

const NO_LOG_MSG: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

/// What enclosing blocks, roles and imports pass down to a task.
#[derive(Clone, Default)]
struct Inherit {
    when: Vec<Value>,
    tags: Vec<String>,
    vars: Vec<Arc<RawVars>>,
    ignore_errors: Option<bool>,
    no_log: Option<bool>,
    environment: Option<Value>,
    check_mode: Option<bool>,
    role: Option<Arc<Role>>,
    /// Variables only a `rescue` sees (`ansible_failed_task`, `ansible_failed_result`).
    rescue_vars: Option<Arc<RawVars>>,
    /// Running a handler (a drift pass never holds a handler back).
    handler: bool,
}

impl Inherit {
    fn with(&self, c: &Common) -> Inherit {
        let mut out = self.clone();
        out.when.extend(c.when.iter().cloned());
        out.tags.extend(c.tags.iter().cloned());
        if !c.vars.is_empty() {
            out.vars.push(Arc::new(c.vars.clone()));
        }
        if c.ignore_errors.is_some() {
            out.ignore_errors = c.ignore_errors;
        }
        if c.no_log.is_some() {
            out.no_log = c.no_log;
        }
        if c.environment.is_some() {
            out.environment = c.environment.clone();
        }
        if c.check_mode.is_some() {
            out.check_mode = c.check_mode;
        }
        out
    }
}

/// The outcome of running a list of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// An unhandled failure: the host is done for this run.
    Failed,
}

struct Handler {
    task: Arc<Task>,
    inherit: Inherit,
}

/// The result of one module run (one item of a loop, or the whole task).
struct Exec {
    status: Status,
    changed: bool,
    failed: Option<String>,
    result: IndexMap<String, Value>,
    diff: Vec<String>,
    changes: Vec<String>,
    owns: Vec<Owned>,
    /// A drift pass ran this task in check mode although the playbook asks to apply it.
    drift_check_only: bool,
}

pub struct Engine<'a> {
    templar: Arc<Templar>,
    source: &'a dyn Source,
    opts: RunOptions,
    facts: Option<RawVars>,
    /// set_fact and registered results: they outlive plays.
    host_facts: RawVars,
    playbook_dir: String,
    /// The playbook's directory in the repository.
    base: RepoPath,
    reports: Vec<TaskReport>,
    reporter: &'a mut dyn Reporter,
    play_name: String,
    play_vars: Vec<Arc<RawVars>>,
    play_role_defaults: Vec<Arc<RawVars>>,
    play_role_vars: Vec<Arc<RawVars>>,
    handlers: Vec<Handler>,
    notified: Vec<bool>,
    failed: bool,
    /// The result of the last failed task, for a `rescue` (`ansible_failed_result`).
    last_failure: Option<Value>,
    /// Package and unit state shared by the tasks of this run.
    host: Arc<HostState>,
}

impl<'a> Engine<'a> {
    pub fn new(
        templar: Arc<Templar>,
        source: &'a dyn Source,
        opts: RunOptions,
        reporter: &'a mut dyn Reporter,
    ) -> Engine<'a> {
        Engine {
            templar,
            playbook_dir: source.describe(),
            base: RepoPath::root(),
            source,
            opts,
            facts: None,
            host_facts: RawVars::new(),
            reports: Vec::new(),
            reporter,
            play_name: String::new(),
            play_vars: Vec::new(),
            play_role_defaults: Vec::new(),
            play_role_vars: Vec::new(),
            handlers: Vec::new(),
            notified: Vec::new(),
            failed: false,
            last_failure: None,
            host: Arc::new(HostState::new()),
        }
    }

    /// Shares host state read by an earlier run (the daemon keeps it between drift checks).
    pub fn with_host_state(mut self, host: Arc<HostState>) -> Engine<'a> {
        self.host = host;
        self
    }

    /// Runs every play of the playbook that targets this host.
    pub fn run(mut self, playbook: &Playbook) -> RunReport {
        let group_vars = Arc::new(playbook.group_vars.clone());
        let host_vars = Arc::new(playbook.host_vars.clone());
        let dir = playbook.file.parent();
        self.base = dir.clone();
        let (packages, units) = crate::playbook::named_packages_and_units(playbook);
        self.host.hint_packages(packages);
        self.host.hint_units(units);
        for (i, play) in playbook.plays.iter().enumerate() {
            if self.failed {
                for rest in &playbook.plays[i..] {
                    self.not_run_play(rest);
                }
                break;
            }
            if !self.matches_host(&play.hosts) {
                continue;
            }
            self.run_play(play, &group_vars, &host_vars, &dir);
        }
        self.finish()
    }

    fn finish(self) -> RunReport {
        let mut stats = Stats::default();
        for t in &self.reports {
            match t.status {
                Status::Ok => stats.ok += 1,
                Status::Changed => {
                    stats.ok += 1;
                    stats.changed += 1
                }
                Status::Skipped => stats.skipped += 1,
                Status::Failed => {
                    if t.rescued {
                        stats.rescued += 1
                    } else {
                        stats.failed += 1
                    }
                }
                Status::Ignored => {
                    stats.ok += 1;
                    stats.ignored += 1
                }
                Status::NotRun => stats.not_run += 1,
            }
        }
        let result = if self.failed {
            RunResult::Failed
        } else if stats.changed > 0 {
            RunResult::Changed
        } else {
            RunResult::Ok
        };
        RunReport {
            result,
            check_mode: self.opts.check,
            tasks: self.reports,
            stats,
            error: None,
        }
    }

    fn matches_host(&self, patterns: &[String]) -> bool {
        let me = &self.opts.inventory_hostname;
        patterns.iter().any(|p| {
            let p = p.trim();
            p == "all" || p == "*" || p == "localhost" || p == "127.0.0.1" || p == me
        })
    }

    fn facts(&mut self) -> RawVars {
        self.facts
            .get_or_insert_with(|| Facts::gather().to_vars())
            .clone()
    }

    fn run_play(
        &mut self,
        play: &Play,
        group_vars: &Arc<RawVars>,
        host_vars: &Arc<RawVars>,
        _dir: &RepoPath,
    ) {
        self.play_name = play.name.clone();
        self.reporter.play_start(&play.name);
        let facts = if play.gather_facts {
            let facts = Arc::new(self.facts());
            // Reported as Ansible does, so both tools show the same task list.
            self.push_report(TaskReport {
                play: play.name.clone(),
                name: "Gathering Facts".into(),
                module: "setup".into(),
                file: play.location.file.to_string(),
                line: play.location.line,
                handler: false,
                status: Status::Ok,
                changed: false,
                items: Vec::new(),
                msg: None,
                diff: Vec::new(),
                changes: Vec::new(),
                rescued: false,
                no_log: false,
                output: None,
                drift: None,
                owns: Vec::new(),
            });
            facts
        } else if self.facts.is_some() {
            Arc::new(self.facts())
        } else {
            Arc::new(RawVars::new())
        };
        // Layers below task level, lowest first, split around role defaults/vars.
        self.play_role_defaults = play
            .roles
            .iter()
            .map(|r| Arc::new(r.defaults.clone()))
            .collect();
        self.play_vars = vec![
            group_vars.clone(),
            host_vars.clone(),
            facts,
            Arc::new(play.vars.clone()),
            Arc::new(play.vars_files.clone()),
        ];
        self.play_role_vars = play
            .roles
            .iter()
            .map(|r| Arc::new(r.vars.clone()))
            .collect();
        self.handlers.clear();
        let base = Inherit {
            tags: play.tags.clone(),
            ..Inherit::default()
        };
        for item in &play.handlers {
            self.collect_handlers(item, &base);
        }
        self.notified = vec![false; self.handlers.len()];

        let sections = [&play.pre_tasks, &play.tasks, &play.post_tasks];
        for (i, section) in sections.iter().enumerate() {
            if self.run_items(section, &base) == Flow::Failed {
                self.failed = true;
                for rest in &sections[i + 1..] {
                    self.not_run_items(rest);
                }
                return;
            }
            if self.flush_handlers() == Flow::Failed {
                self.failed = true;
                for rest in &sections[i + 1..] {
                    self.not_run_items(rest);
                }
                return;
            }
        }
    }

    fn collect_handlers(&mut self, item: &Item, inherit: &Inherit) {
        match item {
            Item::Task(t) => {
                let mut inh = inherit.clone();
                inh.role = t.role.clone().or(inh.role);
                self.handlers.push(Handler {
                    task: t.clone(),
                    inherit: inh,
                })
            }
            Item::Block(b) => {
                let mut inh = inherit.with(&b.common);
                inh.role = b.role.clone().or(inh.role);
                for i in b.block.iter().chain(&b.rescue).chain(&b.always) {
                    self.collect_handlers(i, &inh);
                }
            }
        }
    }

    fn run_items(&mut self, items: &[Item], inherit: &Inherit) -> Flow {
        for (i, item) in items.iter().enumerate() {
            let flow = match item {
                Item::Task(t) => self.run_task(t, inherit, false),
                Item::Block(b) => self.run_block(b, inherit),
            };
            if flow == Flow::Failed {
                self.not_run_items(&items[i + 1..]);
                return Flow::Failed;
            }
        }
        Flow::Continue
    }

    fn run_block(&mut self, block: &Block, inherit: &Inherit) -> Flow {
        let mut inh = inherit.with(&block.common);
        if block.role.is_some() {
            inh.role = block.role.clone();
        }
        let start = self.reports.len();
        let mut flow = self.run_items(&block.block, &inh);
        if flow == Flow::Failed && !block.rescue.is_empty() {
            // The rescue takes over: the block's tasks after the failure are not "not run", and
            // its failed task shows as rescued.
            let tail: Vec<TaskReport> = self
                .reports
                .drain(start..)
                .filter(|r| r.status != Status::NotRun)
                .collect();
            let mut failed_task = None;
            for mut r in tail {
                if r.status == Status::Failed {
                    r.rescued = true;
                    failed_task = Some(r.name.clone());
                }
                self.reports.push(r);
            }
            let mut rv = RawVars::new();
            rv.insert(
                "ansible_failed_task".into(),
                crate::vars::map_value([("name", Value::from(failed_task.unwrap_or_default()))]),
            );
            if let Some(res) = self.last_failure.take() {
                rv.insert("ansible_failed_result".into(), res);
            }
            let mut rinh = inh.clone();
            rinh.rescue_vars = Some(Arc::new(rv));
            flow = self.run_items(&block.rescue, &rinh);
        }
        if !block.always.is_empty() {
            if flow == Flow::Failed {
                // Remove the block's not-run entries: `always` runs before the host stops.
                let pos = self.reports[start..]
                    .iter()
                    .position(|r| r.status == Status::NotRun)
                    .map(|p| p + start);
                let pending: Vec<TaskReport> = match pos {
                    Some(p) => self.reports.drain(p..).collect(),
                    None => Vec::new(),
                };
                let always_flow = self.run_items(&block.always, &inh);
                self.reports.extend(pending);
                if always_flow == Flow::Failed {
                    return Flow::Failed;
                }
            } else {
                flow = self.run_items(&block.always, &inh);
            }
        }
        flow
    }

    /// Tags: is a task with these tags selected by `--tags`/`--skip-tags`?
    fn selected(&self, tags: &[String]) -> bool {
        let has = |t: &str| tags.iter().any(|x| x == t);
        if self.opts.skip_tags.iter().any(|s| has(s) || (s == "all")) {
            return false;
        }
        if has("never") && !self.opts.tags.iter().any(|t| has(t)) {
            return false;
        }
        if self.opts.tags.is_empty() || self.opts.tags.iter().any(|t| t == "all") {
            return true;
        }
        if has("always") {
            return true;
        }
        self.opts.tags.iter().any(|t| {
            has(t) || (t == "tagged" && !tags.is_empty()) || (t == "untagged" && tags.is_empty())
        })
    }

    /// Builds a task's variables.
    fn scope(
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
        magic.insert(
            "playbook_dir".into(),
            Value::from(self.playbook_dir.as_str()),
        );
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
        let mut layers: Vec<&RawVars> = Vec::with_capacity(20);
        layers.extend(self.play_role_defaults.iter().map(|a| a.as_ref()));
        layers.push(role_defaults);
        layers.extend(self.play_vars.iter().map(|a| a.as_ref()));
        layers.extend(self.play_role_vars.iter().map(|a| a.as_ref()));
        layers.push(role_vars);
        layers.extend(inherit.vars.iter().map(|a| a.as_ref()));
        layers.push(task_vars);
        layers.push(&self.host_facts);
        layers.push(role_params);
        if let Some(rv) = &inherit.rescue_vars {
            layers.push(rv);
        }
        layers.push(&self.opts.extra_vars);
        if let Some(x) = extra {
            layers.push(x);
        }
        layers.push(&magic);
        Scope::new(self.templar.clone(), layers).into_value()
    }

    /// Evaluates conditions (all must hold). Err is a run-time error in a condition.
    fn conditions(&self, conds: &[Value], vars: &Value, scope: &Scope) -> Result<bool, String> {
        for c in conds {
            let ok = match c.kind() {
                minijinja::value::ValueKind::Bool => c.is_true(),
                _ => {
                    let text = python_str(c);
                    self.templar.eval_bool(&text, vars).map_err(|e| {
                        let inner = scope.take_error();
                        match inner {
                            Some(i) => format!("condition `{text}`: {i}"),
                            None => format!("condition `{text}`: {e}"),
                        }
                    })?
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn base_report(&self, task: &Task, handler: bool, no_log: bool) -> TaskReport {
        TaskReport {
            play: self.play_name.clone(),
            name: task.display_name(),
            module: task.action_name().to_string(),
            file: task.location.file.to_string(),
            line: task.location.line,
            handler,
            status: Status::Ok,
            changed: false,
            items: Vec::new(),
            msg: None,
            diff: Vec::new(),
            changes: Vec::new(),
            rescued: false,
            no_log,
            output: None,
            drift: None,
            owns: Vec::new(),
        }
    }

    fn push_report(&mut self, report: TaskReport) {
        self.reporter.task_done(&report);
        self.reports.push(report);
    }

    fn run_task(&mut self, task: &Arc<Task>, inherit: &Inherit, handler: bool) -> Flow {
        let mut inh = inherit.with(&task.common);
        inh.handler = handler;
        if task.role.is_some() {
            inh.role = task.role.clone();
        }
        // Static imports: their tasks run in place, inheriting the import's keywords.
        match &task.action {
            Action::IncludeTasks {
                preloaded: Some(items),
                import: true,
                ..
            } => return self.run_items(items, &inh),
            Action::IncludeRole {
                role, import: true, ..
            } => {
                let mut rinh = inh.clone();
                rinh.role = Some(role.clone());
                return self.run_items(&role.tasks, &rinh);
            }
            Action::FlushHandlers => return self.flush_handlers(),
            Action::MetaNoop(_) => return Flow::Continue,
            _ => {}
        }
        if !handler && !self.selected(&inh.tags) {
            return Flow::Continue;
        }
        let no_log = inh.no_log.unwrap_or(false);
        let mut report = self.base_report(task, handler, no_log);
        let (vars, scope) = self.scope(Some(task), &inh, None);

        // Items to run: one pass without a loop, one per item with.
        let items: Option<Vec<Value>> = match &task.loop_items {
            None => None,
            Some(l) => match self.loop_items(&l.items, l.flatten, &vars, &scope) {
                Ok(items) => Some(items),
                Err(msg) => return self.fail_task(task, &inh, report, msg),
            },
        };

        let Some(items) = items else {
            // No loop: `when` first.
            match self.conditions(&inh.when, &vars, &scope) {
                Ok(true) => {}
                Ok(false) => {
                    report.status = Status::Skipped;
                    if let Some(r) = &task.register {
                        let mut res = IndexMap::new();
                        res.insert("changed".to_string(), Value::from(false));
                        res.insert("skipped".to_string(), Value::from(true));
                        res.insert(
                            "skip_reason".to_string(),
                            Value::from("Conditional result was False"),
                        );
                        self.host_facts
                            .insert(r.clone(), crate::vars::map_value(res));
                    }
                    self.push_report(report);
                    return Flow::Continue;
                }
                Err(msg) => return self.fail_task(task, &inh, report, msg),
            }
            if let Action::IncludeTasks { .. } | Action::IncludeRole { .. } = &task.action {
                return self.run_include(task, &inh, None);
            }
            let exec = self.execute(task, &inh, &vars, &scope);
            let exec = self.judge(task, &inh, exec, None);
            report.status = exec.status;
            report.changed = exec.changed;
            report.owns = exec.owns.clone();
            report.drift = self.drift_of(&exec, inh.handler);
            report.diff = if no_log { Vec::new() } else { exec.diff };
            report.changes = exec.changes;
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
            if let Some(r) = &task.register {
                self.host_facts
                    .insert(r.clone(), crate::vars::map_value(exec.result.clone()));
            }
            self.absorb_facts(&exec.result);
            return self.finish_task(task, &inh, report, exec.changed);
        };

        // A loop: each item in turn, `when` per item.
        if let Action::IncludeTasks { .. } | Action::IncludeRole { .. } = &task.action {
            let mut flow = Flow::Continue;
            for (index, item) in items.into_iter().enumerate() {
                let lv = self.loop_vars(task, &item, index);
                let (ivars, iscope) = self.scope(Some(task), &inh, Some(&lv));
                match self.conditions(&inh.when, &ivars, &iscope) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(msg) => return self.fail_task(task, &inh, report, msg),
                }
                flow = self.run_include(task, &inh, Some(&lv));
                if flow == Flow::Failed {
                    break;
                }
            }
            return flow;
        }
        let mut results = Vec::new();
        let mut any_changed = false;
        let mut failed_msg = None;
        let mut all_skipped = true;
        let total = items.len();
        for (index, item) in items.into_iter().enumerate() {
            let lv = self.loop_vars(task, &item, index);
            let (ivars, iscope) = self.scope(Some(task), &inh, Some(&lv));
            let label = match &task.label {
                Some(l) => self
                    .templar
                    .render_value(l, &ivars)
                    .unwrap_or_else(|_| item.clone()),
                None => item.clone(),
            };
            let mut res: IndexMap<String, Value>;
            let item_report = match self.conditions(&inh.when, &ivars, &iscope) {
                Ok(false) => {
                    res = IndexMap::new();
                    res.insert("changed".into(), Value::from(false));
                    res.insert("skipped".into(), Value::from(true));
                    res.insert(
                        "skip_reason".into(),
                        Value::from("Conditional result was False"),
                    );
                    ItemReport {
                        item: to_json(&label),
                        status: Status::Skipped,
                        changed: false,
                        msg: None,
                    }
                }
                Err(msg) => {
                    res = IndexMap::new();
                    res.insert("failed".into(), Value::from(true));
                    res.insert("msg".into(), Value::from(msg.as_str()));
                    all_skipped = false;
                    failed_msg.get_or_insert(msg.clone());
                    ItemReport {
                        item: to_json(&label),
                        status: Status::Failed,
                        changed: false,
                        msg: Some(msg),
                    }
                }
                Ok(true) => {
                    let exec = self.execute(task, &inh, &ivars, &iscope);
                    let exec = self.judge(task, &inh, exec, Some(&lv));
                    if exec.status != Status::Skipped {
                        all_skipped = false;
                    }
                    any_changed |= exec.changed;
                    if exec.status == Status::Failed {
                        failed_msg.get_or_insert(exec.failed.clone().unwrap_or_default());
                    }
                    if !no_log {
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
                    res = exec.result;
                    ItemReport {
                        item: to_json(&label),
                        status: exec.status,
                        changed: exec.changed,
                        msg: if no_log {
                            None
                        } else {
                            exec.failed.or_else(|| res.get("msg").map(python_str))
                        },
                    }
                }
            };
            res.insert(task.loop_var.clone(), item.clone());
            res.insert(
                "ansible_loop_var".into(),
                Value::from(task.loop_var.as_str()),
            );
            if no_log {
                report.items.push(ItemReport {
                    item: serde_json::Value::String("(no_log)".into()),
                    ..item_report
                });
            } else {
                report.items.push(item_report);
            }
            results.push(crate::vars::map_value(res));
        }
        let mut agg = IndexMap::new();
        agg.insert("changed".to_string(), Value::from(any_changed));
        agg.insert("failed".to_string(), Value::from(failed_msg.is_some()));
        if total == 0 || all_skipped {
            agg.insert("skipped".to_string(), Value::from(true));
        }
        agg.insert(
            "msg".to_string(),
            Value::from(if failed_msg.is_some() {
                "One or more items failed"
            } else {
                "All items completed"
            }),
        );
        agg.insert("results".to_string(), Value::from(results));
        if let Some(r) = &task.register {
            self.host_facts
                .insert(r.clone(), crate::vars::map_value(agg));
        }
        report.changed = any_changed;
        report.status = if failed_msg.is_some() {
            Status::Failed
        } else if total == 0 || all_skipped {
            Status::Skipped
        } else if any_changed {
            Status::Changed
        } else {
            Status::Ok
        };
        if let Some(msg) = failed_msg {
            report.msg = Some(if no_log { NO_LOG_MSG.to_string() } else { msg });
        }
        self.finish_task(task, &inh, report, any_changed)
    }

    /// Records the report, notifies handlers, and turns a failure into ignored or fatal.
    fn finish_task(
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

    fn fail_task(
        &mut self,
        task: &Task,
        inh: &Inherit,
        mut report: TaskReport,
        msg: String,
    ) -> Flow {
        report.status = Status::Failed;
        report.msg = Some(msg);
        self.finish_task(task, inh, report, false)
    }

    fn notify(&mut self, name: &str, from: &Task) {
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
    fn flush_handlers(&mut self) -> Flow {
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

    fn loop_vars(&self, task: &Task, item: &Value, index: usize) -> RawVars {
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

    fn loop_items(
        &self,
        raw: &Value,
        flatten: bool,
        vars: &Value,
        scope: &Scope,
    ) -> Result<Vec<Value>, String> {
        let rendered = self.templar.render_value(raw, vars).map_err(|e| {
            scope
                .take_error()
                .map(|i| format!("loop: {i}"))
                .unwrap_or_else(|| format!("loop: {e}"))
        })?;
        if rendered.is_none() || rendered.is_undefined() {
            return Ok(Vec::new());
        }
        if rendered.as_str().is_some() {
            if flatten {
                return Ok(vec![rendered]);
            }
            return Err(format!(
                "Invalid data passed to 'loop', it requires a list, got this instead: {rendered}"
            ));
        }
        let iter = rendered
            .try_iter()
            .map_err(|_| format!("loop: expected a list, got {rendered}"))?;
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

    /// Includes: load (if not preloaded) and run the included tasks or role.
    fn run_include(&mut self, task: &Task, inh: &Inherit, loop_vars: Option<&RawVars>) -> Flow {
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

    /// Renders the arguments, checks, and applies (unless in check mode).
    fn execute(&self, task: &Task, inh: &Inherit, vars: &Value, scope: &Scope) -> Exec {
        let fail_owning = |msg: String, owns: Vec<Owned>| Exec {
            status: Status::Failed,
            changed: false,
            failed: Some(msg.clone()),
            result: IndexMap::from_iter([
                ("failed".to_string(), Value::from(true)),
                ("msg".to_string(), Value::from(msg)),
            ]),
            diff: Vec::new(),
            changes: Vec::new(),
            owns,
            drift_check_only: false,
        };
        let fail = |msg: String| fail_owning(msg, Vec::new());
        let Action::Module {
            name, module, args, ..
        } = &task.action
        else {
            return fail("not a module".into());
        };
        let mut rendered = IndexMap::new();
        for (k, v) in args {
            match self.templar.render_value(v, vars) {
                Ok(r) => {
                    rendered.insert(k.clone(), r);
                }
                Err(e) => {
                    let detail = scope.take_error().unwrap_or_else(|| e.to_string());
                    return fail(format!(
                        "{}:{}: argument `{k}`: {detail}",
                        task.location.file, task.location.line
                    ));
                }
            }
        }
        let check_mode = inh.check_mode.unwrap_or(self.opts.check);
        let search = crate::playbook::search_dirs(
            task.role.as_ref().or(inh.role.as_ref()),
            &task.location.file,
            &self.base,
        );
        let env = match &inh.environment {
            Some(e) => match self.templar.render_value(e, vars) {
                Ok(v) => env_pairs(&v),
                Err(e) => return fail(format!("environment: {e}")),
            },
            None => Vec::new(),
        };
        let ctx = ModuleContext {
            templar: &self.templar,
            vars,
            source: self.source,
            search: &search,
            check_mode,
            diff: self.opts.diff,
            env: &env,
            host: &self.host,
        };
        let resource: Box<dyn Resource> = if *name == "set_fact" {
            set_fact_resource(&rendered)
        } else {
            let bound = match module.spec().bind(&rendered) {
                Ok(b) => b,
                Err(e) => return fail(format!("{name}: {e}")),
            };
            match module.prepare(&bound, &ctx) {
                Ok(r) => r,
                Err(e) => return fail(e.0),
            }
        };
        let owns = resource.owns();
        // A drift pass applies only declarative tasks whose policy is `correct`; handlers run
        // as the playbook says (only a correction notifies them).
        let drift_check_only = !check_mode
            && !inh.handler
            && self.opts.drift.as_ref().is_some_and(|d| {
                !resource.supports_check_mode() || drift_report_policy(&inh.tags, vars, d.report)
            });
        let check_mode = check_mode || drift_check_only;
        let check = match resource.check() {
            Ok(c) => c,
            Err(e) => return fail_owning(e.0, owns),
        };
        let changes: Vec<String> = check.changes.iter().map(Change::describe).collect();
        let diff = if self.opts.diff {
            check.changes.iter().filter_map(unified_diff).collect()
        } else {
            Vec::new()
        };
        let (outcome, changed, status_skip): (Outcome, bool, bool) = if check.changes.is_empty() {
            let ch = check.outcome.changed.unwrap_or(false);
            (check.outcome, ch, false)
        } else if check_mode {
            if resource.supports_check_mode() {
                let ch = check.outcome.changed.unwrap_or(true);
                (check.outcome, ch, false)
            } else {
                (check.outcome, false, true)
            }
        } else {
            if let Some(d) = &self.opts.drift {
                if let Some(msg) = through_symlink(&check.changes, &d.guard) {
                    return fail_owning(msg, owns);
                }
            }
            let applied = resource.apply(&check.changes);
            // Whatever the task did may have installed packages or unit files that later
            // tasks ask about: read them again.
            self.host.invalidate_packages();
            self.host.invalidate_units();
            match applied {
                Ok(o) => {
                    // A module that failed changed nothing unless it says otherwise (as fail_json).
                    let ch = o.changed.unwrap_or(o.failed.is_none());
                    (o, ch, false)
                }
                Err(e) => return fail_owning(e.0, owns),
            }
        };
        let mut result = outcome.data;
        result.insert("changed".into(), Value::from(changed));
        if let Some(f) = &outcome.failed {
            result.insert("failed".into(), Value::from(true));
            result
                .entry("msg".into())
                .or_insert(Value::from(f.as_str()));
        } else {
            result.insert("failed".into(), Value::from(false));
        }
        if status_skip {
            result.insert("skipped".into(), Value::from(true));
            result.insert(
                "msg".into(),
                Value::from("Command would have run if not in check mode"),
            );
        }
        Exec {
            status: if outcome.failed.is_some() {
                Status::Failed
            } else if status_skip {
                Status::Skipped
            } else if changed {
                Status::Changed
            } else {
                Status::Ok
            },
            changed,
            failed: outcome.failed,
            result,
            diff,
            changes,
            owns,
            drift_check_only,
        }
    }

    /// In a drift pass, what became of a task that found changes to make.
    /// A handler's change is the playbook's reaction to a correction, not drift itself.
    fn drift_of(&self, exec: &Exec, handler: bool) -> Option<Drift> {
        if self.opts.drift.is_none() || handler || !exec.changed || exec.status == Status::Skipped {
            return None;
        }
        Some(if exec.drift_check_only {
            Drift::Reported
        } else {
            Drift::Corrected
        })
    }

    /// Applies `changed_when` and `failed_when`, which see the result under its register name.
    fn judge(&self, task: &Task, inh: &Inherit, mut exec: Exec, lv: Option<&RawVars>) -> Exec {
        if (task.changed_when.is_none() && task.failed_when.is_none())
            || exec.status == Status::Skipped
        {
            return exec;
        }
        let mut extra = lv.cloned().unwrap_or_default();
        if let Some(r) = &task.register {
            extra.insert(r.clone(), crate::vars::map_value(exec.result.clone()));
        }
        // The result's own keys (rc, stdout, ...) are visible bare too, as in Ansible.
        for (k, v) in &exec.result {
            extra.entry(k.clone()).or_insert(v.clone());
        }
        let (vars, scope) = self.scope(Some(task), inh, Some(&extra));
        if let Some(cw) = &task.changed_when {
            match self.conditions(cw, &vars, &scope) {
                Ok(c) => {
                    exec.changed = c;
                    exec.result.insert("changed".into(), Value::from(c));
                }
                Err(e) => {
                    exec.failed = Some(e);
                }
            }
        }
        if let Some(fw) = &task.failed_when {
            match self.conditions(fw, &vars, &scope) {
                Ok(f) => {
                    exec.failed = if f {
                        Some(
                            exec.failed
                                .clone()
                                .or_else(|| exec.result.get("msg").map(python_str))
                                .unwrap_or_else(|| "failed_when condition was met".into()),
                        )
                    } else {
                        None
                    };
                    exec.result.insert("failed".into(), Value::from(f));
                    exec.result
                        .insert("failed_when_result".into(), Value::from(f));
                }
                Err(e) => exec.failed = Some(e),
            }
        }
        exec.status = if exec.failed.is_some() {
            Status::Failed
        } else if exec.changed {
            Status::Changed
        } else {
            Status::Ok
        };
        exec
    }

    /// `set_fact` results become host variables.
    fn absorb_facts(&mut self, result: &IndexMap<String, Value>) {
        if result.get("failed").is_some_and(|f| f.is_true()) {
            return;
        }
        if let Some(facts) = result.get("ansible_facts") {
            if let Ok(keys) = facts.try_iter() {
                for k in keys {
                    if let (Some(name), Ok(v)) = (k.as_str(), facts.get_item(&k)) {
                        self.host_facts.insert(name.to_string(), v);
                    }
                }
            }
        }
    }

    fn not_run_items(&mut self, items: &[Item]) {
        for item in items {
            match item {
                Item::Task(t) => match &t.action {
                    Action::IncludeTasks {
                        preloaded: Some(items),
                        import: true,
                        ..
                    } => self.not_run_items(items),
                    Action::IncludeRole {
                        role, import: true, ..
                    } => self.not_run_items(&role.tasks),
                    Action::FlushHandlers | Action::MetaNoop(_) => {}
                    _ => {
                        if !self.selected(&t.common.tags)
                            && t.common.tags.is_empty()
                            && !self.opts.tags.is_empty()
                        {
                            continue;
                        }
                        let mut r = self.base_report(t, false, false);
                        r.status = Status::NotRun;
                        self.reports.push(r);
                    }
                },
                Item::Block(b) => {
                    self.not_run_items(&b.block);
                    self.not_run_items(&b.always);
                }
            }
        }
    }

    fn not_run_play(&mut self, play: &Play) {
        let name = std::mem::replace(&mut self.play_name, play.name.clone());
        self.not_run_items(&play.pre_tasks);
        self.not_run_items(&play.tasks);
        self.not_run_items(&play.post_tasks);
        self.play_name = name;
    }
}

fn env_pairs(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(keys) = v.try_iter() {
        for k in keys {
            if let Ok(val) = v.get_item(&k) {
                out.push((python_str(&k), python_str(&val)));
            }
        }
    }
    out
}

/// A unified diff of a file change, as `--diff` prints it.
fn unified_diff(change: &Change) -> Option<String> {
    let (path, before, after) = change.diff()?;
    let p = path.display().to_string();
    let before_label = if matches!(change, Change::WriteFile { before: None, .. }) {
        "/dev/null".to_string()
    } else {
        format!("before: {p}")
    };
    Some(
        similar::TextDiff::from_lines(&before, &after)
            .unified_diff()
            .header(&before_label, &format!("after: {p}"))
            .to_string(),
    )
}

/// A template value as JSON (for reports).
/// The path a change touches.
fn change_path(c: &Change) -> Option<&std::path::Path> {
    match c {
        Change::WriteFile { path, .. }
        | Change::CreateDir { path, .. }
        | Change::Symlink { path, .. }
        | Change::HardLink { path, .. }
        | Change::Remove { path }
        | Change::SetMode { path, .. }
        | Change::SetOwner { path, .. }
        | Change::Touch { path, .. } => Some(path),
        _ => None,
    }
}

/// In a drift pass: a change under a directory of `guard` that has become a symbolic link.
fn through_symlink(changes: &[Change], guard: &[std::path::PathBuf]) -> Option<String> {
    for path in changes.iter().filter_map(change_path) {
        for dir in guard {
            if path != dir.as_path()
                && path.starts_with(dir)
                && dir.symlink_metadata().is_ok_and(|m| m.is_symlink())
            {
                let to = std::fs::read_link(dir)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                return Some(format!(
                    "{} was a directory when the playbook last ran and is now a symbolic link \
                     to {to}: not changing {} through it (drift left for a human or a commit)",
                    dir.display(),
                    path.display()
                ));
            }
        }
    }
    None
}

/// Is a task's drift only reported? Its tags first (`drift_report`, `drift_correct`), then the
/// variable `gitops_drift`, then the host's default.
fn drift_report_policy(tags: &[String], vars: &Value, default_report: bool) -> bool {
    if tags.iter().any(|t| t == TAG_DRIFT_REPORT) {
        return true;
    }
    if tags.iter().any(|t| t == TAG_DRIFT_CORRECT) {
        return false;
    }
    match vars
        .get_attr(VAR_DRIFT)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
    {
        Some(v) if v == "report" => true,
        Some(v) if v == "correct" => false,
        _ => default_report,
    }
}

pub fn to_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Converts `-e k=v` text to a variable (as Ansible: a string).
pub fn parse_extra_var(text: &str) -> Result<(String, Value), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("extra variable `{text}` is not key=value"))?;
    if !crate::playbook::is_identifier(k) {
        return Err(format!("`{k}` is not a valid variable name"));
    }
    Ok((k.to_string(), Value::from(v)))
}
