//! `wait_for` and `pause`: tasks whose whole effect is time passing (never `changed`).
//!
//! `wait_for` as ansible-core 2.19's module: after `delay`, until `timeout`, every `sleep`
//! seconds, checks a TCP port (`started`: it accepts a connection, and sends text matching
//! `search_regex` if given; `stopped`: it refuses) or a path (`present`/`started`: it exists,
//! and its content matches `search_regex` if given; `absent`: it is gone). Neither port nor
//! path: it sleeps `timeout` seconds. Skipped in check mode, as ansible-core's is.
//!
//! `pause` with `seconds` or `minutes` sleeps; a `prompt` (or no duration, which waits for a key)
//! fails the task: the agent has no terminal to ask on.

use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use minijinja::Value;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Check, Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct WaitForModule;

static WAIT_FOR: ArgSpec = ArgSpec {
    module: "wait_for",
    args: &[
        ArgDef::new("host", ArgType::Str),
        ArgDef::new("port", ArgType::Int),
        ArgDef::new("path", ArgType::Path),
        ArgDef::new("search_regex", ArgType::Str),
        ArgDef::new("state", ArgType::Str)
            .choices(&["started", "stopped", "present", "absent", "drained"]),
        ArgDef::new("delay", ArgType::Int),
        ArgDef::new("timeout", ArgType::Int),
        ArgDef::new("sleep", ArgType::Int),
        ArgDef::new("connect_timeout", ArgType::Int),
        ArgDef::new("msg", ArgType::Str),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for WaitForModule {
    fn spec(&self) -> &'static ArgSpec {
        &WAIT_FOR
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let state = args.str("state").unwrap_or_else(|| "started".into());
        let port = args.int("port");
        let path = args.str("path").map(PathBuf::from);
        if port.is_some() && path.is_some() {
            return Err(ModuleError::new(
                "port and path parameter can not both be passed to wait_for",
            ));
        }
        if state == "drained" {
            return Err(ModuleError::new(
                "wait_for: state=drained is not supported by the agent (started, stopped, \
                 present and absent are)",
            ));
        }
        if state == "stopped" && path.is_some() {
            return Err(ModuleError::new(
                "state=stopped should only be used for checking a port in the wait_for module",
            ));
        }
        let search = match args.str("search_regex") {
            Some(r) => Some(
                regex::bytes::Regex::new(&r)
                    .map_err(|e| ModuleError::new(format!("Invalid regular expression: {e}")))?,
            ),
            None => None,
        };
        let secs = |k: &str, d: i64| Duration::from_secs(args.int(k).unwrap_or(d).max(0) as u64);
        Ok(Box::new(WaitFor {
            host: args.str("host").unwrap_or_else(|| "127.0.0.1".into()),
            port,
            path,
            search_regex: args.str("search_regex"),
            search,
            state,
            delay: secs("delay", 0),
            timeout: secs("timeout", 300),
            sleep: secs("sleep", 1),
            connect_timeout: secs("connect_timeout", 5),
            msg: args.str("msg"),
            host_state: ctx.host.clone(),
            check_mode: ctx.check_mode,
        }))
    }
}

struct WaitFor {
    host: String,
    port: Option<i64>,
    path: Option<PathBuf>,
    search_regex: Option<String>,
    search: Option<regex::bytes::Regex>,
    state: String,
    delay: Duration,
    timeout: Duration,
    sleep: Duration,
    connect_timeout: Duration,
    msg: Option<String>,
    /// For the owner and group names of the path's facts.
    host_state: std::sync::Arc<crate::host::HostState>,
    check_mode: bool,
}

/// What a successful probe found (the regex's groups).
#[derive(Default)]
struct Found {
    groups: Vec<Value>,
    named: Vec<(String, Value)>,
}

impl WaitFor {
    fn addrs(&self, port: i64) -> Vec<SocketAddr> {
        (self.host.as_str(), port as u16)
            .to_socket_addrs()
            .map(|a| a.collect())
            .unwrap_or_default()
    }

    fn connect(&self, port: i64, limit: Duration) -> Option<TcpStream> {
        let t = self
            .connect_timeout
            .min(limit)
            .max(Duration::from_millis(100));
        self.addrs(port)
            .iter()
            .find_map(|a| TcpStream::connect_timeout(a, t).ok())
    }

    fn matched(&self, data: &[u8]) -> Option<Found> {
        let Some(re) = &self.search else {
            return Some(Found::default());
        };
        let caps = re.captures(data)?;
        let text = |m: Option<regex::bytes::Match>| match m {
            Some(m) => Value::from(String::from_utf8_lossy(m.as_bytes()).into_owned()),
            None => Value::from(()),
        };
        let groups = (1..caps.len()).map(|i| text(caps.get(i))).collect();
        let named = re
            .capture_names()
            .flatten()
            .map(|n| (n.to_string(), text(caps.name(n))))
            .collect();
        Some(Found { groups, named })
    }

    /// One look: `Some` when the wait is over.
    fn probe(&self, end: Instant) -> Result<Option<Found>, ModuleError> {
        let want_gone = matches!(self.state.as_str(), "absent" | "stopped");
        if let Some(path) = &self.path {
            return match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(want_gone.then(Found::default))
                }
                Err(e) if !want_gone => {
                    Err(ModuleError::new(self.msg.clone().unwrap_or_else(|| {
                        format!("Failed to stat {}, {e}", path.display())
                    })))
                }
                Err(_) => Ok(Some(Found::default())),
                Ok(_) if want_gone => Ok(None),
                Ok(_) => Ok(std::fs::read(path).ok().and_then(|d| self.matched(&d))),
            };
        }
        let Some(port) = self.port else {
            return Ok(Some(Found::default()));
        };
        let left = end.saturating_duration_since(Instant::now());
        let Some(mut stream) = self.connect(port, left) else {
            return Ok(want_gone.then(Found::default));
        };
        if want_gone {
            return Ok(None);
        }
        if self.search.is_none() {
            return Ok(Some(Found::default()));
        }
        let mut data = Vec::new();
        let mut buf = [0u8; 1024];
        while Instant::now() < end {
            let left = end.saturating_duration_since(Instant::now());
            let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(10))));
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    data.extend_from_slice(&buf[..n]);
                    if let Some(f) = self.matched(&data) {
                        return Ok(Some(f));
                    }
                }
            }
        }
        Ok(None)
    }

    fn timeout_msg(&self) -> String {
        if let Some(m) = &self.msg {
            return m.clone();
        }
        let target = match (&self.path, self.port) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(port)) => format!("{}:{port}", self.host),
            (None, None) => String::new(),
        };
        match (self.state.as_str(), &self.path, &self.search_regex) {
            ("stopped", _, _) => format!("Timeout when waiting for {target} to stop."),
            ("absent", _, _) => format!("Timeout when waiting for {target} to be absent."),
            (_, _, Some(re)) => format!("Timeout when waiting for search string {re} in {target}"),
            (_, Some(_), None) => format!("Timeout when waiting for file {target}"),
            (_, None, None) => format!("Timeout when waiting for {target}"),
        }
    }
}

