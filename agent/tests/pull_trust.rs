//! Pull mode end to end, the trust scenarios: signed commits accepted, unsigned, unknown-key and
//! tampered commits refused, a force-push back refused; each over `file://`, smart HTTP and SSH
//! (`tampered_commit_is_refused::ssh`, ...). See `pull.rs` for the rest.

mod common;
#[path = "common/fleet.rs"]
#[macro_use]
mod fleet;

use std::io::Write;
use std::process::{Output, Stdio};

use common::{git, git_cmd, stderr, Transport};
use fleet::{code, converge_signed, play, Fleet, Signers};

matrix!(
    signed_commit_is_accepted,
    unsigned_commit_is_refused,
    unknown_key_is_refused,
    tampered_commit_is_refused,
    force_push_to_an_older_signed_commit_is_refused,
);

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
