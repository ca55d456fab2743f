//! Task control flow around one module run: `delegate_to` (this host only), `until` with
//! `retries`/`delay` (ansible-core's TaskExecutor attempt loop), and the handler names a
//! task notifies (`notify` on the task or the nearest block, templates rendered).

use minijinja::Value;

use super::{Engine, Exec, Inherit};
use crate::args::python_str;
use crate::playbook::{RawVars, Task};
use crate::report::Status;
use crate::vars::Scope;

/// Names under which Ansible's implicit localhost is known.
const LOCALHOST_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Why a task's control keywords stop it when it runs.
#[derive(Debug, thiserror::Error)]
pub(super) enum FlowError {
    #[error("{location}: `{key}`: {detail}")]
    Keyword {
        location: crate::error::Location,
        key: &'static str,
        detail: String,
    },
    #[error(
        "{location}: `delegate_to: {host}`: the agent runs tasks on this host only (localhost, \
         127.0.0.1, {me} or this machine's name); delegating to another host is not supported"
    )]
    OtherHost {
        location: crate::error::Location,
        host: String,
        me: String,
    },
    #[error(
        "{location}: `delegate_facts` with `delegate_to: {host}`: the facts would belong to \
         another host than {me}, which this run does not have"
    )]
    FactsElsewhere {
        location: crate::error::Location,
        host: String,
        me: String,
    },
}

