//! Status commits and their push over every transport: the default pusher, the native
//! receive-pack client and the `git push` fallback, a remote moved by someone else (refused,
//! fetched, rebased), a recreated local repository, a hook that refuses.

use std::time::{Duration, Instant};

use gitops_agent::git::{
    FetchOptions, GitRepo, NativePush, PushOutcome, PushRequest, PushResult, StatusPush,
};

use crate::cli_push::GitCliPush;
use crate::support::*;

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
    let sshd = Sshd::start(up.tmp.path());
    let url = sshd.url("fleet.git");
    let opts = sshd.options();
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
        remote_ref: &format!("refs/heads/{STATUS_BRANCH}"),
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
    let sshd = Sshd::start(up.tmp.path());
    let url = sshd.url("fleet.git");
    let opts = sshd.options();
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
