//! `gitops-agent run`: the daemon.
//!
//! One small current-thread tokio runtime waits on timers and signals; every converge runs on a
//! blocking worker thread (`spawn_blocking`), one at a time, holding the same lock as a one-shot
//! `gitops-agent converge` only while it converges.
//!
//! The loop: converge at start; then poll every `interval` + this host's splay
//! ([`schedule::splay_offset`]). A poll that finds nothing new stops after the fetch, unless
//! `enforce` has passed since the playbook last ran: then the applied commit is converged again
//! (also from the local repository when the Git server cannot be reached). A failed fetch is
//! retried sooner, with exponential backoff and jitter up to the interval; the status commits
//! wait in the local repository and go out with the first push that works.
//!
//! Signals: SIGHUP reloads the configuration (a bad one is logged and the old one kept),
//! SIGUSR1 polls now, SIGTERM/SIGINT stop: a converge in progress runs to its end (a stop asked
//! before it starts applying skips the apply), a pending status is pushed if that takes under
//! [`STOP_PUSH_TIMEOUT`], and the process exits 0.
//!
//! systemd: READY=1 after the first converge attempt, a STATUS= line after each poll, and
//! WATCHDOG=1 every WatchdogSec/2 while the loop is alive and a converge in progress moves
//! (a fetch, a step, a task) at least every [`STALL_LIMIT`].
//!
//! Drift (step 6, Watch; `drift: correct|report|off` in the config): after every run of the
//! playbook, what its tasks own ([`gitops_modules::resource::Owned`]) is handed to the
//! [`watch::Watch`] (one inotify instance on the parent directories, and the package
//! databases). A change it reports, unless a converge of the agent's own is running or has
//! just ended ([`OWN_SLACK`]), starts a drift pass after a [`DEBOUNCE`]: the applied commit
//! runs again from the local repository with only declarative, `correct`-policy tasks applying
//! (see [`gitops_modules::engine::DriftOptions`]); a pass that finds drift writes a status
//! commit saying what was corrected or only reported. When the watch cannot be had (inotify
//! limits) a drift pass runs every [`FALLBACK_EVERY`] instead, and the status says so. Managed
//! systemd units are read every [`units::CHECK_EVERY`] with one `systemctl show` and a unit
//! whose state changed counts as a change like a file's. After a
//! start that found nothing new to apply, a drift pass runs at once to learn what to watch (and
//! to put back what changed while the agent was not running).

mod notify;
mod schedule;
pub mod suspend;
mod units;
mod watch;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gitops_modules::report::{Reporter, Status, TaskReport};
use gitops_modules::resource::Owned;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::cli::{exit, RunArgs};
use crate::config::{Config, ConfigOverrides, DriftPolicy, HostIds};
use crate::git::GitRepo;
use crate::pull::{
    converge_locked, load_config, push_pending, ConvergeOutcome, DriftPass, Hooks, Phase, Plan,
    RunFlags,
};
use crate::state::{LockError, StateLock};
use crate::status::Outcome;

/// A converge in progress that has not moved (no step, no task finished) for this long stops
/// the watchdog pings: systemd then restarts the agent after WatchdogSec.
pub const STALL_LIMIT: Duration = Duration::from_secs(30 * 60);
/// At stop, a pending status is pushed only if that takes no longer than this.
pub const STOP_PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// A drift pass starts this long after the last change seen (edits come in bursts) ...
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// ... but no later than this after the first.
pub const DEBOUNCE_MAX: Duration = Duration::from_secs(1);
/// Changes seen while the agent applies the playbook, or this little after, are its own (one
/// misjudged is harmless: the drift pass it starts finds nothing to change).
pub const OWN_SLACK: Duration = Duration::from_millis(20);
/// Drift passes start at least this far apart (something rewriting a managed file in a loop
/// does not keep the agent busy).
pub const DRIFT_MIN_GAP: Duration = Duration::from_secs(1);
/// Without a watch (inotify limits), a drift pass runs this often.
pub const FALLBACK_EVERY: Duration = Duration::from_secs(60);
/// At most this many changed paths are named in a drift status.
const SEEN_MAX: usize = 10;

