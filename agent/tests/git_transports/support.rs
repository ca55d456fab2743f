//! The Git servers and repositories the transport tests run against: a bare "fleet" repository
//! with a work clone ([`Upstream`]), `git daemon`, `git http-backend` behind
//! `agent/src/git/testdata/cgi_server.py`, and `sshd -f own_config`. Every server process is
//! killed by PID (its process group) when its guard drops, also when a test fails.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gitops_agent::git::{GitRepo, ObjectId};

pub const HOST_BRANCH: &str = "hosts/web-01";
pub const STATUS_BRANCH: &str = "status/web-01";

/// Runs git with the machine's config ignored; returns trimmed stdout, panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn git_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Fleet Admin")
        .env("GIT_AUTHOR_EMAIL", "admin@example.org")
        .env("GIT_COMMITTER_NAME", "Fleet Admin")
        .env("GIT_COMMITTER_EMAIL", "admin@example.org")
        .args(["-c", "init.defaultBranch=main"])
        .args(["-c", "protocol.file.allow=always"])
        .stdin(Stdio::null());
    cmd
}

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

/// A server process, killed by PID when dropped.
pub struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Servers run in their own process group: `git daemon` forks `git-daemon`, and the
        // CGI server forks `git http-backend`; killing only the first PID would orphan them.
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(server: &mut Server, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `git daemon` serving `base` on 127.0.0.1, with receive-pack; packet trace into `trace`.
pub fn git_daemon(base: &Path, trace: &Path) -> (Server, u16) {
    let port = free_port();
    let child = Command::new("git")
        .args([
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
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start git daemon");
    let mut server = Server { child };
    wait_for_port(&mut server, port, "git daemon");
    (server, port)
}

/// `git http-backend` behind testdata/cgi_server.py; requests logged to `log`.
pub fn http_server(root: &Path, log: &Path) -> (Server, u16) {
    use std::io::BufRead;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/git/testdata/cgi_server.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .arg(root)
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("start python3 cgi_server.py");
    let stdout = child.stdout.take().unwrap();
    let server = Server { child };
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .unwrap_or_else(|| panic!("cgi_server said {line:?}"))
        .parse()
        .unwrap();
    (server, port)
}

pub struct Sshd {
    _server: Server,
    pub port: u16,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub user: String,
}

/// `sshd -f own_config` on a free port of 127.0.0.1 with its own host key and one client key.
/// Fails loudly when sshd is not installed: the SSH transport must be tested, not skipped.
pub fn sshd(dir: &Path) -> Sshd {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(
        sshd.exists(),
        "/usr/sbin/sshd is missing: apt-get install openssh-server (.ci/run installs it)"
    );
    std::fs::create_dir_all("/run/sshd").unwrap();
    let keygen = |name: &str| {
        let path = dir.join(name);
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(st.success());
        path
    };
    let host_key = keygen("host_key");
    let key = keygen("client_key");
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
             PidFile {}\nStrictModes no\nUsePAM no\nAcceptEnv GIT_PROTOCOL\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nLogLevel ERROR\n",
            host_key.display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display(),
        ),
    )
    .unwrap();
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("start sshd");
    let mut server = Server { child };
    wait_for_port(&mut server, port, "sshd");
    let pubkey = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    let mut fields = pubkey.split_whitespace();
    let known_hosts = dir.join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{port} {} {}\n",
            fields.next().unwrap(),
            fields.next().unwrap()
        ),
    )
    .unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    Sshd {
        _server: server,
        port,
        key,
        known_hosts,
        user,
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
