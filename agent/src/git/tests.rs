//! Tests against real Git servers on 127.0.0.1: file://, a plain path, git daemon (git://),
//! `git http-backend` behind a small CGI bridge (http://) and `sshd -f own_config` (ssh://).
//! Every server process is killed by PID when its guard drops, also when a test fails.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gitops_modules::source::{RepoPath, Source, SourceError, SourceKind};

use super::*;

const HOST_BRANCH: &str = "hosts/web-01";
const STATUS_BRANCH: &str = "status/web-01";

/// Runs git with the machine's config ignored; returns trimmed stdout, panics on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn git_cmd(dir: &Path) -> Command {
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

fn oid(hex: &str) -> ObjectId {
    ObjectId::from_hex(hex.as_bytes()).unwrap()
}

/// A bare "fleet" repository plus a work clone used to commit into it.
struct Upstream {
    tmp: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
}

impl Upstream {
    fn new() -> Upstream {
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

    fn write(&self, path: &str, content: &str) {
        let p = self.work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn commit_all(&self, msg: &str) -> ObjectId {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", msg]);
        oid(&git(&self.work, &["rev-parse", "HEAD"]))
    }

    /// Force-pushes the work branch to the bare repository.
    fn push(&self, branch: &str) {
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
    fn commit_host(&self, path: &str, content: &str) -> ObjectId {
        git(&self.work, &["checkout", "-q", HOST_BRANCH]);
        self.write(path, content);
        let id = self.commit_all(&format!("change {path}"));
        self.push(HOST_BRANCH);
        id
    }

    fn remote_tip(&self, branch: &str) -> Option<ObjectId> {
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

    fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A fresh agent repository in its own temp dir.
fn agent_repo() -> (tempfile::TempDir, GitRepo) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::open_or_init(&tmp.path().join("repo.git")).unwrap();
    (tmp, repo)
}

/// A server process, killed by PID when dropped.
struct Server {
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(server: &mut Server, port: u16, what: &str) {
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
fn git_daemon(base: &Path, trace: &Path) -> (Server, u16) {
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
fn http_server(root: &Path, log: &Path) -> (Server, u16) {
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

pub(crate) struct Sshd {
    _server: Server,
    pub(crate) port: u16,
    pub(crate) key: PathBuf,
    pub(crate) known_hosts: PathBuf,
    pub(crate) user: String,
}

/// `sshd -f own_config` on a free port of 127.0.0.1 with its own host key and one client key.
/// Fails loudly when sshd is not installed: the SSH transport must be tested, not skipped.
pub(crate) fn sshd(dir: &Path) -> Option<Sshd> {
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
    Some(Sshd {
        _server: server,
        port,
        key,
        known_hosts,
        user,
    })
}

/// Times `n` no-change fetches; prints and returns the median.
fn time_no_change(repo: &GitRepo, url: &str, opts: &FetchOptions, n: usize) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let out = repo.fetch(url, HOST_BRANCH, opts).unwrap();
            let t = start.elapsed();
            assert!(!out.changed);
            t
        })
        .collect();
    times.sort();
    let median = times[n / 2];
    eprintln!(
        "TIMING no-change fetch {url}: median {median:?} (min {:?}, max {:?}, n={n})",
        times[0],
        times[n - 1]
    );
    median
}

/// First fetch (depth 1), no-change fetch, new commit: the common checks for every transport.
fn fetch_round_trip(up: &Upstream, url: &str, opts: &FetchOptions) {
    let (_tmp, repo) = agent_repo();
    let start = Instant::now();
    let first = repo.fetch(url, HOST_BRANCH, opts).unwrap();
    eprintln!("TIMING first fetch {url}: {:?}", start.elapsed());
    assert_eq!(Some(first.tip), up.remote_tip(HOST_BRANCH));
    assert!(first.changed);
    assert_eq!(first.previous, None);
    assert!(repo.dir().join("shallow").exists(), "depth-1 first fetch");
    let again = repo.fetch(url, HOST_BRANCH, opts).unwrap();
    assert_eq!((again.tip, again.changed), (first.tip, false));
    time_no_change(&repo, url, opts, 10);
    let new = up.commit_host("site.yml", &format!("# changed for {url}\n"));
    let moved = repo.fetch(url, HOST_BRANCH, opts).unwrap();
    assert_eq!(
        (moved.tip, moved.changed, moved.previous),
        (new, true, Some(first.tip))
    );
    let src = repo.tree_source(new).unwrap();
    assert_eq!(
        src.read(&RepoPath::new("site.yml").unwrap())
            .unwrap()
            .unwrap(),
        format!("# changed for {url}\n").as_bytes()
    );
}

#[test]
fn fetch_over_file_url_and_plain_path() {
    let up = Upstream::new();
    fetch_round_trip(&up, &up.file_url(), &FetchOptions::default());
    fetch_round_trip(&up, up.bare.to_str().unwrap(), &FetchOptions::default());
}

#[test]
fn missing_branch_is_a_clear_error() {
    let up = Upstream::new();
    let (_tmp, repo) = agent_repo();
    let err = repo
        .fetch(&up.file_url(), "hosts/nope", &FetchOptions::default())
        .unwrap_err();
    assert!(
        matches!(&err, GitError::BranchNotFound { branch, .. } if branch == "hosts/nope"),
        "{err:?}"
    );
    assert!(err.to_string().contains("hosts/nope"), "{err}");
    assert!(err.to_string().contains("fleet.git"), "{err}");
    // An unreachable repository names the URL and the cause.
    let err = repo
        .fetch(
            &format!("file://{}/nothing.git", up.tmp.path().display()),
            HOST_BRANCH,
            &FetchOptions::default(),
        )
        .unwrap_err();
    eprintln!("unreachable: {err}");
    assert!(matches!(err, GitError::Fetch { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing.git"), "{err}");
    assert!(repo
        .fetch(&up.file_url(), "bad..name", &FetchOptions::default())
        .is_err());
}

#[test]
fn tree_source_reads_the_commit_tree() {
    let up = Upstream::new();
    let (_tmp, repo) = agent_repo();
    let tip = repo
        .fetch(&up.file_url(), HOST_BRANCH, &FetchOptions::default())
        .unwrap()
        .tip;
    let src = repo.tree_source(tip).unwrap();
    let p = |s: &str| RepoPath::new(s).unwrap();
    assert_eq!(
        src.read(&p("roles/web/files/nginx.conf")).unwrap().unwrap(),
        b"worker_processes 2;\n"
    );
    assert_eq!(src.read(&p("roles/web/files/missing")).unwrap(), None);
    assert_eq!(src.read(&p("roles/web")).unwrap(), None);
    assert_eq!(src.read(&p("site.yml/x")).unwrap(), None);
    assert_eq!(src.kind(&p("roles/web")).unwrap(), Some(SourceKind::Dir));
    assert_eq!(src.kind(&p("")).unwrap(), Some(SourceKind::Dir));
    assert_eq!(src.kind(&p("site.yml")).unwrap(), Some(SourceKind::File));
    assert_eq!(src.kind(&p("nope")).unwrap(), None);
    let listing = src.list(&p("roles/web/files")).unwrap();
    let names: Vec<_> = listing
        .iter()
        .map(|e| (e.name.as_str(), e.kind, e.executable))
        .collect();
    assert_eq!(
        names,
        [
            ("nginx.conf", SourceKind::File, false),
            ("run.sh", SourceKind::File, true),
            ("sub", SourceKind::Dir, false),
        ]
    );
    assert!(src.is_executable(&p("roles/web/files/run.sh")).unwrap());
    assert!(!src.is_executable(&p("roles/web/files/nginx.conf")).unwrap());
    assert!(src.list(&p("nope")).unwrap().is_empty());
    // The symlink entry is refused, through every method, and so is a path through it.
    for result in [
        src.read(&p("roles/web/leak")).map(|_| ()),
        src.kind(&p("roles/web/leak")).map(|_| ()),
        src.is_executable(&p("roles/web/leak")).map(|_| ()),
        src.read(&p("roles/web/leak/x")).map(|_| ()),
        src.list(&p("roles/web")).map(|_| ()),
    ] {
        assert!(matches!(result, Err(SourceError::Escape(_))), "{result:?}");
    }
    let d = src.describe();
    assert!(
        d.starts_with(&up.file_url()) && d.ends_with(&tip.to_hex_with_len(12).to_string()),
        "{d}"
    );
    // The engine's search helper works over it.
    let found =
        gitops_modules::source::find_in(&src, &[p("roles/web")], "files", "nginx.conf").unwrap();
    assert_eq!(
        found,
        Some((p("roles/web/files/nginx.conf"), SourceKind::File))
    );
}

#[test]
fn fetch_over_git_daemon_asks_for_the_host_ref_only() {
    let up = Upstream::new();
    let trace = up.tmp.path().join("daemon-trace.log");
    let (_daemon, port) = git_daemon(up.tmp.path(), &trace);
    let url = format!("git://127.0.0.1:{port}/fleet.git");
    fetch_round_trip(&up, &url, &FetchOptions::default());
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(
        trace.contains("ref-prefix refs/heads/hosts/web-01"),
        "protocol v2 ls-refs with the branch as prefix:\n{trace}"
    );
    let prefixes: Vec<_> = trace
        .lines()
        .filter(|l| l.contains("ref-prefix"))
        .filter(|l| !l.contains("ref-prefix refs/heads/hosts/web-01"))
        .collect();
    assert!(prefixes.is_empty(), "other ref-prefixes: {prefixes:?}");
    assert!(
        !trace.contains("refs/heads/hosts/db-01"),
        "the server never listed other hosts' refs"
    );
}

#[test]
fn fetch_over_smart_http() {
    let up = Upstream::new();
    let log = up.tmp.path().join("http.log");
    let (_http, port) = http_server(up.tmp.path(), &log);
    let url = format!("http://127.0.0.1:{port}/git/fleet.git");
    fetch_round_trip(&up, &url, &FetchOptions::default());
    let log = std::fs::read_to_string(&log).unwrap();
    eprintln!("http requests:\n{log}");
    assert!(log.contains("proto=version=2"), "{log}");
    assert!(log.contains("ref-prefix refs/heads/hosts/web-01"), "{log}");
    for line in log.lines().filter(|l| l.contains("ref-prefix")) {
        assert!(
            !line.contains("refs/tags") && !line.contains("hosts/db-01"),
            "{line}"
        );
    }
}

#[test]
fn fetch_over_ssh() {
    let up = Upstream::new();
    let Some(sshd) = sshd(up.tmp.path()) else {
        return;
    };
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.port,
        up.bare.display()
    );
    let opts = FetchOptions {
        ssh_key: Some(sshd.key.clone()),
        known_hosts: Some(sshd.known_hosts.clone()),
        http_credentials: None,
        ..FetchOptions::default()
    };
    fetch_round_trip(&up, &url, &opts);
    // An unknown host key is refused (StrictHostKeyChecking=yes), not prompted for.
    std::fs::write(&sshd.known_hosts, "").unwrap();
    let (_tmp, repo) = agent_repo();
    let err = repo.fetch(&url, HOST_BRANCH, &opts).unwrap_err();
    eprintln!("unknown host key: {err}");
    assert!(matches!(err, GitError::Fetch { .. }), "{err:?}");
}

#[test]
fn is_ancestor_deepens_a_shallow_history() {
    let up = Upstream::new();
    let url = up.file_url();
    let opts = FetchOptions::default();
    let c1 = up.remote_tip(HOST_BRANCH).unwrap();
    let c2 = up.commit_host("a.txt", "2\n");
    let (_tmp, repo) = agent_repo();
    assert_eq!(repo.fetch(&url, HOST_BRANCH, &opts).unwrap().tip, c2);
    let c3 = up.commit_host("a.txt", "3\n");
    assert_eq!(repo.fetch(&url, HOST_BRANCH, &opts).unwrap().tip, c3);
    // c2..c3 arrived whole: no deepening needed.
    assert!(repo.is_ancestor(&url, HOST_BRANCH, c2, c3, &opts).unwrap());
    assert!(repo.dir().join("shallow").exists());
    assert!(!repo.is_ancestor(&url, HOST_BRANCH, c3, c2, &opts).unwrap());
    // c1 is behind the shallow boundary (c2): deepen, then decide.
    assert!(repo.is_ancestor(&url, HOST_BRANCH, c1, c3, &opts).unwrap());
    assert!(repo.is_ancestor(&url, HOST_BRANCH, c3, c3, &opts).unwrap());
    // Force-push back to the older c1: c3 is not its ancestor.
    git(&up.work, &["checkout", "-q", HOST_BRANCH]);
    git(&up.work, &["reset", "-q", "--hard", &c1.to_string()]);
    up.push(HOST_BRANCH);
    let back = repo.fetch(&url, HOST_BRANCH, &opts).unwrap();
    assert_eq!((back.tip, back.changed), (c1, true));
    assert!(!repo.is_ancestor(&url, HOST_BRANCH, c3, c1, &opts).unwrap());
    // An unrelated history.
    git(&up.work, &["checkout", "-q", "--orphan", "tmp-orphan"]);
    up.write("other.txt", "unrelated\n");
    let orphan = up.commit_all("unrelated root");
    git(
        &up.work,
        &[
            "push",
            "-q",
            "-f",
            up.bare.to_str().unwrap(),
            &format!("tmp-orphan:refs/heads/{HOST_BRANCH}"),
        ],
    );
    assert_eq!(repo.fetch(&url, HOST_BRANCH, &opts).unwrap().tip, orphan);
    assert!(!repo
        .is_ancestor(&url, HOST_BRANCH, c1, orphan, &opts)
        .unwrap());
}

#[test]
fn is_ancestor_from_a_fresh_depth_one_clone() {
    let up = Upstream::new();
    let url = up.file_url();
    let opts = FetchOptions::default();
    let c1 = up.remote_tip(HOST_BRANCH).unwrap();
    let c2 = up.commit_host("a.txt", "2\n");
    let c3 = up.commit_host("a.txt", "3\n");
    let (_tmp, repo) = agent_repo();
    assert_eq!(repo.fetch(&url, HOST_BRANCH, &opts).unwrap().tip, c3);
    assert_eq!(
        std::fs::read_to_string(repo.dir().join("shallow"))
            .unwrap()
            .trim(),
        c3.to_string()
    );
    assert!(repo.is_ancestor(&url, HOST_BRANCH, c1, c3, &opts).unwrap());
    assert!(
        !repo.dir().join("shallow").exists(),
        "deepened: the branch's whole history is here now"
    );
    assert!(repo.is_ancestor(&url, HOST_BRANCH, c2, c3, &opts).unwrap());
    // A commit that is nowhere in the history (never fetched).
    let main = up.remote_tip("hosts/db-01").unwrap();
    assert!(!repo
        .is_ancestor(&url, HOST_BRANCH, main, c3, &opts)
        .unwrap());
    // The history is complete now: a later no-change fetch still works.
    assert!(!repo.fetch(&url, HOST_BRANCH, &opts).unwrap().changed);
}

#[test]
fn commit_signature_of_unsigned_and_ssh_signed_commits() {
    let up = Upstream::new();
    let url = up.file_url();
    let opts = FetchOptions::default();
    let (_tmp, repo) = agent_repo();
    let tip = repo.fetch(&url, HOST_BRANCH, &opts).unwrap().tip;
    let (sig, time) = repo.commit_signature(tip).unwrap();
    assert!(sig.is_none());
    let ct: i64 = git(&up.bare, &["log", "-1", "--format=%ct", &tip.to_string()])
        .parse()
        .unwrap();
    assert_eq!(time, ct);

    let key = up.tmp.path().join("signing_key");
    assert!(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "admin@example.org",
            "-f"
        ])
        .arg(&key)
        .status()
        .unwrap()
        .success());
    git(&up.work, &["checkout", "-q", HOST_BRANCH]);
    up.write("signed.txt", "signed\n");
    git(&up.work, &["add", "-A"]);
    git(
        &up.work,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingkey={}", key.display()),
            "commit",
            "-q",
            "-S",
            "-m",
            "signed change",
        ],
    );
    up.push(HOST_BRANCH);
    let signed = repo.fetch(&url, HOST_BRANCH, &opts).unwrap().tip;
    let (sig, time) = repo.commit_signature(signed).unwrap();
    let (armored, payload) = sig.expect("signed");
    assert!(armored.starts_with(b"-----BEGIN SSH SIGNATURE-----"));
    assert!(String::from_utf8_lossy(&armored)
        .trim_end()
        .ends_with("-----END SSH SIGNATURE-----"));
    // The payload is the raw commit minus the gpgsig header (and its continuation lines).
    let raw = git_cmd(&up.bare)
        .args(["cat-file", "commit", &signed.to_string()])
        .output()
        .unwrap()
        .stdout;
    let raw = String::from_utf8(raw).unwrap();
    let mut expected = String::new();
    let mut in_sig = false;
    for line in raw.split_inclusive('\n') {
        if line.starts_with("gpgsig ") {
            in_sig = true;
            continue;
        }
        if in_sig && line.starts_with(' ') {
            continue;
        }
        in_sig = false;
        expected.push_str(line);
    }
    assert_eq!(String::from_utf8(payload.clone()).unwrap(), expected);
    let ct: i64 = git(
        &up.bare,
        &["log", "-1", "--format=%ct", &signed.to_string()],
    )
    .parse()
    .unwrap();
    assert_eq!(time, ct);
    // And ssh-keygen accepts the pair.
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = up.tmp.path().join("allowed_signers");
    std::fs::write(&allowed, format!("admin@example.org {pubkey}")).unwrap();
    let sig_file = up.tmp.path().join("commit.sig");
    std::fs::write(&sig_file, &armored).unwrap();
    let mut verify = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "git", "-I", "admin@example.org", "-f"])
        .arg(&allowed)
        .arg("-s")
        .arg(&sig_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        verify.stdin.take().unwrap().write_all(&payload).unwrap();
    }
    assert!(verify.wait().unwrap().success(), "ssh-keygen -Y verify");
}

fn status_files(n: u32) -> Vec<(String, Vec<u8>)> {
    vec![
        ("status.yaml".into(), format!("run: {n}\n").into_bytes()),
        (
            "hosts/web-01/last-run.yaml".into(),
            b"result: ok\n".to_vec(),
        ),
    ]
}

fn record(repo: &GitRepo, n: u32) -> Option<ObjectId> {
    let files = status_files(n);
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    repo.record_status(STATUS_BRANCH, &refs, &format!("status: run {n}"), "web-01")
        .unwrap()
}

/// Status commit and push to `url`, which serves `up.bare`.
fn status_round_trip(up: &Upstream, url: &str) {
    status_round_trip_with(up, url, &FetchOptions::default());
}

fn status_round_trip_with(up: &Upstream, url: &str, opts: &FetchOptions) {
    let opts = opts.clone();
    let (_tmp, repo) = agent_repo();
    assert_eq!(
        repo.push_status(url, STATUS_BRANCH, &opts).unwrap(),
        PushOutcome::NothingToPush
    );
    let s1 = record(&repo, 1).expect("first status commit");
    assert_eq!(record(&repo, 1), None, "unchanged tree: no new commit");
    let start = Instant::now();
    assert_eq!(
        repo.push_status(url, STATUS_BRANCH, &opts).unwrap(),
        PushOutcome::Pushed {
            id: s1,
            rebased: false
        }
    );
    eprintln!("TIMING status push {url}: {:?}", start.elapsed());
    assert_eq!(up.remote_tip(STATUS_BRANCH), Some(s1));
    assert_eq!(
        git(
            &up.bare,
            &[
                "log",
                "-1",
                "--format=%an <%ae>|%cn <%ce>|%s",
                &s1.to_string()
            ]
        ),
        "gitops-agent <agent@web-01>|gitops-agent <agent@web-01>|status: run 1"
    );
    assert_eq!(
        git(
            &up.bare,
            &["show", &format!("{s1}:hosts/web-01/last-run.yaml")]
        ),
        "result: ok"
    );
    assert_eq!(
        repo.push_status(url, STATUS_BRANCH, &opts).unwrap(),
        PushOutcome::UpToDate
    );
    let s2 = record(&repo, 2).unwrap();
    assert!(matches!(
        repo.push_status(url, STATUS_BRANCH, &opts).unwrap(),
        PushOutcome::Pushed { id, rebased: false } if id == s2
    ));
    assert_eq!(
        git(&up.bare, &["rev-list", "--parents", "-n1", STATUS_BRANCH]),
        format!("{s2} {s1}")
    );
    // Someone else pushes to the status branch meanwhile.
    git(
        &up.work,
        &["fetch", "-q", up.bare.to_str().unwrap(), STATUS_BRANCH],
    );
    git(&up.work, &["checkout", "-q", "-B", "foreign", "FETCH_HEAD"]);
    up.write("note.txt", "an operator was here\n");
    let foreign = up.commit_all("operator note");
    git(
        &up.work,
        &[
            "push",
            "-q",
            up.bare.to_str().unwrap(),
            &format!("foreign:refs/heads/{STATUS_BRANCH}"),
        ],
    );
    let s3 = record(&repo, 3).unwrap();
    let outcome = repo.push_status(url, STATUS_BRANCH, &opts).unwrap();
    let PushOutcome::Pushed { id, rebased: true } = outcome else {
        panic!("expected a rebased push, got {outcome:?}");
    };
    assert_ne!(id, s3);
    assert_eq!(up.remote_tip(STATUS_BRANCH), Some(id));
    assert_eq!(
        git(&up.bare, &["rev-list", "--parents", "-n1", &id.to_string()]),
        format!("{id} {foreign}"),
        "landed on top of the foreign commit"
    );
    assert_eq!(
        git(&up.bare, &["rev-parse", &format!("{id}^{{tree}}")]),
        git(repo.dir(), &["rev-parse", &format!("{s3}^{{tree}}")]),
        "same status tree"
    );
    // The local branch follows, so the next status builds on it.
    let s4 = record(&repo, 4).unwrap();
    assert!(matches!(
        repo.push_status(url, STATUS_BRANCH, &opts).unwrap(),
        PushOutcome::Pushed { id: pushed, rebased: false } if pushed == s4
    ));
    assert_eq!(
        git(&up.bare, &["rev-list", "--parents", "-n1", STATUS_BRANCH]),
        format!("{s4} {id}")
    );
    assert!(git_cmd(&up.bare)
        .args(["fsck", "--strict", "--no-progress"])
        .status()
        .unwrap()
        .success());
}

#[test]
fn status_commit_and_push_over_file() {
    let up = Upstream::new();
    status_round_trip(&up, &up.file_url());
}

#[test]
fn status_commit_and_push_over_git_daemon() {
    let up = Upstream::new();
    let trace = up.tmp.path().join("daemon-trace.log");
    let (_daemon, port) = git_daemon(up.tmp.path(), &trace);
    status_round_trip(&up, &format!("git://127.0.0.1:{port}/fleet.git"));
}

#[test]
fn status_push_when_the_local_repo_was_recreated() {
    // The remote already has a status branch this repository never saw: the lease ("must not
    // exist") fails, the retry fetches it and lands on top.
    let up = Upstream::new();
    let url = up.file_url();
    let opts = FetchOptions::default();
    let (_tmp1, first) = agent_repo();
    record(&first, 1).unwrap();
    first.push_status(&url, STATUS_BRANCH, &opts).unwrap();
    let old = up.remote_tip(STATUS_BRANCH).unwrap();
    let (_tmp2, second) = agent_repo();
    record(&second, 2).unwrap();
    let outcome = second.push_status(&url, STATUS_BRANCH, &opts).unwrap();
    let PushOutcome::Pushed { id, rebased: true } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        git(&up.bare, &["rev-list", "--parents", "-n1", STATUS_BRANCH]),
        format!("{id} {old}")
    );
}

#[test]
fn open_or_init_reopens_and_refuses_a_worktree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state/repo.git");
    GitRepo::open_or_init(&dir).unwrap();
    assert!(dir.join("HEAD").exists());
    GitRepo::open_or_init(&dir).unwrap();
    let work = tmp.path().join("work");
    git(tmp.path(), &["init", "-q", work.to_str().unwrap()]);
    assert!(GitRepo::open_or_init(&work).is_err());
}

