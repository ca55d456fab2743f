//! `gitops-agent run`: the daemon.
//!
//! `gitops-agent run` execs `gitops-agentd` ([`exec_daemon`]), a small binary that holds only
//! this loop: one current-thread tokio runtime waiting on timers, signals, the drift watch and
//! its workers. Every poll and drift check runs in a `gitops-agent daemon-worker` process of its
//! own ([`worker`], spoken to through [`protocol`]), one at a time, which takes the same lock as
//! a one-shot `gitops-agent converge` and exits when the run ends: what a run touches (Git, TLS,
//! YAML, templates, the modules) and the heap it fragments never stay in the idle daemon.
//!
//! The loop: converge at start; then poll every `interval` + this host's splay
//! ([`schedule::splay_offset`]). A poll that finds nothing new stops after the fetch, unless
//! `enforce` has passed since the playbook last ran: then the applied commit is converged again
//! (also from the local repository when the Git server cannot be reached). A failed fetch is
//! retried sooner, with exponential backoff and jitter up to the interval; the status commits
//! wait in the local repository and go out with the first push that works.
//!
//! Configuration: read at start and at SIGHUP, checked by a worker; the daemon keeps the text
//! of the last good one and hands it to every run (an edit takes effect at SIGHUP, a broken one
//! never). Signals: SIGHUP reloads, SIGUSR1 polls now, SIGTERM/SIGINT stop: the worker in
//! progress is told (SIGTERM) and runs to its end (a stop asked before it starts applying skips
//! the apply), a pending status is pushed if that takes under [`STOP_PUSH_TIMEOUT`], and the
//! process exits 0.
//!
//! systemd: READY=1 after the first converge attempt, a STATUS= line after each poll, and
//! WATCHDOG=1 every WatchdogSec/2 while the loop is alive and a worker in progress moves
//! (a fetch, a step, a task: it says so on its stdout) at least every [`STALL_LIMIT`].
//!
//! Drift (step 6, Watch; `drift: correct|report|off` in the config): after every run of the
//! playbook, what its tasks own ([`gitops_modules::resource::Owned`]) is handed to the
//! [`watch::Watch`] (one inotify instance on the parent directories, and the package
//! databases). A change seen while a worker runs, or just after ([`OWN_SLACK`]) to a path that
//! run changed and that still looks as it did when the run ended (times, size, inode), is the
//! agent's own; any other change starts a drift pass after a [`DEBOUNCE`]:
//! the applied commit runs again from the local repository with only declarative,
//! `correct`-policy tasks applying (see [`gitops_modules::engine::DriftOptions`]); a pass that
//! finds drift writes a status commit saying what was corrected or only reported. When the
//! watch cannot be had (inotify limits) a drift pass runs every [`FALLBACK_EVERY`] instead, and
//! the status says so. Managed systemd units are read every [`units::CHECK_EVERY`] with one
//! `systemctl show` and a unit whose state changed counts as a change like a file's. After a
//! start that found nothing new to apply, a drift pass runs at once to learn what to watch (and
//! to put back what changed while the agent was not running).

mod call;
mod drift;
mod notify;
pub mod protocol;
mod schedule;
pub mod suspend;
mod units;
mod watch;
pub mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::cli::{exit, RunArgs};
use crate::config::ConfigError;
use crate::config::{Config, DriftPolicy};
use crate::run::pull::{ConvergeOutcome, DriftPass};
use crate::status::Outcome;
pub use call::OWN_SLACK;
use call::{call_worker, Shared, WorkerError};
use drift::{guard_dirs, Pending};
pub use drift::{DEBOUNCE, DEBOUNCE_MAX, DRIFT_MIN_GAP};
use notify::status_line;
use protocol::{ConfigSnapshot, Event, Failure, Job, Request, RunJob, RunResult, Settings};

/// A worker that has not moved (no step, no task finished) for this long stops the watchdog
/// pings: systemd then restarts the agent after WatchdogSec.
pub const STALL_LIMIT: Duration = Duration::from_secs(30 * 60);
/// At stop, a pending status is pushed only if that takes no longer than this.
pub const STOP_PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Without a watch (inotify limits), a drift pass runs this often.
pub const FALLBACK_EVERY: Duration = Duration::from_secs(60);
/// Where the packages install gitops-agentd.
pub const LIBEXEC_DIR: &str = "/usr/libexec/gitops-agent";
const DAEMON_BIN: &str = "gitops-agentd";

