//! Pull mode end to end, through the `gitops-agent` binary, against real servers on 127.0.0.1:
//! every scenario of issue 3 runs over `file://`, smart HTTP (`git http-backend` behind the CGI
//! bridge) and SSH (`sshd` with key auth and a known_hosts check). Each scenario is one function
//! taking the transport; [`matrix!`] makes one `#[test]` per scenario and transport
//! (`first_converge::file`, `first_converge::http`, `first_converge::ssh`, ...).
//!
//! HTTP Basic auth (credentials from a file) has its own tests at the end.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::{agent, git, git_cmd, hostname, stderr, stdout, Remote, SshKeys, Transport};

/// One test per scenario and transport: `scenario::file`, `scenario::http`, `scenario::ssh`.
macro_rules! matrix {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn file() {
                    super::$scenario(super::Transport::File)
                }
                #[test]
                fn http() {
                    super::$scenario(super::Transport::Http)
                }
                #[test]
                fn ssh() {
                    super::$scenario(super::Transport::Ssh)
                }
            }
        )*
    };
}

matrix!(
    first_converge,
    new_commit_is_applied_and_its_status_lands_on_the_server,
    no_new_commit_no_converge_no_status,
    signed_commit_is_accepted,
    unsigned_commit_is_refused,
    unknown_key_is_refused,
    tampered_commit_is_refused,
    force_push_to_an_older_signed_commit_is_refused,
    invalid_yaml_keeps_the_last_good_commit,
    rejected_status_push_is_retried_until_the_server_is_back,
    absent_branch_is_a_clear_error_and_a_status,
    twenty_thousand_other_branches,
);

/// A fleet repository `fleet.git` served over one transport, a work clone to commit into it,
/// and the agent's state dir and scratch root.
struct Fleet {
    tmp: tempfile::TempDir,
    transport: Transport,
    work: PathBuf,
    remote: Remote,
    keys: Option<SshKeys>,
    state: PathBuf,
    root: PathBuf,
    host: String,
}

impl Fleet {
    fn new(transport: Transport) -> Fleet {
        Fleet::with_bare(transport, |bare| {
            git(
                bare.parent().unwrap(),
                &["init", "-q", "--bare", bare.to_str().unwrap()],
            );
        })
    }