#[test]
fn handles_can_move_to_a_worker_thread() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<GitRepo>();
    send_sync::<TreeSource>();
}

/// Adds `n` other branches to the upstream in one `update-ref --stdin` transaction.
fn add_branches(up: &Upstream, n: usize) {
    let tip = git(&up.bare, &["rev-parse", "refs/heads/main"]);
    let mut input = String::with_capacity(n * 80);
    for i in 0..n {
        input.push_str(&format!("create refs/heads/hosts/node-{i:05} {tip}\n"));
    }
    let mut child = git_cmd(&up.bare)
        .args(["update-ref", "--stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    // As a served repository keeps them after `git gc`: packed, so a prefix lookup on the
    // server is a search, not a scan of 20,000 loose files.
    git(&up.bare, &["pack-refs", "--all"]);
}

#[test]
fn a_poll_costs_the_same_with_20000_other_branches() {
    let up = Upstream::new();
    let trace = up.tmp.path().join("daemon-trace.log");
    let (_daemon, port) = git_daemon(up.tmp.path(), &trace);
    let url = format!("git://127.0.0.1:{port}/fleet.git");
    let (_tmp, repo) = agent_repo();
    repo.fetch(&url, HOST_BRANCH, &FetchOptions::default())
        .unwrap();
    let few = time_no_change(&repo, &url, &FetchOptions::default(), 9);

    add_branches(&up, 20_000);
    std::fs::write(&trace, "").unwrap();
    let many = time_no_change(&repo, &url, &FetchOptions::default(), 9);
    let trace = std::fs::read_to_string(&trace).unwrap();
    // The server listed the host's ref only: none of the 20,000 others crossed the wire.
    assert!(
        !trace.contains("hosts/node-"),
        "other branches were listed to the agent"
    );
    eprintln!("TIMING no-change poll: {few:?} with a few branches, {many:?} with 20,000 more");
    // Generous bound against noise on a shared 2-core machine; the point is that the cost does
    // not scale with the 20,000 refs (a full ref advertisement of them takes far longer).
    assert!(
        many < few * 3 + Duration::from_millis(100),
        "poll got slower with more branches: {few:?} -> {many:?}"
    );
}

#[test]
fn status_commit_and_push_over_smart_http() {
    let up = Upstream::new();
    // git http-backend accepts pushes only when told to (no authenticated user here).
    git(&up.bare, &["config", "http.receivepack", "true"]);
    let log = up.tmp.path().join("http.log");
    let (_http, port) = http_server(up.tmp.path(), &log);
    status_round_trip(&up, &format!("http://127.0.0.1:{port}/git/fleet.git"));
}

#[test]
fn status_commit_and_push_over_ssh() {
    let up = Upstream::new();
    let Some(sshd) = sshd(up.tmp.path()) else {
        return;
    };
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.port,
        up.bare.display()
    );
    let opts = FetchOptions {
        ssh_key: Some(sshd.key.clone()),
        known_hosts: Some(sshd.known_hosts.clone()),
        http_credentials: None,
        ..FetchOptions::default()
    };
    status_round_trip_with(&up, &url, &opts);
}

/// The status round trip through `pusher`: create, up to date, fast-forward, a remote moved by
/// someone else (a stale `expected_old`: refused, then fetched and rebased), and fsck. Returns the
/// time of the fast-forward push.
fn push_round_trip_with(
    up: &Upstream,
    url: &str,
    opts: &FetchOptions,
    pusher: Box<dyn StatusPush>,
) -> Duration {
    let (_tmp, mut repo) = agent_repo();
    repo.set_status_pusher(pusher);
    let s1 = record(&repo, 1).unwrap();
    assert_eq!(
        repo.push_status(url, STATUS_BRANCH, opts).unwrap(),
        PushOutcome::Pushed {
            id: s1,
            rebased: false
        }
    );
    assert_eq!(up.remote_tip(STATUS_BRANCH), Some(s1));
    assert_eq!(
        repo.push_status(url, STATUS_BRANCH, opts).unwrap(),
        PushOutcome::UpToDate
    );
    let s2 = record(&repo, 2).unwrap();
    let start = Instant::now();
    assert!(matches!(
        repo.push_status(url, STATUS_BRANCH, opts).unwrap(),
        PushOutcome::Pushed { id, rebased: false } if id == s2
    ));
    let took = start.elapsed();
    assert_eq!(
        git(&up.bare, &["rev-list", "--parents", "-n1", STATUS_BRANCH]),
        format!("{s2} {s1}")
    );
    git(
        &up.work,
        &["fetch", "-q", up.bare.to_str().unwrap(), STATUS_BRANCH],
    );
    git(&up.work, &["checkout", "-q", "-B", "foreign", "FETCH_HEAD"]);
    up.write("note.txt", "an operator was here\n");
    let foreign = up.commit_all("operator note");
    git(
        &up.work,
        &[
            "push",
            "-q",
            up.bare.to_str().unwrap(),
            &format!("foreign:refs/heads/{STATUS_BRANCH}"),
        ],
    );
    let s3 = record(&repo, 3).unwrap();
    let outcome = repo.push_status(url, STATUS_BRANCH, opts).unwrap();
    let PushOutcome::Pushed { id, rebased: true } = outcome else {
        panic!("expected a rebased push, got {outcome:?}");
    };
    assert_ne!(id, s3);
    assert_eq!(
        git(&up.bare, &["rev-list", "--parents", "-n1", STATUS_BRANCH]),
        format!("{id} {foreign}")
    );
    assert_eq!(
        git(&up.bare, &["rev-parse", &format!("{id}^{{tree}}")]),
        git(repo.dir(), &["rev-parse", &format!("{s3}^{{tree}}")]),
    );
    let s4 = record(&repo, 4).unwrap();
    assert!(matches!(
        repo.push_status(url, STATUS_BRANCH, opts).unwrap(),
        PushOutcome::Pushed { id: pushed, rebased: false } if pushed == s4
    ));
    assert!(git_cmd(&up.bare)
        .args(["fsck", "--strict", "--no-progress"])
        .status()
        .unwrap()
        .success());
    took
}

/// The native push refuses a stale `expected_old` as `Stale` and leaves the remote alone.
fn native_push_refuses_a_stale_lease(up: &Upstream, url: &str, opts: &FetchOptions) {
    let (_tmp, repo) = agent_repo();
    let s = record(&repo, 9).unwrap();
    let before = up.remote_tip(STATUS_BRANCH);
    let stale = git(&up.bare, &["rev-parse", "refs/heads/main"]);
    let request = PushRequest {
        git_dir: repo.dir(),
        url,
        remote_ref: &local_ref(STATUS_BRANCH),
        new: s,
        expected_old: Some(oid(&stale)),
        opts,
    };
    let result = NativePush.push(&request).unwrap();
    assert!(matches!(result, PushResult::Stale { .. }), "{result:?}");
    assert_eq!(up.remote_tip(STATUS_BRANCH), before);
}

/// Native and CLI push over `url`; prints the fast-forward push times.
fn native_push_scenarios(up: &Upstream, url: &str, opts: &FetchOptions) {
    let native = push_round_trip_with(up, url, opts, Box::new(NativePush));
    native_push_refuses_a_stale_lease(up, url, opts);
    // The CLI push on the same upstream (the status branch exists already: a fresh agent repo
    // is refused first, then fetches and rebases, as after a re-install).
    let (_tmp, mut cli) = agent_repo();
    cli.set_status_pusher(Box::new(GitCliPush));
    record(&cli, 5).unwrap();
    cli.push_status(url, STATUS_BRANCH, opts).unwrap();
    record(&cli, 6).unwrap();
    let start = Instant::now();
    cli.push_status(url, STATUS_BRANCH, opts).unwrap();
    let git_cli = start.elapsed();
    let (_tmp2, mut nat) = agent_repo();
    nat.set_status_pusher(Box::new(NativePush));
    record(&nat, 7).unwrap();
    nat.push_status(url, STATUS_BRANCH, opts).unwrap();
    record(&nat, 8).unwrap();
    let start = Instant::now();
    nat.push_status(url, STATUS_BRANCH, opts).unwrap();
    let native2 = start.elapsed();
    eprintln!(
        "TIMING fast-forward status push {url}: native {native:?} / {native2:?}, git push {git_cli:?}"
    );
    assert!(git_cmd(&up.bare)
        .args(["fsck", "--strict", "--no-progress"])
        .status()
        .unwrap()
        .success());
}

#[test]
fn native_push_over_file() {
    let up = Upstream::new();
    native_push_scenarios(&up, &up.file_url(), &FetchOptions::default());
}

#[test]
fn native_push_over_git_daemon() {
    let up = Upstream::new();
    let trace = up.tmp.path().join("daemon-trace.log");
    let (_daemon, port) = git_daemon(up.tmp.path(), &trace);
    native_push_scenarios(
        &up,
        &format!("git://127.0.0.1:{port}/fleet.git"),
        &FetchOptions::default(),
    );
}

#[test]
fn native_push_over_smart_http() {
    let up = Upstream::new();
    git(&up.bare, &["config", "http.receivepack", "true"]);
    let log = up.tmp.path().join("http.log");
    let (_http, port) = http_server(up.tmp.path(), &log);
    native_push_scenarios(
        &up,
        &format!("http://127.0.0.1:{port}/git/fleet.git"),
        &FetchOptions::default(),
    );
}

#[test]
fn native_push_over_ssh() {
    let up = Upstream::new();
    let Some(sshd) = sshd(up.tmp.path()) else {
        return;
    };
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.port,
        up.bare.display()
    );
    let opts = FetchOptions {
        ssh_key: Some(sshd.key.clone()),
        known_hosts: Some(sshd.known_hosts.clone()),
        http_credentials: None,
        ..FetchOptions::default()
    };
    native_push_scenarios(&up, &url, &opts);
}

