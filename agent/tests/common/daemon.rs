//! The daemon's test harness, shared by tests/daemon.rs and tests/drift.rs: a fleet repository
//! over file://, the agent started as a real process (killed and reaped by its guard's Drop),
//! one-shot commands with the same config, and the status documents it pushes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_gitops-agent");

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Ops", "-c", "user.email=ops@example.org"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .split('.')
        .next()
        .unwrap()
        .to_string()
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A process killed (SIGKILL) and reaped when dropped.
pub struct Guard {
    pub child: Child,
    pub log: PathBuf,
}

impl Guard {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).expect("signal the agent");
    }

    pub fn log(&self) -> String {
        read(&self.log)
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Fleet {
    pub tmp: tempfile::TempDir,
    pub work: PathBuf,
    pub bare: PathBuf,
    pub state: PathBuf,
    pub root: PathBuf,
    pub config: PathBuf,
    pub host: String,
}

impl Fleet {
    pub fn new() -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        let bare = tmp.path().join("fleet.git");
        let root = tmp.path().join("root");
        let host = hostname();
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        git(&work, &["init", "-q", "-b", &format!("hosts/{host}")]);
        git(
            tmp.path(),
            &["init", "-q", "--bare", bare.to_str().unwrap()],
        );
        Fleet {
            state: tmp.path().join("state"),
            config: tmp.path().join("config.yml"),
            root,
            work,
            bare,
            host,
            tmp,
        }
    }

    /// Writes config.yml: this fleet, `root` as an extra var, then `extra` lines.
    pub fn write_config(&self, extra: &str) {
        std::fs::write(
            &self.config,
            format!(
                "repo: file://{}\nstate_dir: {}\nextra_vars:\n  root: {}\n{extra}",
                self.bare.display(),
                self.state.display(),
                self.root.display()
            ),
        )
        .unwrap();
    }

    /// Commits `local.yml` and pushes the host branch; returns the commit.
    pub fn commit(&self, playbook: &str) -> String {
        std::fs::write(self.work.join("local.yml"), playbook).unwrap();
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", "change"],
        );
        git(
            &self.work,
            &["push", "-q", "-f", self.bare.to_str().unwrap(), "HEAD"],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    pub fn spawn(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Guard {
        let log = self.tmp.path().join(format!("{name}.log"));
        let err = std::fs::File::create(&log).unwrap();
        // systemd sets WATCHDOG_PID to the service's pid: `sh` sets it to its own and execs the
        // agent in its place (same pid).
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\"", BIN])
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        Guard {
            child: cmd.spawn().expect("gitops-agent starts"),
            log,
        }
    }

    /// `gitops-agent run --config <config.yml>`.
    pub fn daemon(&self, env: &[(&str, &str)]) -> Guard {
        let config = self.config.to_str().unwrap().to_string();
        self.spawn("daemon", &["run", "--config", &config], env)
    }

    /// A one-shot command with this fleet's config (`converge`, `suspend`, ...), run to its end.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    pub fn file(&self, name: &str) -> String {
        read(&self.root.join(name))
    }

    pub fn status_in(&self, repo: &Path) -> String {
        let out = Command::new("git")
            .args(["--git-dir", repo.to_str().unwrap(), "show"])
            .arg(format!("status/{}:status.yml", self.host))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
