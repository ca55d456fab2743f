//! `gitops-agent daemon-worker` (hidden): one job of the daemon, in a process of its own (see
//! [`super::protocol`] for why). Reads the [`Request`] on stdin, answers with [`Event`] lines on
//! stdout, logs on stderr like the daemon.
//!
//! Signals: SIGTERM/SIGINT ask the run to stop before it applies anything (a run that applies
//! goes to its end: never a file half-written); SIGHUP and SIGUSR1, meant for the daemon, are
//! ignored.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gitops_modules::report::{Reporter, Status, TaskReport};
use gitops_modules::resource::Owned;
use nix::sys::resource::UsageWho;
use nix::sys::signal::{signal, SigHandler, Signal};
use tracing::{debug, error, info, warn};

use super::protocol::{
    ConfigSnapshot, Event, Failure, Job, Request, RunJob, RunResult, Settings, VERSION,
};
use super::{schedule, units};
use crate::cli::exit;
use crate::config::{Config, ConfigOverrides, HostIds};
use crate::git::{GitError, GitRepo};
use crate::run::plan::{config_from_text, Plan, PlanError};
use crate::run::publish::push_pending;
use crate::run::pull::{converge_locked, ConvergeOutcome, Hooks, Phase, RunFlags};
use crate::state::{LockError, StateLock};

/// Why a job could not run (the daemon logs it; a converge that ran reports its own errors).
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("state directory {}: {source}", dir.display())]
    StateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Git(#[from] GitError),
}

/// Set by SIGTERM/SIGINT.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: nix::libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Same-step progress events go out at most this often (a step per task otherwise).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The protocol's channel: the stdout the daemon reads. File descriptor 1 itself is pointed at
/// stderr, so that nothing printed by accident can corrupt the protocol.
struct Answer(Mutex<File>);

impl Answer {
    fn take_stdout() -> std::io::Result<Answer> {
        let out = nix::unistd::dup(std::io::stdout().as_raw_fd())?;
        nix::unistd::dup2(std::io::stderr().as_raw_fd(), std::io::stdout().as_raw_fd())?;
        // SAFETY: `out` is a descriptor we just created and own.
        Ok(Answer(Mutex::new(unsafe { File::from_raw_fd(out) })))
    }

    fn send(&self, event: &Event) {
        let mut line = match serde_json::to_vec(event) {
            Ok(l) => l,
            Err(e) => {
                error!("cannot encode the answer: {e}");
                return;
            }
        };
        line.push(b'\n');
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // The daemon gone (killed): nothing to tell anyone, the run still ends properly.
        let _ = out.write_all(&line);
    }
}

/// `gitops-agent daemon-worker`. Returns the exit code.
pub fn main() -> i32 {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        let _ = signal(Signal::SIGTERM, SigHandler::Handler(on_stop));
        let _ = signal(Signal::SIGINT, SigHandler::Handler(on_stop));
        let _ = signal(Signal::SIGHUP, SigHandler::SigIgn);
        let _ = signal(Signal::SIGUSR1, SigHandler::SigIgn);
    }
    let answer = match Answer::take_stdout() {
        Ok(a) => a,
        Err(e) => {
            error!("daemon-worker: cannot set up its output: {e}");
            return exit::FAILED;
        }
    };
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        error!("daemon-worker: cannot read its job: {e}");
        return exit::FAILED;
    }
    let request: Request = match serde_json::from_slice(&input) {
        Ok(r) => r,
        Err(e) => {
            error!("daemon-worker: this is an internal command of `gitops-agent run` (its job on stdin could not be read: {e})");
            return exit::INVALID;
        }
    };
    if request.version != VERSION {
        error!(
            "daemon-worker: the daemon runs version {} and this binary is {VERSION}: restart the daemon (systemctl restart gitops-agent)",
            request.version
        );
        return exit::FAILED;
    }
    match request.job {
        Job::Load => {
            let settings = settings(&request.config).map_err(|e| Failure::new(&e));
            answer.send(&Event::Settings(settings));
        }
        Job::Run(job) => {
            let mut result = run(&request.config, job, &answer);
            result.peak_rss_kib = nix::sys::resource::getrusage(UsageWho::RUSAGE_SELF)
                .map(|u| u.max_rss().max(0) as u64)
                .unwrap_or(0);
            answer.send(&Event::Done(result));
        }
        Job::PushPending => {
            let pushed = push(&request.config);
            answer.send(&Event::Done(RunResult {
                pushed,
                ..RunResult::default()
            }));
        }
    }
    exit::OK
}

fn config(snapshot: &ConfigSnapshot) -> Result<Config, PlanError> {
    config_from_text(
        &snapshot.path,
        snapshot.text.as_deref(),
        ConfigOverrides::from_pairs(&snapshot.overrides).map_err(PlanError::Flag)?,
    )
}

