//! The engine: runs a loaded playbook against this host. For each task: evaluate `when`, render
//! the arguments, let the module **check**, then **apply** what differs (or only report it in
//! check mode); register results, notify handlers and run them at flush points, handle
//! `block`/`rescue`/`always`, and stop the play on an unhandled failure as Ansible does.

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;

use crate::facts::Facts;
use crate::playbook::{Action, Block, Common, Item, Play, Playbook, RawVars, Role, Task};
use crate::report::{Reporter, RunReport, RunResult, Stats, Status, TaskReport};
use crate::resource::{HostState, Owned};
use crate::source::{RepoPath, Source};
use crate::template::Templar;

mod argspec;
mod bridge;
mod execute;
mod failure;
mod flags;
mod flow;
mod hostfacts;
mod meta;
mod scope;
mod task;

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
    /// The agent's state directory: the `password` lookup keeps relative files there.
    pub state_dir: Option<std::path::PathBuf>,
    /// The bridge to the host's ansible-core (`ansible_modules: auto`): modules the agent does
    /// not implement run as ansible's own; `None`: they fail when reached.
    pub ansible: Option<Arc<crate::bridge::Bridge>>,
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
    diff: Option<bool>,
    become_: Option<bool>,
    become_user: Option<(Value, crate::error::Location)>,
    run_once: Option<bool>,
    /// Templated boolean keywords, rendered when a task runs ([`Inherit::resolve_flags`]).
    pending: Vec<crate::playbook::Flag>,
    role: Option<Arc<Role>>,
    /// Inside the `block:` of a block that has a `rescue` (at any depth, Ansible's
    /// `is_any_block_rescuing`): a failure here sets `ansible_failed_task`/`_result`.
    rescuing: bool,
    /// Running a handler (a drift pass never holds a handler back).
    handler: bool,
    delegate_to: Option<Value>,
    delegate_facts: Option<Value>,
    /// The nearest `notify` (the task's, else its block's).
    notify: Option<Vec<String>>,
}

