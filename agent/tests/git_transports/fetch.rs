//! Fetch over every transport (depth 1 first, no-change, a new commit), the tree source, the
//! anti-rollback ancestry check across the shallow boundary, commit signatures, and a repository
//! with 20,000 other branches.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gitops_agent::git::{FetchOptions, GitError, GitRepo};
use gitops_modules::source::{RepoPath, Source, SourceError, SourceKind};

use crate::support::*;

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
    let sshd = Sshd::start(up.tmp.path());
    let url = sshd.url("fleet.git");
    let opts = sshd.options();
    fetch_round_trip(&up, &url, &opts);
    // An unknown host key is refused (StrictHostKeyChecking=yes), not prompted for.
    std::fs::write(sshd.known_hosts(), "").unwrap();
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

/// What crosses the wire does not grow with the number of other hosts' branches: the server lists
/// the host's ref only. (How long such a poll takes, with 10 and with 20,000 branches, is measured
/// by the benchmark tests/bench/poll_bench.sh, not asserted here.)
#[test]
fn a_poll_lists_only_the_host_ref_among_20000_other_branches() {
    let up = Upstream::new();
    let trace = up.tmp.path().join("daemon-trace.log");
    let (_daemon, port) = git_daemon(up.tmp.path(), &trace);
    let url = format!("git://127.0.0.1:{port}/fleet.git");
    let (_tmp, repo) = agent_repo();
    let first = repo
        .fetch(&url, HOST_BRANCH, &FetchOptions::default())
        .unwrap();
    let few = time_no_change(&repo, &url, &FetchOptions::default(), 3);

    add_branches(&up, 20_000);
    std::fs::write(&trace, "").unwrap();
    let many = time_no_change(&repo, &url, &FetchOptions::default(), 3);
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(
        trace.contains("ref-prefix refs/heads/hosts/web-01"),
        "the fetch asked for the host's branch:\n{trace}"
    );
    // The server listed the host's ref only: none of the 20,000 others crossed the wire.
    assert!(
        !trace.contains("hosts/node-"),
        "other branches were listed to the agent"
    );
    eprintln!("TIMING no-change poll: {few:?} with a few branches, {many:?} with 20,000 more");
    let again = repo
        .fetch(&url, HOST_BRANCH, &FetchOptions::default())
        .unwrap();
    assert_eq!((again.tip, again.changed), (first.tip, false));
}
