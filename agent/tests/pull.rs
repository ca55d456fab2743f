//! Pull mode end to end against a real repository over file://: fetch, trust (signatures,
//! anti-rollback), last good commit, status commits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Fleet {
    _tmp: tempfile::TempDir,
    work: PathBuf,
    bare: PathBuf,
    state: PathBuf,
    root: PathBuf,
    host: String,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Ops", "-c", "user.email=ops@example.org"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .split('.')
        .next()
        .unwrap()
        .to_string()
}

impl Fleet {
    fn new() -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        let bare = tmp.path().join("fleet.git");
        let host = hostname();
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", &format!("hosts/{host}")]);
        git(
            tmp.path(),
            &["init", "-q", "--bare", bare.to_str().unwrap()],
        );
        Fleet {
            state: tmp.path().join("state"),
            root: tmp.path().join("root"),
            _tmp: tmp,
            work,
            bare,
            host,
        }
    }

    /// Commits `local.yml` and pushes the host branch (with --force when asked).
    fn commit(&self, playbook: &str, extra: &[&str]) -> String {
        std::fs::write(self.work.join("local.yml"), playbook).unwrap();
        git(&self.work, &["add", "-A"]);
        let mut args = vec!["commit", "-q", "-m", "change"];
        args.extend_from_slice(extra);
        git(&self.work, &args);
        git(
            &self.work,
            &["push", "-q", "-f", self.bare.to_str().unwrap(), "HEAD"],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// `gitops-agent converge` in pull mode against this fleet (the default config path, which
    /// does not exist in tests, so everything comes from the command line).
    fn converge(&self, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_gitops-agent"))
            .args(["converge", "--repo"])
            .arg(format!("file://{}", self.bare.display()))
            .arg("--state-dir")
            .arg(&self.state)
            .arg("-e")
            .arg(format!("root={}", self.root.display()))
            .args(extra)
            .output()
            .unwrap()
    }

    fn status(&self) -> String {
        git(
            &self.bare,
            &["show", &format!("status/{}:status.yml", self.host)],
        )
    }

    fn status_log(&self) -> Vec<String> {
        git(
            &self.bare,
            &["log", "--format=%s", &format!("status/{}", self.host)],
        )
        .lines()
        .map(str::to_string)
        .collect()
    }
}

fn play(content: &str) -> String {
    format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: app config\n      copy:\n        dest: \"{{{{ root }}}}/app.conf\"\n        content: \"{content}\\n\"\n"
    )
}

