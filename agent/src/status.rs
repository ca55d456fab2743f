//! The status document: what a converge found, written as YAML into the host's status branch;
//! and `gitops-agent status` ([`show`]), what the state directory says.
//!
//! Schema `gitops-agent/status/v1` (documented in `docs/status.md`). `no_log` tasks never leak
//! values into it: their messages, items and diffs are left out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::path::Path;

use gitops_modules::report::{Drift, RunReport, RunResult, Status, TaskReport};
use serde::{Deserialize, Serialize};

use crate::cli::{exit, StatusArgs};
use crate::config::{Config, HostIds, DEFAULT_CONFIG_PATH};
use crate::git::GitRepo;
use crate::state::State;

pub const SCHEMA: &str = "gitops-agent/status/v1";

/// The file the document is stored as in the status branch.
pub const STATUS_FILE: &str = "status.yml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Nothing needed changing.
    Converged,
    /// The host was changed to match.
    Changed,
    /// A task failed.
    Failed,
    /// The commit was not trusted (signature, rollback): nothing applied.
    Refused,
    /// The commit's playbook is invalid: nothing applied, the last good commit stays.
    Invalid,
    /// Converging is suspended (`gitops-agent suspend`): polled, nothing applied.
    Suspended,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Converged => "converged",
            Outcome::Changed => "changed",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
            Outcome::Invalid => "invalid",
            Outcome::Suspended => "suspended",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskStatus {
    pub name: String,
    pub module: String,
    /// `file:line` in the host branch.
    pub at: String,
    pub status: Status,
    pub changed: bool,
    /// Set by the daemon's drift pass when the task had drifted (a change no commit made):
    /// its `changed` is then a correction, not an intended change.
    pub drift: bool,
    /// When `drift`: `corrected` (put back) or `reported` (left as found).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_action: Option<Drift>,
    /// When `drift`: what differed, one line each (as `--check` lists it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// `ansible`: the task ran through the host's ansible-core (`ansible_modules: auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// What the daemon's drift pass found; present only in the document of a drift pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DriftSummary {
    /// When the change was seen (RFC 3339, UTC).
    pub detected: String,
    /// What the watch saw change (paths, package databases), at most a few.
    pub seen: Vec<String>,
    /// Drifted tasks put back / only reported.
    pub corrected: usize,
    pub reported: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FactsSummary {
    pub hostname: String,
    pub distribution: String,
    pub distribution_version: String,
    pub kernel: String,
    pub architecture: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusDoc {
    pub schema: &'static str,
    pub host: String,
    pub agent_version: &'static str,
    /// The tip of the host branch this run saw.
    pub commit_seen: Option<String>,
    /// The commit the host is now converged to (the last good one when this one was refused
    /// or invalid).
    pub commit_applied: Option<String>,
    pub result: Outcome,
    /// RFC 3339, UTC.
    pub started: String,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why converging is suspended, when `result: suspended`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<gitops_modules::report::Stats>,
    /// Set when a drift pass (not a new commit or `enforce`) made this document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftSummary>,
    /// How the daemon watches for drift (`inotify: ...`, or the periodic fallback and why);
    /// absent for a one-shot converge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<String>,
    /// A reboot owed by a `reboot` task (this run's or an earlier one's, until the host boots
    /// again), and what the agent does about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reboot: Option<crate::run::reboot::RebootStatus>,
    pub tasks: Vec<TaskStatus>,
    pub facts: FactsSummary,
}

impl StatusDoc {
    pub fn new(host: &str, started: SystemTime, outcome: Outcome) -> StatusDoc {
        StatusDoc {
            schema: SCHEMA,
            host: host.to_string(),
            agent_version: env!("CARGO_PKG_VERSION"),
            commit_seen: None,
            commit_applied: None,
            result: outcome,
            started: rfc3339(started),
            duration_ms: 0,
            error: None,
            suspended: None,
            stats: None,
            drift: None,
            watch: None,
            reboot: None,
            tasks: Vec::new(),
            facts: FactsSummary::default(),
        }
    }

    /// The document of a converge that ran.
    pub fn from_run(host: &str, started: SystemTime, report: &RunReport) -> StatusDoc {
        let outcome = match report.result {
            RunResult::Ok => Outcome::Converged,
            RunResult::Changed => Outcome::Changed,
            RunResult::Failed => Outcome::Failed,
        };
        let mut doc = StatusDoc::new(host, started, outcome);
        doc.stats = Some(report.stats);
        doc.tasks = report.tasks.iter().map(task_status).collect();
        doc.error = report
            .tasks
            .iter()
            .find(|t| t.status == Status::Failed && !t.rescued)
            .map(|t| {
                let msg = if t.no_log {
                    "(hidden: no_log)".to_string()
                } else {
                    t.msg.clone().unwrap_or_default()
                };
                format!("{}:{}: task `{}` failed: {msg}", t.file, t.line, t.name)
            });
        doc
    }

    pub fn finish(&mut self, elapsed: Duration) {
        self.duration_ms = elapsed.as_millis() as u64;
    }

    pub fn to_yaml(&self) -> String {
        let value = minijinja::Value::from(minijinja::value::Serde(self));
        gitops_modules::template::to_yaml_document(&value)
            .unwrap_or_else(|e| format!("# could not write the status as YAML: {e}\n"))
    }

    /// A digest of the document's substance: everything but the start time and the duration,
    /// so that an identical converge does not make a new status commit.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut same = self.clone();
        same.started = String::new();
        same.duration_ms = 0;
        // The same drift again (something that keeps rewriting a managed file) is not a new
        // commit each time: the metrics count it, the status says it once per heartbeat.
        if let Some(d) = same.drift.as_mut() {
            d.detected = String::new();
        }
        let hash = Sha256::digest(same.to_yaml().as_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// One line a human reads in `git log`: `web-01: changed a1b2c3d (3 changed)`.
    pub fn commit_message(&self) -> String {
        let short = |c: &Option<String>| {
            c.as_deref()
                .map(|c| c.chars().take(7).collect::<String>())
                .unwrap_or_else(|| "-".into())
        };
        let detail = match (self.result, &self.stats) {
            (Outcome::Refused | Outcome::Invalid, _) => self
                .error
                .as_deref()
                .map(|e| format!(" ({})", first_line(e, 72)))
                .unwrap_or_default(),
            (Outcome::Suspended, _) => self
                .suspended
                .as_deref()
                .map(|r| format!(" ({})", first_line(r, 72)))
                .unwrap_or_default(),
            (_, Some(s)) if s.failed > 0 => {
                format!(" ({} failed, {} changed)", s.failed, s.changed)
            }
            (_, Some(s)) => format!(" ({} changed)", s.changed),
            // A run that failed before the playbook (fetch, reading the commit): say why.
            (_, None) => self
                .error
                .as_deref()
                .map(|e| format!(" ({})", first_line(e, 72)))
                .unwrap_or_default(),
        };
        let commit = match self.result {
            Outcome::Refused | Outcome::Invalid => short(&self.commit_seen),
            _ => short(&self.commit_applied),
        };
        if let Some(d) = &self.drift {
            let what = match (d.corrected, d.reported) {
                (_, 0) => "corrected",
                (0, _) => "reported",
                _ => "corrected and reported",
            };
            let failed = match &self.stats {
                Some(s) if s.failed > 0 => format!(", {} failed", s.failed),
                _ => String::new(),
            };
            return format!(
                "{}: drift {what} {commit} ({} corrected, {} reported{failed})",
                self.host, d.corrected, d.reported
            );
        }
        format!("{}: {} {commit}{detail}", self.host, self.result.as_str())
    }
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

fn task_status(t: &TaskReport) -> TaskStatus {
    TaskStatus {
        name: t.name.clone(),
        module: t.module.clone(),
        at: format!("{}:{}", t.file, t.line),
        status: t.status,
        changed: t.changed,
        drift: t.drift.is_some(),
        drift_action: t.drift,
        differed: if t.drift.is_some() && !t.no_log {
            t.changes.clone()
        } else {
            Vec::new()
        },
        msg: if t.no_log { None } else { t.msg.clone() },
        via: t.via.clone(),
    }
}

impl FactsSummary {
    /// What the status says of the host, from its facts.
    pub fn from_facts(facts: &gitops_modules::facts::Facts) -> FactsSummary {
        let get = |k: &str| {
            facts
                .map
                .get(k)
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_default()
        };
        FactsSummary {
            hostname: get("hostname"),
            distribution: get("distribution"),
            distribution_version: get("distribution_version"),
            kernel: get("kernel"),
            architecture: get("architecture"),
        }
    }
}

/// `gitops-agent status`: what the state directory says.
pub fn show(args: &StatusArgs) -> i32 {
    let config = if args.config == Path::new(DEFAULT_CONFIG_PATH) {
        Config::load_or_default(&args.config)
    } else {
        Config::load(&args.config)
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    let dir = args.state_dir.clone().unwrap_or(config.state_dir.clone());
    let state = match State::load(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    let show = |c: &Option<String>| c.clone().unwrap_or_else(|| "-".to_string());
    println!("state dir:      {}", dir.display());
    println!("last applied:   {}", show(&state.last_applied));
    println!("last good:      {}", show(&state.last_good));
    println!("last seen:      {}", show(&state.last_seen));
    println!("last result:    {}", show(&state.last_result));
    println!(
        "last converge:  {}",
        state
            .last_converge_time()
            .map(rfc3339)
            .unwrap_or_else(|| "-".into())
    );
    let branch = config.status_branch_name(&HostIds::gather());
    let pending = GitRepo::open_or_init(&dir.join("repo.git"))
        .and_then(|r| r.status_pending(&branch))
        .map(|p| if p { "yes" } else { "no" }.to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    println!("status pending: {pending} (branch {branch})");
    if state.suspended {
        println!(
            "suspended:      {}",
            state.suspended_reason.as_deref().unwrap_or("yes")
        );
    }
    exit::OK
}

/// RFC 3339 in UTC with seconds (`2026-11-24T07:58:46Z`); a time before 1970 as 1970.
pub fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t.max(UNIX_EPOCH))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_modules::report::Stats;

    fn task(name: &str, status: Status, no_log: bool, msg: Option<&str>) -> TaskReport {
        TaskReport {
            play: "p".into(),
            name: name.into(),
            module: "copy".into(),
            file: "local.yml".into(),
            line: 7,
            handler: false,
            status,
            changed: status == Status::Changed,
            items: Vec::new(),
            msg: msg.map(str::to_string),
            diff: Vec::new(),
            changes: Vec::new(),
            rescued: false,
            no_log,
            output: None,
            drift: None,
            via: None,
            warnings: Vec::new(),
            owns: Vec::new(),
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_507_200 + 3 * 3600 + 62);
        assert_eq!(rfc3339(t), "2026-11-24T11:01:02Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn document_and_message_from_a_run() {
        let report = RunReport {
            result: RunResult::Failed,
            check_mode: false,
            reboot_owed: None,
            tasks: vec![
                task("write config", Status::Changed, false, None),
                task("secret", Status::Failed, true, Some("password=hunter2")),
            ],
            stats: Stats {
                ok: 1,
                changed: 1,
                failed: 1,
                ..Stats::default()
            },
            error: None,
        };
        let mut doc = StatusDoc::from_run("web-01", UNIX_EPOCH, &report);
        doc.commit_applied = Some("a1b2c3d4e5f6".into());
        doc.finish(Duration::from_millis(42));
        let yaml = doc.to_yaml();
        assert!(yaml.contains("schema: gitops-agent/status/v1"), "{yaml}");
        assert!(yaml.contains("result: failed"), "{yaml}");
        assert!(yaml.contains("duration_ms: 42"), "{yaml}");
        assert!(!yaml.contains("hunter2"), "no_log leaked: {yaml}");
        assert_eq!(
            doc.commit_message(),
            "web-01: failed a1b2c3d (1 failed, 1 changed)"
        );
    }

    #[test]
    fn digest_ignores_timestamps_only() {
        let mut a = StatusDoc::new("web-01", UNIX_EPOCH, Outcome::Converged);
        let mut b = StatusDoc::new(
            "web-01",
            UNIX_EPOCH + Duration::from_secs(60),
            Outcome::Converged,
        );
        a.finish(Duration::from_millis(5));
        b.finish(Duration::from_millis(9));
        assert_eq!(a.digest(), b.digest());
        b.result = Outcome::Changed;
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn refused_message_names_the_reason() {
        let mut doc = StatusDoc::new("web-01", UNIX_EPOCH, Outcome::Refused);
        doc.commit_seen = Some("ffffeeee".into());
        doc.error = Some("commit is not signed".into());
        assert_eq!(
            doc.commit_message(),
            "web-01: refused ffffeee (commit is not signed)"
        );
    }
}