/// What the loop and the worker thread share.
struct Shared {
    /// Asked to stop (SIGTERM/SIGINT): the worker does not start applying.
    stop: AtomicBool,
    /// When the worker last moved, in milliseconds since `epoch`.
    moved_ms: AtomicU64,
    /// When the last run of the playbook started and ended applying (`u64::MAX`: still
    /// applying), in milliseconds since `epoch`: changes seen then are the agent's own.
    apply_from_ms: AtomicU64,
    apply_to_ms: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn touch(&self) {
        self.moved_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The worker moved to `phase`: books when applying starts and ends.
    fn phase(&self, phase: Phase) {
        self.touch();
        let applying = self.apply_to_ms.load(Ordering::SeqCst) == u64::MAX;
        match phase {
            Phase::Applying if !applying => {
                self.apply_from_ms.store(self.now_ms(), Ordering::SeqCst);
                self.apply_to_ms.store(u64::MAX, Ordering::SeqCst);
            }
            Phase::Applying => {}
            _ => self.applied(),
        }
    }

    fn applied(&self) {
        if self.apply_to_ms.load(Ordering::SeqCst) == u64::MAX {
            self.apply_to_ms.store(self.now_ms(), Ordering::SeqCst);
        }
    }

    /// Was a change seen at `at` made by the agent's own run of the playbook?
    fn own_change(&self, at: Instant) -> bool {
        let t = at.saturating_duration_since(self.epoch).as_millis() as u64;
        let from = self.apply_from_ms.load(Ordering::SeqCst);
        let to = self.apply_to_ms.load(Ordering::SeqCst);
        from > 0 && t >= from && t <= to.saturating_add(OWN_SLACK.as_millis() as u64)
    }

    fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.moved_ms.load(Ordering::SeqCst)))
    }
}

/// What one poll on the worker thread came back with.
struct Tick {
    outcome: Result<ConvergeOutcome, String>,
    took: Duration,
    /// A drift pass, not a poll.
    drift: bool,
    /// What the playbook's tasks own, when it ran.
    owns: Option<Vec<Owned>>,
    /// The paths of the tasks that changed something, when it ran.
    changed: Option<Vec<PathBuf>>,
    /// The managed units and their states after the run.
    units: Option<Units>,
}

/// What a tick hands back besides its outcome.
#[derive(Default)]
struct TickOut {
    /// In: read the managed units' states after the run.
    watch_units: bool,
    owns: Option<Vec<Owned>>,
    changed: Option<Vec<PathBuf>>,
    units: Option<Units>,
}

/// Managed units and their states, read after the last run of the playbook.
type Units = Arc<(Vec<String>, Vec<units::UnitKey>)>;

/// Changes seen and not yet checked.
#[derive(Default)]
struct Pending {
    seen: Vec<String>,
    first_seen: Option<SystemTime>,
    first_at: Option<tokio::time::Instant>,
    /// When the drift pass starts.
    at: Option<tokio::time::Instant>,
}

impl Pending {
    fn add(&mut self, path: &Path, now: tokio::time::Instant, last_drift: tokio::time::Instant) {
        debug!("drift watch: {} changed", path.display());
        let path = path.display().to_string();
        if self.seen.len() < SEEN_MAX && !self.seen.contains(&path) {
            self.seen.push(path);
        }
        self.first_seen.get_or_insert_with(SystemTime::now);
        let first = *self.first_at.get_or_insert(now);
        self.at = Some(
            (now + DEBOUNCE)
                .min(first + DEBOUNCE_MAX)
                .max(last_drift + DRIFT_MIN_GAP),
        );
    }

    fn take(&mut self) -> (Vec<String>, Option<SystemTime>) {
        self.at = None;
        self.first_at = None;
        (std::mem::take(&mut self.seen), self.first_seen.take())
    }
}

/// Every real directory above a managed path: a drift pass changes nothing through one of
/// them that has become a symbolic link since.
fn guard_dirs(owns: &[Owned]) -> Vec<PathBuf> {
    let mut dirs = BTreeSet::new();
    for o in owns {
        if let Owned::Path(p) = o {
            for a in p.ancestors().skip(1) {
                if a.as_os_str().is_empty() || a == Path::new("/") || dirs.contains(a) {
                    continue;
                }
                if a.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                    dirs.insert(a.to_path_buf());
                }
            }
        }
    }
    dirs.into_iter().collect()
}

