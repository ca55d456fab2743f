use std::path::Path;
use std::process::Command;

use super::GitModule;
use crate::modules::testing::{v, Harness};

/// `git ARGS` in `dir` with a fixed identity and dates (deterministic commit ids).
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A source repository with two commits on `main` (the first tagged `v1`); returns the ids.
fn source(h: &Harness) -> (String, String) {
    let src = h.h("src");
    std::fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(src.join("a.txt"), "one\n").unwrap();
    git(&src, &["add", "a.txt"]);
    git(&src, &["commit", "-q", "-m", "one"]);
    git(&src, &["tag", "-a", "v1", "-m", "v1"]);
    let one = git(&src, &["rev-parse", "HEAD"]);
    std::fs::write(src.join("a.txt"), "two\n").unwrap();
    git(&src, &["commit", "-q", "-am", "two"]);
    (one, git(&src, &["rev-parse", "HEAD"]))
}

fn s(o: &crate::resource::Outcome, k: &str) -> String {
    o.data.get(k).map(|x| x.to_string()).unwrap_or_default()
}

#[test]
fn clones_updates_and_reports_before_after() {
    let h = Harness::new();
    let (one, two) = source(&h);
    let repo = h.hs("src");
    let dest = h.hs("wt");
    let args = |version: &str| {
        vec![
            ("repo", v(&repo)),
            ("dest", v(&dest)),
            ("version", v(version)),
        ]
    };
    let (changed, out) = h.run(&GitModule, &args("v1")).unwrap();
    assert!(changed && out.failed.is_none(), "{out:?}");
    assert_eq!(
        (s(&out, "before"), s(&out, "after")),
        ("None".into(), one.clone())
    );
    assert_eq!(std::fs::read_to_string(h.h("wt/a.txt")).unwrap(), "one\n");
    // Again at the tag: nothing to do.
    assert!(h.changes(&GitModule, &args("v1")).is_empty());
    // To the branch: the newer commit.
    let (changed, out) = h.run(&GitModule, &args("main")).unwrap();
    assert!(changed, "{out:?}");
    assert_eq!((s(&out, "before"), s(&out, "after")), (one, two.clone()));
    assert_eq!(std::fs::read_to_string(h.h("wt/a.txt")).unwrap(), "two\n");
    assert!(h.changes(&GitModule, &args("main")).is_empty());
    assert!(h.changes(&GitModule, &args("HEAD")).is_empty());
    assert!(h.changes(&GitModule, &args(&two)).is_empty());
}

#[test]
fn local_modifications_fail_without_force_and_are_discarded_with_it() {
    let h = Harness::new();
    source(&h);
    let repo = h.hs("src");
    let dest = h.hs("wt");
    let base = vec![("repo", v(&repo)), ("dest", v(&dest))];
    h.run(&GitModule, &base).unwrap();
    std::fs::write(h.h("wt/a.txt"), "edited\n").unwrap();
    let (_, out) = h.run(&GitModule, &base).unwrap();
    assert_eq!(
        out.failed.as_deref(),
        Some(format!("Local modifications exist in the destination: {dest} (force=no).").as_str())
    );
    let mut forced = base.clone();
    forced.push(("force", v("yes")));
    let (changed, out) = h.run(&GitModule, &forced).unwrap();
    assert!(changed && out.failed.is_none(), "{out:?}");
    assert_eq!(std::fs::read_to_string(h.h("wt/a.txt")).unwrap(), "two\n");
    assert!(h.changes(&GitModule, &forced).is_empty());
}

#[test]
fn shallow_clone_of_a_branch() {
    let h = Harness::new();
    let (_, two) = source(&h);
    let repo = h.hs("src");
    let dest = h.hs("wt");
    let args = vec![
        ("repo", v(&repo)),
        ("dest", v(&dest)),
        ("version", v("main")),
        ("depth", minijinja::Value::from(1)),
    ];
    let (changed, out) = h.run(&GitModule, &args).unwrap();
    assert!(changed && out.failed.is_none(), "{out:?}");
    assert_eq!(s(&out, "after"), two);
    assert_eq!(git(&h.h("wt"), &["rev-list", "--count", "HEAD"]), "1");
    assert!(h.changes(&GitModule, &args).is_empty());
}

#[test]
fn unimplemented_arguments_are_refused() {
    let h = Harness::new();
    for (k, val) in [
        ("bare", "yes"),
        ("archive", "/tmp/x.zip"),
        ("track_submodules", "yes"),
    ] {
        let e = h
            .prepare(
                &GitModule,
                &[("repo", v("/x")), ("dest", v("/y")), (k, v(val))],
            )
            .err()
            .unwrap();
        assert!(e.0.contains(&format!("`{k}` is not supported")), "{e}");
    }
    let e = h.prepare(&GitModule, &[("repo", v("/x"))]).err().unwrap();
    assert_eq!(
        e.0,
        "the destination directory must be specified unless clone=no"
    );
}

#[test]
fn ssh_command_as_git_py_builds_it() {
    let h = Harness::new();
    let cmd = |pairs: &[(&str, minijinja::Value)]| {
        let mut pairs = pairs.to_vec();
        pairs.push(("repo", v("/r")));
        let args = h.args(&super::SPEC, &pairs).unwrap();
        super::ssh_command(&args, &[("GIT_SSH_COMMAND".into(), "ssh".into())])
    };
    assert_eq!(cmd(&[]), "ssh  -o BatchMode=yes");
    assert_eq!(
        cmd(&[("accept_hostkey", v("yes")), ("key_file", v("/k"))]),
        "ssh  -o StrictHostKeyChecking=no -o BatchMode=yes  -i /k -o IdentitiesOnly=yes"
    );
    assert_eq!(
        cmd(&[("ssh_opts", v("-p 2222")), ("accept_newhostkey", v("yes"))]),
        "ssh  -p 2222 -o StrictHostKeyChecking=accept-new -o BatchMode=yes"
    );
}