impl Resource for WaitFor {
    fn check(&self) -> Result<Check, ModuleError> {
        if self.check_mode {
            // ansible-core's wait_for does not declare check mode support: skipped.
            let out = Outcome::default().with("skipped", true).with(
                "msg",
                "remote module (wait_for) does not support check mode",
            );
            return Ok(Check::new(Vec::new(), out));
        }
        let start = Instant::now();
        std::thread::sleep(self.delay);
        let found = if self.port.is_none() && self.path.is_none() {
            std::thread::sleep(self.timeout);
            Found::default()
        } else {
            let end = start + self.timeout;
            loop {
                if Instant::now() >= end {
                    let mut out = Outcome::default()
                        .with("elapsed", start.elapsed().as_secs())
                        .with("msg", self.timeout_msg());
                    out.failed = Some(self.timeout_msg());
                    return Ok(Check::new(Vec::new(), out));
                }
                if let Some(f) = self.probe(end)? {
                    break f;
                }
                std::thread::sleep(self.sleep);
            }
        };
        let mut out = Outcome::default()
            .with("state", self.state.clone())
            .with("port", Value::from(self.port))
            .with("search_regex", Value::from(self.search_regex.clone()))
            .with("match_groups", found.groups)
            .with("match_groupdict", Value::from_pairs(found.named))
            .with(
                "path",
                Value::from(self.path.as_ref().map(|p| p.display().to_string())),
            )
            .with("elapsed", start.elapsed().as_secs());
        // As ansible-core's add_path_info: a result with a path gets its facts (`state: file`).
        if let Some(p) = &self.path {
            crate::fsops::path_facts_at(&mut out, p, self.host_state.ids());
        }
        Ok(Check::new(Vec::new(), out))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        Ok(check.outcome)
    }
}

pub struct PauseModule;

static PAUSE: ArgSpec = ArgSpec {
    module: "pause",
    args: &[
        ArgDef::new("seconds", ArgType::Int),
        ArgDef::new("minutes", ArgType::Int),
        ArgDef::new("prompt", ArgType::Str),
        ArgDef::new("echo", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[&["minutes", "seconds"]],
    required_one_of: &[],
};

impl Module for PauseModule {
    fn spec(&self) -> &'static ArgSpec {
        &PAUSE
    }

    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        if args.str("prompt").is_some() {
            return Err(ModuleError::new(
                "pause: prompt is not supported: the agent runs without a terminal to ask on \
                 (use seconds or minutes)",
            ));
        }
        let (secs, unit) = match (args.int("minutes"), args.int("seconds")) {
            (Some(m), _) => (m * 60, "minutes"),
            (None, Some(s)) => (s, "seconds"),
            (None, None) => {
                return Err(ModuleError::new(
                    "pause without seconds or minutes waits for a key press: not possible in \
                     the agent (give seconds or minutes)",
                ))
            }
        };
        Ok(Box::new(Pause {
            seconds: secs.max(1) as u64,
            unit,
            echo: args.bool_or("echo", true),
        }))
    }
}

struct Pause {
    seconds: u64,
    unit: &'static str,
    echo: bool,
}

impl Resource for Pause {
    fn check(&self) -> Result<Check, ModuleError> {
        let fmt = |t: jiff::Zoned| t.strftime("%Y-%m-%d %H:%M:%S%.6f").to_string();
        let start = jiff::Zoned::now();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(self.seconds));
        let took = t0.elapsed().as_secs_f64();
        let shown = if self.unit == "minutes" {
            took / 60.0
        } else {
            took
        };
        let out = Outcome::default()
            .with("rc", 0)
            .with("stderr", "")
            .with(
                "stdout",
                format!(
                    "Paused for {} {}",
                    (shown * 100.0).round() / 100.0,
                    self.unit
                ),
            )
            .with("start", fmt(start))
            .with("stop", fmt(jiff::Zoned::now()))
            .with("delta", took as i64)
            .with("echo", self.echo)
            .with("user_input", "");
        Ok(Check::new(Vec::new(), out))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        Ok(check.outcome)
    }
}
