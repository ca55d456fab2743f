//! `converge` and `validate`: load a playbook from a directory, validate it, run it.

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use gitops_modules::engine::{Engine, RunOptions};
use gitops_modules::facts::Facts;
use gitops_modules::playbook::{Loader, Playbook, RawVars};
use gitops_modules::report::{RunReport, RunResult};
use gitops_modules::source::{DirSource, RepoPath, Source};
use gitops_modules::template::Templar;
use gitops_modules::yaml;
use minijinja::Value;

use crate::cli::{exit, ConvergeArgs, Format, PlaybookArgs};
use crate::output::{print_json_invalid, TextReporter};

/// The playbook as ansible-pull picks it: `<fqdn>.yml`, `<hostname>.yml`, `local.yml`.
pub fn select_playbook(source: &dyn Source, explicit: Option<&str>) -> Result<RepoPath> {
    if let Some(p) = explicit {
        let path = RepoPath::new(p).map_err(|e| anyhow!("--playbook: {e}"))?;
        return match source.kind(&path)? {
            Some(_) => Ok(path),
            None => Err(anyhow!("playbook `{p}` not found in {}", source.describe())),
        };
    }
    let facts = Facts::gather();
    let name = |k: &str| {
        facts
            .map
            .get(k)
            .and_then(|v| v.as_str().map(str::to_string))
    };
    let mut candidates = Vec::new();
    if let Some(fqdn) = name("fqdn") {
        candidates.push(format!("{fqdn}.yml"));
    }
    if let Some(host) = name("hostname") {
        candidates.push(format!("{host}.yml"));
    }
    candidates.push("local.yml".to_string());
    for c in &candidates {
        if let Ok(path) = RepoPath::new(c) {
            if let Ok(Some(_)) = source.kind(&path) {
                return Ok(path);
            }
        }
    }
    Err(anyhow!(
        "no playbook found in {}: looked for {}",
        source.describe(),
        candidates.join(", ")
    ))
}

pub fn short_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| {
            h.trim()
                .split('.')
                .next()
                .unwrap_or("localhost")
                .to_string()
        })
        .unwrap_or_else(|_| "localhost".to_string())
}

/// `-e` values: `k=v k2=v2`, a JSON/YAML mapping, or `@file`.
pub fn extra_vars(specs: &[String]) -> Result<RawVars> {
    let mut out = RawVars::new();
    for spec in specs {
        let spec = spec.trim();
        let (text, origin) = if let Some(file) = spec.strip_prefix('@') {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("extra vars file {file}"))?;
            (text, file.to_string())
        } else if spec.starts_with('{') {
            (spec.to_string(), "-e".to_string())
        } else {
            for (k, v) in gitops_modules::args::parse_kv(spec, false)
                .map_err(|e| anyhow!("-e {spec}: {e}"))?
            {
                out.insert(k, Value::from(v));
            }
            continue;
        };
        let node = yaml::parse(&Arc::from(origin.as_str()), &text)?;
        let Some(entries) = node.as_map() else {
            return Err(anyhow!("{origin}: extra vars must be a mapping"));
        };
        for e in entries {
            out.insert(e.key.clone(), e.value.to_value());
        }
    }
    Ok(out)
}

struct Loaded {
    source: DirSource,
    playbook: Playbook,
    host_name: String,
    extra_vars: RawVars,
    templar: Arc<Templar>,
}

/// Loads and validates; `Err` carries the message of invalid input.
fn load(args: &PlaybookArgs) -> Result<Loaded, String> {
    let source = DirSource::new(&args.playbook_dir)
        .map_err(|e| format!("playbook directory {}: {e}", args.playbook_dir.display()))?;
    let path = select_playbook(&source, args.playbook.as_deref()).map_err(|e| e.to_string())?;
    let host_name = args.host_name.clone().unwrap_or_else(short_hostname);
    let extra_vars = extra_vars(&args.extra_vars).map_err(|e| format!("{e:#}"))?;
    let templar = Arc::new(Templar::new());
    let playbook = Loader::new(&source, &templar)
        .load(&path, &host_name)
        .map_err(|e| e.to_string())?;
    Ok(Loaded {
        source,
        playbook,
        host_name,
        extra_vars,
        templar,
    })
}

pub fn validate(args: &PlaybookArgs) -> i32 {
    match load(args) {
        Ok(l) => {
            let tasks: usize = l.playbook.plays.len();
            println!(
                "{}: valid ({} play{})",
                l.playbook.file,
                tasks,
                if tasks == 1 { "" } else { "s" }
            );
            exit::OK
        }
        Err(e) => {
            for line in e.lines() {
                eprintln!("error: {line}");
            }
            exit::INVALID
        }
    }
}

pub fn converge(args: &ConvergeArgs) -> i32 {
    let Some(dir) = &args.playbook_dir else {
        return crate::pull::converge_pull(args);
    };
    let playbook_args = PlaybookArgs {
        playbook_dir: dir.clone(),
        playbook: args.playbook.clone(),
        host_name: args.host_name.clone(),
        extra_vars: args.extra_vars.clone(),
    };
    let loaded = match load(&playbook_args) {
        Ok(l) => l,
        Err(e) => {
            report_invalid(args.format, &e);
            return exit::INVALID;
        }
    };
    let report = run_and_print(
        args,
        &loaded.source,
        &loaded.playbook,
        loaded.templar.clone(),
        loaded.extra_vars,
        loaded.host_name,
    );
    exit_code(&report)
}

/// Invalid input: every error on stderr (and the JSON report on stdout with --format json).
pub fn report_invalid(format: Format, e: &str) {
    for line in e.lines() {
        eprintln!("error: {line}");
    }
    if format == Format::Json {
        print_json_invalid(e);
    }
}

/// Runs a loaded playbook, printing as the output format says.
pub fn run_and_print(
    args: &ConvergeArgs,
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

pub fn exit_code(report: &RunReport) -> i32 {
    match report.result {
        RunResult::Ok => exit::OK,
        RunResult::Changed => exit::CHANGED,
        RunResult::Failed => exit::FAILED,
    }
}
