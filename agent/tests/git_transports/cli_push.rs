//! `git push --porcelain --force-with-lease` behind [`StatusPush`]: the tests push through it
//! to compare the native push with git's (same remote state, same refusals).

use std::process::{Command, Stdio};

use gitops_agent::git::{ssh_command, GitError, PushError, PushRequest, PushResult, StatusPush};

/// `git push --porcelain --force-with-lease=<ref>:<old> <url> <new>:<ref>` in a subprocess, with
/// system and user git config ignored and prompts disabled.
pub struct GitCliPush;

/// Environment variable names through which the credential helper below gets the account, so the
/// password never appears on a command line.
const USER_VAR: &str = "GITOPS_AGENT_GIT_USERNAME";
const PASSWORD_VAR: &str = "GITOPS_AGENT_GIT_PASSWORD";

impl StatusPush for GitCliPush {
    fn push(&self, req: &PushRequest<'_>) -> Result<PushResult, GitError> {
        let fail = |source: PushError| GitError::Push {
            url: req.url.to_string(),
            branch: req
                .remote_ref
                .strip_prefix("refs/heads/")
                .unwrap_or(req.remote_ref)
                .to_string(),
            source,
        };
        let local = |step: &str| {
            let step = step.to_string();
            move |e: Box<dyn std::error::Error + Send + Sync>| {
                fail(PushError::Local { step, source: e })
            }
        };
        let ssh = ssh_command(req.opts).map_err(|e| local("quoting the ssh command")(e.into()))?;
        let lease = format!(
            "--force-with-lease={}:{}",
            req.remote_ref,
            req.expected_old.map(|o| o.to_string()).unwrap_or_default()
        );
        let mut cmd = Command::new("git");
        cmd.env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_SSH_COMMAND", ssh)
            .env("GIT_SSH_VARIANT", "ssh")
            .env("LC_ALL", "C")
            .env_remove("GIT_DIR")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .arg("--git-dir")
            .arg(req.git_dir)
            .args(["-c", "credential.helper="]);
        if let Some(ca) = &req.opts.http_ca_file {
            cmd.arg("-c")
                .arg(format!("http.sslCAInfo={}", ca.display()));
        }
        if let Some((user, password)) = &req.opts.http_credentials {
            cmd.env(USER_VAR, user).env(PASSWORD_VAR, password).args([
                "-c",
                &format!(
                    "credential.helper=!f() {{ test \"$1\" = get && printf 'username=%s\\npassword=%s\\n' \"${USER_VAR}\" \"${PASSWORD_VAR}\"; }}; f"
                ),
            ]);
        }
        cmd.args(["push", "--porcelain", "--no-verify", &lease, req.url])
            .arg(format!("{}:{}", req.new, req.remote_ref))
            .stdin(Stdio::null());
        let output = cmd
            .output()
            .map_err(|e| local("running git push")(e.into()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        match parse_porcelain(&stdout, req.remote_ref) {
            Some(Porcelain::Done(result)) => Ok(result),
            Some(Porcelain::Refused(reason)) => Err(fail(PushError::Refused {
                reason: format!("refused: {reason}"),
                said: Vec::new(),
            })),
            None if output.status.success() => Ok(PushResult::Pushed),
            None => Err(fail(PushError::Cli {
                status: output.status.to_string(),
                stderr: stderr.trim().to_string(),
            })),
        }
    }
}

enum Porcelain {
    Done(PushResult),
    Refused(String),
}

/// Reads the line for `remote_ref` of `git push --porcelain`: `<flag>\t<from>:<to>\t<summary>`.
fn parse_porcelain(stdout: &str, remote_ref: &str) -> Option<Porcelain> {
    for line in stdout.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(flag), Some(refs), summary) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if refs.rsplit(':').next() != Some(remote_ref) {
            continue;
        }
        let summary = summary.unwrap_or("").to_string();
        return Some(match flag {
            " " | "+" | "*" => Porcelain::Done(PushResult::Pushed),
            "=" => Porcelain::Done(PushResult::UpToDate),
            "!" if [
                "stale info",
                "fetch first",
                "non-fast-forward",
                "failed to update ref",
            ]
            .iter()
            .any(|r| summary.contains(r)) =>
            {
                Porcelain::Done(PushResult::Stale { reason: summary })
            }
            _ => Porcelain::Refused(summary),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_push_porcelain_lines_are_classified() {
        let r = "refs/heads/status/web-01";
        let ok = "To /x\n \t0123:refs/heads/status/web-01\t0430907..8471175\nDone\n";
        assert!(matches!(
            parse_porcelain(ok, r),
            Some(Porcelain::Done(PushResult::Pushed))
        ));
        let stale = "To /x\n!\t0123:refs/heads/status/web-01\t[rejected] (stale info)\nDone\n";
        assert!(matches!(
            parse_porcelain(stale, r),
            Some(Porcelain::Done(PushResult::Stale { .. }))
        ));
        let hook = "To /x\n!\t0123:refs/heads/status/web-01\t[remote rejected] (pre-receive hook declined)\nDone\n";
        assert!(matches!(
            parse_porcelain(hook, r),
            Some(Porcelain::Refused(s)) if s.contains("hook declined")
        ));
        assert!(parse_porcelain("To /x\nDone\n", r).is_none());
    }
}