impl Inherit {
    fn with(&self, c: &Common) -> Inherit {
        let mut out = self.clone();
        out.when.extend(c.when.iter().cloned());
        out.tags.extend(c.tags.iter().cloned());
        if !c.vars.is_empty() {
            out.vars.push(Arc::new(c.vars.clone()));
        }
        out.with_flags(c);
        if let Some(env) = &c.environment {
            // Ansible extends the enclosing environment (the inner one wins per variable).
            out.environment = Some(match out.environment.take() {
                Some(outer) => Value::from(vec![outer, env.clone()]),
                None => env.clone(),
            });
        }
        if c.delegate_to.is_some() {
            out.delegate_to = c.delegate_to.clone();
        }
        if c.delegate_facts.is_some() {
            out.delegate_facts = c.delegate_facts.clone();
        }
        if c.notify.is_some() {
            out.notify = c.notify.clone();
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
    /// `meta: end_host`/`end_play`/`end_batch`: the play is over for this host, without a
    /// failure (no `always`, no handlers); the next play goes on.
    EndPlay,
    /// `meta: end_role`: the rest of the current role is skipped.
    EndRole,
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
    /// Ran through the host's ansible-core ([`crate::bridge`]).
    via_ansible: bool,
    /// What the module warned about.
    warnings: Vec<String>,
}

pub struct Engine<'a> {
    templar: Arc<Templar>,
    source: &'a dyn Source,
    opts: RunOptions,
    facts: Option<RawVars>,
    /// set_fact and registered results: they outlive plays.
    host_facts: RawVars,
    /// Variables loaded by `include_vars` (below set_fact, as in Ansible); they outlive plays.
    included_vars: RawVars,
    /// `set_fact` with `cacheable: true`: facts as gathered ones are (`ansible_facts.NAME`),
    /// until `meta: clear_facts`.
    cached_facts: RawVars,
    /// The play's facts layer (in `play_vars`), replaced when facts change.
    play_facts: Arc<RawVars>,
    /// `meta: clear_host_errors` ran (an `always` after a failure then lets the play go on).
    errors_cleared: bool,
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
    /// The full result of the task being finished (set just before `finish_task`), for
    /// `ansible_failed_result`.
    pending_result: Option<IndexMap<String, Value>>,
    /// The handler names the task being finished notifies (a loop's, gathered per item).
    pending_notify: Option<Vec<String>>,
    /// Package and unit state shared by the tasks of this run.
    host: Arc<HostState>,
    /// Magic variables of the run, and those with the current play's ([`crate::magic`]).
    run_magic: Arc<RawVars>,
    play_magic: Arc<RawVars>,
    /// ansible.cfg `hash_behaviour = merge`.
    hash_merge: bool,
    /// The roles of this play that ran a task ([`Block::run_key`]): not run again.
    roles_done: Vec<String>,
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
            included_vars: RawVars::new(),
            cached_facts: RawVars::new(),
            play_facts: Arc::new(RawVars::new()),
            errors_cleared: false,
            reports: Vec::new(),
            reporter,
            play_name: String::new(),
            play_vars: Vec::new(),
            play_role_defaults: Vec::new(),
            play_role_vars: Vec::new(),
            handlers: Vec::new(),
            notified: Vec::new(),
            failed: false,
            pending_result: None,
            pending_notify: None,
            host: Arc::new(HostState::new()),
            run_magic: Arc::default(),
            play_magic: Arc::default(),
            hash_merge: false,
            roles_done: Vec::new(),
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
        self.host.hint(crate::playbook::host_queries(playbook));
        self.run_magic = Arc::new(crate::magic::run_vars(&crate::magic::RunContext {
            host: &playbook.host,
            root: &self.playbook_dir,
            tags: &self.opts.tags,
            skip_tags: &self.opts.skip_tags,
            config_file: playbook.config_file.as_deref(),
            ansible_managed: &playbook.ansible_managed,
        }));
        self.hash_merge = playbook.hash_merge;
        self.play_magic = self.run_magic.clone();
        // Collection filter/test plugins run with the bridge's interpreter, if it is on.
        crate::template::pyplugins::set_bridge(self.opts.ansible.clone());
        // `ansible_python` describes the interpreter Ansible's code runs with here, when the
        // configuration names one.
        crate::facts::extra::set_python_interpreter(
            self.opts
                .ansible
                .as_ref()
                .and_then(|b| b.configured_python().map(|p| p.to_path_buf())),
        );
        for (i, play) in playbook.plays.iter().enumerate() {
            if self.failed {
                for rest in &playbook.plays[i..] {
                    self.not_run_play(rest);
                }
                break;
            }
            if !play.runs_here {
                continue;
            }
            self.run_play(play, &group_vars, &host_vars, &dir);
        }
        // The Python process of collection plugins, if any ran, and its copied collections go
        // with the run (the next run may come from another commit).
        crate::template::pyplugins::stop_worker();
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
                    stats.ignored += 1;
                    // Ansible counts an ignored failure that changed something as changed.
                    if t.changed {
                        stats.changed += 1
                    }
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
            reboot_owed: RunReport::find_reboot_owed(self.opts.check, &self.reports),
            tasks: self.reports,
            stats,
            error: None,
        }
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
        // The run's magic variables with the play's: one map to look in for every variable.
        let mut magic = (*self.run_magic).clone();
        magic.extend(crate::magic::play_vars(play));
        self.play_magic = Arc::new(magic);
        self.reporter.play_start(&play.name);
        let facts = if play.gather_facts || self.facts.is_some() {
            Arc::new(self.facts())
        } else {
            Arc::new(RawVars::new())
        };
        let facts = self.with_cached_facts(facts);
        self.play_facts = facts.clone();
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
        self.roles_done.clear();
        let base = Inherit::default().with(&play.common);
        for item in &play.handlers {
            self.collect_handlers(item, &base);
        }
        self.notified = vec![false; self.handlers.len()];

