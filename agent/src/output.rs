//! What a converge prints: a line per task as it finishes, diffs, and a recap.

use std::io::Write;

use gitops_modules::report::{Reporter, RunReport, Status, TaskReport};

pub struct TextReporter {
    enabled: bool,
    diff: bool,
}

impl TextReporter {
    pub fn new(enabled: bool, diff: bool) -> TextReporter {
        TextReporter { enabled, diff }
    }

    pub fn recap(&self, report: &RunReport) {
        let s = &report.stats;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "\nRECAP{}: ok={} changed={} failed={} skipped={} rescued={} ignored={} not-run={}",
            if report.check_mode {
                " (check mode)"
            } else {
                ""
            },
            s.ok,
            s.changed,
            s.failed,
            s.skipped,
            s.rescued,
            s.ignored,
            s.not_run
        );
    }
}

impl Reporter for TextReporter {
    fn play_start(&mut self, name: &str) {
        if self.enabled {
            println!("PLAY [{name}]");
        }
    }

    fn task_retry(&mut self, task: &str, left: i64) {
        if self.enabled {
            println!("FAILED - RETRYING: {task} ({left} retries left).");
        }
    }

    fn task_done(&mut self, t: &TaskReport) {
        if !self.enabled {
            return;
        }
        let mut out = std::io::stdout().lock();
        let where_ = format!("{}:{}", t.file, t.line);
        let handler = if t.handler { " (handler)" } else { "" };
        let via = match &t.via {
            Some(v) => format!(" (via {v})"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<8} {}{}{} [{}]",
            format!("{}:", t.status.as_str()),
            t.name,
            handler,
            via,
            where_
        );
        for w in &t.warnings {
            let _ = writeln!(out, "  [WARNING]: {w}");
        }
        for item in &t.items {
            let _ = writeln!(
                out,
                "  {:<8} item={}",
                format!("{}:", item.status.as_str()),
                item.item
            );
        }
        if let Some(o) = &t.output {
            let _ = writeln!(out, "  {o}");
        }
        if matches!(t.status, Status::Failed | Status::Ignored) {
            if let Some(msg) = &t.msg {
                let _ = writeln!(out, "  msg: {msg}");
            }
        }
        if self.diff {
            for d in &t.diff {
                let _ = write!(out, "{d}");
            }
        }
    }
}

/// The JSON report of a run that never started because its input is invalid.
pub fn print_json_invalid(error: &str) {
    let doc = serde_json::json!({
        "result": "invalid",
        "tasks": [],
        "stats": {},
        "error": error,
    });
    println!("{doc}");
}

/// Invalid input: every error on stderr (and the JSON report on stdout with --format json).
pub fn report_invalid(format: crate::cli::Format, e: &str) {
    for line in e.lines() {
        eprintln!("error: {line}");
    }
    if format == crate::cli::Format::Json {
        print_json_invalid(e);
    }
}
