//! One module run: render the arguments, prepare the resource, check, apply what differs
//! (or only report it in check mode and in a drift pass), then `changed_when`/`failed_when`.

use indexmap::IndexMap;
use minijinja::Value;

use super::{Engine, Exec, Inherit, TAG_DRIFT_CORRECT, TAG_DRIFT_REPORT, VAR_DRIFT};
use crate::args::{python_str, ArgError};
use crate::playbook::{Action, RawVars, Task};
use crate::report::{Drift, Status};
use crate::resource::{
    Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};
use crate::source::RepoPath;
use crate::template::TemplateError;
use crate::vars::Scope;

impl Exec {
    /// A run that failed before the module could report (arguments, check, apply).
    pub(super) fn failure(msg: String, owns: Vec<Owned>) -> Exec {
        Exec {
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
            via_ansible: false,
            warnings: Vec::new(),
        }
    }
}

/// What came of a check (and its apply, if it ran).
struct Converged {
    outcome: Outcome,
    changed: bool,
    /// A module that cannot predict its effect, in check mode with something to do.
    skipped: bool,
}

/// Why a task's module could not be made ready to run (before any check).
#[derive(Debug, thiserror::Error)]
pub(super) enum PrepareError {
    /// An argument does not render; `detail` is the variable's own error when there is one,
    /// else the template's.
    #[error("{location}: argument `{key}`: {detail}")]
    Argument {
        location: crate::error::Location,
        key: String,
        detail: String,
    },
    #[error("environment: {0}")]
    Environment(#[source] TemplateError),
    /// The rendered arguments do not fit the module's spec.
    #[error("{action}: {source}")]
    Bind { action: String, source: ArgError },
    #[error(transparent)]
    Prepare(#[from] ModuleError),
}

/// Why a task's changes were not applied.
#[derive(Debug, thiserror::Error)]
enum ConvergeError {
    /// A drift pass refuses to write through a directory that became a symbolic link.
    #[error(
        "{} was a directory when the playbook last ran and is now a symbolic link to {to}: not \
         changing {} through it (drift left for a human or a commit)",
        dir.display(),
        path.display()
    )]
    ThroughSymlink {
        dir: std::path::PathBuf,
        /// The link's target ("" when it cannot be read).
        to: String,
        path: std::path::PathBuf,
    },
    /// The module's apply failed.
    #[error(transparent)]
    Apply(#[from] ModuleError),
}

impl Engine<'_> {
    /// Renders the arguments, checks, and applies (unless in check mode).
    pub(super) fn execute(&self, task: &Task, inh: &Inherit, vars: &Value, scope: &Scope) -> Exec {
        if let Action::ValidateArgs { options, params } = &task.action {
            return self.validate_role_args(options, params, vars);
        }
        if let Some((module, args)) = self.bridge_target(task) {
            return self.execute_bridged(task, inh, vars, scope, module, args);
        }
        let Action::Module { module, args, .. } = &task.action else {
            let msg = match &task.action {
                // Not implemented: loaded, and fails here, when reached (check mode too).
                Action::Unsupported { error, .. } => error.to_string(),
                _ => "not a module".into(),
            };
            return Exec::failure(msg, Vec::new());
        };
        let check_mode = inh.check_mode.unwrap_or(self.opts.check);
        let resource = match self
            .render_args(task, args, vars, scope)
            .and_then(|rendered| self.resource(task, inh, *module, &rendered, vars, check_mode))
        {
            Ok(r) => r,
            Err(e) => return Exec::failure(e.to_string(), Vec::new()),
        };
        let owns = resource.owns();
        // A drift pass applies only declarative tasks whose policy is `correct`; handlers run
        // as the playbook says (only a correction notifies them).
        let drift_check_only = !check_mode
            && !inh.handler
            && self.opts.drift.as_ref().is_some_and(|d| {
                !resource.supports_check_mode() || drift_report_policy(&inh.tags, vars, d.report)
            });
        let check = match resource.check() {
            Ok(c) => c,
            Err(e) => return Exec::failure(e.0, owns),
        };
        let changes: Vec<String> = check.changes.iter().map(Change::describe).collect();
        let diff = if inh.diff.unwrap_or(self.opts.diff) {
            check.changes.iter().filter_map(unified_diff).collect()
        } else {
            Vec::new()
        };
        let done = match self.converge(resource.as_ref(), check, check_mode || drift_check_only) {
            Ok(done) => done,
            Err(e) => return Exec::failure(e.to_string(), owns),
        };
        let status = if done.outcome.failed.is_some() {
            Status::Failed
        } else if done.skipped {
            Status::Skipped
        } else if done.changed {
            Status::Changed
        } else {
            Status::Ok
        };
        let (changed, failed) = (done.changed, done.outcome.failed.clone());
        Exec {
            status,
            changed,
            failed,
            result: registered_result(done),
            diff,
            changes,
            owns,
            drift_check_only,
            via_ansible: false,
            warnings: Vec::new(),
        }
    }

