//! Running the system's own tools (apt-get, dnf, systemctl, useradd) for modules: one place
//! that captures output, keeps the environment non-interactive and words failures the same way.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use crate::resource::ModuleError;

/// What a finished tool run produced.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The command line as a human would type it (for messages and results).
    pub cmd: String,
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.rc == 0
    }

    /// Ansible's wording for a tool that failed: `'<cmd>' failed: <stderr>`.
    pub fn failure(&self) -> String {
        let detail = if self.stderr.trim().is_empty() {
            self.stdout.trim()
        } else {
            self.stderr.trim()
        };
        format!("'{}' failed: {}", self.cmd, detail)
    }
}

/// The command line of `cmd`, quoted where needed (as Python's `shlex.quote` does).
pub fn command_line(cmd: &Command) -> String {
    let quote = |s: &OsStr| crate::shlex::quote(&s.to_string_lossy());
    std::iter::once(quote(cmd.get_program()))
        .chain(cmd.get_args().map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` with stdin closed and output captured. Only a failure to start it is an error;
/// a non-zero exit is the caller's to judge.
pub fn run(cmd: &mut Command) -> Result<Ran, ModuleError> {
    let line = command_line(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| ModuleError::new(format!("cannot run {line}: {e}")))?;
    let rc = out.status.code().unwrap_or_else(|| {
        -std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(1)
    });
    Ok(Ran {
        cmd: line,
        rc,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_needs_it() {
        let mut cmd = Command::new("apt-get");
        cmd.args([
            "-o",
            "Dpkg::Options::=--force-confold",
            "install",
            "it's",
            "",
        ]);
        assert_eq!(
            command_line(&cmd),
            "apt-get -o Dpkg::Options::=--force-confold install 'it'\"'\"'s' ''"
        );
    }

    #[test]
    fn run_captures_output_and_exit_code() {
        let ran = run(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"])).unwrap();
        assert_eq!(
            (ran.rc, ran.stdout.as_str(), ran.stderr.as_str()),
            (3, "out\n", "err\n")
        );
        assert!(!ran.ok());
        assert_eq!(
            ran.failure(),
            "'sh -c 'echo out; echo err >&2; exit 3'' failed: err"
        );
        let e = run(&mut Command::new("/nonexistent/tool")).unwrap_err();
        assert!(e.0.starts_with("cannot run /nonexistent/tool: "), "{e}");
    }
}
