//! Pull mode, one converge: fetch the host's branch, verify the commit (signature,
//! anti-rollback), load the playbook from the commit's tree, converge, record the state, and
//! write the status back to Git. Nothing of a refused or invalid commit is applied.
//!
//! [`converge_locked`] is the one converge both callers share: `gitops-agent converge` (through
//! [`converge_pull`], which takes the lock and prints) and the daemon (`crate::daemon`, which
//! takes the lock itself, passes its own reporter and a stop flag, and calls it on every poll).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gitops_modules::engine::{DriftOptions, Engine, RunOptions};
use gitops_modules::playbook::Loader;
use gitops_modules::report::{Drift, Reporter, RunReport};
use gitops_modules::template::Templar;
use tracing::{error, info, warn};

use crate::cli::{exit, ConvergeArgs, Format};
use crate::config::{Config, ConfigOverrides, HostIds, HttpCredentials, DEFAULT_CONFIG_PATH};
use crate::converge::{extra_vars, report_invalid, select_playbook};
use crate::git::{FetchOptions, GitRepo, ObjectId};
use crate::output::TextReporter;
use crate::state::{State, StateLock};
use crate::status::{Outcome, StatusDoc, STATUS_FILE};
use crate::trust::{verify, SignedCommit, TrustPolicy};

/// Everything one pull-mode converge needs, resolved from the config and the command line.
pub struct Plan {
    pub config: Config,
    /// Gathered once per converge; identifiers and the status summary come from it.
    facts: gitops_modules::facts::Facts,
    pub ids: HostIds,
    pub host: String,
    url: String,
    branch: String,
    /// Status repository URL and branch, when status commits are enabled.
    pub status: Option<(String, String)>,
    pub fetch: FetchOptions,
}

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
    /// The playbook ran from the local repository because the fetch failed.
    pub offline: bool,
    /// Converging is suspended: why.
    pub suspended: Option<String>,
    /// A status commit waits to be pushed.
    pub status_pending: bool,
    /// Asked to stop before applying: nothing was applied.
    pub stopped: bool,
}

fn overrides(args: &ConvergeArgs) -> Result<ConfigOverrides, String> {
    let mut o = ConfigOverrides::from_pairs(&args.pull.keys.values)?;
    o.playbook(args.playbook.clone());
    o.extra_vars(extra_vars(&args.extra_vars).map_err(|e| format!("{e:#}"))?);
    Ok(o)
}

/// Reads the configuration file (the default one may be missing: bootstrap with `--repo`; a
/// named one may not), lays `overrides` over it and validates it.
pub fn load_config(path: &Path, overrides: ConfigOverrides) -> Result<Config, String> {
    let text = Config::read_text(path).map_err(|e| e.to_string())?;
    config_from_text(path, text.as_deref(), overrides)
}

/// As [`load_config`], from the file's text already read (`None`: no file, the defaults). The
/// daemon reads the file at start and at SIGHUP and hands that text to every run.
pub fn config_from_text(
    path: &Path,
    text: Option<&str>,
    overrides: ConfigOverrides,
) -> Result<Config, String> {
    let mut config = match text {
        Some(text) => Config::from_str(&path.to_string_lossy(), text),
        None => Ok(Config::default()),
    }
    .map_err(|e| e.to_string())?;
    config.apply(overrides);
    config.validate().map_err(|e| {
        let text = e.to_string();
        if config.repo.is_none() {
            format!(
                "{text}\n(give --repo, set `repo` in {}, or converge a local directory with --playbook-dir)",
                path.display()
            )
        } else {
            text
        }
    })?;
    Ok(config)
}

impl Plan {
    /// Resolves a validated configuration for this host (facts are gathered here).
    pub fn new(config: Config, host_name: Option<String>) -> Result<Plan, String> {
        let facts = gitops_modules::facts::Facts::gather();
        let ids = HostIds::from_facts(&facts);
        let host = host_name.unwrap_or_else(|| ids.hostname.clone());
        let url = config
            .repo
            .as_ref()
            .map(|r| r.as_str().to_string())
            .ok_or("no repository configured")?;
        let branch = config.branch_name(&ids);
        let status = match (config.status.enabled, config.status_repo()) {
            (true, Some(r)) => Some((r.as_str().to_string(), config.status_branch_name(&ids))),
            _ => None,
        };
        let http_credentials = match &config.http.credentials_file {
            Some(f) => {
                let c = HttpCredentials::load(f).map_err(|e| e.to_string())?;
                Some((c.username, c.password))
            }
            None => None,
        };
        let fetch = FetchOptions {
            ssh_key: config.ssh_key.clone(),
            known_hosts: config.known_hosts.clone(),
            http_credentials,
            http_ca_file: config.http.ca_file.clone(),
        };
        Ok(Plan {
            config,
            facts,
            ids,
            host,
            url,
            branch,
            status,
            fetch,
        })
    }
}

fn plan(args: &ConvergeArgs) -> Result<Plan, String> {
    let config = load_config(&args.pull.config, overrides(args)?)?;
    Plan::new(config, args.host_name.clone())
}