    /// `make_bare` creates `fleet.git` at the path it is given.
    fn with_bare(transport: Transport, make_bare: impl FnOnce(&Path)) -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let host = hostname();
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", &format!("hosts/{host}")]);
        let srv = tmp.path().join("srv");
        std::fs::create_dir_all(&srv).unwrap();
        make_bare(&srv.join("fleet.git"));
        let keys = (transport == Transport::Ssh).then(|| SshKeys::new(&tmp.path().join("ssh")));
        let remote = Remote::start(transport, &srv, keys.as_ref(), None);
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        Fleet {
            state: tmp.path().join("state"),
            root,
            transport,
            work,
            remote,
            keys,
            host,
            tmp,
        }
    }

    fn bare(&self) -> PathBuf {
        self.remote.base.join("fleet.git")
    }

    fn url(&self) -> String {
        self.remote.url("fleet.git")
    }

    /// Another server of the same transport (e.g. for the status), with its own directory.
    fn second_remote(&self, name: &str) -> Remote {
        Remote::start(
            self.transport,
            &self.tmp.path().join(name),
            self.keys.as_ref(),
            None,
        )
    }

    /// Commits `local.yml` (plus `extra` arguments to `git commit`) and force-pushes the host
    /// branch to the bare repository. Returns the commit id.
    fn commit(&self, playbook: &str, extra: &[&str]) -> String {
        std::fs::write(self.work.join("local.yml"), playbook).unwrap();
        git(&self.work, &["add", "-A"]);
        let mut args = extra.to_vec();
        args.extend_from_slice(&["commit", "-q", "-m", "change"]);
        git(&self.work, &args);
        let id = git(&self.work, &["rev-parse", "HEAD"]);
        self.push(&id);
        id
    }

    /// A commit signed (SSH signature, `gpg.format=ssh`) with the private key `key`.
    fn commit_signed(&self, playbook: &str, key: &Path) -> String {
        let signing_key = format!("user.signingkey={}", key.display());
        self.commit(
            playbook,
            &[
                "-c",
                "gpg.format=ssh",
                "-c",
                &signing_key,
                "-c",
                "commit.gpgsign=true",
            ],
        )
    }

    /// Force-pushes `rev` as the host branch (the admin's side, straight into the bare repo).
    fn push(&self, rev: &str) {
        git(
            &self.work,
            &[
                "push",
                "-q",
                "-f",
                self.bare().to_str().unwrap(),
                &format!("{rev}:refs/heads/hosts/{}", self.host),
            ],
        );
    }

    /// The arguments that reach the servers of this transport (key and known_hosts for SSH).
    fn transport_args(&self) -> Vec<String> {
        match &self.keys {
            Some(k) => vec![
                "--ssh-key".into(),
                k.client_key.display().to_string(),
                "--known-hosts".into(),
                k.known_hosts.display().to_string(),
            ],
            None => vec![],
        }
    }

    /// `gitops-agent converge` in pull mode against this fleet.
    fn converge(&self, extra: &[&str]) -> Output {
        self.converge_env(extra, &[])
    }

    /// [`Fleet::converge`] with `env` added to the agent's environment.
    fn converge_env(&self, extra: &[&str], env: &[(&str, &Path)]) -> Output {
        let url = self.url();
        let state = self.state.display().to_string();
        let root = format!("root={}", self.root.display());
        let mut args = vec![
            "converge",
            "--repo",
            &url,
            "--state-dir",
            &state,
            "-e",
            &root,
        ];
        let transport = self.transport_args();
        args.extend(transport.iter().map(String::as_str));
        args.extend_from_slice(extra);
        if env.is_empty() {
            return agent(&args);
        }
        Command::new(env!("CARGO_BIN_EXE_gitops-agent"))
            .args(&args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `gitops-agent status` for this state dir.
    fn agent_status(&self) -> String {
        let out = agent(&["status", "--state-dir", self.state.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        stdout(&out)
    }

    /// `status.yml` of the status branch in `bare`, if the branch exists there.
    fn status_in(&self, bare: &Path) -> Option<String> {
        let out = git_cmd(bare)
            .args(["show", &format!("status/{}:status.yml", self.host)])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn status(&self) -> String {
        self.status_in(&self.bare())
            .expect("a status commit on the server")
    }

    /// The subjects of the status branch in `bare`, newest first (empty when absent).
    fn status_log_in(&self, bare: &Path) -> Vec<String> {
        let out = git_cmd(bare)
            .args(["log", "--format=%s", &format!("status/{}", self.host)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn status_log(&self) -> Vec<String> {
        self.status_log_in(&self.bare())
    }

    fn app_conf(&self) -> Option<String> {
        std::fs::read_to_string(self.root.join("app.conf")).ok()
    }
}

fn play(content: &str) -> String {
    format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: app config\n      copy:\n        dest: \"{{{{ root }}}}/app.conf\"\n        content: \"{content}\\n\"\n"
    )
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// Keys for commit signatures: `admin` is trusted (in allowed_signers), `intruder` is not.
struct Signers {
    admin: PathBuf,
    intruder: PathBuf,
    allowed_signers: PathBuf,
}

impl Signers {
    fn new(dir: &Path) -> Signers {
        let dir = dir.join("signers");
        std::fs::create_dir_all(&dir).unwrap();
        let admin = dir.join("admin");
        let intruder = dir.join("intruder");
        common::ssh_keygen(&admin, "admin");
        common::ssh_keygen(&intruder, "intruder");
        let public = std::fs::read_to_string(dir.join("admin.pub")).unwrap();
        let allowed_signers = dir.join("allowed_signers");
        std::fs::write(
            &allowed_signers,
            format!("ops@example.org namespaces=\"git\" {public}"),
        )
        .unwrap();
        Signers {
            admin,
            intruder,
            allowed_signers,
        }
    }

    /// `--require-signatures --allowed-signers FILE`.
    fn args(&self) -> [&str; 3] {
        [
            "--require-signatures",
            "--allowed-signers",
            self.allowed_signers.to_str().unwrap(),
        ]
    }
}

fn with(base: &[&str], extra: &[&str]) -> Vec<String> {
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn converge_signed(f: &Fleet, s: &Signers, extra: &[&str]) -> Output {
    let args = with(&s.args(), extra);
    f.converge(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

/// First converge from a branch: the playbook of the tip is applied, the state and the status
/// commit say so.
fn first_converge(t: Transport) {
    let f = Fleet::new(t);
    let c1 = f.commit(&play("v1"), &[]);
    let out = f.converge(&[]);
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("v1\n"));
    let status = f.status();
    assert!(status.contains("result: changed"), "{status}");
    assert!(
        status.contains(&format!("commit_applied: {c1}")),
        "{status}"
    );
    let shown = f.agent_status();
    assert!(shown.contains(&format!("last applied:   {c1}")), "{shown}");
    assert!(shown.contains("status pending: no"), "{shown}");
    // The agent kept only the host's branch and the status branch (its own and the remote's).
    let refs = git(
        &f.state.join("repo.git"),
        &["for-each-ref", "--format=%(refname)"],
    );
    let mut refs: Vec<&str> = refs.lines().collect();
    refs.sort();
    assert_eq!(
        refs,
        [
            format!("refs/heads/status/{}", f.host),
            format!("refs/remotes/origin/hosts/{}", f.host),
            format!("refs/remotes/origin/status/{}", f.host),
        ],
        "{refs:?}"
    );
}

/// A new commit is applied, and the status commit for it appears on the server, on top of the
/// previous one, with the right content.
fn new_commit_is_applied_and_its_status_lands_on_the_server(t: Transport) {
    let f = Fleet::new(t);
    let c1 = f.commit(&play("v1"), &[]);
    assert_eq!(code(&f.converge(&[])), Some(2));
    let first_status = git(&f.bare(), &["rev-parse", &format!("status/{}", f.host)]);
    let c2 = f.commit(&play("v2"), &[]);
    let out = f.converge(&[]);
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("v2\n"));

    let status = f.status();
    for want in [
        "schema: gitops-agent/status/v1".to_string(),
        format!("host: {}", f.host),
        format!("agent_version: {}", env!("CARGO_PKG_VERSION")),
        format!("commit_seen: {c2}"),
        format!("commit_applied: {c2}"),
        "result: changed".to_string(),
        "name: app config".to_string(),
        "module: copy".to_string(),
        "at: local.yml:4".to_string(),
        "status: changed".to_string(),
    ] {
        assert!(status.contains(&want), "no `{want}` in:\n{status}");
    }
    assert!(!status.contains(&c1), "{status}");
    let log = f.status_log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        log[0],
        format!("{}: changed {} (1 changed)", f.host, &c2[..7])
    );
    assert_eq!(
        log[1],
        format!("{}: changed {} (1 changed)", f.host, &c1[..7])
    );
    // The new status commit's parent is the previous status commit.
    let parent = git(&f.bare(), &["rev-parse", &format!("status/{}^", f.host)]);
    assert_eq!(parent, first_status);
}

/// No new commit: the run stops after the fetch. Nothing is converged (drift on the host stays
/// until the next commit or the daemon) and no status commit is written.
fn no_new_commit_no_converge_no_status(t: Transport) {
    let f = Fleet::new(t);
    f.commit(&play("v1"), &[]);
    assert_eq!(code(&f.converge(&[])), Some(2));
    let tip = git(&f.bare(), &["rev-parse", &format!("status/{}", f.host)]);
    std::fs::write(f.root.join("app.conf"), "drifted\n").unwrap();
    let out = f.converge(&[]);
    assert_eq!(code(&out), Some(0), "{out:?}");
    assert!(stderr(&out).contains("nothing new"), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("drifted\n"), "it converged");
    assert_eq!(
        git(&f.bare(), &["rev-parse", &format!("status/{}", f.host)]),
        tip,
        "a poll with nothing new wrote a status"
    );
}

/// A commit signed by `git` with an `ssh-keygen` key listed in allowed_signers is applied.
fn signed_commit_is_accepted(t: Transport) {
    let f = Fleet::new(t);
    let s = Signers::new(f.tmp.path());
    let c = f.commit_signed(&play("signed"), &s.admin);
    assert!(
        git(&f.work, &["cat-file", "commit", "HEAD"]).contains("-----BEGIN SSH SIGNATURE-----"),
        "the test commit is not signed"
    );
    let out = converge_signed(&f, &s, &[]);
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("signed\n"));
    assert!(f.status().contains(&format!("commit_applied: {c}")));
}

/// Asserts a refused commit: exit 3, nothing applied (the root keeps `kept`), and a status
/// saying `refused` with `why`.
fn assert_refused(f: &Fleet, out: &Output, seen: &str, kept: Option<&str>, why: &str) {
    assert_eq!(code(out), Some(3), "{out:?}");
    assert!(stderr(out).contains(why), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), kept);
    let status = f.status();
    assert!(status.contains("result: refused"), "{status}");
    assert!(status.contains(why), "{status}");
    assert!(status.contains(&format!("commit_seen: {seen}")), "{status}");
    assert!(
        f.status_log()[0].starts_with(&format!("{}: refused {}", f.host, &seen[..7])),
        "{:?}",
        f.status_log()
    );
    assert!(f.agent_status().contains("last result:    refused"));
}

fn unsigned_commit_is_refused(t: Transport) {
    let f = Fleet::new(t);
    let s = Signers::new(f.tmp.path());
    let c = f.commit(&play("unsigned"), &[]);
    let out = converge_signed(&f, &s, &[]);
    assert_refused(&f, &out, &c, None, "commit is not signed");
}

fn unknown_key_is_refused(t: Transport) {
    let f = Fleet::new(t);
    let s = Signers::new(f.tmp.path());
    let c = f.commit_signed(&play("intruder"), &s.intruder);
    let out = converge_signed(&f, &s, &[]);
    assert_refused(&f, &out, &c, None, "is not in allowed_signers");
}

/// A commit whose content was changed after it was signed: the signature of a good commit, with
/// the tree swapped for one the admin never signed (written with `git hash-object -w -t commit`
/// and pushed).
fn tampered_commit_is_refused(t: Transport) {
    let f = Fleet::new(t);
    let s = Signers::new(f.tmp.path());
    let good = f.commit_signed(&play("good"), &s.admin);
    assert_eq!(code(&converge_signed(&f, &s, &[])), Some(2));
    f.commit_signed(&play("reviewed"), &s.admin);
    let signed = git(&f.work, &["cat-file", "commit", "HEAD"]) + "\n";
    std::fs::write(f.work.join("local.yml"), play("evil")).unwrap();
    git(&f.work, &["add", "-A"]);
    let evil_tree = git(&f.work, &["write-tree"]);
    let signed_tree = git(&f.work, &["rev-parse", "HEAD^{tree}"]);
    let tampered = signed.replacen(
        &format!("tree {signed_tree}\n"),
        &format!("tree {evil_tree}\n"),
        1,
    );
    assert_ne!(tampered, signed);
    assert!(tampered.contains("-----BEGIN SSH SIGNATURE-----"));
    let mut child = git_cmd(&f.work)
        .args(["hash-object", "-w", "-t", "commit", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(tampered.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    f.push(&id);
    // It descends from the applied commit: only the signature can stop it.
    assert_eq!(git(&f.work, &["rev-parse", &format!("{id}^")]), good);

    let out = converge_signed(&f, &s, &[]);
    assert_refused(&f, &out, &id, Some("good\n"), "bad signature");
}

/// A force-push back to an older commit, correctly signed, is refused (anti-rollback).
fn force_push_to_an_older_signed_commit_is_refused(t: Transport) {
    let f = Fleet::new(t);
    let s = Signers::new(f.tmp.path());
    let old = f.commit_signed(&play("v1"), &s.admin);
    assert_eq!(code(&converge_signed(&f, &s, &[])), Some(2));
    f.commit_signed(&play("v2"), &s.admin);
    assert_eq!(code(&converge_signed(&f, &s, &[])), Some(2));
    f.push(&old);
    let out = converge_signed(&f, &s, &[]);
    assert_refused(
        &f,
        &out,
        &old,
        Some("v2\n"),
        "does not descend from the last applied commit",
    );
    // Asking again changes nothing.
    let out = converge_signed(&f, &s, &[]);
    assert_eq!(code(&out), Some(3), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("v2\n"));
}

/// A commit whose YAML does not parse: nothing of it is applied, the host stays on the last good
/// commit, the status names the file and line; the next good commit goes through.
fn invalid_yaml_keeps_the_last_good_commit(t: Transport) {
    let f = Fleet::new(t);
    let good = f.commit(&play("v1"), &[]);
    assert_eq!(code(&f.converge(&[])), Some(2));
    // Line 5 opens a flow mapping that never closes.
    let bad = f.commit(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: app config\n      copy: {dest: /x, content: y\n    - name: next\n      debug: {msg: hi}\n",
        &[],
    );
    let out = f.converge(&[]);
    assert_eq!(code(&out), Some(3), "{out:?}");
    assert!(stderr(&out).contains("local.yml:"), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("v1\n"));
    let status = f.status();
    assert!(status.contains("result: invalid"), "{status}");
    assert!(status.contains(&format!("commit_seen: {bad}")), "{status}");
    assert!(
        status.contains(&format!("commit_applied: {good}")),
        "{status}"
    );
    let error = status
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error in {status}"));
    assert!(
        error.contains("local.yml:5") || error.contains("local.yml:6"),
        "{status}"
    );
    assert!(f.status_log()[0].starts_with(&format!("{}: invalid {}", f.host, &bad[..7])));
    let shown = f.agent_status();
    assert!(
        shown.contains(&format!("last good:      {good}")),
        "{shown}"
    );
    assert!(shown.contains("last result:    invalid"), "{shown}");

    f.commit(&play("v2"), &[]);
    assert_eq!(code(&f.converge(&[])), Some(2));
    assert_eq!(f.app_conf().as_deref(), Some("v2\n"));
}

/// The status goes to its own repository on another server. That server first rejects the push
/// (a pre-receive hook: read-only), then is down; converging never waits for it, the status
/// commits are kept, and they land once the server is back.
fn rejected_status_push_is_retried_until_the_server_is_back(t: Transport) {
    let f = Fleet::new(t);
    let mut status_srv = f.second_remote("status-srv");
    let status_bare = status_srv.base.join("status.git");
    git(
        &status_srv.base,
        &["init", "-q", "--bare", status_bare.to_str().unwrap()],
    );
    let hook = status_bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'read-only for maintenance' >&2\nexit 1\n",
    )
    .unwrap();
    set_mode(&hook, 0o755);
    let status_url = status_srv.url("status.git");
    let run = || f.converge(&["--status-repo", &status_url]);

    // Read-only: converged all the same, the status waits.
    let c1 = f.commit(&play("v1"), &[]);
    let out = run();
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert!(stderr(&out).contains("kept for the next run"), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("v1\n"));
    assert!(f.status_log_in(&status_bare).is_empty());
    let shown = f.agent_status();
    assert!(shown.contains("status pending: yes"), "{shown}");
    assert!(shown.contains("last result:    changed"), "{shown}");
    // A poll with nothing new tries again: still rejected, still pending.
    let out = run();
    assert_eq!(code(&out), Some(0), "{out:?}");
    assert!(f.status_log_in(&status_bare).is_empty());
    assert!(f.agent_status().contains("status pending: yes"));

    // Writable again, but down: a new commit converges, its status waits too.
    std::fs::remove_file(&hook).unwrap();
    status_srv.stop();
    let c2 = f.commit(&play("v2"), &[]);
    let out = run();
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert!(stderr(&out).contains("kept for the next run"), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("v2\n"));
    assert!(f.agent_status().contains("status pending: yes"));

    // Back: the next poll (nothing new to converge) pushes both kept status commits.
    status_srv.start_again();
    let out = run();
    assert_eq!(code(&out), Some(0), "{out:?}");
    let log = f.status_log_in(&status_bare);
    assert_eq!(
        log,
        [
            format!("{}: changed {} (1 changed)", f.host, &c2[..7]),
            format!("{}: changed {} (1 changed)", f.host, &c1[..7]),
        ]
    );
    let status = f.status_in(&status_bare).unwrap();
    assert!(
        status.contains(&format!("commit_applied: {c2}")),
        "{status}"
    );
    assert!(f.agent_status().contains("status pending: no"));
    // Nothing went to the fleet repository.
    assert!(f.status_log().is_empty());
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The host's branch is not on the server: a clear error naming the branch and the repository,
/// exit 1, a `failed` status commit on the (reachable) server and in `gitops-agent status`;
/// once the branch is pushed, the next run converges.
fn absent_branch_is_a_clear_error_and_a_status(t: Transport) {
    let f = Fleet::new(t);
    // The repository has other hosts' branches, not this one.
    std::fs::write(f.work.join("local.yml"), play("other")).unwrap();
    git(&f.work, &["add", "-A"]);
    git(&f.work, &["commit", "-q", "-m", "other host"]);
    git(
        &f.work,
        &[
            "push",
            "-q",
            f.bare().to_str().unwrap(),
            "HEAD:refs/heads/hosts/some-other-host",
        ],
    );
    let branch = format!("hosts/{}", f.host);
    let out = f.converge(&[]);
    assert_eq!(code(&out), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("branch `{branch}` not found at {}", f.url())),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(f.app_conf().is_none());
    let status = f.status();
    assert!(status.contains("result: failed"), "{status}");
    assert!(
        status.contains(&format!("`{branch}` not found")),
        "{status}"
    );
    assert!(status.contains("commit_seen: null"), "{status}");
    assert!(
        f.status_log()[0].starts_with(&format!(
            "{}: failed - (branch `{branch}` not found",
            f.host
        )),
        "{:?}",
        f.status_log()
    );
    let shown = f.agent_status();
    assert!(shown.contains("last result:    failed"), "{shown}");
    assert!(shown.contains("last applied:   -"), "{shown}");
    assert!(shown.contains("status pending: no"), "{shown}");

    // The branch appears: converged.
    let c = f.commit(&play("here"), &[]);
    let out = f.converge(&[]);
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("here\n"));
    assert!(f.status().contains(&format!("commit_applied: {c}")));
}

/// A bare repository with 20,000 branches (`hosts/other-NNNNN`, packed), built once per target
/// dir under `CARGO_TARGET_TMPDIR` and copied by each test.
fn many_branches_template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-20000-branches-v1.git");
        if dir.join("packed-refs").exists() {
            return dir;
        }
        let build = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let bare = build.path().join("t.git");
        git(
            build.path(),
            &["init", "-q", "--bare", bare.to_str().unwrap()],
        );
        let tree = git(&bare, &["hash-object", "-w", "-t", "tree", "/dev/null"]);
        let commit = String::from_utf8(
            git_cmd(&bare)
                .args(["commit-tree", &tree, "-m", "another host"])
                .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
                .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_string();
        let mut child = git_cmd(&bare)
            .args(["update-ref", "--stdin"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = String::new();
        for i in 0..20_000 {
            input.push_str(&format!("create refs/heads/hosts/other-{i:05} {commit}\n"));
        }
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        git(&bare, &["pack-refs", "--all"]);
        // Atomic: a concurrent or interrupted build never leaves a half-made template.
        match std::fs::rename(&bare, &dir) {
            Ok(()) => {}
            Err(_) if dir.join("packed-refs").exists() => {}
            Err(e) => panic!("{}: {e}", dir.display()),
        }
        dir
    })
}

/// The fleet repository also holds 20,000 other branches: the agent still asks for (and keeps)
/// only the host's branch; first converge, a poll with nothing new and a new commit all work.
fn twenty_thousand_other_branches(t: Transport) {
    let template = many_branches_template();
    let f = Fleet::with_bare(t, |bare| {
        let st = Command::new("cp")
            .arg("-a")
            .arg(template)
            .arg(bare)
            .status()
            .unwrap();
        assert!(st.success());
    });
    let branches = git(&f.bare(), &["for-each-ref", "--count=30000", "refs/heads/"]);
    assert_eq!(branches.lines().count(), 20_000);
    f.commit(&play("v1"), &[]);
    let out = f.converge(&[]);
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("v1\n"));
    let out = f.converge(&[]);
    assert_eq!(code(&out), Some(0), "{out:?}");
    assert!(stderr(&out).contains("nothing new"), "{out:?}");
    let c2 = f.commit(&play("v2"), &[]);
    let out = f.converge(&[]);
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert!(f.status().contains(&format!("commit_applied: {c2}")));
    let local = git(
        &f.state.join("repo.git"),
        &["for-each-ref", "--format=%(refname)"],
    );
    assert_eq!(local.lines().count(), 3, "{local}");
    assert!(!local.contains("other-"), "{local}");
    if t == Transport::Http {
        // Every ls-refs asked the server for the host's branch only (protocol v2 ref-prefix),
        // one per run: three runs.
        let log = std::fs::read_to_string(f.remote.log()).unwrap();
        let ls_refs: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with("POST") && l.contains("ref-prefix"))
            .collect();
        assert!(ls_refs.len() >= 3, "{log}");
        for l in &ls_refs {
            let prefixes: Vec<&str> = l.split("ref-prefix ").skip(1).collect();
            assert!(!prefixes.is_empty(), "{l}");
            for p in prefixes {
                assert!(
                    p.starts_with(&format!("refs/heads/hosts/{}'", f.host)),
                    "{l}"
                );
            }
        }
    }
}

/// file:// only, the rest of the converge contract: a named config file that is missing, `--force`,
/// an identical status not committed again, an unknown-argument commit, `--allow-rollback`.
#[test]
fn force_identical_status_and_allow_rollback() {
    let f = Fleet::new(Transport::File);
    // A named config file that does not exist is an error, not silently ignored.
    let out = f.converge(&["--config", "/nonexistent-on-purpose.yml"]);
    assert_eq!(code(&out), Some(3), "{out:?}");
    assert!(stderr(&out).contains("nonexistent-on-purpose"));

    let c1 = f.commit(&play("v1"), &[]);
    assert_eq!(code(&f.converge(&[])), Some(2));
    // --force converges anyway: nothing to change, and the status says so.
    let out = f.converge(&["--force"]);
    assert_eq!(code(&out), Some(0), "{out:?}");
    assert!(f.status().contains("result: converged"));
    // Again: the same in substance (only times differ): no new status commit.
    let before = f.status_log().len();
    let out = f.converge(&["--force"]);
    assert_eq!(code(&out), Some(0), "{out:?}");
    assert_eq!(
        f.status_log().len(),
        before,
        "an identical status was committed again"
    );

    // An unknown module argument: invalid, file and line, last good stays.
    let bad = f.commit(
        "- hosts: all\n  tasks:\n    - copy: {dest: /x, content: y, bogus: 1}\n",
        &[],
    );
    let out = f.converge(&[]);
    assert_eq!(code(&out), Some(3), "{out:?}");
    let status = f.status();
    assert!(status.contains("result: invalid"), "{status}");
    assert!(status.contains("local.yml:3"), "{status}");
    assert!(status.contains(&format!("commit_seen: {bad}")), "{status}");
    assert!(
        status.contains(&format!("commit_applied: {c1}")),
        "{status}"
    );

    f.commit(&play("v2"), &[]);
    assert_eq!(code(&f.converge(&[])), Some(2));
    assert_eq!(f.app_conf().as_deref(), Some("v2\n"));
    // A force-push back is refused, unless allowed.
    f.push(&c1);
    assert_eq!(code(&f.converge(&[])), Some(3));
    assert_eq!(f.app_conf().as_deref(), Some("v2\n"));
    let out = f.converge(&["--allow-rollback"]);
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("v1\n"));
}

// ---------------------------------------------------------------------------------------------
// HTTP credentials (from a file, never on the command line) against a server that requires
// them, over https:// with a private CA (`--http-ca-file` / `http.ca_file`). gix sends
// credentials only over https://.

/// An https:// server (cgi_server.py with TLS from a private CA) that requires Basic auth as
/// `ops:s3cret`, serving `fleet.git`.
struct HttpsFleet {
    f: Fleet,
    ca: common::PrivateCa,
    _server: common::Server,
    port: u16,
    log: PathBuf,
}

const ACCOUNT: &str = "ops:s3cret";

impl HttpsFleet {
    fn new() -> HttpsFleet {
        let f = Fleet::new(Transport::File);
        let ca = common::PrivateCa::new(&f.tmp.path().join("ca"));
        let log = f.tmp.path().join("https.log");
        let mut args = ca.server_args();
        args.extend(["--auth".to_string(), ACCOUNT.to_string()]);
        let (server, port) = common::cgi_server(&f.remote.base, &log, &args);
        HttpsFleet {
            f,
            ca,
            _server: server,
            port,
            log,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/git/fleet.git", self.port)
    }

    /// A credentials file (mode 0600) with `user:password`.
    fn credentials(&self, name: &str, account: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let (user, password) = account.split_once(':').unwrap();
        let path = self.f.tmp.path().join(name);
        std::fs::write(&path, format!("username={user}\npassword={password}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// `gitops-agent converge --repo <https url>` with `extra` options.
    fn converge(&self, state: &Path, extra: &[&str]) -> Output {
        let url = self.url();
        let root = format!("root={}", self.f.root.display());
        let mut args = vec![
            "converge",
            "--repo",
            &url,
            "--state-dir",
            state.to_str().unwrap(),
            "-e",
            &root,
        ];
        args.extend_from_slice(extra);
        agent(&args)
    }

    fn agent_status(&self, state: &Path) -> String {
        stdout(&agent(&["status", "--state-dir", state.to_str().unwrap()]))
    }
}

/// The right credentials over https:// with a private CA: fetch and status push work. Without
/// the CA file the same server is refused (its certificate is not trusted).
#[test]
fn https_with_a_private_ca_and_the_right_credentials() {
    let h = HttpsFleet::new();
    let c1 = h.f.commit(&play("v1"), &[]);
    let creds = h.credentials("creds", ACCOUNT);
    let ca = h.ca.ca_cert.to_str().unwrap();
    let creds_arg = creds.to_str().unwrap();

    // The private CA is not in the system's store: refused, clearly, naming the repository.
    let untrusted = h.f.tmp.path().join("state-untrusted");
    let out = h.converge(&untrusted, &["--http-credentials-file", creds_arg]);
    assert_eq!(code(&out), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains(&h.url()), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(h.f.app_conf().is_none());

    let state = h.f.tmp.path().join("state-https");
    let out = h.converge(
        &state,
        &["--http-credentials-file", creds_arg, "--http-ca-file", ca],
    );
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert_eq!(h.f.app_conf().as_deref(), Some("v1\n"));
    // The status went back over https with the same account.
    let status = h.f.status();
    assert!(
        status.contains(&format!("commit_applied: {c1}")),
        "{status}"
    );
    assert!(h.agent_status(&state).contains("status pending: no"));
    // The server did turn away the requests without credentials (gix asks for them on a 401).
    let log = std::fs::read_to_string(&h.log).unwrap();
    assert!(log.contains(" 401 (authorization: none)"), "{log}");
    assert!(
        log.contains("POST /git/fleet.git/git-receive-pack"),
        "{log}"
    );

    // A poll with nothing new, and a new commit, over the same authenticated transport.
    let out = h.converge(
        &state,
        &["--http-credentials-file", creds_arg, "--http-ca-file", ca],
    );
    assert_eq!(code(&out), Some(0), "{out:?}");
    let c2 = h.f.commit(&play("v2"), &[]);
    let out = h.converge(
        &state,
        &["--http-credentials-file", creds_arg, "--http-ca-file", ca],
    );
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert!(h.f.status().contains(&format!("commit_applied: {c2}")));
}

/// No credentials, or wrong ones: a clear error naming the repository (exit 1, no crash),
/// nothing applied, and the failure recorded — in a status commit when the status goes to
/// another, reachable repository, else in the local state with the status pending.
#[test]
fn https_without_or_with_wrong_credentials_is_a_clear_error() {
    let h = HttpsFleet::new();
    h.f.commit(&play("v1"), &[]);
    let ca = h.ca.ca_cert.to_str().unwrap();
    let status_bare = h.f.tmp.path().join("status.git");
    git(
        h.f.tmp.path(),
        &["init", "-q", "--bare", status_bare.to_str().unwrap()],
    );
    let status_url = format!("file://{}", status_bare.display());
    let wrong = h.credentials("wrong", "ops:guess");
    let wrong = wrong.to_str().unwrap();

    for (name, extra, why) in [
        ("none", vec![], "requires authentication"),
        (
            "wrong",
            vec!["--http-credentials-file", wrong],
            "were not accepted by the remote",
        ),
    ] {
        let state = h.f.tmp.path().join(format!("state-{name}"));
        let mut args = vec!["--http-ca-file", ca, "--status-repo", &status_url];
        args.extend(extra);
        let out = h.converge(&state, &args);
        assert_eq!(code(&out), Some(1), "{name}: {out:?}");
        let err = stderr(&out);
        assert!(err.contains(&h.url()), "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(h.f.app_conf().is_none());
        let status = h.f.status_in(&status_bare).expect("a status commit");
        assert!(status.contains("result: failed"), "{name}: {status}");
        assert!(status.contains(&h.url()), "{name}: {status}");
        assert!(status.contains(why), "{name}: {status}");
        let subject = &h.f.status_log_in(&status_bare)[0];
        assert!(
            subject.starts_with(&format!("{}: failed - (fetching `hosts/", h.f.host)),
            "{name}: {subject}"
        );
        let shown = h.agent_status(&state);
        assert!(shown.contains("last result:    failed"), "{name}: {shown}");
        assert!(shown.contains("status pending: no"), "{name}: {shown}");
    }

    // The status goes to the same server, with the wrong account: recorded locally, pending.
    let state = h.f.tmp.path().join("state-local");
    let out = h.converge(
        &state,
        &["--http-ca-file", ca, "--http-credentials-file", wrong],
    );
    assert_eq!(code(&out), Some(1), "{out:?}");
    assert!(stderr(&out).contains("kept for the next run"), "{out:?}");
    let shown = h.agent_status(&state);
    assert!(shown.contains("last result:    failed"), "{shown}");
    assert!(shown.contains("status pending: yes"), "{shown}");
    assert!(h.f.status_log().is_empty());

    // Plain http:// never carries the credentials (the same server behind http would get them
    // in clear text): refused before sending, with the reason.
    let (_plain, port) = common::http_server(&h.f.remote.base, &h.log, None, Some(ACCOUNT));
    let right = h.credentials("right", ACCOUNT);
    let state = h.f.tmp.path().join("state-plain");
    let url = format!("http://127.0.0.1:{port}/git/fleet.git");
    let out = agent(&[
        "converge",
        "--repo",
        &url,
        "--state-dir",
        state.to_str().unwrap(),
        "--http-credentials-file",
        right.to_str().unwrap(),
        "--no-status",
    ]);
    assert_eq!(code(&out), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("only sent over https://"), "{err}");
}

/// A plain http:// remote needs no CA store: on a host without one (no `ca-certificates`, which
/// the package only Recommends; here an empty `SSL_CERT_FILE`/`SSL_CERT_DIR`, which the system
/// store is read from when set), the fetch and the status push over http:// work. (reqwest sets
/// up TLS when it builds its client and used to fail there: "No CA certificates were loaded from
/// the system", found by tests/system/test_e2e_container.py with the .deb installed by dpkg.)
#[test]
fn plain_http_needs_no_system_ca_store() {
    let f = Fleet::new(Transport::Http);
    let status = f.tmp.path().join("srv/status.git");
    git(
        f.tmp.path(),
        &["init", "-q", "--bare", status.to_str().unwrap()],
    );
    git(&status, &["config", "http.receivepack", "true"]);
    let no_ca = f.tmp.path().join("no-ca");
    std::fs::create_dir_all(&no_ca).unwrap();
    let empty = no_ca.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let c1 = f.commit(&play("v1"), &[]);
    let status_url = f.remote.url("status.git");
    let out = f.converge_env(
        &["--status-repo", &status_url],
        &[("SSL_CERT_FILE", &empty), ("SSL_CERT_DIR", &no_ca)],
    );
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("v1\n"));
    let doc = f
        .status_in(&status)
        .expect("the status pushed over http://");
    assert!(doc.contains(&format!("commit_applied: {c1}")), "{doc}");
}
