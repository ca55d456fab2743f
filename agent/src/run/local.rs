//! `converge --playbook-dir` and `validate`: load a playbook from a directory, validate it, run
//! it.

use std::sync::Arc;

use gitops_modules::engine::{Engine, RunOptions};
use gitops_modules::playbook::{Playbook, RawVars};
use gitops_modules::report::RunReport;
use gitops_modules::source::{DirSource, Source};
use gitops_modules::template::Templar;

use super::playbook::{exit_code, extra_vars, load_playbook};
use super::playbook::{ExtraVarsError, PlaybookError};
use crate::cli::{exit, ConvergeArgs, Format, PlaybookArgs, ValidateArgs};
use crate::output::{report_invalid, TextReporter};

/// A playbook directory that cannot be run: every message is for the user.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("playbook directory {}: {source}", dir.display())]
    Dir {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Playbook(#[from] PlaybookError),
    #[error(transparent)]
    ExtraVars(#[from] ExtraVarsError),
}

struct Loaded {
    source: DirSource,
    playbook: Playbook,
    host_name: String,
    extra_vars: RawVars,
    templar: Arc<Templar>,
}

/// Loads and validates.
fn load(args: &PlaybookArgs) -> Result<Loaded, LocalError> {
    let source = DirSource::new(&args.playbook_dir).map_err(|source| LocalError::Dir {
        dir: args.playbook_dir.clone(),
        source,
    })?;
    let extra_vars = extra_vars(&args.extra_vars)?;
    let templar = Arc::new(Templar::new());
    let playbook = load_playbook(
        &source,
        &templar,
        args.playbook.as_deref(),
        args.inventory.as_deref(),
        args.host_name.as_deref(),
        &extra_vars,
    )?;
    let host_name = playbook.host.name.clone();
    Ok(Loaded {
        source,
        playbook,
        host_name,
        extra_vars,
        templar,
    })
}

/// `gitops-agent validate`. Returns the exit code: 0 when valid (unsupported tasks are only
/// warnings), 1 with `--strict` when there are warnings, 3 when invalid.
pub fn validate(args: &ValidateArgs) -> i32 {
    match load(&args.playbook) {
        Ok(l) => {
            // (the warnings were printed by load_playbook)
            let plays: usize = l.playbook.plays.len();
            let warnings = l.playbook.warnings.len();
            let via = l.playbook.bridgeable.len();
            println!(
                "{}: valid ({} play{}{}{})",
                l.playbook.file,
                plays,
                if plays == 1 { "" } else { "s" },
                match warnings {
                    0 => String::new(),
                    1 => ", 1 task that fails if reached".to_string(),
                    n => format!(", {n} tasks that fail if reached"),
                },
                match via {
                    0 => String::new(),
                    n => format!(", {n} of them via ansible with `ansible_modules: auto`"),
                }
            );
            if args.strict && warnings > 0 {
                exit::FAILED
            } else {
                exit::OK
            }
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            exit::INVALID
        }
    }
}

/// The tasks the agent does not implement, on stderr: each fails only if it runs, unless it
/// is a module task the bridge to ansible-core runs (`ansible_modules: auto`).
pub fn print_warnings(playbook: &Playbook) {
    for w in &playbook.warnings {
        // (The error names the module already.)
        match playbook.bridgeable.iter().find(|(e, _)| e == w) {
            Some(_) => eprintln!(
                "warning: {w} (via ansible: with `ansible_modules: auto` the task runs \
                 ansible-core's module of that name, else it fails if it runs)"
            ),
            None => eprintln!("warning: {w} (the task fails if it runs)"),
        }
    }
}

/// `gitops-agent converge --playbook-dir DIR`. Returns the exit code.
pub fn converge(args: &ConvergeArgs, dir: &std::path::Path) -> i32 {
    let playbook_args = PlaybookArgs {
        playbook_dir: dir.to_path_buf(),
        playbook: args.playbook.clone(),
        inventory: args.inventory.clone(),
        host_name: args.host_name.clone(),
        extra_vars: args.extra_vars.clone(),
    };
    let loaded = match load(&playbook_args) {
        Ok(l) => l,
        Err(e) => {
            report_invalid(args.format, &e.to_string());
            return exit::INVALID;
        }
    };
    // A local converge reads no configuration file: the bridge's keys come from their flags.
    let mut config = crate::config::Config::default();
    match crate::config::ConfigOverrides::from_pairs(&args.pull.keys.values) {
        Ok(o) => config.apply(o),
        Err(e) => {
            report_invalid(args.format, &e.to_string());
            return exit::INVALID;
        }
    }
    let report = run_and_print(
        args,
        config.ansible_bridge(),
        &loaded.source,
        &loaded.playbook,
        loaded.templar.clone(),
        loaded.extra_vars,
        loaded.host_name,
    );
    if let Some(by) = &report.reboot_owed {
        eprintln!("note: a reboot is owed by {by}; a local converge never reboots");
    }
    exit_code(&report)
}

/// Runs a loaded playbook, printing as the output format says.
fn run_and_print(
    args: &ConvergeArgs,
    ansible: Option<Arc<gitops_modules::bridge::Bridge>>,
    source: &dyn Source,
    playbook: &Playbook,
    templar: Arc<Templar>,
    extra_vars: RawVars,
    host_name: String,
) -> RunReport {
    let opts = RunOptions {
        check: args.check,
        diff: args.diff,
        tags: args.tags.clone(),
        skip_tags: args.skip_tags.clone(),
        extra_vars,
        inventory_hostname: host_name,
        drift: None,
        // Only when given (`--state-dir`): a local converge keeps no state of its own.
        state_dir: args
            .pull
            .keys
            .values
            .iter()
            .rev()
            .find(|(k, _)| *k == "state_dir")
            .map(|(_, v)| std::path::PathBuf::from(v)),
        ansible,
    };
    let mut reporter = TextReporter::new(args.format == Format::Text, args.diff);
    let report = Engine::new(templar, source, opts, &mut reporter).run(playbook);
    match args.format {
        Format::Text => reporter.recap(&report),
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot write the report: {e}"),
        },
    }
    report
}
