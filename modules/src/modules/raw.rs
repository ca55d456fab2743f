//! The `raw` module: a command line run through the shell, as Ansible's `raw` action runs it
//! on a local connection (`/bin/sh -c LINE`, or `EXECUTABLE -c LINE`).
//!
//! Kept from Ansible: always `changed`; skipped in check mode; a non-zero exit fails with
//! "non-zero return code"; the result has `rc`, `stdout`, `stdout_lines`, `stderr`,
//! `stderr_lines` with the output as printed (not stripped, unlike `command`). Refused: the
//! `environment` keyword (Ansible runs raw without it, with a warning: use `shell`).

use std::process::{Command, Stdio};

use minijinja::Value;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Change, Check, Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct RawModule;

static SPEC: ArgSpec = ArgSpec {
    module: "raw",
    args: &[ArgDef::new("executable", ArgType::Path)],
    free_form: true,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for RawModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let Some(line) = args.raw_params().filter(|s| !s.trim().is_empty()) else {
            return Err(ModuleError::new("raw needs a command line"));
        };
        if !ctx.env.is_empty() {
            return Err(ModuleError::new(
                "raw does not support the environment keyword (Ansible runs it without the \
                 variables and warns): use the shell module",
            ));
        }
        Ok(Box::new(Raw {
            line,
            executable: args.str("executable"),
        }))
    }
}

struct Raw {
    line: String,
    executable: Option<String>,
}

impl Resource for Raw {
    fn check(&self) -> Result<Check, ModuleError> {
        Ok(Check::new(
            vec![Change::Run {
                command: self.line.clone(),
            }],
            Outcome::default(),
        ))
    }

    fn supports_check_mode(&self) -> bool {
        false
    }

    fn apply(&self, _check: Check) -> Result<Outcome, ModuleError> {
        let shell = self.executable.as_deref().unwrap_or("/bin/sh");
        let mut cmd = Command::new(shell);
        cmd.arg("-c").arg(&self.line);
        Ok(low_level_execute(&mut cmd, shell))
    }
}

/// Ansible's `_low_level_execute_command` result for a command run to its end: `rc`, `stdout`,
/// `stdout_lines`, `stderr`, `stderr_lines` (output as printed), changed, and a non-zero exit
/// failing with "non-zero return code" (as the `raw` and `script` actions report it).
pub(crate) fn low_level_execute(cmd: &mut Command, program: &str) -> Outcome {
    let ran = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let (rc, stdout, stderr) = match ran {
        Ok(o) => (
            o.status.code().unwrap_or_else(|| {
                -std::os::unix::process::ExitStatusExt::signal(&o.status).unwrap_or(1)
            }),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        // As a shell reports a program it cannot run.
        Err(e) => (127, String::new(), format!("{program}: {e}\n")),
    };
    let lines = |s: &str| Value::from(s.lines().map(Value::from).collect::<Vec<_>>());
    let mut out = Outcome::default()
        .with("rc", rc)
        .with("stdout", stdout.as_str())
        .with("stdout_lines", lines(&stdout))
        .with("stderr", stderr.as_str())
        .with("stderr_lines", lines(&stderr));
    out.changed = Some(true);
    if rc != 0 {
        out = out.with("msg", "non-zero return code");
        out.failed = Some("non-zero return code".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_kept_as_printed_and_a_failure_says_so() {
        let out = low_level_execute(
            Command::new("/bin/sh").args(["-c", "printf 'a\\nb\\n'; echo err >&2; exit 3"]),
            "/bin/sh",
        );
        assert_eq!(out.data["stdout"].as_str(), Some("a\nb\n"));
        assert_eq!(out.data["stdout_lines"].len(), Some(2));
        assert_eq!(out.data["stderr"].as_str(), Some("err\n"));
        assert_eq!(out.data["rc"].as_i64(), Some(3));
        assert_eq!(out.failed.as_deref(), Some("non-zero return code"));
        assert_eq!(out.changed, Some(true));
    }
}
