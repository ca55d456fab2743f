//! What a converge reports: one entry per task, in the order tasks ran, and the totals.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    Changed,
    Skipped,
    Failed,
    /// Failed, with `ignore_errors`.
    Ignored,
    /// Never reached because an earlier task failed.
    NotRun,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Ignored => "ignored",
            Status::NotRun => "not-run",
        }
    }
}

/// What a drift pass did about a task that no longer matched its desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Drift {
    /// Put back (policy `correct`): a corrective change, not an intended one.
    Corrected,
    /// Only reported (policy `report`): the host was left as it was found.
    Reported,
}

impl Drift {
    pub fn as_str(self) -> &'static str {
        match self {
            Drift::Corrected => "corrected",
            Drift::Reported => "reported",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    /// The loop item (or its `loop_control.label`), hidden under `no_log`.
    pub item: serde_json::Value,
    pub status: Status,
    pub changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub play: String,
    pub name: String,
    pub module: String,
    pub file: String,
    pub line: u32,
    pub handler: bool,
    pub status: Status,
    pub changed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// Unified diffs of file contents (with `--diff`), hidden under `no_log`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
    /// What the task changed or would change, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// A failure that a `rescue` section handled.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rescued: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_log: bool,
    /// Output of `debug` (its `msg` or variable), shown on the terminal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// Set in a drift pass ([`crate::engine::RunOptions::drift`]) on a task that had drifted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// `ansible`: the task ran through the host's ansible-core ([`crate::bridge`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// What the module warned about (ansible-core's modules return warnings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What on the host the task manages (every item of a loop), for the daemon's watch.
    #[serde(skip)]
    pub owns: Vec<crate::resource::Owned>,
}

impl TaskReport {
    /// A task of `play` written at `location`, `Ok` until it is run.
    pub fn new(
        play: &str,
        name: String,
        module: &str,
        location: &crate::error::Location,
    ) -> TaskReport {
        TaskReport {
            play: play.to_string(),
            name,
            module: module.to_string(),
            file: location.file.to_string(),
            line: location.line,
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
            via: None,
            warnings: Vec::new(),
            owns: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stats {
    /// Tasks that succeeded, changed or not (Ansible's count).
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub ignored: usize,
    pub rescued: usize,
    pub not_run: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    /// Nothing needed changing.
    Ok,
    Changed,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub result: RunResult,
    pub check_mode: bool,
    pub tasks: Vec<TaskReport>,
    pub stats: Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A `reboot` task ran (not in check mode): `file:line: task `name``. The agent reboots
    /// after the run only if its configuration allows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reboot_owed: Option<String>,
}

impl RunReport {
    /// The first task that owes a reboot (a `reboot` task that changed), as `file:line: task
    /// `name``; none in check mode.
    pub fn find_reboot_owed(check_mode: bool, tasks: &[TaskReport]) -> Option<String> {
        if check_mode {
            return None;
        }
        tasks
            .iter()
            .find(|t| {
                t.changed
                    && crate::modules::canonical_name(&t.module)
                        == Some(crate::modules::reboot::MODULE_NAME)
            })
            .map(|t| format!("{}:{}: task `{}`", t.file, t.line, t.name))
    }
}

/// Receives task results as they happen (the CLI prints a line per task).
pub trait Reporter {
    fn play_start(&mut self, _name: &str) {}
    fn task_done(&mut self, _task: &TaskReport) {}
    /// A task's `until` did not hold: it runs again (`left` attempts remain).
    fn task_retry(&mut self, _task: &str, _left: i64) {}
}

/// A reporter that says nothing.
pub struct Silent;
impl Reporter for Silent {}
