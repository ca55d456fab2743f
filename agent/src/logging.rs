//! Logging through `tracing`, set up once at start.
//!
//! - Under systemd (stderr is the journal stream named by `JOURNAL_STREAM`), events go straight
//!   to journald with their fields as journal fields (`COMMIT`, `TASK`, `MODULE`, `RESULT`, ...),
//!   so `journalctl -u gitops-agent RESULT=failed` works.
//! - Otherwise the daemon writes timestamped lines to stderr, and the one-shot commands plain
//!   lines (`error: ...`, `warning: ...`, or the message alone), as they always did.
//!
//! The level is `info` for the agent (and `warn` for the libraries it uses); each `-v` raises
//! it (debug, trace), each `-q` lowers it (warn, error). `RUST_LOG`, when set, wins (same
//! syntax as `tracing_subscriber::EnvFilter`, e.g. `RUST_LOG=gitops_agent=debug`).

use std::fmt;
use std::os::fd::AsRawFd;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How the lines look when they do not go to journald.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// One-shot commands: `error: ...`, `warning: ...`, or the message.
    Plain,
    /// The daemon on a terminal: time, level, message, fields.
    Timestamped,
}

/// The filter for `verbosity` (number of `-v` minus number of `-q`), unless `RUST_LOG` is set.
fn filter(verbosity: i8) -> EnvFilter {
    if let Ok(f) = EnvFilter::try_from_env("RUST_LOG") {
        return f;
    }
    let directives = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "warn,gitops_agent=info",
        1 => "info,gitops_agent=debug",
        _ => "debug,gitops_agent=trace",
    };
    EnvFilter::new(directives)
}

/// Whether stderr is the journal stream systemd gave us (`JOURNAL_STREAM=<dev>:<inode>` of
/// the stderr socket), as systemd.exec(5) recommends checking.
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr().as_raw_fd()) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

/// Installs the global subscriber. Safe to call once; later calls do nothing.
pub fn init(verbosity: i8, style: Style) {
    let filter = filter(verbosity);
    if stderr_is_journal() {
        if let Ok(layer) = tracing_journald::layer() {
            let layer = layer
                .with_field_prefix(None)
                .with_syslog_identifier("gitops-agent".to_string());
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(layer)
                .try_init();
            return;
        }
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match style {
        Style::Plain => tracing_subscriber::registry()
            .with(filter)
            .with(fmt.event_format(PlainFormat))
            .try_init(),
        Style::Timestamped => tracing_subscriber::registry()
            .with(filter)
            .with(fmt.with_target(false))
            .try_init(),
    };
}

/// `error: message`, `warning: message`, or the message alone (then any other fields).
struct PlainFormat;

impl<S, N> FormatEvent<S, N> for PlainFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match *event.metadata().level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            _ => {}
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