/// `gitops-agent run`. Returns the exit code.
pub fn run(args: &RunArgs) -> i32 {
    let config = match load_config(&args.config, ConfigOverrides::default()) {
        Ok(c) => c,
        Err(e) => {
            for line in e.lines() {
                error!("{line}");
            }
            return exit::INVALID;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(4)
        .thread_name("gitops-agent-worker")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return exit::FAILED;
        }
    };
    let daemon = Daemon::new(args, config);
    let code = runtime.block_on(daemon.run());
    // A status push abandoned at its timeout may still be running: do not wait for it.
    runtime.shutdown_background();
    code
}

struct Daemon {
    config_path: PathBuf,
    host_name: Option<String>,
    config: Arc<Config>,
    ids: HostIds,
    splay: Duration,
    shared: Arc<Shared>,
    notifier: notify::Notifier,
    jitter: schedule::Jitter,
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
    guard: Arc<Vec<PathBuf>>,
    /// See [`units`].
    units: Option<Units>,
}

impl Daemon {
    fn new(args: &RunArgs, config: Config) -> Daemon {
        let ids = HostIds::gather();
        let splay = schedule::splay_offset(&ids.machine_id, &ids.hostname, config.splay.as_std());
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            moved_ms: AtomicU64::new(0),
            apply_from_ms: AtomicU64::new(0),
            apply_to_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        Daemon {
            config_path: args.config.clone(),
            host_name: args.host_name.clone(),
            config: Arc::new(config),
            ids,
            splay,
            shared,
            notifier: notify::Notifier::from_env(),
            jitter: schedule::Jitter::new(),
            failures: 0,
            last: None,
            ready: false,
            watch: None,
            watch_set: false,
            guard: Arc::new(Vec::new()),
            units: None,
        }
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
            interval = %self.config.interval,
            splay = ?self.splay,
            enforce = %self.config.enforce,
            "gitops-agent {} running: converging now, then every {} + {:?} (this host's splay)",
            env!("CARGO_PKG_VERSION"),
            self.config.interval,
            self.splay
        );
        let watchdog = self.notifier.watchdog_interval();
        let mut watchdog_tick =
            tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        watchdog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stall_reported = false;

