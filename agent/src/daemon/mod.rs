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
//! The seam for real-time drift (step 6, Watch): [`Daemon::after_converge`] is where the
//! managed paths/packages/units of the applied playbook would be handed to a watcher, whose
//! events would come into the `select!` of [`Daemon::run`] as one more branch and trigger a
//! debounced check of the affected tasks.

mod notify;
mod schedule;
pub mod suspend;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gitops_modules::report::{Reporter, Status, TaskReport};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::cli::{exit, RunArgs};
use crate::config::{Config, ConfigOverrides, HostIds};
use crate::git::GitRepo;
use crate::pull::{
    converge_locked, load_config, push_pending, ConvergeOutcome, Hooks, Phase, Plan, RunFlags,
};
use crate::state::{LockError, StateLock};
use crate::status::Outcome;

/// A converge in progress that has not moved (no step, no task finished) for this long stops
/// the watchdog pings: systemd then restarts the agent after WatchdogSec.
pub const STALL_LIMIT: Duration = Duration::from_secs(30 * 60);
/// At stop, a pending status is pushed only if that takes no longer than this.
pub const STOP_PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the loop and the worker thread share.
struct Shared {
    /// Asked to stop (SIGTERM/SIGINT): the worker does not start applying.
    stop: AtomicBool,
    /// When the worker last moved, in milliseconds since `epoch`.
    moved_ms: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn touch(&self) {
        self.moved_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
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
}

impl Daemon {
    fn new(args: &RunArgs, config: Config) -> Daemon {
        let ids = HostIds::gather();
        let splay = schedule::splay_offset(&ids.machine_id, &ids.hostname, config.splay.as_std());
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            moved_ms: AtomicU64::new(0),
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

        let mut next_poll = tokio::time::Instant::now();
        let mut poll_started = tokio::time::Instant::now();
        let mut job: Option<JoinHandle<Tick>> = None;
        let mut poll_again = false;
        let mut stopping = false;

        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_poll), if job.is_none() && !stopping => {
                    poll_started = tokio::time::Instant::now();
                    job = Some(self.start_tick());
                }
                done = async { job.as_mut().expect("a job").await }, if job.is_some() => {
                    job = None;
                    let tick = match done {
                        Ok(t) => t,
                        Err(e) => Tick { outcome: Err(format!("the converge thread failed: {e}")), took: Duration::ZERO },
                    };
                    let wait = self.after_converge(tick);
                    if stopping {
                        break;
                    }
                    next_poll = if poll_again {
                        poll_again = false;
                        tokio::time::Instant::now()
                    } else {
                        poll_started + wait
                    };
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

    /// Starts one poll on a worker thread.
    fn start_tick(&mut self) -> JoinHandle<Tick> {
        let config = self.config.clone();
        let host_name = self.host_name.clone();
        let shared = self.shared.clone();
        shared.touch();
        debug!("polling");
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let outcome = tick(&config, host_name, &shared);
            Tick {
                outcome,
                took: started.elapsed(),
            }
        })
    }

    /// Books the result of a poll; returns the wait until the next one.
    fn after_converge(&mut self, tick: Tick) -> Duration {
        let interval = self.config.interval.as_std();
        let regular = interval + self.splay;
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
        // Seam for real-time drift (step 6, Watch): hand the applied playbook's managed
        // objects to a watcher here.
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

/// One poll on the worker thread: take the lock (giving up if asked to stop while waiting),
/// converge, release the lock.
fn tick(
    config: &Config,
    host_name: Option<String>,
    shared: &Shared,
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
        ..RunFlags::default()
    };
    let progress = |_: Phase| shared.touch();
    let mut reporter = TaskLog;
    let mut report = None;
    let mut hooks = Hooks {
        reporter: &mut reporter,
        stop: Some(&shared.stop),
        progress: &progress,
    };
    let out = converge_locked(&plan, &repo, &flags, &mut hooks, &mut report);
    drop(lock);
    Ok(out)
}

/// Each task as a log event with its fields (journald: TASK, MODULE, RESULT, AT): failures as
/// warnings, changes as info, the rest at debug.
struct TaskLog;

impl Reporter for TaskLog {
    fn play_start(&mut self, name: &str) {
        debug!(play = name, "play {name}");
    }

    fn task_done(&mut self, t: &TaskReport) {
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
