//! Pull mode, one converge: fetch the host's branch, verify the commit (signature,
//! anti-rollback), load the playbook from the commit's tree, converge, record the state, and
//! write the status back to Git. Nothing of a refused or invalid commit is applied.
//!
//! [`converge_locked`] is the one converge both callers share: `gitops-agent converge` (through
//! [`converge`], which takes the lock and prints) and the daemon (`crate::daemon`, which
//! takes the lock itself, passes its own reporter and a stop flag, and calls it on every poll).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gitops_modules::engine::{DriftOptions, Engine, RunOptions};
use gitops_modules::report::{Drift, Reporter, RunReport};
use gitops_modules::template::Templar;
use tracing::{error, info, warn};

pub use super::plan::Plan;
use super::playbook::{exit_code, load_playbook};
use super::{plan, publish, verify};
use crate::cli::{exit, ConvergeArgs, Format};
use crate::git::{GitRepo, ObjectId};
use crate::output::{report_invalid, TextReporter};
use crate::state::{unix_now, State, StateLock};
use crate::status::{FactsSummary, Outcome, StatusDoc};

/// How one converge runs: the command line's flags, or the daemon's.
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// Converge even when the branch has no new commit.
    pub force: bool,
    pub check: bool,
    pub diff: bool,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    /// `--format json`: invalid input is also reported as JSON on stdout.
    pub json: bool,
    /// The daemon's `enforce`: re-converge the applied commit when the playbook last ran longer
    /// ago than this, also from the local repository when the fetch fails. `None`: never.
    pub enforce: Option<Duration>,
    /// A drift pass of the daemon: the applied commit runs again from the local repository
    /// (no fetch), only declarative tasks with the policy `correct` apply.
    pub drift: Option<DriftPass>,
    /// How the daemon watches for drift, for the status document.
    pub watch: Option<String>,
}

/// What started a drift pass (the daemon hands it to its worker: see `daemon::protocol`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DriftPass {
    /// The host's policy is `report`.
    pub report: bool,
    /// What the watch saw change.
    pub seen: Vec<String>,
    /// When the first change was seen.
    pub detected: Option<SystemTime>,
    /// Directories not to change anything through if they became symbolic links.
    pub guard: Vec<PathBuf>,
}

impl RunFlags {
    fn from_args(args: &ConvergeArgs) -> RunFlags {
        RunFlags {
            force: args.pull.force,
            check: args.check,
            diff: args.diff,
            tags: args.tags.clone(),
            skip_tags: args.skip_tags.clone(),
            json: args.format == Format::Json,
            enforce: None,
            drift: None,
            watch: None,
        }
    }
}

/// Where a converge is; the daemon's watchdog watches it move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    Fetching,
    Verifying,
    Applying,
    Publishing,
}

/// What the caller lends one converge: where task results go, a flag that asks it to stop
/// before applying anything, and a callback told of each step (and each task) as it happens.
pub struct Hooks<'a> {
    pub reporter: &'a mut dyn Reporter,
    pub stop: Option<&'a AtomicBool>,
    pub progress: &'a (dyn Fn(Phase) + Sync),
}

impl Hooks<'_> {
    fn stopping(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

/// What one converge did, for the caller (exit code, daemon status line, metrics).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ConvergeOutcome {
    /// The exit code `gitops-agent converge` returns for it.
    pub code: i32,
    /// The status document's result; `None` when the branch had nothing new (a plain poll).
    pub result: Option<Outcome>,
    /// The tip of the host branch (or, offline, the commit enforced from the local repository).
    pub commit_seen: Option<String>,
    /// The commit the host is converged to.
    pub commit_applied: Option<String>,
    /// The fetch failed (the Git server is unreachable, ...): why.
    pub fetch_error: Option<String>,
    /// The fetch failed in a way that trying again soon may fix (see
    /// [`crate::git::GitError::is_spurious`]): the daemon retries sooner, with backoff.
    #[serde(default)]
    pub fetch_spurious: bool,
    /// The playbook ran from the local repository because the fetch failed.
    pub offline: bool,
    /// Converging is suspended: why.
    pub suspended: Option<String>,
    /// A status commit waits to be pushed.
    pub status_pending: bool,
    /// Asked to stop before applying: nothing was applied.
    pub stopped: bool,
}