/// [`Job::Load`].
fn settings(snapshot: &ConfigSnapshot) -> Result<Settings, PlanError> {
    let c = config(snapshot)?;
    let ids = HostIds::gather();
    Ok(Settings {
        interval: c.interval,
        splay: schedule::splay_offset(&ids.machine_id, &ids.hostname, c.splay.as_std()),
        enforce: c.enforce,
        drift: c.drift,
        state_dir: c.state_dir,
    })
}

/// [`Job::PushPending`]: only when no converge holds the lock (a one-shot converge pushes
/// itself).
fn push(snapshot: &ConfigSnapshot) -> bool {
    let Ok(config) = config(snapshot) else {
        return false;
    };
    let Ok(_lock) = StateLock::try_acquire(&config.state_dir) else {
        return false;
    };
    let state_dir = config.state_dir.clone();
    let Ok(plan) = Plan::new(config, snapshot.host_name.clone()) else {
        return false;
    };
    let Ok(repo) = GitRepo::open_or_init(&state_dir.join("repo.git")) else {
        return false;
    };
    push_pending(&plan, &repo, None)
}

/// [`Job::Run`]: take the lock (giving up if asked to stop while waiting), converge, release
/// the lock.
fn run(snapshot: &ConfigSnapshot, job: RunJob, answer: &Answer) -> RunResult {
    let mut back = RunResult::default();
    let outcome = run_inner(snapshot, job, answer, &mut back);
    back.outcome = Some(outcome.map_err(|e| Failure::new(&e)));
    back
}

fn run_inner(
    snapshot: &ConfigSnapshot,
    job: RunJob,
    answer: &Answer,
    back: &mut RunResult,
) -> Result<ConvergeOutcome, JobError> {
    let config = config(snapshot)?;
    let dir = config.state_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| JobError::StateDir {
        dir: dir.clone(),
        source,
    })?;
    let lock = {
        let mut said = false;
        loop {
            match StateLock::try_acquire(&dir) {
                Ok(l) => break l,
                Err(busy @ LockError::Busy { .. }) => {
                    if !said {
                        info!("{busy}: waiting for it to finish");
                        said = true;
                    }
                    if STOP.load(Ordering::SeqCst) {
                        return Ok(ConvergeOutcome {
                            stopped: true,
                            ..ConvergeOutcome::default()
                        });
                    }
                    answer.send(&Event::Waiting);
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let enforce = (!config.enforce.is_zero()).then(|| config.enforce.as_std());
    let plan = Plan::new(config, snapshot.host_name.clone())?;
    let repo = GitRepo::open_or_init(&dir.join("repo.git"))?;
    let flags = RunFlags {
        enforce,
        drift: job.drift,
        watch: job.watch,
        ..RunFlags::default()
    };
    // The managed units' states are read as soon as the playbook has run (before the status
    // is published, which may take a while): the baseline of the daemon's periodic unit check.
    let watch_units = job.watch_units;
    let unit_names = Mutex::new(Vec::<String>::new());
    let unit_states = Mutex::new(None::<super::protocol::UnitStates>);
    let read_units = || {
        let mut names = unit_names.lock().unwrap_or_else(|p| p.into_inner()).clone();
        names.sort();
        names.dedup();
        units::snapshot(&names).map(|st| (names, st))
    };
    let last_sent = Mutex::new(None::<(Phase, Instant)>);
    let progress = |phase: Phase| {
        let mut last = last_sent.lock().unwrap_or_else(|p| p.into_inner());
        let due = match *last {
            Some((p, at)) => p != phase || at.elapsed() >= PROGRESS_EVERY,
            None => true,
        };
        if due {
            *last = Some((phase, Instant::now()));
            // Publishing: the daemon takes changes from now on as not the run's own.
            answer.send(&Event::Phase(phase));
        }
        drop(last);
        if watch_units && phase == Phase::Publishing {
            *unit_states.lock().unwrap_or_else(|p| p.into_inner()) = read_units();
        }
    };
    let mut reporter = TaskLog { units: &unit_names };
    let mut report = None;
    let mut hooks = Hooks {
        reporter: &mut reporter,
        stop: Some(&STOP),
        progress: &progress,
    };
    let out = converge_locked(&plan, &repo, &flags, &mut hooks, &mut report);
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
                .collect::<Vec<PathBuf>>(),
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
        // A task run through the host's ansible-core says so (journald field VIA).
        let via = t.via.as_deref().unwrap_or("agent");
        let name = match &t.via {
            Some(v) => format!("{} (via {v})", t.name),
            None => t.name.clone(),
        };
        for w in &t.warnings {
            warn!(task = %t.name, module = %t.module, at = %at, via, "[WARNING]: {w} [{at}]");
        }
        match t.status {
            Status::Failed => warn!(
                task = %t.name, module = %t.module, result, at = %at, via,
                "{result}: {name} [{at}]: {}", msg.unwrap_or("")
            ),
            _ if t.changed => info!(
                task = %t.name, module = %t.module, result, at = %at, via,
                "{result}: {name} [{at}]"
            ),
            _ => debug!(
                task = %t.name, module = %t.module, result, at = %at, via,
                "{result}: {name} [{at}]"
            ),
        }
    }
}