impl Engine<'_> {
    /// The module run of a task (or loop item) whose `when` held: the delegation check, then
    /// attempts until `until` holds (Ansible: `retries` more attempts, 3 by default when
    /// `until` is given; without `until`, retried while it fails).
    pub(super) fn run_module(
        &mut self,
        task: &Task,
        inh: &Inherit,
        vars: &Value,
        scope: &Scope,
        lv: Option<&RawVars>,
    ) -> Exec {
        if let Err(e) = self.check_delegation(task, inh, vars, scope) {
            return Exec::failure(e.to_string(), Vec::new());
        }
        let retries = match self.retries(task, vars, scope) {
            Ok(r) => r,
            Err(e) => return Exec::failure(e.to_string(), Vec::new()),
        };
        let delay = match self.delay(task, vars, scope) {
            Ok(d) => d,
            Err(e) => return Exec::failure(e.to_string(), Vec::new()),
        };
        let mut attempt = 1;
        loop {
            let mut exec = self.execute(task, inh, vars, scope);
            if retries > 1 {
                // Visible to changed_when/failed_when, as Ansible sets it before them.
                exec.result.insert("attempts".into(), Value::from(attempt));
            }
            let exec = self.judge(task, inh, exec, lv);
            if retries <= 1 {
                return exec;
            }
            match self.until_met(task, inh, &exec, lv) {
                Ok(true) => return exec,
                Ok(false) => {}
                Err(e) => {
                    let mut exec = exec;
                    exec.status = Status::Failed;
                    exec.failed = Some(e.to_string());
                    exec.result.insert("failed".into(), Value::from(true));
                    return exec;
                }
            }
            if attempt >= retries {
                // Out of attempts: Ansible reports one less than it made, and fails.
                let mut exec = exec;
                exec.result
                    .insert("attempts".into(), Value::from(retries - 1));
                exec.result.insert("failed".into(), Value::from(true));
                if exec.failed.is_none() {
                    exec.failed = Some(
                        exec.result
                            .get("msg")
                            .map(python_str)
                            .filter(|m| !m.is_empty())
                            .unwrap_or_else(|| "retries exhausted, `until` not met".into()),
                    );
                }
                exec.status = Status::Failed;
                return exec;
            }
            self.reporter
                .task_retry(&task.display_name(), retries - attempt);
            if delay > 0.0 {
                std::thread::sleep(std::time::Duration::from_secs_f64(delay));
            }
            attempt += 1;
        }
    }

    /// Attempts in all: 1 + `retries` (3 when only `until` is given), at least 1.
    fn retries(&self, task: &Task, vars: &Value, scope: &Scope) -> Result<i64, FlowError> {
        match &task.retries {
            Some(r) => {
                let v = self.keyword_value(task, "retries", r, vars, scope)?;
                let n = python_str(&v)
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| FlowError::Keyword {
                        location: task.location.clone(),
                        key: "retries",
                        detail: format!("`{v}` is not an integer"),
                    })? as i64;
                Ok(1 + n.max(0))
            }
            None if task.until.as_ref().is_some_and(|u| !u.is_empty()) => Ok(4),
            None => Ok(1),
        }
    }

    /// Seconds between attempts: `delay` (5 by default; a negative one is 1).
    fn delay(&self, task: &Task, vars: &Value, scope: &Scope) -> Result<f64, FlowError> {
        let Some(d) = &task.delay else {
            return Ok(5.0);
        };
        let v = self.keyword_value(task, "delay", d, vars, scope)?;
        let d = python_str(&v)
            .trim()
            .parse::<f64>()
            .map_err(|_| FlowError::Keyword {
                location: task.location.clone(),
                key: "delay",
                detail: format!("`{v}` is not a number"),
            })?;
        Ok(if d < 0.0 { 1.0 } else { d })
    }

    fn keyword_value(
        &self,
        task: &Task,
        key: &'static str,
        raw: &Value,
        vars: &Value,
        scope: &Scope,
    ) -> Result<Value, FlowError> {
        self.templar
            .render_value(raw, vars)
            .map_err(|e| FlowError::Keyword {
                location: task.location.clone(),
                key,
                detail: scope.take_error().unwrap_or_else(|| e.to_string()),
            })
    }

    /// `until` (or, without it, "did not fail") on this attempt's result, seen under the
    /// register name.
    fn until_met(
        &self,
        task: &Task,
        inh: &Inherit,
        exec: &Exec,
        lv: Option<&RawVars>,
    ) -> Result<bool, super::scope::EvalError> {
        let Some(until) = task.until.as_ref().filter(|u| !u.is_empty()) else {
            return Ok(exec.status != Status::Failed);
        };
        let mut extra = lv.cloned().unwrap_or_default();
        if let Some(r) = &task.register {
            extra.insert(r.clone(), crate::vars::map_value(exec.result.clone()));
        }
        let (vars, scope) = self.scope(Some(task), inh, Some(&extra));
        self.conditions(until, &vars, &scope)
    }

    /// `delegate_to`: only this host (its inventory name, localhost, this machine's name).
    fn check_delegation(
        &self,
        task: &Task,
        inh: &Inherit,
        vars: &Value,
        scope: &Scope,
    ) -> Result<(), FlowError> {
        let Some(raw) = &inh.delegate_to else {
            return Ok(());
        };
        let host = python_str(&self.keyword_value(task, "delegate_to", raw, vars, scope)?);
        let host = host.trim().to_string();
        let me = self.opts.inventory_hostname.clone();
        let machine = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let is_local = |h: &str| LOCALHOST_NAMES.contains(&h);
        let here = is_local(&host)
            || host == me
            || (!machine.is_empty()
                && (host == machine || host.split('.').next() == Some(machine.as_str())));
        if !here {
            return Err(FlowError::OtherHost {
                location: task.location.clone(),
                host,
                me,
            });
        }
        let facts_elsewhere = match &inh.delegate_facts {
            Some(df) => {
                let v = self.keyword_value(task, "delegate_facts", df, vars, scope)?;
                crate::args::to_bool(&v).unwrap_or(false)
            }
            None => false,
        };
        if facts_elsewhere && host != me && !(is_local(&host) && is_local(&me)) {
            return Err(FlowError::FactsElsewhere {
                location: task.location.clone(),
                host,
                me,
            });
        }
        Ok(())
    }

    /// The handler names a task (or loop item) notifies: its `notify` or its nearest block's,
    /// each rendered with its variables.
    pub(super) fn notify_names(
        &self,
        task: &Task,
        inh: &Inherit,
        lv: Option<&RawVars>,
    ) -> Result<Vec<String>, FlowError> {
        let Some(names) = inh.notify.as_ref().filter(|n| !n.is_empty()) else {
            return Ok(Vec::new());
        };
        if !names
            .iter()
            .any(|n| crate::template::Templar::is_template(n))
        {
            return Ok(names.clone());
        }
        let (vars, scope) = self.scope(Some(task), inh, lv);
        names
            .iter()
            .map(|n| {
                self.keyword_value(task, "notify", &Value::from(n.as_str()), &vars, &scope)
                    .map(|v| python_str(&v))
            })
            .collect()
    }
}