/// `gitops-agent converge` in pull mode. Returns the exit code.
pub fn converge(args: &ConvergeArgs) -> i32 {
    let plan = match plan::from_args(args) {
        Ok(p) => p,
        Err(e) => {
            report_invalid(args.format, &e.to_string());
            return exit::INVALID;
        }
    };
    let state_dir = plan.config.state_dir.clone();
    if let Err(e) = std::fs::create_dir_all(&state_dir) {
        error!("state directory {}: {e}", state_dir.display());
        return exit::FAILED;
    }
    let _lock = match StateLock::try_acquire(&state_dir) {
        Ok(l) => l,
        Err(busy) if !args.pull.no_wait => {
            warn!("{busy}: waiting for it to finish");
            match StateLock::acquire(&state_dir, true) {
                Ok(l) => l,
                Err(e) => {
                    error!("{e}");
                    return exit::FAILED;
                }
            }
        }
        Err(e) => {
            error!("{e}");
            return exit::FAILED;
        }
    };
    let repo = match GitRepo::open_or_init(&state_dir.join("repo.git")) {
        Ok(r) => r,
        Err(e) => {
            error!("{e}");
            return exit::FAILED;
        }
    };
    let mut reporter = TextReporter::new(args.format == Format::Text, args.diff);
    let flags = RunFlags::from_args(args);
    let mut last_report = None;
    let outcome = {
        let mut hooks = Hooks {
            reporter: &mut reporter,
            stop: None,
            progress: &|_| {},
        };
        converge_locked(&plan, &repo, &flags, &mut hooks, &mut last_report)
    };
    if let Some(report) = &last_report {
        match args.format {
            Format::Text => reporter.recap(report),
            Format::Json => match serde_json::to_string_pretty(report) {
                Ok(s) => println!("{s}"),
                Err(e) => error!("cannot write the report: {e}"),
            },
        }
    }
    outcome.code
}

