//! The command line, defined once: `--help`, the man pages and completions come from here (the
//! latter through packaging/gen, which compiles this file as its own module together with the
//! configuration schema: keep it free of other `crate::` references than `crate::config::keys`).
//!
//! The flags that set a configuration key ([`KeyFlags`]) are generated from that schema.

use std::path::PathBuf;

use clap::{ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::config::keys::{Flag, Key, Kind, Scope, KEYS};

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
  1  a task failed (also a task using a module or argument the agent does not implement,
     when it runs; `validate --strict`: there is such a task)
  3  invalid input (bad YAML, unknown keyword, template syntax, a path escaping
     the repository, a bad configuration) or a refused commit (not signed by a trusted key,
     not a descendant of the last applied commit): nothing was applied";

#[derive(Debug, Parser)]
#[command(
    name = "gitops-agent",
    version,
    about = "Keep this host in the state its Git branch describes, in Ansible playbook syntax",
    long_about = "gitops-agent reads desired state written as an Ansible playbook (files, templates, \
commands, ...) and converges this host to it natively, without Python. Every file of the playbook \
is parsed and every task validated before anything is applied; a task using a module or argument the agent does not implement is a warning, and fails only if it runs.",
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
    /// Tasks the agent does not implement are listed as warnings (they fail only if they run).
    #[command(after_help = EXIT_CODES)]
    Validate(ValidateArgs),
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
    /// This host's inventory name (`inventory_hostname`): matched against plays' `hosts` and
    /// used for host_vars/<name>. Default: `localhost` as ansible-pull, or with an inventory
    /// the host of it named as this machine's FQDN or short name.
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,
    /// The configuration keys (each overrides the same key of the file, also after SIGHUP).
    #[command(flatten)]
    pub keys: KeyFlags<true>,
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
    /// Inventory file (INI or YAML) inside the directory, as ansible's `-i`. Default:
    /// ansible.cfg's `inventory`, else `localhost,` as ansible-pull.
    #[arg(short = 'i', long, value_name = "FILE")]
    pub inventory: Option<String>,
    /// This host's inventory name (`inventory_hostname`): matched against plays' `hosts` and
    /// used for host_vars/<name>. Default: `localhost` as ansible-pull, or with an inventory
    /// the host of it named as this machine's FQDN or short name.
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,
    /// Extra variables, highest precedence: `key=value` (several separated by spaces), a JSON
    /// or YAML mapping, or `@file.yml`. Repeatable.
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub playbook: PlaybookArgs,
    /// Exit 1 when a task uses what the agent does not implement (a module, an argument),
    /// even where it would not run on this host.
    #[arg(long)]
    pub strict: bool,
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
    /// Inventory file (INI or YAML) inside the repository or directory, as ansible's `-i`.
    /// Default: ansible.cfg's `inventory`, else `localhost,` as ansible-pull (in pull mode
    /// also settable as `inventory` in the config).
    #[arg(short = 'i', long, value_name = "FILE")]
    pub inventory: Option<String>,
    /// This host's inventory name (`inventory_hostname`): matched against plays' `hosts` and
    /// used for host_vars/<name>. Default: `localhost` as ansible-pull, or with an inventory
    /// the host of it named as this machine's FQDN or short name.
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
    /// The configuration keys.
    #[command(flatten)]
    pub keys: KeyFlags<false>,
    /// If another converge (or the daemon's) holds the lock, exit at once (code 1) instead of
    /// waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Converge even when the branch has no new commit since the last successful converge
    /// (by default such a run fetches, finds nothing new and stops, as a poll does).
    #[arg(long)]
    pub force: bool,
}

/// The flags of the configuration keys, generated from the schema
/// (`crate::config::keys::KEYS`): `--repo`, `--status-heartbeat`, ... Each overrides the key of
/// the file. `DAEMON`: the daemon's keys (`interval`, `drift`, ...) and `--playbook` are included
/// (`run`); without it they are left out (`converge` declares `--playbook` and `--inventory`
/// itself, for local mode too). `-e` is always declared by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFlags<const DAEMON: bool> {
    /// (key, value as given), in the order of the schema; a repeated flag gives one pair each.
    pub values: Vec<(&'static str, String)>,
}

impl<const DAEMON: bool> KeyFlags<DAEMON> {
    /// The keys that have a generated flag here.
    pub fn keys() -> impl Iterator<Item = &'static Key> {
        KEYS.iter().filter(|k| {
            k.kind != Kind::Vars
                && (if DAEMON {
                    true
                } else {
                    k.scope == Scope::All && !k.shared
                })
        })
    }
}

/// The flag of `key`, with its help and, when the key has one, its default.
fn key_arg(key: &'static Key) -> clap::Arg {
    let help = match (key.default, key.flag) {
        (Some(d), Flag::Value(_) | Flag::Repeated(_)) => format!("{} [default: {d}]", key.doc),
        _ => key.doc.to_string(),
    };
    let arg = clap::Arg::new(key.name)
        .long(key.flag.name())
        .help(help)
        .help_heading("Configuration (each overrides the key of the file)");
    let arg = match key.flag {
        Flag::Switch(..) => arg.action(ArgAction::SetTrue),
        Flag::Repeated(_) => arg.action(ArgAction::Append),
        Flag::Value(_) => arg.action(ArgAction::Set),
    };
    match key.kind {
        Kind::Bool => arg,
        Kind::Drift => arg
            .value_name(key.value_name)
            .value_parser(["correct", "report", "off"]),
        Kind::Bridge => arg.value_name(key.value_name).value_parser(["auto", "off"]),
        Kind::Reboot => arg
            .value_name(key.value_name)
            .value_parser(["allow", "deny"]),
        Kind::Path | Kind::Paths => arg
            .value_name(key.value_name)
            .value_hint(clap::ValueHint::AnyPath),
        _ => arg.value_name(key.value_name),
    }
}

impl<const DAEMON: bool> Args for KeyFlags<DAEMON> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Self::keys().fold(cmd, |cmd, key| cmd.arg(key_arg(key)))
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<const DAEMON: bool> FromArgMatches for KeyFlags<DAEMON> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut values = Vec::new();
        for key in Self::keys() {
            match key.flag {
                Flag::Switch(_, to) => {
                    if m.get_flag(key.name) {
                        values.push((key.name, to.to_string()));
                    }
                }
                Flag::Value(_) | Flag::Repeated(_) => {
                    for v in m.get_many::<String>(key.name).into_iter().flatten() {
                        values.push((key.name, v.clone()));
                    }
                }
            }
        }
        Ok(KeyFlags { values })
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}