/// What one poll (or drift pass) came back with.
struct Tick {
    outcome: Result<ConvergeOutcome, WorkerError>,
    took: Duration,
    /// A drift pass, not a poll.
    drift: bool,
    result: RunResult,
}

/// Managed units and their states, read after the last run of the playbook.
type Units = Arc<protocol::UnitStates>;

/// `gitops-agent run`: becomes `gitops-agentd` (exec: the process, and so the unit's main
/// process, stays the same). Returns only when that fails.
pub fn exec_daemon(args: &RunArgs, verbosity: i8) -> i32 {
    use std::os::unix::process::CommandExt;
    let agent = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            error!("cannot tell where this binary is (to run its workers): {e}");
            return exit::FAILED;
        }
    };
    let Some(daemon) = daemon_binary(&agent) else {
        error!(
            "{DAEMON_BIN} not found next to {} nor in {LIBEXEC_DIR}: it is part of the package (reinstall gitops-agent)",
            agent.display()
        );
        return exit::FAILED;
    };
    let mut cmd = std::process::Command::new(&daemon);
    cmd.arg("--agent")
        .arg(&agent)
        .arg("--config")
        .arg(&args.config)
        .arg("--verbosity")
        .arg(verbosity.to_string());
    if let Some(name) = &args.host_name {
        cmd.arg("--host-name").arg(name);
    }
    for (key, value) in &args.keys.values {
        cmd.arg("--set").arg(format!("{key}={value}"));
    }
    let e = cmd.exec();
    error!("cannot start {}: {e}", daemon.display());
    exit::FAILED
}

/// gitops-agentd: next to `agent` (a build tree, or a package that puts both in one place),
/// else in [`LIBEXEC_DIR`].
fn daemon_binary(agent: &Path) -> Option<PathBuf> {
    let beside = agent.parent().map(|d| d.join(DAEMON_BIN));
    beside
        .into_iter()
        .chain(std::iter::once(Path::new(LIBEXEC_DIR).join(DAEMON_BIN)))
        .find(|p| p.is_file())
}

/// What `gitops-agent run` hands gitops-agentd.
#[derive(Debug, Clone)]
pub struct DaemonArgs {
    /// The `gitops-agent` binary that runs the workers.
    pub agent: PathBuf,
    pub config: PathBuf,
    pub host_name: Option<String>,
    /// The configuration flags of `run`: (key, value) pairs laid over the file.
    pub overrides: Vec<(String, String)>,
    /// Passed on to the workers (`-v`/`-q`).
    pub verbosity: i8,
}

/// gitops-agentd's loop. Returns the exit code.
pub fn run(args: &DaemonArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(2)
        .thread_name("gitops-agentd-blocking")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return exit::FAILED;
        }
    };
    let code = runtime.block_on(async {
        let (snapshot, settings) = match load_settings(args).await {
            Ok(s) => s,
            Err(e) => {
                for line in e.to_string().lines() {
                    error!("{line}");
                }
                return e.exit_code();
            }
        };
        Daemon::new(args, snapshot, settings).run().await
    });
    // A status push abandoned at its timeout may still be running: do not wait for it.
    runtime.shutdown_background();
    code
}

