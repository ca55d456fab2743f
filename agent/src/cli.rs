//! The command line, defined once: `--help`, the man pages and completions come from here (the
//! latter through packaging/gen, which compiles this file as its own module: keep it free of
//! `crate::` references).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    /// Success, nothing needed changing.
    pub const OK: i32 = 0;
    /// A task failed (or the run could not complete).
    pub const FAILED: i32 = 1;
    /// Success, and something was changed (or, with --check, would be).
    pub const CHANGED: i32 = 2;
    /// Invalid input or a refused commit: nothing was applied.
    pub const INVALID: i32 = 3;
}

const EXIT_CODES: &str = "\
Exit codes:
  0  success, nothing changed
  2  success, something changed (with --check: would change)
  1  a task failed
  3  invalid input (bad YAML, unknown module or argument, template syntax, a path escaping
     the repository, a bad configuration) or a refused commit (not signed by a trusted key,
     not a descendant of the last applied commit): nothing was applied";

#[derive(Debug, Parser)]
#[command(
    name = "gitops-agent",
    version,
    about = "Keep this host in the state its Git branch describes, in Ansible playbook syntax",
    long_about = "gitops-agent reads desired state written as an Ansible playbook (files, templates, \
commands, ...) and converges this host to it natively, without Python. Every file of the playbook \
is parsed and every task validated before anything is applied.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// More log output: -v debug, -vv trace (RUST_LOG, when set, wins).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less log output: -q warnings and errors only, -qq errors only.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

const RUN_HELP: &str = "\
Schedule:
  Converges at start, then polls the host branch every `interval` (default 60s) plus this
  host's splay: a fixed share of `splay` (default 30s) derived from /etc/machine-id, so a fleet
  spreads out. A poll that finds no new commit stops after the fetch, unless `enforce`
  (default 30m) has passed since the playbook last ran: then the applied commit is converged
  again, from the local copy if the Git server cannot be reached. A failed fetch is retried
  sooner (5s, 10s, 20s, ... with jitter, never later than `interval`); status commits wait
  locally and are pushed when the server is back.

Signals:
  SIGHUP   reload the configuration file (a bad one is logged and the old one kept)
  SIGUSR1  poll now
  SIGTERM, SIGINT
           stop: a converge in progress runs to its end, a pending status is pushed if that
           takes under 5s, exit 0

systemd: Type=notify (READY=1 after the first converge attempt, STATUS= lines, WATCHDOG=1
at WatchdogSec/2); logs go to journald with fields COMMIT, TASK, MODULE, RESULT when stderr is
the journal, else to stderr.

Processes: `run` becomes gitops-agentd (installed next to this binary or in
/usr/libexec/gitops-agent), a small daemon that only waits, watches and schedules; each poll
and drift check runs in a short-lived `gitops-agent` process of its own.

