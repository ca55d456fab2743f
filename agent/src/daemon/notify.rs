//! systemd's notification protocol (`Type=notify`): READY=1, STATUS=, WATCHDOG=1, STOPPING=1.
//! Every call is a no-op when `NOTIFY_SOCKET` is not set (not started by systemd).

use std::time::Duration;

use sd_notify::NotifyState;

pub struct Notifier {
    enabled: bool,
    /// Half of `WatchdogSec`, when the unit has a watchdog for this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let mut usec = 0u64;
        let watchdog = (enabled && sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec) / 2);
        Notifier { enabled, watchdog }
    }

    /// How often to ping the watchdog (WatchdogSec/2), if systemd watches this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.enabled {
            if let Err(e) = sd_notify::notify(false, states) {
                tracing::debug!("sd_notify: {e}");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }
}

/// `converged a1b2c3d at 12:03:04, next poll 12:04:05` and what else an operator should see.
pub fn status_line(
    last: Option<&crate::run::pull::ConvergeOutcome>,
    failures: u32,
    next: tokio::time::Instant,
) -> String {
    let now = jiff::Zoned::now();
    let clock = |z: &jiff::Zoned| z.strftime("%H:%M:%S").to_string();
    let wait = next.saturating_duration_since(tokio::time::Instant::now());
    let next_at = jiff::SignedDuration::try_from(wait)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .map(|z| clock(&z))
        .unwrap_or_else(|| "?".into());
    let Some(out) = last else {
        return format!("starting; next poll {next_at}");
    };
    let commit = out
        .commit_applied
        .as_deref()
        .map(|c| &c[..7.min(c.len())])
        .unwrap_or("-");
    let mut line = match (&out.suspended, out.result) {
        (Some(reason), _) => format!("suspended: {reason} (at {commit}), polled {}", clock(&now)),
        (None, Some(r)) => format!("{} {commit} at {}", r.as_str(), clock(&now)),
        (None, None) => format!("up to date at {commit}, polled {}", clock(&now)),
    };
    if failures > 0 {
        line.push_str(&format!("; Git server unreachable ({failures} tries)"));
        if out.offline {
            line.push_str(", enforcing the applied commit");
        }
    }
    if out.status_pending {
        line.push_str("; status push pending");
    }
    line.push_str(&format!(", next poll {next_at}"));
    line
}
