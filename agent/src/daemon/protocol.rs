//! What the daemon (`gitops-agentd`) and its worker (`gitops-agent daemon-worker`) say to each
//! other: one [`Request`] as JSON on the worker's stdin, then [`Event`]s as JSON lines on its
//! stdout, the last one [`Event::Done`]. The worker's stderr is the daemon's (logs, journald).
//!
//! Why two processes: the daemon idles all day, the worker runs for a few milliseconds a minute.
//! Everything a run touches (Git, TLS, YAML, templates, the modules: most of a 10 MB binary, and
//! the heap it leaves fragmented) belongs to a process that exits when the run ends, and the
//! daemon's own binary holds only the loop, the watch and this protocol (issue 5: idle RSS).

use std::path::PathBuf;
use std::time::Duration;

use gitops_modules::resource::Owned;
use serde::{Deserialize, Serialize};

use crate::config::DriftPolicy;
use crate::run::pull::{ConvergeOutcome, DriftPass, Phase};

/// Both sides check it: a daemon and a worker from different builds (a package upgrade between
/// the daemon's start and a run) refuse to talk rather than misread each other.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "/1");

/// The configuration the daemon holds: the file's text as read at start or at the last good
/// SIGHUP (`None`: the default path and no file there, so the defaults). Every run parses this
/// text, not the file, so an edit takes effect at SIGHUP and a broken one never does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigSnapshot {
    pub path: PathBuf,
    pub text: Option<String>,
    pub host_name: Option<String>,
    /// `gitops-agent run`'s configuration flags, as (key, value) pairs: every run lays them
    /// over the text.
    #[serde(default)]
    pub overrides: Vec<(String, String)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub version: String,
    pub config: ConfigSnapshot,
    pub job: Job,
}

impl Request {
    /// A job for a worker of this build.
    pub fn new(config: ConfigSnapshot, job: Job) -> Request {
        Request {
            version: VERSION.into(),
            config,
            job,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Job {
    /// Read and check the configuration; answer with [`Event::Settings`].
    Load,
    /// One poll, or one drift pass.
    Run(RunJob),
    /// Push a status commit still waiting in the local repository (at stop).
    PushPending,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RunJob {
    pub drift: Option<DriftPass>,
    /// How drift is watched, for the status document.
    pub watch: Option<String>,
    /// Read the managed units' states after the playbook has run.
    pub watch_units: bool,
}

/// What the loop needs of the configuration (the rest only matters to a run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub interval: crate::duration::Duration,
    /// This host's splay: the offset drawn from its machine id within `splay`.
    pub splay: Duration,
    /// Zero: never.
    pub enforce: crate::duration::Duration,
    pub drift: DriftPolicy,
    pub state_dir: PathBuf,
}

/// Managed units and their states: names, then (id, load, active, unit-file state) each.
pub type UnitStates = (Vec<String>, Vec<super::units::UnitKey>);

#[derive(Debug, Serialize, Deserialize)]
pub enum Event {
    /// The run moved to this step (or finished a task): the watchdog's proof of progress.
    Phase(Phase),
    /// Waiting for the lock another converge holds.
    Waiting,
    /// The answer to [`Job::Load`]: the settings, or the errors (one per line).
    Settings(Result<Settings, Failure>),
    Done(RunResult),
}

/// What a run hands back.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RunResult {
    pub outcome: Option<Result<ConvergeOutcome, Failure>>,
    /// What the playbook's tasks own, when it ran.
    pub owns: Option<Vec<Owned>>,
    /// The paths of the tasks that changed something, when it ran.
    pub changed: Option<Vec<PathBuf>>,
    /// The managed units' states after the run.
    pub units: Option<UnitStates>,
    /// [`Job::PushPending`]: whether it went out.
    pub pushed: bool,
    /// The worker's peak resident memory (getrusage `ru_maxrss`), in KiB: logged by the daemon.
    pub peak_rss_kib: u64,
}

/// An error of a job, as the daemon receives it: the worker's error, as text (one error per
/// line). The kinds the daemon acts on travel as fields of [`ConvergeOutcome`] (whether a
/// failed fetch is worth retrying soon: [`ConvergeOutcome::fetch_spurious`]).
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
#[error("{message}")]
pub struct Failure {
    pub message: String,
}

impl Failure {
    pub fn new(error: &dyn std::error::Error) -> Failure {
        Failure {
            message: error.to_string(),
        }
    }
}