#[test]
fn native_push_reports_a_hook_refusal_with_its_message() {
    let up = Upstream::new();
    let hook = up.bare.join("hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'policy: status pushes frozen' >&2\nexit 1\n",
    )
    .unwrap();
    set_mode(&hook, 0o755);
    let (_tmp, mut repo) = agent_repo();
    repo.set_status_pusher(Box::new(NativePush));
    record(&repo, 1).unwrap();
    let err = repo
        .push_status(&up.file_url(), STATUS_BRANCH, &FetchOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("pre-receive hook declined"), "{err}");
    assert!(err.contains("policy: status pushes frozen"), "{err}");
    assert_eq!(up.remote_tip(STATUS_BRANCH), None);
}

#[test]
fn http_ca_file_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = gix::open_opts(
        GitRepo::open_or_init(&tmp.path().join("r.git"))
            .unwrap()
            .dir(),
        gix::open::Options::isolated(),
    )
    .unwrap();
    let url = "https://git.example.org/fleet.git";
    let with = |ca: &Path| FetchOptions {
        http_ca_file: Some(ca.to_path_buf()),
        ..FetchOptions::default()
    };
    // No CA file with https://, or not an http(s) URL: nothing to configure.
    assert!(http_options(&repo, url, &FetchOptions::default())
        .unwrap()
        .is_none());
    // Plain http:// gets a client that does not need the system's CA store.
    assert!(
        http_options(&repo, "http://127.0.0.1/x", &FetchOptions::default())
            .unwrap()
            .is_some()
    );
    let missing = tmp.path().join("missing.pem");
    assert!(http_options(&repo, "ssh://h/x", &with(&missing))
        .unwrap()
        .is_none());
    let err = http_options(&repo, url, &with(&missing))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with(&format!("http.ca_file {}:", missing.display())),
        "{err}"
    );
    let empty = tmp.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let err = http_options(&repo, url, &with(&empty))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no PEM certificate"), "{err}");
}