/// The configuration could not be had (at start: the daemon exits; at SIGHUP: the old one stays).
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Read(#[from] ConfigError),
    /// The worker found it invalid (one error per line).
    #[error(transparent)]
    Invalid(Failure),
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

impl LoadError {
    /// [`exit::INVALID`] for the configuration, [`exit::FAILED`] when no worker could answer.
    fn exit_code(&self) -> i32 {
        match self {
            LoadError::Read(_) | LoadError::Invalid(_) => exit::INVALID,
            LoadError::Worker(_) => exit::FAILED,
        }
    }
}

/// Reads the configuration file and has a worker check it.
async fn load_settings(args: &DaemonArgs) -> Result<(ConfigSnapshot, Settings), LoadError> {
    let text = Config::read_text(&args.config)?;
    let snapshot = ConfigSnapshot {
        path: args.config.clone(),
        text,
        host_name: args.host_name.clone(),
        overrides: args.overrides.clone(),
    };
    let request = Request::new(snapshot.clone(), Job::Load);
    let shared = Shared::new();
    match call_worker(&args.agent, args.verbosity, &request, &shared).await {
        Ok(Event::Settings(Ok(s))) => Ok((snapshot, s)),
        Ok(Event::Settings(Err(e))) => Err(LoadError::Invalid(e)),
        Ok(other) => Err(WorkerError::Unexpected {
            answer: format!("{other:?}"),
            job: "a configuration check",
        }
        .into()),
        Err(e) => Err(e.into()),
    }
}

struct Daemon {
    args: DaemonArgs,
    /// The configuration in use (see [`protocol::ConfigSnapshot`]) and what the loop needs of it.
    snapshot: ConfigSnapshot,
    settings: Settings,
    shared: Arc<Shared>,
    notifier: notify::Notifier,
    /// Fetches failed in a row.
    failures: u32,
    /// The last outcome, for the status line and the stop.
    last: Option<ConvergeOutcome>,
    ready: bool,
    /// The drift watch (`None` with `drift: off`).
    watch: Option<watch::Watch>,
    /// The watch has been given what a run of the playbook owns.
    watch_set: bool,
    /// See [`guard_dirs`].
    guard: Vec<PathBuf>,
    /// See [`units`].
    units: Option<Units>,
}

impl Daemon {
    fn new(args: &DaemonArgs, snapshot: ConfigSnapshot, settings: Settings) -> Daemon {
        Daemon {
            args: args.clone(),
            snapshot,
            settings,
            shared: Arc::new(Shared::new()),
            notifier: notify::Notifier::from_env(),
            failures: 0,
            last: None,
            ready: false,
            watch: None,
            watch_set: false,
            guard: Vec::new(),
            units: None,
        }
    }

    fn drift_on(&self) -> bool {
        self.settings.drift != DriftPolicy::Off
    }

    fn regular_wait(&self) -> Duration {
        self.settings.interval.as_std() + self.settings.splay
    }

    async fn run(mut self) -> i32 {
        let signals = (|| {
            Ok::<_, std::io::Error>((
                signal(SignalKind::hangup())?,
                signal(SignalKind::user_defined1())?,
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })();
        let (mut hup, mut usr1, mut term, mut int) = match signals {
            Ok(s) => s,
            Err(e) => {
                error!("cannot install signal handlers: {e}");
                return exit::FAILED;
            }
        };
        info!(
            interval = %self.settings.interval,
            splay = ?self.settings.splay,
            enforce = %self.settings.enforce,
            "gitops-agent {} running: converging now, then every {} + {:?} (this host's splay)",
            env!("CARGO_PKG_VERSION"),
            self.settings.interval,
            self.settings.splay
        );
        let watchdog = self.notifier.watchdog_interval();
        let mut watchdog_tick =
            tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        watchdog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stall_reported = false;

        let (drift_tx, mut drift_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, PathBuf)>();
        let units_tx = drift_tx.clone();
        if self.drift_on() {
            self.watch = Some(watch::Watch::start(drift_tx));
        } else {
            drop(drift_tx);
        }
        let mut units_tick = tokio::time::interval(units::CHECK_EVERY);
        units_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Drift: what was seen, since when, when the pass starts.
        let mut pending = Pending::default();
        // Changes seen while a worker ran: drift unless its run changed that path.
        let mut masked: Vec<PathBuf> = Vec::new();
        // What the last worker's run of the playbook changed (its own writes).
        // The paths the last run wrote, with what they looked like when it ended: a change seen
        // just after it (`OWN_SLACK`) is ours only if the path still looks that way (a hand
        // edit in those milliseconds changes its mtime).
        let mut changed_by_us: HashMap<PathBuf, Option<Fingerprint>> = HashMap::new();
        let mut last_drift = tokio::time::Instant::now() - DRIFT_MIN_GAP;
        let mut fallback_at: Option<tokio::time::Instant> = None;

        let mut next_poll = tokio::time::Instant::now();
        let mut poll_started = tokio::time::Instant::now();
        let mut job: Option<JoinHandle<Tick>> = None;
        let mut poll_again = false;
        let mut stopping = false;

        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_poll), if job.is_none() && !stopping => {
                    poll_started = tokio::time::Instant::now();
                    job = Some(self.start_job(None));
                }
                _ = units_tick.tick(), if self.units.is_some() && self.watch.is_some() && self.drift_on() && job.is_none() && !stopping => {
                    let units = self.units.clone().expect("units");
                    let tx = units_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let now = units::snapshot(&units.0);
                        debug!("units now: {now:?}, after the last run: {:?}", units.1);
                        if let Some(now) = now {
                            for line in units::differences(&units.1, &now) {
                                let _ = tx.send((Instant::now(), PathBuf::from(line)));
                            }
                        }
                    });
                }
                Some((at, path)) = drift_rx.recv() => {
                    let now = tokio::time::Instant::now();
                    if !self.drift_on() {
                        // Turned off by a reload: the watch stays, nothing is checked.
                        continue;
                    }
                    if self.shared.own_change(at) {
                        if job.is_some() {
                            masked.push(path);
                            continue;
                        }
                        if changed_by_us
                            .get(&path)
                            .is_some_and(|was| *was == Fingerprint::of(&path))
                        {
                            debug!("change of {} by the agent's own converge: ignored", path.display());
                            continue;
                        }
                    }
                    pending.add(&path, now, last_drift);
                }
                _ = tokio::time::sleep_until(pending.at.unwrap_or(next_poll)), if pending.at.is_some() && job.is_none() && !stopping => {
                    last_drift = tokio::time::Instant::now();
                    let (seen, detected) = pending.take();
                    let pass = DriftPass {
                        report: self.settings.drift == DriftPolicy::Report,
                        seen,
                        detected,
                        guard: self.guard.clone(),
                    };
                    info!("drift watch: {} changed; checking the playbook", pass.seen.join(", "));
                    job = Some(self.start_job(Some(pass)));
                }
                _ = tokio::time::sleep_until(fallback_at.unwrap_or(next_poll)), if fallback_at.is_some() && self.drift_on() && job.is_none() && !stopping => {
                    fallback_at = None;
                    last_drift = tokio::time::Instant::now();
                    let pass = DriftPass {
                        report: self.settings.drift == DriftPolicy::Report,
                        seen: vec!["(periodic check: no watch)".into()],
                        detected: None,
                        guard: self.guard.clone(),
                    };
                    job = Some(self.start_job(Some(pass)));
                }
                done = async { job.as_mut().expect("a job").await }, if job.is_some() => {
                    job = None;
                    let mut tick = match done {
                        Ok(t) => t,
                        Err(e) => Tick { outcome: Err(WorkerError::Task(e)), took: Duration::ZERO, drift: false, result: RunResult::default() },
                    };
                    let was_drift = tick.drift;
                    let owns = tick.result.owns.take();
                    if owns.is_some() {
                        self.units = tick.result.units.take().map(Arc::new);
                    }
                    // Only a run of the playbook writes: after a poll that stopped at the fetch,
                    // every change seen meanwhile is drift.
                    changed_by_us = tick
                        .result
                        .changed
                        .take()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|p| {
                            let f = Fingerprint::of(&p);
                            (p, f)
                        })
                        .collect();
                    let wait = self.after_converge(tick);
                    if stopping {
                        break;
                    }
                    let now = tokio::time::Instant::now();
                    for path in masked.drain(..) {
                        if !changed_by_us.contains_key(&path) {
                            pending.add(&path, now, last_drift);
                        } else {
                            debug!("change of {} by the agent's own converge: ignored", path.display());
                        }
                    }
                    if let Some(w) = self.watch.as_mut() {
                        match owns {
                            Some(owns) => {
                                w.set(&owns);
                                self.guard = guard_dirs(&owns);
                                self.watch_set = true;
                                match &w.fallback {
                                    Some(why) => {
                                        if fallback_at.is_none() {
                                            warn!("drift watch unavailable: {why}; checking every {FALLBACK_EVERY:?} instead");
                                        }
                                        fallback_at = Some(now + FALLBACK_EVERY);
                                    }
                                    None => {
                                        fallback_at = None;
                                        debug!("drift watch: {}", w.describe);
                                    }
                                }
                            }
                            None if !self.watch_set && !was_drift && self.last.as_ref().is_some_and(|o| o.commit_applied.is_some() && o.suspended.is_none()) => {
                                // Nothing new to apply at start: learn what to watch now.
                                pending.at = Some(now);
                                pending.seen.push("(start: checking the applied commit)".into());
                            }
                            None => {
                                if w.fallback.is_some() && fallback_at.is_none() {
                                    fallback_at = Some(now + FALLBACK_EVERY);
                                }
                            }
                        }
                    }
                    // Last, once what the worker handed back is in place.
                    trim_heap();
                    if !was_drift {
                        next_poll = poll_started + wait;
                    }
                    if poll_again {
                        poll_again = false;
                        next_poll = now;
                    }
                    self.report_status(next_poll);
                }
                _ = hup.recv() => {
                    if self.reload().await && job.is_none() && self.failures == 0 {
                        next_poll = poll_started + self.regular_wait();
                        self.report_status(next_poll);
                    }
                }
                _ = usr1.recv() => {
                    info!("SIGUSR1: polling now");
                    if job.is_some() {
                        poll_again = true;
                    } else {
                        next_poll = tokio::time::Instant::now();
                    }
                }
                _ = term.recv() => {
                    if self.begin_stop("SIGTERM", job.is_some()) { break; }
                    stopping = true;
                }
                _ = int.recv() => {
                    if self.begin_stop("SIGINT", job.is_some()) { break; }
                    stopping = true;
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => {
                    let idle = self.shared.idle_for();
                    if job.is_some() && idle > STALL_LIMIT {
                        if !stall_reported {
                            error!("the converge in progress has not moved for {idle:?}: no more watchdog pings, systemd will restart the agent");
                            stall_reported = true;
                        }
                    } else {
                        stall_reported = false;
                        self.notifier.watchdog();
                    }
                }
            }
        }
        self.finish().await
    }

    /// Starts one poll (or drift pass) in a worker.
    fn start_job(&mut self, drift: Option<DriftPass>) -> JoinHandle<Tick> {
        let is_drift = drift.is_some();
        let request = Request::new(
            self.snapshot.clone(),
            Job::Run(RunJob {
                drift,
                watch: self.watch_line(),
                watch_units: self.drift_on(),
            }),
        );
        let agent = self.args.agent.clone();
        let verbosity = self.args.verbosity;
        let shared = self.shared.clone();
        shared.job_started();
        debug!("polling");
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = call_worker(&agent, verbosity, &request, &shared).await;
            let (outcome, result) = match answer {
                Ok(Event::Done(mut r)) => match r.outcome.take() {
                    Some(o) => (o.map_err(WorkerError::from), r),
                    None => (Err(WorkerError::NoOutcome), r),
                },
                Ok(other) => (
                    Err(WorkerError::Unexpected {
                        answer: format!("{other:?}"),
                        job: "a run",
                    }),
                    RunResult::default(),
                ),
                Err(e) => (Err(e), RunResult::default()),
            };
            Tick {
                outcome,
                took: started.elapsed(),
                drift: is_drift,
                result,
            }
        })
    }

    /// How drift is watched, for the status document.
    fn watch_line(&self) -> Option<String> {
        if !self.drift_on() {
            return Some("off (drift: off)".into());
        }
        let policy = self.settings.drift.as_str();
        self.watch.as_ref().map(|w| match &w.fallback {
            Some(why) => format!(
                "periodic: {why}; full check every {}s (drift: {policy})",
                FALLBACK_EVERY.as_secs()
            ),
            None => format!("{} (drift: {policy})", w.describe),
        })
    }

    /// Books the result of a poll; returns the wait until the next one.
    fn after_converge(&mut self, tick: Tick) -> Duration {
        let interval = self.settings.interval.as_std();
        let regular = self.regular_wait();
        if tick.drift {
            match tick.outcome {
                Err(e) => error!("drift check: {e}"),
                Ok(out) => {
                    let result = out.result.map(Outcome::as_str).unwrap_or("nothing drifted");
                    info!(
                        result,
                        took_ms = tick.took.as_millis() as u64,
                        worker_peak_kib = tick.result.peak_rss_kib,
                        "drift check: {result}{}",
                        if out.status_pending {
                            ", status push pending"
                        } else {
                            ""
                        }
                    );
                    let keep = self
                        .last
                        .as_ref()
                        .map(|l| (l.fetch_error.clone(), l.fetch_spurious, l.offline));
                    let mut out = out;
                    if let Some((fetch_error, fetch_spurious, offline)) = keep {
                        out.fetch_error = fetch_error;
                        out.fetch_spurious = fetch_spurious;
                        out.offline = offline;
                    }
                    if out.result.is_some() || self.last.is_none() {
                        self.last = Some(out);
                    }
                }
            }
            return regular;
        }
        let wait = match tick.outcome {
            Err(e) => {
                error!("{e}");
                self.failures += 1;
                schedule::backoff(self.failures, interval, fastrand::u64(..))
            }
            Ok(out) => {
                let short = |c: &Option<String>| {
                    c.as_deref()
                        .map(|c| c[..7.min(c.len())].to_string())
                        .unwrap_or_else(|| "-".into())
                };
                let result = out.result.map(Outcome::as_str).unwrap_or("unchanged");
                info!(
                    commit = %short(&out.commit_applied),
                    result,
                    took_ms = tick.took.as_millis() as u64,
                    worker_peak_kib = tick.result.peak_rss_kib,
                    "poll: {result} (commit {}){}",
                    short(&out.commit_applied),
                    if out.status_pending { ", status push pending" } else { "" }
                );
                let wait = if out.fetch_error.is_some() {
                    self.failures += 1;
                    // Sooner only when it may help (the server unreachable, a broken
                    // connection); credentials or a missing branch wait for someone to act.
                    let (wait, sooner) = if out.fetch_spurious {
                        let wait = schedule::backoff(self.failures, interval, fastrand::u64(..));
                        (wait, "")
                    } else {
                        (regular, " (at the interval: trying sooner would not help)")
                    };
                    warn!(
                        "fetch failed {} time(s) in a row; next try in {:.1}s{sooner}",
                        self.failures,
                        wait.as_secs_f64()
                    );
                    wait
                } else {
                    if self.failures > 0 {
                        info!("the Git server is reachable again");
                    }
                    self.failures = 0;
                    regular
                };
                self.last = Some(out);
                wait
            }
        };
        if !self.ready {
            self.ready = true;
            self.notifier.ready("first converge attempted");
        }
        wait
    }

    /// The STATUS= line systemctl status shows.
    fn report_status(&self, next_poll: tokio::time::Instant) {
        let line = status_line(self.last.as_ref(), self.failures, next_poll);
        debug!("status: {line}");
        self.notifier.status(&line);
    }

    /// SIGHUP: reads the configuration again; keeps the old one when the new one is bad.
    async fn reload(&mut self) -> bool {
        match load_settings(&self.args).await {
            Ok((snapshot, settings)) => {
                info!(
                    interval = %settings.interval,
                    "SIGHUP: configuration {} reloaded (interval {}, splay {:?})",
                    self.args.config.display(),
                    settings.interval,
                    settings.splay
                );
                if settings.state_dir != self.settings.state_dir {
                    warn!(
                        "state_dir changed to {}: used from the next poll",
                        settings.state_dir.display()
                    );
                }
                self.snapshot = snapshot;
                self.settings = settings;
                true
            }
            Err(e) => {
                let e = e.to_string();
                error!(
                    "SIGHUP: configuration {} not reloaded, keeping the one in use: {}",
                    self.args.config.display(),
                    e.lines().collect::<Vec<_>>().join("; ")
                );
                false
            }
        }
    }

    /// SIGTERM/SIGINT: returns true to stop at once (nothing running); else tells the worker.
    fn begin_stop(&self, signal: &str, busy: bool) -> bool {
        if busy {
            info!("{signal}: stopping once the converge in progress has finished");
            self.notifier
                .stopping("stopping: finishing the converge in progress");
            let pid = self.shared.child.load(Ordering::SeqCst);
            if pid != 0 {
                // The worker stops before applying, or finishes what it applies.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            false
        } else {
            info!("{signal}: stopping");
            self.notifier.stopping("stopping");
            true
        }
    }

    /// At stop: push a pending status if that is quick, then exit 0.
    async fn finish(self) -> i32 {
        if self.last.as_ref().is_some_and(|o| o.status_pending) {
            let request = Request::new(self.snapshot.clone(), Job::PushPending);
            let shared = Shared::new();
            let push = call_worker(&self.args.agent, self.args.verbosity, &request, &shared);
            match tokio::time::timeout(STOP_PUSH_TIMEOUT, push).await {
                Ok(Ok(Event::Done(RunResult { pushed: true, .. }))) => {
                    info!("pending status pushed")
                }
                Ok(_) => info!("pending status not pushed: it goes out after the restart"),
                Err(_) => {
                    info!("pending status push takes too long: it goes out after the restart")
                }
            }
        }
        info!("stopped");
        exit::OK
    }
}

/// Gives free heap memory back to the system after each run (issue 5: idle RSS). The run itself
/// was a worker process; what the daemon allocates is the worker's answer (the paths the
/// playbook owns, as JSON and decoded) and the new watch table, and glibc gives back on its own
/// only a large free block at the top of the heap, not free pages between chunks still in use.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; no pointer is invalidated.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// What a path looked like (type and times, size, inode), to tell the agent's own write from a
/// later one; `None` when it is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
    size: u64,
    ino: u64,
    mode: u32,
}

impl Fingerprint {
    fn of(path: &std::path::Path) -> Option<Fingerprint> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(path).ok()?;
        Some(Fingerprint {
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
            size: m.size(),
            ino: m.ino(),
            mode: m.mode(),
        })
    }
}
