//! The Git servers and repositories the transport tests run against: a bare "fleet" repository
//! with a work clone ([`Upstream`]), `git daemon`, and (from `tests/common`, shared with the pull
//! tests) `git http-backend` behind `agent/src/git/testdata/cgi_server.py` and `sshd -f
//! own_config`. Every server process is killed (its process group) when its guard drops, also
//! when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gitops_agent::git::{FetchOptions, GitRepo, ObjectId};

pub use crate::common::{free_port, git, git_cmd, Server};
use crate::common::{wait_for_port, Remote, SshKeys, Transport};

pub const HOST_BRANCH: &str = "hosts/web-01";
pub const STATUS_BRANCH: &str = "status/web-01";

pub fn oid(hex: &str) -> ObjectId {
    ObjectId::from_hex(hex.as_bytes()).unwrap()
}

/// A bare "fleet" repository plus a work clone used to commit into it.
pub struct Upstream {
    pub tmp: tempfile::TempDir,
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Upstream {
    pub fn new() -> Upstream {
        let tmp = tempfile::tempdir().unwrap();
        let bare = tmp.path().join("fleet.git");
        let work = tmp.path().join("work");
        git(
            tmp.path(),
            &["init", "-q", "--bare", bare.to_str().unwrap()],
        );
        git(tmp.path(), &["init", "-q", work.to_str().unwrap()]);
        let up = Upstream { tmp, bare, work };
        up.write("README.md", "the fleet\n");
        up.commit_all("main: readme");
        up.push("main");
        for other in ["hosts/db-01", "hosts/web-02"] {
            git(&up.work, &["checkout", "-q", "-b", other, "main"]);
            up.write("site.yml", &format!("# {other}\n"));
            up.commit_all(other);
            up.push(other);
        }
        git(&up.work, &["checkout", "-q", "-b", HOST_BRANCH, "main"]);
        up.write("site.yml", "- hosts: all\n  roles: [web]\n");
        up.write("roles/web/files/nginx.conf", "worker_processes 2;\n");
        up.write("roles/web/files/run.sh", "#!/bin/sh\necho hi\n");
        up.write("roles/web/files/sub/deep.txt", "deep\n");
        set_mode(&up.work.join("roles/web/files/run.sh"), 0o755);
        std::os::unix::fs::symlink("../../../../etc/passwd", up.work.join("roles/web/leak"))
            .unwrap();
        up.commit_all("web-01: first");
        up.push(HOST_BRANCH);
        up
    }

    pub fn write(&self, path: &str, content: &str) {
        let p = self.work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn commit_all(&self, msg: &str) -> ObjectId {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", msg]);
        oid(&git(&self.work, &["rev-parse", "HEAD"]))
    }

    /// Force-pushes the work branch to the bare repository.
    pub fn push(&self, branch: &str) {
        git(
            &self.work,
            &[
                "push",
                "-q",
                self.bare.to_str().unwrap(),
                &format!("+{branch}:refs/heads/{branch}"),
            ],
        );
    }

    /// A new commit on the host branch, pushed.
    pub fn commit_host(&self, path: &str, content: &str) -> ObjectId {
        git(&self.work, &["checkout", "-q", HOST_BRANCH]);
        self.write(path, content);
        let id = self.commit_all(&format!("change {path}"));
        self.push(HOST_BRANCH);
        id
    }

    pub fn remote_tip(&self, branch: &str) -> Option<ObjectId> {
        let out = git_cmd(&self.bare)
            .args([
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| oid(String::from_utf8_lossy(&out.stdout).trim()))
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A fresh agent repository in its own temp dir.
pub fn agent_repo() -> (tempfile::TempDir, GitRepo) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::open_or_init(&tmp.path().join("repo.git")).unwrap();
    (tmp, repo)
}

/// `git daemon` serving `base` on 127.0.0.1, with receive-pack; packet trace into `trace`.
pub fn git_daemon(base: &Path, trace: &Path) -> (Server, u16) {
    let port = free_port();
    let mut cmd = Command::new("git");
    cmd.args([
        "daemon",
        "--export-all",
        &format!("--base-path={}", base.display()),
        "--listen=127.0.0.1",
        &format!("--port={port}"),
        "--reuseaddr",
        "--enable=receive-pack",
        "--informative-errors",
    ])
    .env("GIT_CONFIG_NOSYSTEM", "1")
    .env("GIT_CONFIG_GLOBAL", "/dev/null")
    .env("GIT_TRACE_PACKET", trace)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let mut server = Server::spawn(&mut cmd);
    wait_for_port(&mut server, port, "git daemon");
    (server, port)
}

/// `git http-backend` for the bare repositories under `root` at `http://127.0.0.1:PORT/git/`;
/// requests logged to `log`.
pub fn http_server(root: &Path, log: &Path) -> (Server, u16) {
    crate::common::http_server(root, log, None, None)
}

/// `sshd -f own_config` on a free port of 127.0.0.1 with its own host key and one client key,
/// serving the repositories under `dir`; fails loudly when sshd is not installed (the SSH
/// transport must be tested, not skipped).
pub struct Sshd {
    remote: Remote,
    keys: SshKeys,
}

impl Sshd {
    pub fn start(dir: &Path) -> Sshd {
        let keys = SshKeys::new(&dir.join("ssh-keys"));
        let remote = Remote::start(Transport::Ssh, dir, Some(&keys), None);
        Sshd { remote, keys }
    }

    /// The ssh:// URL of the bare repository `name` under `dir`.
    pub fn url(&self, name: &str) -> String {
        self.remote.url(name)
    }

    /// The fetch options that reach it: the client key and a known_hosts naming the server.
    pub fn options(&self) -> FetchOptions {
        FetchOptions {
            ssh_key: Some(self.keys.client_key.clone()),
            known_hosts: Some(self.keys.known_hosts.clone()),
            ..FetchOptions::default()
        }
    }

    pub fn known_hosts(&self) -> &Path {
        &self.keys.known_hosts
    }

    pub fn client_key(&self) -> &Path {
        &self.keys.client_key
    }
}

pub fn status_files(n: u32) -> Vec<(String, Vec<u8>)> {
    vec![
        ("status.yaml".into(), format!("run: {n}\n").into_bytes()),
        (
            "hosts/web-01/last-run.yaml".into(),
            b"result: ok\n".to_vec(),
        ),
    ]
}

pub fn record(repo: &GitRepo, n: u32) -> Option<ObjectId> {
    let files = status_files(n);
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    repo.record_status(STATUS_BRANCH, &refs, &format!("status: run {n}"), "web-01")
        .unwrap()
}
