//! The `command` and `shell` modules, as ansible-core 2.19's `command.py`:
//!
//! - `command` splits its text like Python's `shlex.split` and runs the program directly (no
//!   shell), expanding `~` and `$VAR`/`${VAR}` in each word (`expand_argument_vars`, default
//!   yes); `argv` gives the words as a list. `shell` runs `/bin/sh -c <text>` (or
//!   `<executable> -c <text>`).
//! - `creates`/`removes` are glob patterns; a relative one is resolved in `chdir`. When they
//!   say there is nothing to do: not changed, `rc` 0, `msg` "Did not run command since '<x>'
//!   exists" ("Would not ..." in check mode), `stdout` "skipped, since <x> exists".
//! - Check mode: with `creates`/`removes` given (and the command due), the task reports
//!   changed with "Command would have run if not in check mode"; without them it is skipped.
//! - A non-zero exit fails the task with "non-zero return code" and counts as changed.
//! - Results: `cmd`, `rc`, `stdout`, `stderr` (trailing newlines stripped), `stdout_lines`,
//!   `stderr_lines`, `start`, `end`, `delta` (Python's datetime formats), `msg`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use minijinja::Value;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::fsops::shlex_split;
use crate::resource::{
    Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};

pub struct CommandModule;
pub struct ShellModule;

static COMMAND: ArgSpec = ArgSpec {
    module: "command",
    args: &[
        ArgDef::new("cmd", ArgType::Str),
        ArgDef::new("argv", ArgType::List),
        ArgDef::new("chdir", ArgType::Path),
        ArgDef::new("creates", ArgType::Path),
        ArgDef::new("removes", ArgType::Path),
        ArgDef::new("stdin", ArgType::Str),
        ArgDef::new("stdin_add_newline", ArgType::Bool),
        ArgDef::new("strip_empty_ends", ArgType::Bool),
        ArgDef::new("expand_argument_vars", ArgType::Bool),
    ],
    free_form: true,
    mutually_exclusive: &[&["cmd", "argv"]],
    required_one_of: &[],
};

static SHELL: ArgSpec = ArgSpec {
    module: "shell",
    args: &[
        ArgDef::new("cmd", ArgType::Str),
        ArgDef::new("chdir", ArgType::Path),
        ArgDef::new("creates", ArgType::Path),
        ArgDef::new("removes", ArgType::Path),
        ArgDef::new("executable", ArgType::Path),
        ArgDef::new("stdin", ArgType::Str),
        ArgDef::new("stdin_add_newline", ArgType::Bool),
        ArgDef::new("strip_empty_ends", ArgType::Bool),
    ],
    free_form: true,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for CommandModule {
    fn spec(&self) -> &'static ArgSpec {
        &COMMAND
    }
    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        prepare(args, ctx, false)
    }
}

impl Module for ShellModule {
    fn spec(&self) -> &'static ArgSpec {
        &SHELL
    }
    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        prepare(args, ctx, true)
    }
}

fn prepare(
    args: &Args,
    ctx: &ModuleContext,
    shell: bool,
) -> Result<Box<dyn Resource>, ModuleError> {
    let text = args
        .raw_params()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| args.str("cmd"));
    let given = [text.is_some(), args.has("argv")]
        .iter()
        .filter(|b| **b)
        .count();
    if args.raw_params().is_some_and(|s| !s.trim().is_empty()) && args.has("cmd") {
        return Err(ModuleError::new(
            "parameters are mutually exclusive: _raw_params|cmd|argv",
        ));
    }
    if given > 1 {
        return Err(ModuleError::new(
            "parameters are mutually exclusive: _raw_params|cmd|argv",
        ));
    }
    let env: Vec<(String, String)> = ctx.env.to_vec();
    let expand = args.bool_or("expand_argument_vars", true);
    let (program, display): (Vec<String>, Value) = if shell {
        let Some(text) = text else {
            return Err(ModuleError::new("no command given"));
        };
        let exe = args.str("executable").unwrap_or_else(|| "/bin/sh".into());
        (vec![exe, "-c".into(), text.clone()], Value::from(text))
    } else {
        let words = match (text, args.list_str("argv")) {
            (Some(t), _) => shlex_split(&t).map_err(ModuleError::new)?,
            (None, Some(argv)) => argv,
            (None, None) => Vec::new(),
        };
        if words.is_empty() {
            return Err(ModuleError::new("no command given"));
        }
        let display = Value::from(
            words
                .iter()
                .map(|w| Value::from(w.as_str()))
                .collect::<Vec<_>>(),
        );
        let words = if expand {
            words.iter().map(|w| expand_word(w, &env)).collect()
        } else {
            words
        };
        (words, display)
    };
    let chdir = args.str("chdir").map(PathBuf::from);
    let resolve = |p: String| -> String {
        match &chdir {
            Some(d) if !p.starts_with('/') => d.join(&p).display().to_string(),
            _ => p,
        }
    };
    let creates = args.str("creates").map(|c| (c.clone(), resolve(c)));
    let removes = args.str("removes").map(|c| (c.clone(), resolve(c)));
    Ok(Box::new(Cmd {
        program,
        display,
        chdir,
        creates,
        removes,
        stdin: args.str("stdin").map(|s| {
            if args.bool_or("stdin_add_newline", true) {
                format!("{s}\n")
            } else {
                s
            }
        }),
        strip: args.bool_or("strip_empty_ends", true),
        env,
        check_mode: ctx.check_mode,
    }))
}

