//! gitops-agent: converge this host to the Ansible playbook its Git branch describes.
//!
//! This binary is the edge: command line, output, exit codes. The work lives in the library
//! (`src/lib.rs`); the language and the engine in `gitops-modules`.

use std::process::ExitCode;

use clap::Parser;
use gitops_agent::{cli, daemon, logging, run, status};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let verbosity = (cli.verbose.min(8) as i8) - (cli.quiet.min(8) as i8);
    let style = match cli.command {
        cli::Command::Run(_) | cli::Command::DaemonWorker => logging::Style::Timestamped,
        _ => logging::Style::Plain,
    };
    logging::init(verbosity, style);
    let code = match cli.command {
        cli::Command::Converge(args) => run::converge(&args),
        cli::Command::Validate(args) => run::local::validate(&args),
        cli::Command::Status(args) => status::show(&args),
        cli::Command::Run(args) => daemon::exec_daemon(&args, verbosity),
        cli::Command::DaemonWorker => daemon::worker::main(),
        cli::Command::Suspend(args) => daemon::suspend::suspend(&args),
        cli::Command::Resume(args) => daemon::suspend::resume(&args),
    };
    ExitCode::from(code as u8)
}