Exit codes:
  0  stopped by SIGTERM/SIGINT
  1  could not start (gitops-agentd not found, runtime, signals)
  3  invalid configuration at start";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Converge this host once: from its Git branch (pull mode, the default: fetch, verify,
    /// apply, write a status commit), or from a local directory with --playbook-dir.
    #[command(after_help = EXIT_CODES)]
    Converge(Box<ConvergeArgs>),
    /// Check a playbook (parse, resolve, validate every task) without touching the host.
    #[command(after_help = EXIT_CODES)]
    Validate(PlaybookArgs),
    /// Show, from the state directory, the last applied and last good commit, the last result,
    /// and whether a status commit is waiting to be pushed.
    Status(StatusArgs),
    /// Run as a daemon (under systemd: gitops-agent.service): converge now, then poll the
    /// host branch every interval + splay and converge what is new.
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Stop applying: the daemon (and `converge`) still poll and report `suspended: REASON` in
    /// the status, but change nothing until `resume`. Kept in the state dir across restarts.
    Suspend(SuspendArgs),
    /// Undo `suspend`: the next poll converges again.
    Resume(StatusArgs),
    /// Internal: one job of the daemon (`run`), read as JSON from stdin.
    #[command(hide = true)]
    DaemonWorker,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (read again on SIGHUP).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/etc/gitops-agent/config.yml"
    )]
    pub config: PathBuf,
    /// The name this host is known by: matched against plays' `hosts` and used for
    /// host_vars/<name>.yml. Default: the short hostname.
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct SuspendArgs {
    #[command(flatten)]
    pub target: StatusArgs,
    /// Why (shown in the status document, `systemctl status` and `gitops-agent status`).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Configuration file (for `state_dir` and the status branch).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/etc/gitops-agent/config.yml"
    )]
    pub config: PathBuf,
    /// State directory. [default: `state_dir` of the config, /var/lib/gitops-agent]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlaybookArgs {
    /// Directory holding the playbook, its roles, files, templates, group_vars and host_vars.
    #[arg(long, value_name = "DIR")]
    pub playbook_dir: PathBuf,
    /// Playbook file inside the directory. Default: the first of <fqdn>.yml, <hostname>.yml,
    /// local.yml, as ansible-pull picks it.
    #[arg(long, value_name = "FILE")]
    pub playbook: Option<String>,
    /// The name this host is known by: matched against plays' `hosts` and used for
    /// host_vars/<name>.yml. Default: the short hostname.
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,
    /// Extra variables, highest precedence: `key=value` (several separated by spaces), a JSON
    /// or YAML mapping, or `@file.yml`. Repeatable.
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConvergeArgs {
    /// Converge from a playbook in a local directory instead of the host's Git branch.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["repo", "config"])]
    pub playbook_dir: Option<PathBuf>,
    /// Playbook file. Default: the first of <fqdn>.yml, <hostname>.yml, local.yml, as
    /// ansible-pull picks it (in pull mode also settable as `playbook` in the config).
    #[arg(long, value_name = "FILE")]
    pub playbook: Option<String>,
    /// The name this host is known by: matched against plays' `hosts` and used for
    /// host_vars/<name>.yml. Default: the short hostname.
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,
    /// Extra variables, highest precedence: `key=value` (several separated by spaces), a JSON
    /// or YAML mapping, or `@file.yml`. Repeatable.
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    #[command(flatten)]
    pub pull: PullArgs,
    /// Report what would change without changing anything (no state, no status commit).
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Show unified diffs of file contents that change.
    #[arg(short = 'D', long)]
    pub diff: bool,
    /// Only run tasks tagged with these tags (comma-separated; repeatable).
    #[arg(short = 't', long, value_delimiter = ',', value_name = "TAGS")]
    pub tags: Vec<String>,
    /// Skip tasks tagged with these tags (comma-separated; repeatable).
    #[arg(long, value_delimiter = ',', value_name = "TAGS")]
    pub skip_tags: Vec<String>,
    /// Output: `text` (a line per task and a recap) or `json` (the whole report on stdout).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Pull mode: where the host's branch is, how to trust it, where the status goes. Each option
/// overrides the same key of the config file (see packaging/config.yml).
#[derive(Debug, Args)]
#[command(next_help_heading = "Pull mode (the host's Git branch)")]
pub struct PullArgs {
    /// Configuration file.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/etc/gitops-agent/config.yml"
    )]
    pub config: PathBuf,
    /// Repository URL: https://, http://, ssh://, git@host:path, file:// or a path.
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// Branch to converge to; `{hostname}`, `{fqdn}`, `{machine_id}` expand.
    /// [default: hosts/{hostname}]
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// Where the agent keeps its repository, state and lock. [default: /var/lib/gitops-agent]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// SSH private key for ssh:// and scp-like URLs.
    #[arg(long, value_name = "PATH")]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file for SSH (host keys are always checked).
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,
    /// File with `username=` and `password=` lines for http(s):// (never on the command line).
    #[arg(long, value_name = "PATH")]
    pub http_credentials_file: Option<PathBuf>,
    /// PEM file of CA certificates trusted for https:// besides the system's (a private CA).
    #[arg(long, value_name = "PATH")]
    pub http_ca_file: Option<PathBuf>,
    /// OpenSSH allowed_signers file: SSH-signed commits are verified against it.
    #[arg(long, value_name = "PATH")]
    pub allowed_signers: Option<PathBuf>,
    /// OpenPGP public key file (armored or binary); repeatable.
    #[arg(long = "openpgp-key", value_name = "PATH")]
    pub openpgp_keys: Vec<PathBuf>,
    /// Refuse commits that are not signed by a trusted key.
    #[arg(long)]
    pub require_signatures: bool,
    /// Apply a commit that does not descend from the last applied one (a force-push back).
    #[arg(long)]
    pub allow_rollback: bool,
    /// Repository the status commits go to. [default: the same as --repo]
    #[arg(long, value_name = "URL")]
    pub status_repo: Option<String>,
    /// Status branch; placeholders as for --branch. [default: status/{hostname}]
    #[arg(long, value_name = "BRANCH")]
    pub status_branch: Option<String>,
    /// Do not write a status commit.
    #[arg(long)]
    pub no_status: bool,
    /// If another converge (or the daemon's) holds the lock, exit at once (code 1) instead of
    /// waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Converge even when the branch has no new commit since the last successful converge
    /// (by default such a run fetches, finds nothing new and stops, as a poll does).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}