/// Python's `os.path.expanduser(os.path.expandvars(word))`.
fn expand_word(word: &str, env: &[(String, String)]) -> String {
    let lookup = |name: &str| -> Option<String> {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    };
    let mut out = String::new();
    let b = word.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
            if b.get(i + 1) == Some(&b'{') {
                if let Some(end) = word[i + 2..].find('}') {
                    let name = &word[i + 2..i + 2 + end];
                    if !name.is_empty() && name.bytes().all(is_name) {
                        if let Some(v) = lookup(name) {
                            out.push_str(&v);
                            i = i + 2 + end + 1;
                            continue;
                        }
                    }
                }
            } else {
                let mut j = i + 1;
                while j < b.len() && is_name(b[j]) {
                    j += 1;
                }
                if j > i + 1 {
                    if let Some(v) = lookup(&word[i + 1..j]) {
                        out.push_str(&v);
                        i = j;
                        continue;
                    }
                }
            }
        }
        let ch = word[i..].chars().next().unwrap_or('$');
        out.push(ch);
        i += ch.len_utf8();
    }
    if out == "~" || out.starts_with("~/") {
        if let Some(home) = lookup("HOME") {
            return format!("{home}{}", &out[1..]);
        }
    }
    out
}

/// Whether a glob pattern (Python's `glob.glob`: `*`, `?`, `[...]`, no match of a leading dot
/// by wildcards) matches at least one path.
fn glob_exists(pattern: &str) -> bool {
    if !pattern.contains(['*', '?', '[']) {
        return std::fs::symlink_metadata(pattern).is_ok();
    }
    let absolute = pattern.starts_with('/');
    let mut bases: Vec<PathBuf> = vec![if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::from("")
    }];
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for (n, part) in parts.iter().enumerate() {
        let last = n + 1 == parts.len();
        let mut next = Vec::new();
        for base in &bases {
            if !part.contains(['*', '?', '[']) {
                let p = base.join(part);
                if (last && std::fs::symlink_metadata(&p).is_ok()) || p.is_dir() {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && !part.starts_with('.') {
                    continue;
                }
                if fnmatch(part.as_bytes(), name.as_bytes()) {
                    let p = base.join(&name);
                    if last || p.is_dir() {
                        next.push(p);
                    }
                }
            }
        }
        bases = next;
        if bases.is_empty() {
            return false;
        }
    }
    !bases.is_empty()
}

/// `fnmatch` for one path component.
pub(crate) fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|i| fnmatch(&pat[1..], &name[i..])),
        Some(b'?') => !name.is_empty() && fnmatch(&pat[1..], &name[1..]),
        Some(b'[') => {
            let Some(close) = pat[1..]
                .iter()
                .skip(1)
                .position(|&c| c == b']')
                .map(|p| p + 2)
            else {
                return name.first() == Some(&b'[') && fnmatch(&pat[1..], &name[1..]);
            };
            let Some(&c) = name.first() else { return false };
            let mut set = &pat[1..close];
            let negate = matches!(set.first(), Some(b'!'));
            if negate {
                set = &set[1..];
            }
            let mut found = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    found |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    found |= set[i] == c;
                    i += 1;
                }
            }
            found != negate && fnmatch(&pat[close + 1..], &name[1..])
        }
        Some(&p) => name.first() == Some(&p) && fnmatch(&pat[1..], &name[1..]),
    }
}

struct Cmd {
    program: Vec<String>,
    /// `cmd` as Ansible reports it: the word list for `command`, the text for `shell`.
    display: Value,
    chdir: Option<PathBuf>,
    /// (as written, resolved against chdir)
    creates: Option<(String, String)>,
    removes: Option<(String, String)>,
    stdin: Option<String>,
    strip: bool,
    env: Vec<(String, String)>,
    check_mode: bool,
}

fn lines(s: &str) -> Value {
    // Python's str.splitlines() on the common line ends.
    Value::from(
        s.lines()
            .map(|l| Value::from(l.strip_suffix('\r').unwrap_or(l)))
            .collect::<Vec<_>>(),
    )
}