#[test]
fn converges_records_status_and_keeps_the_last_good_commit() {
    let f = Fleet::new();
    std::fs::create_dir_all(&f.root).unwrap();
    // A named config file that does not exist is an error, not silently ignored.
    let out = f.converge(&["--config", "/nonexistent-on-purpose.yml"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonexistent-on-purpose"));

    let c1 = f.commit(&play("v1"), &[]);
    let run = |extra: &[&str]| f.converge(extra);
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(f.root.join("app.conf")).unwrap(),
        "v1\n"
    );
    let status = f.status();
    assert!(status.contains("result: changed"), "{status}");
    assert!(
        status.contains(&format!("commit_applied: {c1}")),
        "{status}"
    );

    // Second run: no new commit → no converge, no status commit.
    let before = f.status_log().len();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing new"),
        "{out:?}"
    );
    assert_eq!(
        f.status_log().len(),
        before,
        "a poll with nothing new wrote a status"
    );
    // --force converges anyway: nothing to change, and the status says so.
    let out = run(&["--force"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(f.status().contains("result: converged"));
    // Again: the same in substance (only times differ): no new status commit.
    let before = f.status_log().len();
    let out = run(&["--force"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        f.status_log().len(),
        before,
        "an identical status was committed again"
    );

    // An invalid commit: nothing applied, status names file and line, last good stays.
    let bad = f.commit(
        "- hosts: all\n  tasks:\n    - copy: {dest: /x, content: y, bogus: 1}\n",
        &[],
    );
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let status = f.status();
    assert!(status.contains("result: invalid"), "{status}");
    assert!(status.contains("local.yml:3"), "{status}");
    assert!(status.contains(&format!("commit_seen: {bad}")), "{status}");
    assert!(
        status.contains(&format!("commit_applied: {c1}")),
        "{status}"
    );
    assert_eq!(
        std::fs::read_to_string(f.root.join("app.conf")).unwrap(),
        "v1\n"
    );

    // The next good commit is applied.
    f.commit(&play("v2"), &[]);
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(f.root.join("app.conf")).unwrap(),
        "v2\n"
    );
    let log = f.status_log();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(
        log[0].starts_with(&format!("{}: changed", f.host)),
        "{log:?}"
    );
    assert!(
        log[1].starts_with(&format!("{}: invalid", f.host)),
        "{log:?}"
    );

    // A force-push back to the first commit is refused (anti-rollback)...
    git(&f.work, &["reset", "-q", "--hard", &c1]);
    git(
        &f.work,
        &["push", "-q", "-f", f.bare.to_str().unwrap(), "HEAD"],
    );
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(f.status().contains("result: refused"));
    assert!(f.status().contains("does not descend"));
    assert_eq!(
        std::fs::read_to_string(f.root.join("app.conf")).unwrap(),
        "v2\n"
    );
    // ...unless allowed.
    let out = run(&["--allow-rollback"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(f.root.join("app.conf")).unwrap(),
        "v1\n"
    );
}

#[test]
fn signatures_are_enforced_when_required() {
    let f = Fleet::new();
    std::fs::create_dir_all(&f.root).unwrap();
    let keys = f.work.parent().unwrap().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keys.join("admin");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "admin", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen (openssh-client) is needed by this test");
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(keys.join("admin.pub")).unwrap();
    let signers = keys.join("allowed_signers");
    std::fs::write(
        &signers,
        format!("ops@example.org namespaces=\"git\" {public}"),
    )
    .unwrap();

    // Unsigned commit, signatures required: refused, nothing applied.
    f.commit(&play("unsigned"), &[]);
    let signing = [
        "--require-signatures",
        "--allowed-signers",
        signers.to_str().unwrap(),
    ];
    let run = |extra: &[&str]| {
        let mut all: Vec<&str> = signing.to_vec();
        all.extend_from_slice(extra);
        f.converge(&all)
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(!f.root.join("app.conf").exists());
    let status = f.status();
    assert!(status.contains("result: refused"), "{status}");
    assert!(status.contains("not signed"), "{status}");

    // Signed by the allowed key: applied.
    let signed = play("signed");
    std::fs::write(f.work.join("local.yml"), &signed).unwrap();
    git(&f.work, &["add", "-A"]);
    git(
        &f.work,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingkey={}", key.display()),
            "commit",
            "-q",
            "-S",
            "-m",
            "signed",
        ],
    );
    git(
        &f.work,
        &["push", "-q", "-f", f.bare.to_str().unwrap(), "HEAD"],
    );
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(f.root.join("app.conf")).unwrap(),
        "signed\n"
    );
}

#[test]
fn a_failed_status_push_is_kept_and_lands_when_the_server_is_back() {
    let f = Fleet::new();
    std::fs::create_dir_all(&f.root).unwrap();
    f.commit(&play("v1"), &[]);
    let status_repo = f.work.parent().unwrap().join("status.git");
    let status_url = format!("file://{}", status_repo.display());
    let run = || f.converge(&["--status-repo", &status_url]);
    let status_cmd = || {
        let out = Command::new(env!("CARGO_BIN_EXE_gitops-agent"))
            .args(["status", "--state-dir"])
            .arg(&f.state)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The status server is not there: converging still works, the status waits.
    let out = run();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kept for the next run"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(f.root.join("app.conf")).unwrap(),
        "v1\n"
    );
    let shown = status_cmd();
    assert!(shown.contains("status pending: yes"), "{shown}");
    assert!(shown.contains("last result:    changed"), "{shown}");

    // The server is back: the next run has nothing new to converge, but pushes the kept
    // status commit.
    git(
        f.work.parent().unwrap(),
        &["init", "-q", "--bare", status_repo.to_str().unwrap()],
    );
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let log = git(
        &status_repo,
        &["log", "--format=%s", &format!("status/{}", f.host)],
    );
    let subjects: Vec<&str> = log.lines().collect();
    assert_eq!(subjects.len(), 1, "{log}");
    assert!(subjects[0].contains(": changed"), "{log}");
    assert!(status_cmd().contains("status pending: no"));
}

/// The CGI bridge of the git tests (`git http-backend` on 127.0.0.1), killed with its children
/// when dropped.
struct HttpServer(std::process::Child);

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_server(root: &Path) -> (HttpServer, u16) {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/git/testdata/cgi_server.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .arg(root)
        .arg(root.join("http.log"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("python3 runs the CGI bridge");
    let stdout = child.stdout.take().unwrap();
    let server = HttpServer(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("cgi_server said {line:?}"));
    (server, port)
}

#[test]
fn pull_mode_over_smart_http() {
    let f = Fleet::new();
    std::fs::create_dir_all(&f.root).unwrap();
    git(&f.bare, &["config", "http.receivepack", "true"]);
    f.commit(&play("over http"), &[]);
    let base = f.bare.parent().unwrap().to_path_buf();
    let (_server, port) = http_server(&base);
    let url = format!("http://127.0.0.1:{port}/git/fleet.git");
    let out = Command::new(env!("CARGO_BIN_EXE_gitops-agent"))
        .args(["converge", "--repo", &url, "--state-dir"])
        .arg(&f.state)
        .arg("-e")
        .arg(format!("root={}", f.root.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(f.root.join("app.conf")).unwrap(),
        "over http\n"
    );
    // The status went back over HTTP too.
    assert!(f.status().contains("result: changed"), "{}", f.status());
}