/// One converge, with the lock already held by the caller: load the state, fetch, verify,
/// load, run, record the state, publish the status, write the metrics. `report` receives the
/// engine's report when the playbook ran.
pub fn converge_locked(
    plan: &Plan,
    repo: &GitRepo,
    flags: &RunFlags,
    hooks: &mut Hooks<'_>,
    report: &mut Option<RunReport>,
) -> ConvergeOutcome {
    let state_dir = &plan.config.state_dir;
    let mut out = ConvergeOutcome {
        code: exit::FAILED,
        ..ConvergeOutcome::default()
    };
    let mut state = match State::load(state_dir) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            return out;
        }
    };
    crate::git::install_tls_provider();
    let started = SystemTime::now();
    let clock = Instant::now();
    let run = Converge {
        plan,
        repo,
        flags,
        hooks: &mut *hooks,
        started,
    };
    let (code, doc) = converge_commit(run, &mut state, report, &mut out);
    out.code = code;
    if flags.check {
        return out;
    }
    out.result = doc.as_ref().map(|d| d.result);
    let owed = report.as_ref().and_then(|r| r.reboot_owed.clone());
    let reboot = super::reboot::decide(owed.is_some(), plan.config.reboot, flags.check);
    if doc.is_some() {
        super::reboot::record(&mut state, owed.as_deref());
    }
    if let Some(mut doc) = doc {
        doc.finish(clock.elapsed());
        doc.reboot = super::reboot::status(&state, reboot);
        doc.facts = FactsSummary::from_facts(&plan.facts);
        out.commit_applied = doc.commit_applied.clone();
        state.set_last_converge(started);
        state.last_result = Some(doc.result.as_str().to_string());
        if let Some(r) = report.as_ref() {
            let now = unix_now();
            state.last_run = Some(now);
            state.last_duration_ms = Some(doc.duration_ms);
            state.last_changed = Some(r.stats.changed as u64);
            state.last_failed = Some(r.stats.failed as u64);
            if matches!(doc.result, Outcome::Converged | Outcome::Changed) {
                state.last_success = Some(now);
            }
        }
        (hooks.progress)(Phase::Publishing);
        publish::publish_status(plan, repo, &doc, &mut state);
    } else if !out.stopped {
        // Nothing new, nothing to report; a status commit whose push failed earlier goes now.
        (hooks.progress)(Phase::Publishing);
        publish::push_pending(plan, repo, None);
    }
    if out.commit_applied.is_none() {
        out.commit_applied = state.last_applied.clone();
    }
    if let Some((_, branch)) = &plan.status {
        out.status_pending = repo.status_pending(branch).unwrap_or(false);
    }
    if flags.drift.is_none() {
        state.last_poll = Some(unix_now());
        state.last_fetch_ok = Some(out.fetch_error.is_none());
    }
    if let Err(e) = state.save(state_dir) {
        error!("saving the state: {e}");
    }
    match (reboot, &owed) {
        (super::reboot::RebootAction::Reboot, Some(by)) => {
            info!("rebooting: a reboot is owed by {by} and the configuration allows it");
            if let Err(e) = super::reboot::reboot_now(by) {
                error!("{e}");
            }
        }
        (super::reboot::RebootAction::Owed, Some(by)) => {
            warn!("a reboot is owed by {by}; not rebooting (the configuration says reboot: deny)")
        }
        _ => {}
    }
    if let Some(path) = &plan.config.metrics_file {
        let poll = crate::metrics::Poll {
            at: state.last_poll.unwrap_or_else(unix_now),
            fetch_ok: state.last_fetch_ok.unwrap_or(true),
            status_pending: out.status_pending,
        };
        if let Err(e) = crate::metrics::write(path, &state, &poll) {
            warn!("metrics file {}: {e}", path.display());
        }
    }
    out
}

/// What one converge works with: the plan, the local repository, how it runs, what the caller
/// lent it, and when it started.
struct Converge<'a, 'h> {
    plan: &'a Plan,
    repo: &'a GitRepo,
    flags: &'a RunFlags,
    hooks: &'a mut Hooks<'h>,
    started: SystemTime,
}

