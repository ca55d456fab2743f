//! Pull mode end to end, through the `gitops-agent` binary, against real servers on 127.0.0.1:
//! every scenario of issue 3 runs over `file://`, smart HTTP (`git http-backend` behind the CGI
//! bridge) and SSH (`sshd` with key auth and a known_hosts check). Each scenario is one function
//! taking the transport; `matrix!` makes one `#[test]` per scenario and transport
//! (`first_converge::file`, `first_converge::http`, `first_converge::ssh`, ...).
//!
//! The trust scenarios (signatures, rollback) are in `pull_trust.rs`, HTTP Basic auth and CAs
//! in `pull_https.rs`; the fleet they share is `common/fleet.rs`.

mod common;
#[path = "common/fleet.rs"]
#[macro_use]
mod fleet;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::{git, git_cmd, stderr, Transport};
use fleet::{code, play, set_mode, Fleet};

matrix!(
    first_converge,
    new_commit_is_applied_and_its_status_lands_on_the_server,
    no_new_commit_no_converge_no_status,
    invalid_yaml_keeps_the_last_good_commit,
    rejected_status_push_is_retried_until_the_server_is_back,
    absent_branch_is_a_clear_error_and_a_status,
    twenty_thousand_other_branches,
);

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

    // An invalid module argument value: invalid, file and line, last good stays. (An unknown
    // argument is not invalid input: the task fails only if it runs.)
    let bad = f.commit(
        "- hosts: all\n  tasks:\n    - file: {path: /x, state: sideways}\n",
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
