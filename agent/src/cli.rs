//! The command line, defined once: `--help`, the man page and completions come from here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    /// Success, nothing needed changing.
    pub const OK: i32 = 0;
    /// A task failed (or the run could not complete).
    pub const FAILED: i32 = 1;
    /// Success, and something was changed (or, with --check, would be).
    pub const CHANGED: i32 = 2;
    /// Invalid input: nothing was applied.
    pub const INVALID: i32 = 3;
}

const EXIT_CODES: &str = "\
Exit codes:
  0  success, nothing changed
  2  success, something changed (with --check: would change)
  1  a task failed
  3  invalid input (bad YAML, unknown module or argument, template syntax, a path escaping
     the repository): nothing was applied";

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Converge this host once to a playbook in a local directory.
    #[command(after_help = EXIT_CODES)]
    Converge(ConvergeArgs),
    /// Check a playbook (parse, resolve, validate every task) without touching the host.
    #[command(after_help = EXIT_CODES)]
    Validate(PlaybookArgs),
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
    #[command(flatten)]
    pub playbook: PlaybookArgs,
    /// Report what would change without changing anything.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}