/// `gitops-agent converge` in pull mode. Returns the exit code.
pub fn converge_pull(args: &ConvergeArgs) -> i32 {
    let plan = match plan(args) {
        Ok(p) => p,
        Err(e) => {
            report_invalid(args.format, &e);
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
    let (code, doc) = converge_commit(
        plan, repo, flags, hooks, &mut state, started, report, &mut out,
    );
    out.code = code;
    if flags.check {
        return out;
    }
    out.result = doc.as_ref().map(|d| d.result);
    if let Some(mut doc) = doc {
        doc.finish(clock.elapsed());
        doc.facts = facts_summary(&plan.facts);
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
        publish_status(plan, repo, &doc, &mut state);
    } else if !out.stopped {
        // Nothing new, nothing to report; a status commit whose push failed earlier goes now.
        (hooks.progress)(Phase::Publishing);
        push_pending(plan, repo, None);
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

/// Fetch, verify, load and run. Returns the exit code and the status document (`None`: nothing
/// new, nothing to report).
#[allow(clippy::too_many_arguments)]
fn converge_commit(
    plan: &Plan,
    repo: &GitRepo,
    flags: &RunFlags,
    hooks: &mut Hooks<'_>,
    state: &mut State,
    started: SystemTime,
    report: &mut Option<RunReport>,
    out: &mut ConvergeOutcome,
) -> (i32, Option<StatusDoc>) {
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
        let policy = match TrustPolicy::load(
            plan.config.signing.allowed_signers.as_deref(),
            &plan.config.signing.openpgp_keys,
            plan.config.signing.require,
        ) {
            Ok(p) => p,
            Err(e) => return refuse(state, Outcome::Refused, format!("signing keys: {e}")),
        };
        let verdict = match repo.commit_signature(tip) {
            Ok((sig, time)) => {
                let (signature, payload) = match &sig {
                    Some((s, p)) => (Some(s.as_slice()), p.as_slice()),
                    None => (None, &[][..]),
                };
                verify(
                    &policy,
                    &SignedCommit {
                        signature,
                        payload,
                        commit_time: time,
                    },
                )
                .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match verdict {
            Ok(v) => info!("commit {}: {v}", &tip_hex[..7]),
            Err(e) => return refuse(state, Outcome::Refused, e),
        }
        if let Some(last) = state.last_applied.clone() {
            if !plan.config.allow_rollback && !out.offline {
                let descends = last
                    .parse::<ObjectId>()
                    .map_err(|e| e.to_string())
                    .and_then(|old| {
                        repo.is_ancestor(&plan.url, &plan.branch, old, tip, &plan.fetch)
                            .map_err(|e| e.to_string())
                    });
                match descends {
                    Ok(true) => {}
                    Ok(false) => {
                        return refuse(
                            state,
                            Outcome::Refused,
                            format!(
                        "does not descend from the last applied commit {} (a force-push back?); \
                             use --allow-rollback or `allow_rollback: true` to apply it",
                        &last[..7.min(last.len())]
                    ),
                        )
                    }
                    Err(e) => return refuse(state, Outcome::Refused, format!("ancestry: {e}")),
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
    let loaded = select_playbook(&source, plan.config.playbook.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|path| {
            Loader::new(&source, &templar)
                .load(&path, host)
                .map_err(|e| e.to_string())
        });
    let playbook = match loaded {
        Ok(p) => p,
        Err(e) => {
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
        inventory_hostname: host.to_string(),
        drift: flags.drift.as_ref().map(|d| DriftOptions {
            report: d.report,
            guard: Arc::new(d.guard.clone()),
        }),
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
        let code = crate::converge::exit_code(&run);
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
    let code = crate::converge::exit_code(&run);
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

/// Commits the status document to the status branch and pushes it. A push that fails is not
/// lost: the commit stays on the local status branch and goes out with the next push.
///
/// A document identical in substance to the last one committed (same result, same tasks; only
/// the time differs) is not committed again until the heartbeat is due.
fn publish_status(plan: &Plan, repo: &GitRepo, doc: &StatusDoc, state: &mut State) {
    let Some((_, branch)) = &plan.status else {
        return;
    };
    let digest = doc.digest();
    let now = unix_now();
    let heartbeat_due = state
        .last_status_at
        .is_none_or(|at| now.saturating_sub(at) >= plan.config.status.heartbeat.as_secs());
    let message = doc.commit_message();
    if state.last_status_digest.as_deref() != Some(digest.as_str()) || heartbeat_due {
        let yaml = doc.to_yaml();
        match repo.record_status(
            branch,
            &[(STATUS_FILE, yaml.as_bytes())],
            &message,
            &plan.ids.hostname,
        ) {
            Ok(_) => {
                state.last_status_digest = Some(digest);
                state.last_status_at = Some(now);
            }
            Err(e) => {
                warn!("status commit: {e}");
                return;
            }
        }
    }
    // Also when nothing new was committed: a status commit whose push failed earlier goes now.
    push_pending(plan, repo, Some(&message));
}

/// Pushes the local status branch if it is ahead of the remote. Returns whether it is in sync.
pub fn push_pending(plan: &Plan, repo: &GitRepo, message: Option<&str>) -> bool {
    let Some((url, branch)) = &plan.status else {
        return true;
    };
    match repo.push_status(url, branch, &plan.fetch) {
        Ok(outcome) => {
            match message {
                Some(m) => info!("status: {m} ({outcome})"),
                None if matches!(outcome, crate::git::PushOutcome::Pushed { .. }) => {
                    info!("status: pushed a pending status ({outcome})")
                }
                None => {}
            }
            true
        }
        Err(e) => {
            warn!("status push to {url} failed, kept for the next run: {e}");
            false
        }
    }
}

fn facts_summary(facts: &gitops_modules::facts::Facts) -> crate::status::FactsSummary {
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
    crate::status::FactsSummary {
        hostname: get("hostname"),
        distribution: get("distribution"),
        distribution_version: get("distribution_version"),
        kernel: get("kernel"),
        architecture: get("architecture"),
    }
}

/// `gitops-agent status`: what the state directory says.
pub fn show_status(args: &crate::cli::StatusArgs) -> i32 {
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
            .map(crate::status::rfc3339)
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
