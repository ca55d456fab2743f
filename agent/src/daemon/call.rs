//! Talking to a worker: one job per `gitops-agent daemon-worker` process ([`call_worker`]), and
//! what the loop and that call share ([`Shared`]: the worker's pid, when it last moved, when its
//! run wrote).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tracing::warn;

use super::protocol::{Event, Failure, Request};
use crate::run::pull::Phase;

/// Changes seen while a worker runs (until it says it publishes, or exits), or this little
/// after, to paths its run changed are the agent's own (one misjudged is harmless: the drift
/// pass it starts finds nothing to change).
pub const OWN_SLACK: Duration = Duration::from_millis(20);

/// A job that did not come back with an answer, or whose answer is an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot encode a job: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("cannot start {} daemon-worker: {source}", agent.display())]
    Spawn {
        agent: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the worker ended without an answer ({0})")]
    NoAnswer(ExitStatus),
    #[error("the worker ended without an answer ({0})")]
    Wait(#[source] std::io::Error),
    /// An answer that does not fit the job (a worker of another build would be refused first).
    #[error("the worker answered {answer} to {job}")]
    Unexpected { answer: String, job: &'static str },
    #[error("the worker sent no outcome")]
    NoOutcome,
    #[error("the worker's task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The job ran and failed: the worker's own error.
    #[error(transparent)]
    Job(#[from] Failure),
}

/// What the loop and the task that talks to a worker share.
pub struct Shared {
    /// The worker's process id (0: none).
    pub child: AtomicU32,
    /// When the worker last moved, in milliseconds since `epoch`.
    moved_ms: AtomicU64,
    /// When the last worker started and ended (`u64::MAX`: still running), in milliseconds
    /// since `epoch`: changes seen then may be its own.
    job_from_ms: AtomicU64,
    job_to_ms: AtomicU64,
    epoch: Instant,
}

impl Shared {
    pub fn touch(&self) {
        self.moved_ms.store(self.now_ms(), Ordering::SeqCst);
    }

    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn job_started(&self) {
        self.touch();
        self.job_from_ms
            .store(self.now_ms().max(1), Ordering::SeqCst);
        self.job_to_ms.store(u64::MAX, Ordering::SeqCst);
    }

    pub fn job_ended(&self) {
        if self.job_to_ms.load(Ordering::SeqCst) == u64::MAX {
            self.job_to_ms.store(self.now_ms(), Ordering::SeqCst);
        }
    }

    /// Was a change seen at `at` maybe made by the last worker?
    pub fn own_change(&self, at: Instant) -> bool {
        let t = at.saturating_duration_since(self.epoch).as_millis() as u64;
        let from = self.job_from_ms.load(Ordering::SeqCst);
        let to = self.job_to_ms.load(Ordering::SeqCst);
        from > 0 && t >= from && t <= to.saturating_add(OWN_SLACK.as_millis() as u64)
    }

    pub fn idle_for(&self) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.moved_ms.load(Ordering::SeqCst)),
        )
    }
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            child: AtomicU32::new(0),
            moved_ms: AtomicU64::new(0),
            job_from_ms: AtomicU64::new(0),
            job_to_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// Runs one job in a `gitops-agent daemon-worker` process and returns its answer; its progress
/// events move the watchdog on (`shared`).
pub async fn call_worker(
    agent: &Path,
    verbosity: i8,
    request: &Request,
    shared: &Shared,
) -> Result<Event, WorkerError> {
    let input = serde_json::to_vec(request).map_err(WorkerError::Encode)?;
    let mut cmd = tokio::process::Command::new(agent);
    cmd.arg("daemon-worker");
    for _ in 0..verbosity.max(0) {
        cmd.arg("-v");
    }
    for _ in 0..verbosity.min(0).unsigned_abs() {
        cmd.arg("-q");
    }
    // The notify socket is the daemon's (NotifyAccess=main would refuse a worker anyway).
    cmd.env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|source| WorkerError::Spawn {
        agent: agent.to_path_buf(),
        source,
    })?;
    shared
        .child
        .store(child.id().unwrap_or(0), Ordering::SeqCst);
    // The worker reads all of its job before it says anything: no deadlock on full pipes. A
    // write that fails (the worker died at once) shows as a missing answer below.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&input).await;
    }
    let mut answer = None;
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    shared.touch();
                    match serde_json::from_str::<Event>(&line) {
                        // The playbook's writes are over: later changes are not the worker's.
                        Ok(Event::Phase(Phase::Publishing)) => shared.job_ended(),
                        Ok(Event::Phase(_) | Event::Waiting) => {}
                        Ok(event) => answer = Some(event),
                        Err(e) => warn!("unexpected line from the worker ({e}): {line}"),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!("reading the worker's answer: {e}");
                    break;
                }
            }
        }
    }
    let status = child.wait().await;
    shared.job_ended();
    shared.child.store(0, Ordering::SeqCst);
    answer.ok_or_else(|| match status {
        Ok(s) => WorkerError::NoAnswer(s),
        Err(e) => WorkerError::Wait(e),
    })
}