    /// The task's arguments rendered with its variables.
    pub(super) fn render_args(
        &self,
        task: &Task,
        args: &IndexMap<String, Value>,
        vars: &Value,
        scope: &Scope,
    ) -> Result<IndexMap<String, Value>, PrepareError> {
        let mut rendered = IndexMap::new();
        for (k, v) in args {
            // A templated key (only set_fact's pass the load checks): rendered too.
            let key = if crate::template::Templar::is_template(k) {
                match self.templar.render_value(&Value::from(k.as_str()), vars) {
                    Ok(r) => python_str(&r),
                    Err(e) => {
                        return Err(PrepareError::Argument {
                            location: task.location.clone(),
                            key: k.clone(),
                            detail: scope.take_error().unwrap_or_else(|| e.to_string()),
                        })
                    }
                }
            } else {
                k.clone()
            };
            match self.templar.render_value(v, vars) {
                Ok(r) => {
                    rendered.insert(key, r);
                }
                Err(e) => {
                    let detail = scope.take_error().unwrap_or_else(|| e.to_string());
                    return Err(PrepareError::Argument {
                        location: task.location.clone(),
                        key: k.clone(),
                        detail,
                    });
                }
            }
        }
        Ok(rendered)
    }

    /// The module's resource for the rendered arguments, bound to its spec.
    fn resource(
        &self,
        task: &Task,
        inh: &Inherit,
        module: &dyn Module,
        rendered: &IndexMap<String, Value>,
        vars: &Value,
        check_mode: bool,
    ) -> Result<Box<dyn Resource>, PrepareError> {
        if let Some(resource) = module.prepare_free(rendered) {
            return Ok(resource);
        }
        let search = crate::playbook::search_dirs(
            task.role.as_ref().or(inh.role.as_ref()),
            &task.location.file,
            &self.base,
        );
        let env = match &inh.environment {
            Some(e) => match self.templar.render_value(e, vars) {
                Ok(v) => env_pairs(&v),
                Err(e) => return Err(PrepareError::Environment(e)),
            },
            None => Vec::new(),
        };
        let role = task.role.as_ref().or(inh.role.as_ref());
        let task_dir = RepoPath::new(&task.location.file)
            .map(|p| p.parent())
            .unwrap_or_default();
        let ctx = ModuleContext {
            templar: &self.templar,
            vars,
            source: self.source,
            search: &search,
            role_dir: role.map(|r| &r.path),
            task_dir: &task_dir,
            check_mode,
            diff: self.opts.diff,
            env: &env,
            host: &self.host,
        };
        let bound = module
            .spec()
            .bind(rendered)
            .map_err(|source| PrepareError::Bind {
                action: task.action_name().to_string(),
                source,
            })?;
        Ok(module.prepare(&bound, &ctx)?)
    }

    /// Applies the check's changes, unless there are none or this is check mode (then the
    /// check's outcome is the result).
    fn converge(
        &self,
        resource: &dyn Resource,
        check: Check,
        check_mode: bool,
    ) -> Result<Converged, ConvergeError> {
        if check.changes.is_empty() {
            let changed = check.outcome.changed.unwrap_or(false);
            // A module may skip itself (script's and unarchive's `creates`, as their action
            // plugins do): `Outcome::skipped`, or `skipped: true` in its result.
            let skipped = check.outcome.skipped
                || check
                    .outcome
                    .data
                    .get("skipped")
                    .is_some_and(|v| v.is_true());
            return Ok(Converged {
                outcome: check.outcome,
                changed,
                skipped,
            });
        }
        if check_mode {
            return Ok(if resource.supports_check_mode() {
                let changed = check.outcome.changed.unwrap_or(true);
                Converged {
                    outcome: check.outcome,
                    changed,
                    skipped: false,
                }
            } else {
                Converged {
                    outcome: check.outcome,
                    changed: false,
                    skipped: true,
                }
            });
        }
        if let Some(d) = &self.opts.drift {
            if let Some(refused) = through_symlink(&check.changes, &d.guard) {
                return Err(refused);
            }
        }
        let applied = resource.apply(check);
        // Whatever the task did may have installed packages, unit files or accounts that later
        // tasks ask about: read them again.
        self.host.invalidate_packages();
        self.host.invalidate_units();
        self.host.invalidate_accounts();
        let outcome = applied?;
        // A module that failed changed nothing unless it says otherwise (as fail_json).
        let changed = outcome.changed.unwrap_or(outcome.failed.is_none());
        Ok(Converged {
            outcome,
            changed,
            skipped: false,
        })
    }