/// Fetch, verify, load and run. Returns the exit code and the status document (`None`: nothing
/// new, nothing to report).
fn converge_commit(
    run: Converge<'_, '_>,
    state: &mut State,
    report: &mut Option<RunReport>,
    out: &mut ConvergeOutcome,
) -> (i32, Option<StatusDoc>) {
    let Converge {
        plan,
        repo,
        flags,
        hooks,
        started,
    } = run;
    let host = plan.host.as_str();
    let failed = |outcome: Outcome, msg: String| {
        let mut doc = StatusDoc::new(host, started, outcome);
        doc.error = Some(msg);
        doc
    };
    // Is the applied commit due to be converged again (the daemon's `enforce`)?
    let enforce_due = flags.enforce.is_some_and(|every| {
        state
            .last_run
            .is_none_or(|at| unix_now().saturating_sub(at) >= every.as_secs())
    });
    // A drift pass runs the applied commit again from the local repository.
    let drift_tip = if flags.drift.is_some() {
        let local = state
            .last_applied
            .as_deref()
            .filter(|_| !state.suspended)
            .and_then(|c| c.parse::<ObjectId>().ok())
            .filter(|id| repo.tree_source(*id).is_ok());
        match local {
            Some(id) => Some(id),
            None => return (exit::OK, None),
        }
    } else {
        None
    };
    if drift_tip.is_none() {
        (hooks.progress)(Phase::Fetching);
    }
    let fetched = match drift_tip {
        Some(id) => Ok(id),
        None => repo
            .fetch(&plan.url, &plan.branch, &plan.fetch)
            .map(|f| f.tip),
    };
    let tip = match fetched {
        Ok(tip) => tip,
        Err(e) => {
            out.fetch_error = Some(e.to_string());
            out.fetch_spurious = e.is_spurious();
            // Offline: keep enforcing the applied commit from the local repository.
            let local = state
                .last_applied
                .as_deref()
                .filter(|_| enforce_due && !state.suspended)
                .and_then(|c| c.parse::<ObjectId>().ok())
                .filter(|id| repo.tree_source(*id).is_ok());
            match local {
                Some(id) => {
                    warn!(
                        "{e}; enforcing the applied commit {} from the local repository",
                        &id.to_string()[..7]
                    );
                    out.offline = true;
                    id
                }
                None => {
                    error!("{e}");
                    let mut doc = failed(Outcome::Failed, e.to_string());
                    doc.commit_applied = state.last_applied.clone();
                    return (exit::FAILED, Some(doc));
                }
            }
        }
    };
    let tip_hex = tip.to_string();
    out.commit_seen = Some(tip_hex.clone());
    if !out.offline && flags.drift.is_none() {
        state.last_seen = Some(tip_hex.clone());
    }
    if state.suspended && !flags.check {
        let reason = state
            .suspended_reason
            .clone()
            .unwrap_or_else(|| "no reason given".to_string());
        info!(
            commit = %&tip_hex[..7],
            "suspended ({reason}): nothing applied (`gitops-agent resume` to converge again)"
        );
        out.suspended = Some(reason.clone());
        let mut doc = StatusDoc::new(host, started, Outcome::Suspended);
        doc.suspended = Some(reason);
        doc.commit_seen = Some(tip_hex);
        doc.commit_applied = state.last_applied.clone();
        return (exit::OK, Some(doc));
    }
    // Nothing new since the last converge that went through: a poll that stops here.
    let went_through = matches!(
        state.last_result.as_deref(),
        Some("converged") | Some("changed")
    );
    if !flags.force
        && !flags.check
        && !enforce_due
        && flags.drift.is_none()
        && went_through
        && state.last_applied.as_deref() == Some(tip_hex.as_str())
    {
        info!(
            "nothing new: {} is already applied (--force converges anyway)",
            &tip_hex[..7]
        );
        return (exit::OK, None);
    }
    let refuse = |state: &State, outcome: Outcome, msg: String| {
        error!("commit {}: {msg}", &tip_hex[..7.min(tip_hex.len())]);
        let mut doc = failed(outcome, msg);
        doc.commit_seen = Some(tip_hex.clone());
        doc.commit_applied = state.last_applied.clone();
        if flags.json {
            crate::output::print_json_invalid(doc.error.as_deref().unwrap_or_default());
        }
        (exit::INVALID, Some(doc))
    };

    // Trust: the commit's signature, then its ancestry (a drift pass runs the applied commit,
    // verified when it was applied).
    if flags.drift.is_none() {
        (hooks.progress)(Phase::Verifying);
        match verify::signature(plan, repo, tip) {
            Ok(v) => info!("commit {}: {v}", &tip_hex[..7]),
            Err(e) => return refuse(state, Outcome::Refused, e.to_string()),
        }
        if let Some(last) = state.last_applied.clone() {
            if !plan.config.allow_rollback && !out.offline {
                if let Err(e) = verify::ancestry(plan, repo, tip, &last) {
                    return refuse(state, Outcome::Refused, e.to_string());
                }
            }
        }
    }

    // Load and validate the whole playbook from the commit's tree.
    let source = match repo.tree_source(tip) {
        Ok(s) => s,
        Err(e) => {
            let mut doc = failed(Outcome::Failed, e.to_string());
            doc.commit_seen = Some(tip_hex.clone());
            return (exit::FAILED, Some(doc));
        }
    };
    let templar = Arc::new(Templar::new());
    let loaded = load_playbook(
        &source,
        &templar,
        plan.config.playbook.as_deref(),
        plan.config.inventory.as_deref(),
        plan.inventory_hostname.as_deref(),
        &plan.config.extra_vars,
    );
    let playbook = match loaded {
        Ok(p) => p,
        Err(e) => {
            let e = e.to_string();
            report_invalid(
                if flags.json {
                    Format::Json
                } else {
                    Format::Text
                },
                &e,
            );
            let mut doc = failed(Outcome::Invalid, e);
            doc.commit_seen = Some(tip_hex.clone());
            doc.commit_applied = state.last_good.clone();
            return (exit::INVALID, Some(doc));
        }
    };

    // The last point where a stop request (SIGTERM to the daemon) is honoured: once the
    // playbook runs, it runs to its end.
    if hooks.stopping() {
        info!("stopping: commit {} not applied", &tip_hex[..7]);
        out.stopped = true;
        return (exit::OK, None);
    }
    (hooks.progress)(Phase::Applying);
    let opts = RunOptions {
        check: flags.check,
        diff: flags.diff,
        tags: flags.tags.clone(),
        skip_tags: flags.skip_tags.clone(),
        extra_vars: plan.config.extra_vars.clone(),
        inventory_hostname: playbook.host.name.clone(),
        drift: flags.drift.as_ref().map(|d| DriftOptions {
            report: d.report,
            guard: Arc::new(d.guard.clone()),
        }),
        state_dir: Some(plan.config.state_dir.clone()),
        ansible: plan.config.ansible_bridge(),
    };
    let run = {
        let mut progress = ProgressReporter {
            inner: &mut *hooks.reporter,
            progress: hooks.progress,
        };
        Engine::new(templar, &source, opts, &mut progress).run(&playbook)
    };
    let mut doc = StatusDoc::from_run(host, started, &run);
    doc.watch = flags.watch.clone();
    if let Some(pass) = &flags.drift {
        let count = |d: Drift| run.tasks.iter().filter(|t| t.drift == Some(d)).count();
        let (corrected, reported) = (count(Drift::Corrected), count(Drift::Reported));
        let code = exit_code(&run);
        if corrected + reported == 0 && run.result != gitops_modules::report::RunResult::Failed {
            // Nothing had drifted after all (a change put back by hand, a file touched
            // without a difference): nothing to report.
            info!("drift check: nothing differs");
            *report = Some(run);
            return (code, None);
        }
        state.drift_corrected += corrected as u64;
        state.drift_reported += reported as u64;
        doc.drift = Some(crate::status::DriftSummary {
            detected: crate::status::rfc3339(pass.detected.unwrap_or(started)),
            seen: pass.seen.clone(),
            corrected,
            reported,
        });
    }
    doc.commit_seen = Some(tip_hex.clone());
    if flags.drift.is_some() {
        doc.commit_seen = state.last_seen.clone().or(doc.commit_seen);
    }
    doc.commit_applied = Some(tip_hex.clone());
    if let Some(e) = &out.fetch_error {
        doc.error.get_or_insert_with(|| {
            format!("fetch failed, enforced the applied commit from the local repository: {e}")
        });
    }
    if !flags.check {
        state.last_applied = Some(tip_hex.clone());
        if run.result != gitops_modules::report::RunResult::Failed {
            state.last_good = Some(tip_hex);
        }
    }
    let code = exit_code(&run);
    *report = Some(run);
    (code, Some(doc))
}

/// Passes each task on, and tells the caller that the run moves (the daemon's watchdog).
struct ProgressReporter<'a> {
    inner: &'a mut dyn Reporter,
    progress: &'a (dyn Fn(Phase) + Sync),
}

impl Reporter for ProgressReporter<'_> {
    fn play_start(&mut self, name: &str) {
        (self.progress)(Phase::Applying);
        self.inner.play_start(name);
    }

    fn task_done(&mut self, task: &gitops_modules::report::TaskReport) {
        (self.progress)(Phase::Applying);
        self.inner.task_done(task);
    }
}