impl Cmd {
    fn result(
        &self,
        rc: Value,
        stdout: &str,
        stderr: &str,
        times: Option<(String, String, String)>,
        msg: &str,
    ) -> Outcome {
        let (start, end, delta) = match times {
            Some((s, e, d)) => (Value::from(s), Value::from(e), Value::from(d)),
            None => (Value::from(()), Value::from(()), Value::from(())),
        };
        Outcome::default()
            .with("stdout", stdout)
            .with("stderr", stderr)
            .with("rc", rc)
            .with("cmd", self.display.clone())
            .with("start", start)
            .with("end", end)
            .with("delta", delta)
            .with("msg", msg)
            .with("stdout_lines", lines(stdout))
            .with("stderr_lines", lines(stderr))
    }

    /// The guard's verdict: `Some(outcome)` when the command must not run.
    fn guard(&self) -> Option<Outcome> {
        let verb = if self.check_mode { "Would" } else { "Did" };
        if let Some((c, resolved)) = &self.creates {
            if glob_exists(resolved) {
                let mut out = self.result(
                    Value::from(0),
                    &format!("skipped, since {c} exists"),
                    "",
                    None,
                    &format!("{verb} not run command since '{c}' exists"),
                );
                out.changed = Some(false);
                return Some(out);
            }
        }
        if let Some((r, resolved)) = &self.removes {
            if !glob_exists(resolved) {
                let mut out = self.result(
                    Value::from(0),
                    &format!("skipped, since {r} does not exist"),
                    "",
                    None,
                    &format!("{verb} not run command since '{r}' does not exist"),
                );
                out.changed = Some(false);
                return Some(out);
            }
        }
        None
    }

    fn describe(&self) -> String {
        match self.display.as_str() {
            Some(s) => s.to_string(),
            None => self.program.join(" "),
        }
    }
}

/// Python's `str(datetime.now())`: `2025-01-31 12:34:56.123456` (local time).
fn py_datetime(t: SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S.%6f")
            .to_string(),
        Err(_) => String::new(),
    }
}

/// Python's `str(timedelta)`: `0:00:00.003044`.
fn py_delta(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let micros = d.subsec_micros();
    let base = format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
    if micros == 0 {
        base
    } else {
        format!("{base}.{micros:06}")
    }
}

impl Resource for Cmd {
    fn check(&self) -> Result<Check, ModuleError> {
        // Ansible changes into `chdir` before anything else, in check mode too.
        if let Some(d) = &self.chdir {
            if !Path::new(d).is_dir() {
                return Err(ModuleError::new(format!(
                    "Unable to change directory before execution: [Errno 2] No such file or directory: '{}'",
                    Path::new(d).display()
                )));
            }
        }
        if let Some(out) = self.guard() {
            return Ok(Check::new(Vec::new(), out));
        }
        // Shown only in check mode (when the guards make the task checkable).
        let outcome = self.result(
            Value::from(0),
            "",
            "",
            None,
            "Command would have run if not in check mode",
        );
        Ok(Check::new(
            vec![Change::Run {
                command: self.describe(),
            }],
            outcome,
        ))
    }

    fn supports_check_mode(&self) -> bool {
        // Ansible: with creates/removes the check-mode run reports "changed"; without, skipped.
        self.creates.is_some() || self.removes.is_some()
    }