        // An imported playbook's `when` is on each of its tasks, not on its handlers.
        let mut tasks_base = base.clone();
        tasks_base.when.extend(play.when.iter().cloned());
        if play.gather_facts {
            // Reported as Ansible does, so both tools show the same task list; under an
            // import's false `when`, skipped.
            let mut report = TaskReport::new(
                &play.name,
                "Gathering Facts".into(),
                "setup",
                &play.location,
            );
            if !play.when.is_empty() {
                let (vars, scope) = self.scope(None, &tasks_base, None);
                if matches!(self.conditions(&play.when, &vars, &scope), Ok(false)) {
                    report.status = Status::Skipped;
                }
            }
            self.push_report(report);
        }
        let sections = [&play.pre_tasks, &play.tasks, &play.post_tasks];
        for (i, section) in sections.iter().enumerate() {
            let flow = match self.run_items(section, &tasks_base) {
                Flow::Continue => self.flush_handlers(),
                Flow::Failed if play.force_handlers => {
                    // force_handlers: what was notified still runs after the failure.
                    self.flush_handlers();
                    Flow::Failed
                }
                other => other,
            };
            match flow {
                Flow::Continue | Flow::EndRole => {}
                Flow::EndPlay => return,
                Flow::Failed => {
                    self.failed = true;
                    for rest in &sections[i + 1..] {
                        self.not_run_items(rest);
                    }
                    return;
                }
            }
        }
    }

    fn collect_handlers(&mut self, item: &Item, inherit: &Inherit) {
        match item {
            // An `import_tasks` under `handlers:` is its tasks, each a handler (notified by its
            // own name or `listen`), inheriting the import's keywords as in a task list. An
            // `include_tasks` stays one handler: notifying it runs the whole file (Ansible's
            // dynamic include; names inside it cannot be notified, the loader refuses them).
            Item::Task(t) => match &t.action {
                Action::IncludeTasks {
                    preloaded: Some(items),
                    import: true,
                    ..
                } => {
                    let mut inh = inherit.with(&t.common);
                    inh.role = t.role.clone().or(inh.role);
                    for i in items {
                        self.collect_handlers(i, &inh);
                    }
                }
                _ => {
                    let mut inh = inherit.clone();
                    inh.role = t.role.clone().or(inh.role);
                    self.handlers.push(Handler {
                        task: t.clone(),
                        inherit: inh,
                    })
                }
            },
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
            match flow {
                Flow::Continue => {}
                Flow::Failed => {
                    self.not_run_items(&items[i + 1..]);
                    return Flow::Failed;
                }
                Flow::EndPlay | Flow::EndRole => return flow,
            }
        }
        Flow::Continue
    }

    fn run_block(&mut self, block: &Block, inherit: &Inherit) -> Flow {
        // A role already run in this play with the same parameters (Ansible's dedupe).
        if let Some(key) = &block.run_key {
            if self.roles_done.contains(key) {
                return Flow::Continue;
            }
        }
        let start = self.reports.len();
        let mut flow = self.run_block_sections(block, inherit);
        if let Some(key) = &block.run_key {
            // A role counts as run once one of its tasks ran (was not skipped).
            let ran = self.reports[start.min(self.reports.len())..]
                .iter()
                .any(|r| {
                    matches!(
                        r.status,
                        Status::Ok | Status::Changed | Status::Failed | Status::Ignored
                    )
                });
            if ran && !self.roles_done.contains(key) {
                self.roles_done.push(key.clone());
            }
        }
        // A play's `roles:` entry is a block of the role's tasks: `end_role` stops there.
        let enters_role = block.role.as_ref().is_some_and(|r| {
            inherit
                .role
                .as_ref()
                .is_none_or(|outer| outer.path != r.path)
        });
        if flow == Flow::EndRole && enters_role {
            flow = Flow::Continue;
        }
        flow
    }

    fn run_block_sections(&mut self, block: &Block, inherit: &Inherit) -> Flow {
        let mut inh = inherit.with(&block.common);
        if block.role.is_some() {
            inh.role = block.role.clone();
        }
        let start = self.reports.len();
        let mut binh = inh.clone();
        binh.rescuing |= !block.rescue.is_empty();
        let mut flow = self.run_items(&block.block, &binh);
        if flow == Flow::Failed && !block.rescue.is_empty() {
            // The rescue takes over: the block's tasks after the failure are not "not run", and
            // its failed task shows as rescued. `ansible_failed_task`/`_result` were set as
            // host facts when the task failed (they outlive the block, as in Ansible).
            let tail: Vec<TaskReport> = self
                .reports
                .drain(start..)
                .filter(|r| r.status != Status::NotRun)
                .collect();
            for mut r in tail {
                if r.status == Status::Failed {
                    r.rescued = true;
                }
                self.reports.push(r);
            }
            flow = self.run_items(&block.rescue, &inh);
        }
        if matches!(flow, Flow::EndPlay | Flow::EndRole) || block.always.is_empty() {
            // Ending the play or the role skips every `always` on the way (Ansible's iterator
            // completes the host).
            return flow;
        }
        if flow != Flow::Failed {
            return self.run_items(&block.always, &inh);
        }
        // Remove the block's not-run entries: `always` runs before the host stops.
        let pos = self.reports[start..]
            .iter()
            .position(|r| r.status == Status::NotRun)
            .map(|p| p + start);
        let pending: Vec<TaskReport> = match pos {
            Some(p) => self.reports.drain(p..).collect(),
            None => Vec::new(),
        };
        self.errors_cleared = false;
        let always_flow = self.run_items(&block.always, &inh);
        if std::mem::take(&mut self.errors_cleared) && always_flow != Flow::Failed {
            // `meta: clear_host_errors` in `always`: the failure no longer stops the host,
            // which goes on after the block (the failed task still counts as failed).
            return always_flow;
        }
        self.reports.extend(pending);
        match always_flow {
            Flow::Continue => Flow::Failed,
            other => other,
        }
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
                    Action::FlushHandlers | Action::MetaNoop(_) | Action::Meta(_) => {}
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

/// A template value as JSON (for reports).
pub fn to_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