        let (drift_tx, mut drift_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, PathBuf)>();
        let units_tx = drift_tx.clone();
        if self.config.drift != DriftPolicy::Off {
            self.watch = Some(watch::Watch::start(drift_tx));
        } else {
            drop(drift_tx);
        }
        let mut units_tick = tokio::time::interval(units::CHECK_EVERY);
        units_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Drift: what was seen, since when, when the pass starts.
        let mut pending = Pending::default();
        // Changes seen while the agent applied, to paths it did not change itself: drift.
        let mut masked: Vec<PathBuf> = Vec::new();
        // What the last run of the playbook changed (its own writes).
        let mut changed_by_us: HashSet<PathBuf> = HashSet::new();
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
                    job = Some(self.start_tick(None));
                }
                _ = units_tick.tick(), if self.units.is_some() && self.watch.is_some() && self.config.drift != DriftPolicy::Off && job.is_none() && !stopping => {
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
                    if self.config.drift == DriftPolicy::Off {
                        // Turned off by a reload: the watch stays, nothing is checked.
                        continue;
                    }
                    if self.shared.own_change(at) {
                        if job.is_some() {
                            masked.push(path);
                            continue;
                        }
                        if changed_by_us.contains(&path) {
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
                        report: self.config.drift == DriftPolicy::Report,
                        seen,
                        detected,
                        guard: self.guard.clone(),
                    };
                    info!("drift watch: {} changed; checking the playbook", pass.seen.join(", "));
                    job = Some(self.start_tick(Some(pass)));
                }
                _ = tokio::time::sleep_until(fallback_at.unwrap_or(next_poll)), if fallback_at.is_some() && self.config.drift != DriftPolicy::Off && job.is_none() && !stopping => {
                    fallback_at = None;
                    last_drift = tokio::time::Instant::now();
                    let pass = DriftPass {
                        report: self.config.drift == DriftPolicy::Report,
                        seen: vec!["(periodic check: no watch)".into()],
                        detected: None,
                        guard: self.guard.clone(),
                    };
                    job = Some(self.start_tick(Some(pass)));
                }
                done = async { job.as_mut().expect("a job").await }, if job.is_some() => {
                    job = None;
                    let mut tick = match done {
                        Ok(t) => t,
                        Err(e) => Tick { outcome: Err(format!("the converge thread failed: {e}")), took: Duration::ZERO, drift: false, owns: None, changed: None, units: None },
                    };
                    let was_drift = tick.drift;
                    let owns = tick.owns.take();
                    if owns.is_some() {
                        self.units = tick.units.take();
                    }
                    if let Some(changed) = tick.changed.take() {
                        changed_by_us = changed.into_iter().collect();
                    }
                    let wait = self.after_converge(tick);
                    if stopping {
                        break;
                    }
                    let now = tokio::time::Instant::now();
                    for path in masked.drain(..) {
                        if !changed_by_us.contains(&path) {
                            pending.add(&path, now, last_drift);
                        } else {
                            debug!("change of {} by the agent's own converge: ignored", path.display());
                        }
                    }
                    if let Some(w) = self.watch.as_mut() {
                        match owns {
                            Some(owns) => {
                                w.set(&owns);
                                self.guard = Arc::new(guard_dirs(&owns));
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
                    // Last, once what the run handed back is in place (the new watch table
                    // allocates in the memory the run freed).
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
                    if self.reload() && job.is_none() && self.failures == 0 {
                        next_poll = poll_started + self.config.interval.as_std() + self.splay;
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

    /// Starts one poll (or drift pass) on a worker thread.
    fn start_tick(&mut self, drift: Option<DriftPass>) -> JoinHandle<Tick> {
        let config = self.config.clone();
        let host_name = self.host_name.clone();
        let shared = self.shared.clone();
        let watch = self.watch_line();
        let drift_on = self.config.drift != DriftPolicy::Off;
        shared.touch();
        debug!("polling");
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let is_drift = drift.is_some();
            let mut out = TickOut {
                watch_units: drift_on,
                ..TickOut::default()
            };
            // The run gets a thread of its own, ended before memory is given back: glibc keeps
            // a per-thread cache of freed chunks (tcache) until the thread exits, and those
            // chunks pin the pages they sit on (see `trim_heap`).
            let run = || tick(&config, host_name, &shared, drift, watch, &mut out);
            let outcome = std::thread::scope(|s| {
                match std::thread::Builder::new()
                    .name("gitops-agent-run".into())
                    .spawn_scoped(s, run)
                {
                    Ok(t) => t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    Err(e) => Err(format!("cannot start the converge thread: {e}")),
                }
            });
            // Compiled templates and expressions cost about 12 KiB each (megabytes for a playbook
            // of a few hundred tasks) and compile again in microseconds: not kept between runs.
            gitops_modules::template::forget_compiled();
            let TickOut {
                owns,
                changed,
                units,
                ..
            } = out;
            Tick {
                outcome,
                took: started.elapsed(),
                drift: is_drift,
                owns,
                changed,
                units,
            }
        })
    }

    /// How drift is watched, for the status document.
    fn watch_line(&self) -> Option<String> {
        if self.config.drift == DriftPolicy::Off {
            return Some("off (drift: off)".into());
        }
        let policy = self.config.drift.as_str();
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
        let interval = self.config.interval.as_std();
        let regular = interval + self.splay;
        if tick.drift {
            match tick.outcome {
                Err(e) => error!("drift check: {e}"),
                Ok(out) => {
                    let result = out.result.map(Outcome::as_str).unwrap_or("nothing drifted");
                    info!(
                        result,
                        took_ms = tick.took.as_millis() as u64,
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
                        .map(|l| (l.fetch_error.clone(), l.offline));
                    let mut out = out;
                    if let Some((fetch_error, offline)) = keep {
                        out.fetch_error = fetch_error;
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
                schedule::backoff(self.failures, interval, self.jitter.next())
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
                    "poll: {result} (commit {}){}",
                    short(&out.commit_applied),
                    if out.status_pending { ", status push pending" } else { "" }
                );
                let wait = if out.fetch_error.is_some() {
                    self.failures += 1;
                    let wait = schedule::backoff(self.failures, interval, self.jitter.next());
                    warn!(
                        "fetch failed {} time(s) in a row; next try in {:.1}s",
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
    fn reload(&mut self) -> bool {
        match load_config(&self.config_path, ConfigOverrides::default()) {
            Ok(c) => {
                self.splay = schedule::splay_offset(
                    &self.ids.machine_id,
                    &self.ids.hostname,
                    c.splay.as_std(),
                );
                info!(
                    interval = %c.interval,
                    "SIGHUP: configuration {} reloaded (interval {}, splay {:?})",
                    self.config_path.display(),
                    c.interval,
                    self.splay
                );
                if c.state_dir != self.config.state_dir {
                    warn!(
                        "state_dir changed to {}: used from the next poll",
                        c.state_dir.display()
                    );
                }
                self.config = Arc::new(c);
                true
            }
            Err(e) => {
                error!(
                    "SIGHUP: configuration {} not reloaded, keeping the one in use: {}",
                    self.config_path.display(),
                    e.lines().collect::<Vec<_>>().join("; ")
                );
                false
            }
        }
    }

    /// SIGTERM/SIGINT: returns true to stop at once (nothing running).
    fn begin_stop(&self, signal: &str, busy: bool) -> bool {
        self.shared.stop.store(true, Ordering::SeqCst);
        if busy {
            info!("{signal}: stopping once the converge in progress has finished");
            self.notifier
                .stopping("stopping: finishing the converge in progress");
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
            let config = self.config.clone();
            let host_name = self.host_name.clone();
            let push = tokio::task::spawn_blocking(move || {
                // Only when no converge holds the lock (a one-shot converge pushes itself).
                let _lock = StateLock::try_acquire(&config.state_dir).ok()?;
                let plan = Plan::new((*config).clone(), host_name).ok()?;
                let repo = GitRepo::open_or_init(&config.state_dir.join("repo.git")).ok()?;
                Some(push_pending(&plan, &repo, None))
            });
            match tokio::time::timeout(STOP_PUSH_TIMEOUT, push).await {
                Ok(Ok(Some(true))) => info!("pending status pushed"),
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

/// `converged a1b2c3d at 12:03:04, next poll 12:04:05` and what else an operator should see.
fn status_line(
    last: Option<&ConvergeOutcome>,
    failures: u32,
    next: tokio::time::Instant,
) -> String {
    let now = jiff::Zoned::now();
    let clock = |z: &jiff::Zoned| z.strftime("%H:%M:%S").to_string();
    let wait = next.saturating_duration_since(tokio::time::Instant::now());
    let next_at = jiff::SignedDuration::try_from(wait)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .map(|z| clock(&z))
        .unwrap_or_else(|| "?".into());
    let Some(out) = last else {
        return format!("starting; next poll {next_at}");
    };
    let commit = out
        .commit_applied
        .as_deref()
        .map(|c| &c[..7.min(c.len())])
        .unwrap_or("-");
    let mut line = match (&out.suspended, out.result) {
        (Some(reason), _) => format!("suspended: {reason} (at {commit}), polled {}", clock(&now)),
        (None, Some(r)) => format!("{} {commit} at {}", r.as_str(), clock(&now)),
        (None, None) => format!("up to date at {commit}, polled {}", clock(&now)),
    };
    if failures > 0 {
        line.push_str(&format!("; Git server unreachable ({failures} tries)"));
        if out.offline {
            line.push_str(", enforcing the applied commit");
        }
    }
    if out.status_pending {
        line.push_str("; status push pending");
    }
    line.push_str(&format!(", next poll {next_at}"));
    line
}

/// Gives free heap memory back to the system, after each run (issue 5: idle RSS). A run
/// allocates and frees a few MiB in its thread's malloc arena; glibc gives back on its own only a
/// large free block at the top of an arena, not the free pages between chunks still in use.
/// Called on the loop's thread once the run's thread has
/// ended (glibc's per-thread cache of freed chunks, tcache, pins their pages until then) and
/// its results are in place. Measured with tests/bench/drift_bench.py (450 files): see the
/// README's daemon section.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; no pointer is invalidated.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// One poll on the worker thread: take the lock (giving up if asked to stop while waiting),
/// converge, release the lock.
fn tick(
    config: &Config,
    host_name: Option<String>,
    shared: &Shared,
    drift: Option<DriftPass>,
    watch: Option<String>,
    back: &mut TickOut,
) -> Result<ConvergeOutcome, String> {
    let dir = &config.state_dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("state directory {}: {e}", dir.display()))?;
    let lock = {
        let mut said = false;
        loop {
            match StateLock::try_acquire(dir) {
                Ok(l) => break l,
                Err(busy @ LockError::Busy { .. }) => {
                    if !said {
                        info!("{busy}: waiting for it to finish");
                        said = true;
                    }
                    if shared.stop.load(Ordering::SeqCst) {
                        return Ok(ConvergeOutcome {
                            stopped: true,
                            ..ConvergeOutcome::default()
                        });
                    }
                    shared.touch();
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    let plan = Plan::new(config.clone(), host_name)?;
    let repo = GitRepo::open_or_init(&dir.join("repo.git")).map_err(|e| e.to_string())?;
    let flags = RunFlags {
        enforce: (!config.enforce.is_zero()).then(|| config.enforce.as_std()),
        drift,
        watch,
        ..RunFlags::default()
    };
    // The managed units' states are read as soon as the playbook has run (before the status
    // is published, which may take a while): the baseline of the periodic unit check.
    let watch_units = back.watch_units;
    let unit_names = Mutex::new(Vec::<String>::new());
    let unit_states = Mutex::new(None::<Units>);
    let read_units = || {
        let mut names = unit_names.lock().unwrap_or_else(|p| p.into_inner()).clone();
        names.sort();
        names.dedup();
        units::snapshot(&names).map(|st| Arc::new((names, st)))
    };
    let progress = |phase: Phase| {
        if watch_units && phase == Phase::Publishing {
            *unit_states.lock().unwrap_or_else(|p| p.into_inner()) = read_units();
        }
        shared.phase(phase)
    };
    let mut reporter = TaskLog { units: &unit_names };
    let mut report = None;
    let mut hooks = Hooks {
        reporter: &mut reporter,
        stop: Some(&shared.stop),
        progress: &progress,
    };
    let out = converge_locked(&plan, &repo, &flags, &mut hooks, &mut report);
    shared.applied();
    drop(lock);
    if let Some(r) = report {
        if watch_units {
            back.units = unit_states
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .or_else(read_units);
        }
        back.changed = Some(
            r.tasks
                .iter()
                .filter(|t| t.changed)
                .flat_map(|t| t.owns.iter())
                .filter_map(|o| match o {
                    Owned::Path(p) => Some(p.clone()),
                    _ => None,
                })
                .collect(),
        );
        back.owns = Some(r.tasks.into_iter().flat_map(|t| t.owns).collect());
    }
    Ok(out)
}

/// Each task as a log event with its fields (journald: TASK, MODULE, RESULT, AT): failures as
/// warnings, changes as info, the rest at debug.
struct TaskLog<'a> {
    /// The units the tasks manage, collected as they finish.
    units: &'a Mutex<Vec<String>>,
}

impl Reporter for TaskLog<'_> {
    fn play_start(&mut self, name: &str) {
        debug!(play = name, "play {name}");
    }

    fn task_done(&mut self, t: &TaskReport) {
        for o in &t.owns {
            if let Owned::Unit(u) = o {
                self.units
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(u.clone());
            }
        }
        let at = format!("{}:{}", t.file, t.line);
        let result = t.status.as_str();
        let msg = if t.no_log { None } else { t.msg.as_deref() };
        match t.status {
            Status::Failed => warn!(
                task = %t.name, module = %t.module, result, at = %at,
                "{result}: {} [{at}]: {}", t.name, msg.unwrap_or("")
            ),
            _ if t.changed => info!(
                task = %t.name, module = %t.module, result, at = %at,
                "{result}: {} [{at}]", t.name
            ),
            _ => debug!(
                task = %t.name, module = %t.module, result, at = %at,
                "{result}: {} [{at}]", t.name
            ),
        }
    }
}