    fn apply(&self, _check: Check) -> Result<Outcome, ModuleError> {
        let mut cmd = Command::new(&self.program[0]);
        cmd.args(&self.program[1..]);
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(d) = &self.chdir {
            cmd.current_dir(d);
        }
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = SystemTime::now();
        let clock = std::time::Instant::now();
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                if let Some(d) = &self.chdir {
                    if !d.is_dir() {
                        let mut out = self.result(
                            Value::from(()),
                            "",
                            "",
                            None,
                            "Unable to change directory before execution.",
                        );
                        out.failed = Some("Unable to change directory before execution.".into());
                        out.changed = Some(false);
                        return Ok(out);
                    }
                }
                let code = e.raw_os_error().unwrap_or(2);
                let msg = format!(
                    "[Errno {code}] {}: b'{}'",
                    std::io::Error::from_raw_os_error(code)
                        .to_string()
                        .split(" (os error")
                        .next()
                        .unwrap_or_default(),
                    self.program[0]
                );
                let mut out = self.result(Value::from(code), "", "", None, &msg);
                out.failed = Some(msg);
                out.changed = Some(false);
                return Ok(out);
            }
        };
        let mut child = child;
        if let (Some(input), Some(mut pipe)) = (&self.stdin, child.stdin.take()) {
            let input = input.clone();
            // Feed stdin from a thread so a command that writes a lot first cannot deadlock.
            std::thread::spawn(move || {
                let _ = pipe.write_all(input.as_bytes());
            });
        }
        let output = child.wait_with_output()?;
        let end = SystemTime::now();
        let delta = clock.elapsed();
        let rc = output.status.code().unwrap_or_else(|| {
            -std::os::unix::process::ExitStatusExt::signal(&output.status).unwrap_or(1)
        });
        let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if self.strip {
            stdout = stdout.trim_end_matches(['\r', '\n']).to_string();
            stderr = stderr.trim_end_matches(['\r', '\n']).to_string();
        }
        let times = Some((py_datetime(start), py_datetime(end), py_delta(delta)));
        let msg = if rc != 0 { "non-zero return code" } else { "" };
        let mut out = self.result(Value::from(rc), &stdout, &stderr, times, msg);
        out.changed = Some(true);
        if rc != 0 {
            out.failed = Some(msg.to_string());
        }
        Ok(out)
    }

    fn owns(&self) -> Vec<Owned> {
        let mut v = Vec::new();
        for (_, p) in self.creates.iter().chain(self.removes.iter()) {
            if !p.contains(['*', '?', '[']) {
                v.push(Owned::Path(PathBuf::from(p)));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};

    #[test]
    fn times_as_python_prints_them() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789);
        let shown = py_datetime(t);
        // Local time: only the shape and the microseconds are the same everywhere.
        let shape = regex::Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.123456$").unwrap();
        assert!(shape.is_match(&shown), "{shown}");
        assert_eq!(
            py_delta(std::time::Duration::new(3723, 3_044_000)),
            "1:02:03.003044"
        );
    }

    #[test]
    fn runs_and_reports() {
        let h = Harness::new();
        let (changed, out) = h
            .run(&CommandModule, &[("_raw_params", v("echo 'a  b' c"))])
            .unwrap();
        assert!(changed);
        assert_eq!(out.data["stdout"].as_str(), Some("a  b c"));
        assert_eq!(out.data["rc"].as_i64(), Some(0));
        assert_eq!(out.data["cmd"].len(), Some(3));
        assert!(out.data["delta"].as_str().unwrap().starts_with("0:00:0"));
        let (changed, out) = h
            .run(
                &ShellModule,
                &[("_raw_params", v("echo one; echo two >&2; exit 3"))],
            )
            .unwrap();
        assert!(changed);
        assert_eq!(out.failed.as_deref(), Some("non-zero return code"));
        assert_eq!(out.data["rc"].as_i64(), Some(3));
        assert_eq!(out.data["stderr"].as_str(), Some("two"));
        assert_eq!(out.data["stdout_lines"].len(), Some(1));
        let (_, out) = h
            .run(
                &CommandModule,
                &[("argv", Value::from(vec!["cat"])), ("stdin", v("hi"))],
            )
            .unwrap();
        assert_eq!(out.data["stdout"].as_str(), Some("hi"));
        let (_, out) = h
            .run(&CommandModule, &[("_raw_params", v("no-such-program-xyz"))])
            .unwrap();
        assert_eq!(
            out.failed.as_deref(),
            Some("[Errno 2] No such file or directory: b'no-such-program-xyz'")
        );
    }

    #[test]
    fn creates_removes_relative_to_chdir() {
        let h = Harness::new();
        let args = [
            ("_raw_params", v("touch made")),
            ("chdir", v(&h.hs(""))),
            ("creates", v("made")),
        ];
        let r = h.prepare(&ShellModule, &args).unwrap();
        assert!(r.supports_check_mode());
        assert_eq!(r.check().unwrap().changes.len(), 1);
        assert!(h.run(&ShellModule, &args).unwrap().0);
        let (changed, out) = h.run(&ShellModule, &args).unwrap();
        assert!(!changed);
        assert_eq!(
            out.data["msg"].as_str(),
            Some("Did not run command since 'made' exists")
        );
        assert_eq!(
            out.data["stdout"].as_str(),
            Some("skipped, since made exists")
        );
        let args = [
            ("_raw_params", v("rm made")),
            ("chdir", v(&h.hs(""))),
            ("removes", v("ma*")),
        ];
        assert!(h.run(&CommandModule, &args).unwrap().0);
        assert!(!h.h("made").exists());
        assert!(!h.run(&CommandModule, &args).unwrap().0);
        // Without guards, not checkable (skipped in check mode).
        assert!(!h
            .prepare(&CommandModule, &[("_raw_params", v("true"))])
            .unwrap()
            .supports_check_mode());
    }

    #[test]
    fn helpers() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b"a.cnf"));
        assert!(fnmatch(b"[a-c]?", b"bx"));
        assert!(fnmatch(b"[!a]x", b"bx"));
        let env = vec![("FOO".to_string(), "bar".to_string())];
        assert_eq!(
            expand_word("$FOO/${FOO}/$NOPE_XYZ", &env),
            "bar/bar/$NOPE_XYZ"
        );
        assert_eq!(
            py_delta(std::time::Duration::from_micros(3044)),
            "0:00:00.003044"
        );
    }
}