    /// In a drift pass, what became of a task that found changes to make.
    /// A handler's change is the playbook's reaction to a correction, not drift itself.
    pub(super) fn drift_of(&self, exec: &Exec, handler: bool) -> Option<Drift> {
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
    pub(super) fn judge(
        &self,
        task: &Task,
        inh: &Inherit,
        mut exec: Exec,
        lv: Option<&RawVars>,
    ) -> Exec {
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
                    exec.failed = Some(e.to_string());
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
                Err(e) => exec.failed = Some(e.to_string()),
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

    /// `set_fact` results become host variables; `include_vars` ones go one level below them;
    /// other modules' facts join the fact cache.
    pub(super) fn absorb_facts(&mut self, task: &Task, result: &IndexMap<String, Value>) {
        if result.get("failed").is_some_and(|f| f.is_true()) {
            return;
        }
        let included = task.action_name() == "include_vars";
        if let Some(facts) = result.get("ansible_facts") {
            if !included && task.action_name() != "set_fact" {
                // A module's facts (`setup`, `getent`, `package_facts`) go to the fact cache,
                // as Ansible's `set_host_facts`: `ansible_facts.X` and `X`, at facts precedence.
                self.cache_facts(facts);
                return;
            }
            if result.get(CACHEABLE).is_some_and(|c| c.is_true()) {
                self.cache_facts(facts);
            }
            if let Ok(keys) = facts.try_iter() {
                for k in keys {
                    if let (Some(name), Ok(v)) = (k.as_str(), facts.get_item(&k)) {
                        let target = if included {
                            &mut self.included_vars
                        } else {
                            &mut self.host_facts
                        };
                        target.insert(name.to_string(), v);
                    }
                }
            }
        }
    }
}

/// The result key by which `set_fact` says its facts are `cacheable` (internal: not kept in a
/// registered result).
pub(super) const CACHEABLE: &str = "_ansible_facts_cacheable";

pub(super) fn env_pairs(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if v.kind() == minijinja::value::ValueKind::Seq {
        // A list of mappings (Ansible's form, and enclosing environments): later ones win.
        for item in v.try_iter().into_iter().flatten() {
            for (k, val) in env_pairs(&item) {
                out.retain(|(o, _)| *o != k);
                out.push((k, val));
            }
        }
        return out;
    }
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
fn through_symlink(changes: &[Change], guard: &[std::path::PathBuf]) -> Option<ConvergeError> {
    for path in changes.iter().filter_map(change_path) {
        for dir in guard {
            if path != dir.as_path()
                && path.starts_with(dir)
                && dir.symlink_metadata().is_ok_and(|m| m.is_symlink())
            {
                let to = std::fs::read_link(dir)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                return Some(ConvergeError::ThroughSymlink {
                    dir: dir.clone(),
                    to,
                    path: path.to_path_buf(),
                });
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

/// The registered result: the module's fields with `changed` and `failed` (and `skipped`).
fn registered_result(done: Converged) -> IndexMap<String, Value> {
    let mut result = done.outcome.data;
    result.insert("changed".into(), Value::from(done.changed));
    if let Some(f) = &done.outcome.failed {
        result.insert("failed".into(), Value::from(true));
        result
            .entry("msg".into())
            .or_insert(Value::from(f.as_str()));
    } else {
        result.insert("failed".into(), Value::from(false));
    }
    if done.skipped {
        result.insert("skipped".into(), Value::from(true));
        result
            .entry("msg".into())
            .or_insert(Value::from("Command would have run if not in check mode"));
    }
    result
}
