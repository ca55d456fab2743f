//! The Git layer's unit tests that need no outside tool. Fetch and push over real servers
//! (`file://`, `git daemon`, smart HTTP, `sshd`) are in the integration tier:
//! `agent/tests/git_transports/`.

use std::path::Path;

use super::*;

#[test]
fn handles_can_move_to_a_worker_thread() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<GitRepo>();
    send_sync::<TreeSource>();
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
