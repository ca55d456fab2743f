//! gitops-agent: converge this host to the Ansible playbook its Git branch describes.
//!
//! This binary is the edge: command line, output, exit codes. The language and the engine live in
//! `gitops-modules`.

mod cli;
#[allow(dead_code)]
mod config;
mod converge;
mod daemon;
#[allow(dead_code)]
mod duration;
#[allow(dead_code)]
mod git;
mod logging;
mod metrics;
mod output;
mod pull;
#[allow(dead_code)]
mod state;
#[allow(dead_code)]
mod status;
#[allow(dead_code)]
mod trust;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let verbosity = (cli.verbose.min(8) as i8) - (cli.quiet.min(8) as i8);
    let style = match cli.command {
        cli::Command::Run(_) => logging::Style::Timestamped,
        _ => logging::Style::Plain,
    };
    logging::init(verbosity, style);
    let code = match cli.command {
        cli::Command::Converge(args) => converge::converge(&args),
        cli::Command::Validate(args) => converge::validate(&args),
        cli::Command::Status(args) => pull::show_status(&args),
        cli::Command::Run(args) => daemon::run(&args),
        cli::Command::Suspend(args) => daemon::suspend::suspend(&args),
        cli::Command::Resume(args) => daemon::suspend::resume(&args),
    };
    ExitCode::from(code as u8)
}
