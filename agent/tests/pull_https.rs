//! Pull mode end to end over https://: HTTP credentials (from a file, never on the command line)
//! against a server that requires them, with a private CA (`--http-ca-file` / `http.ca_file`);
//! and a host without CA certificates.

mod common;
#[path = "common/fleet.rs"]
#[macro_use]
mod fleet;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{agent, git, stderr, stdout, Transport};
use fleet::{code, play, Fleet};

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

/// A host without CA certificates (no `ca-certificates` package, as in a minimal image): plain
/// http:// still fetches and pushes the status (the HTTP client used to refuse to start there),
/// and https:// fails with a hint at what is missing. The system's store is emptied for the
/// agent's process with SSL_CERT_FILE/SSL_CERT_DIR, which rustls' native certificate loader
/// honours instead of the system paths.
#[test]
fn http_works_on_a_host_without_ca_certificates() {
    let f = Fleet::new(Transport::Http);
    let c1 = f.commit(&play("v1"), &[]);
    let empty_dir = f.tmp.path().join("no-certs");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let empty_file = empty_dir.join("none.pem");
    std::fs::write(&empty_file, "").unwrap();
    let no_cas = |url: &str, state: &Path| {
        let root = format!("root={}", f.root.display());
        Command::new(env!("CARGO_BIN_EXE_gitops-agent"))
            .args(["converge", "--repo", url, "--state-dir"])
            .arg(state)
            .args(["-e", &root])
            .env("SSL_CERT_FILE", &empty_file)
            .env("SSL_CERT_DIR", &empty_dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = no_cas(&f.url(), &f.state);
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert_eq!(f.app_conf().as_deref(), Some("v1\n"));
    assert!(f.status().contains(&format!("commit_applied: {c1}")));

    let h = HttpsFleet::new();
    h.f.commit(&play("v1"), &[]);
    let out = no_cas(&h.url(), &h.f.tmp.path().join("state-no-cas"));
    assert_eq!(code(&out), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("install ca-certificates"), "{err}");
}
