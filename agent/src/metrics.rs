//! Metrics for node_exporter's textfile collector (`metrics_file` in the config; off by
//! default): a small `.prom` file rewritten atomically (temporary file in the same directory,
//! then rename) after every converge and poll, so the collector never reads half a file.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::state::State;

/// What the last poll found, beside what the state records.
#[derive(Debug, Clone, Copy)]
pub struct Poll {
    /// When it ended, in seconds since the Unix epoch.
    pub at: u64,
    /// The fetch reached the Git server.
    pub fetch_ok: bool,
    /// A status commit waits to be pushed.
    pub status_pending: bool,
}

/// A label value as the exposition format wants it.
fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// The text of the metrics file.
pub fn render(state: &State, poll: &Poll) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP gitops_agent_{name} {help}");
        let _ = writeln!(out, "# TYPE gitops_agent_{name} gauge");
        let _ = writeln!(out, "gitops_agent_{name}{value}");
    };
    if let Some(t) = state.last_success {
        gauge(
            "last_success_timestamp_seconds",
            "When the last converge without a failed task ended (Unix time).",
            format!(" {t}"),
        );
    }
    if let Some(ms) = state.last_duration_ms {
        gauge(
            "last_converge_duration_seconds",
            "How long the last run of the playbook took.",
            format!(" {}", ms as f64 / 1000.0),
        );
    }
    if let Some(n) = state.last_changed {
        gauge(
            "last_converge_changed_tasks",
            "Tasks changed by the last run of the playbook.",
            format!(" {n}"),
        );
    }
    if let Some(n) = state.last_failed {
        gauge(
            "last_converge_failed_tasks",
            "Tasks failed in the last run of the playbook.",
            format!(" {n}"),
        );
    }
    let _ = writeln!(
        out,
        "# HELP gitops_agent_drift_events_total Drifted tasks the daemon found, by what it did."
    );
    let _ = writeln!(out, "# TYPE gitops_agent_drift_events_total counter");
    let _ = writeln!(
        out,
        "gitops_agent_drift_events_total{{action=\"corrected\"}} {}",
        state.drift_corrected
    );
    let _ = writeln!(
        out,
        "gitops_agent_drift_events_total{{action=\"reported\"}} {}",
        state.drift_reported
    );
    let mut gauge = |name: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP gitops_agent_{name} {help}");
        let _ = writeln!(out, "# TYPE gitops_agent_{name} gauge");
        let _ = writeln!(out, "gitops_agent_{name}{value}");
    };
    if let Some(c) = &state.last_applied {
        gauge(
            "applied_commit_info",
            "The commit the host is converged to, as a label.",
            format!("{{commit=\"{}\"}} 1", label(c)),
        );
    }
    gauge(
        "last_result_info",
        "The result of the last converge, as a label.",
        format!(
            "{{result=\"{}\"}} 1",
            label(state.last_result.as_deref().unwrap_or("none"))
        ),
    );
    gauge(
        "suspended",
        "1 while converging is suspended (gitops-agent suspend).",
        format!(" {}", u8::from(state.suspended)),
    );
    gauge(
        "last_poll_timestamp_seconds",
        "When the agent last polled its branch (Unix time).",
        format!(" {}", poll.at),
    );
    gauge(
        "last_fetch_success",
        "1 if the last fetch reached the Git server.",
        format!(" {}", u8::from(poll.fetch_ok)),
    );
    gauge(
        "status_pending",
        "1 while a status commit waits to be pushed.",
        format!(" {}", u8::from(poll.status_pending)),
    );
    out
}

/// Writes the metrics file atomically.
pub fn write(path: &Path, state: &State, poll: &Poll) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".gitops-agent.")
        .suffix(".prom.tmp")
        .tempfile_in(dir)?;
    tmp.write_all(render(state, poll).as_bytes())?;
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_writes_atomically() {
        let state = State {
            last_applied: Some("0123456789abcdef0123456789abcdef01234567".into()),
            last_result: Some("changed".into()),
            last_success: Some(1_700_000_000),
            last_duration_ms: Some(1500),
            last_changed: Some(3),
            last_failed: Some(0),
            suspended: true,
            ..State::default()
        };
        let poll = Poll {
            at: 1_700_000_060,
            fetch_ok: false,
            status_pending: true,
        };
        let text = render(&state, &poll);
        for line in [
            "gitops_agent_last_success_timestamp_seconds 1700000000",
            "gitops_agent_last_converge_duration_seconds 1.5",
            "gitops_agent_last_converge_changed_tasks 3",
            "gitops_agent_last_converge_failed_tasks 0",
            "gitops_agent_applied_commit_info{commit=\"0123456789abcdef0123456789abcdef01234567\"} 1",
            "gitops_agent_last_result_info{result=\"changed\"} 1",
            "gitops_agent_suspended 1",
            "gitops_agent_last_poll_timestamp_seconds 1700000060",
            "gitops_agent_last_fetch_success 0",
            "gitops_agent_status_pending 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.contains("gitops_agent_drift_events_total{action=\"corrected\"} 0\n"));
        // Every metric has its HELP and TYPE.
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(['{', ' ']).next().unwrap())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("# TYPE")).count(),
            samples
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gitops-agent.prom");
        write(&path, &state, &poll).unwrap();
        write(&path, &State::default(), &poll).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("gitops-agent.prom")]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("gitops_agent_suspended 0"), "{text}");
        assert!(!text.contains("last_success"), "{text}");
    }
}
