use super::*;
use crate::modules::testing::{v, Harness};
use std::os::unix::fs::PermissionsExt;

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn content_copy_is_idempotent_and_check_only_reads() {
    let h = Harness::new();
    let args = [("content", v("hello\n")), ("dest", v(&h.hs("a.conf")))];
    // Check never changes anything.
    let ch = h.changes(&CopyModule, &args);
    assert_eq!(ch.len(), 1);
    assert!(!h.h("a.conf").exists());
    let (changed, out) = h.run(&CopyModule, &args).unwrap();
    assert!(changed);
    assert_eq!(std::fs::read_to_string(h.h("a.conf")).unwrap(), "hello\n");
    assert_eq!(mode_of(&h.h("a.conf")), 0o666 & !mode::umask());
    assert_eq!(out.data["mode"].as_str(), Some("0644"));
    assert!(h.changes(&CopyModule, &args).is_empty());
    // Mode change only.
    let args2 = [
        ("content", v("hello\n")),
        ("dest", v(&h.hs("a.conf"))),
        ("mode", v("u=rw,g=,o=")),
    ];
    let ch = h.changes(&CopyModule, &args2);
    assert!(
        matches!(ch[..], [Change::SetMode { to: 0o600, .. }]),
        "{ch:?}"
    );
    h.run(&CopyModule, &args2).unwrap();
    assert_eq!(mode_of(&h.h("a.conf")), 0o600);
    assert!(h.changes(&CopyModule, &args2).is_empty());
    // Content change keeps the existing mode when none is given.
    h.run(
        &CopyModule,
        &[("content", v("x")), ("dest", v(&h.hs("a.conf")))],
    )
    .unwrap();
    assert_eq!(mode_of(&h.h("a.conf")), 0o600);
}

#[test]
fn src_from_files_dir_and_dest_dir() {
    let h = Harness::new();
    h.repo_file("files/app.conf", "from files\n");
    h.repo_file("other.conf", "from root\n");
    std::fs::set_permissions(
        h.repo.path().join("files/app.conf"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir(h.h("etc")).unwrap();
    let (changed, _) = h
        .run(
            &CopyModule,
            &[("src", v("app.conf")), ("dest", v(&h.hs("etc")))],
        )
        .unwrap();
    assert!(changed);
    assert_eq!(
        std::fs::read_to_string(h.h("etc/app.conf")).unwrap(),
        "from files\n"
    );
    // Ansible does not carry the source's executable bit without `mode: preserve`.
    assert_eq!(mode_of(&h.h("etc/app.conf")), 0o666 & !mode::umask());
    h.run(
        &CopyModule,
        &[
            ("src", v("app.conf")),
            ("dest", v(&h.hs("p.conf"))),
            ("mode", v("preserve")),
        ],
    )
    .unwrap();
    assert_eq!(mode_of(&h.h("p.conf")), 0o755);
    // Trailing slash: the directory is created.
    h.run(
        &CopyModule,
        &[("src", v("other.conf")), ("dest", v(&h.hs("new/")))],
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(h.h("new/other.conf")).unwrap(),
        "from root\n"
    );
    let e = h
        .prepare(
            &CopyModule,
            &[("content", v("x")), ("dest", v(&h.hs("etc")))],
        )
        .err()
        .unwrap();
    assert_eq!(e.0, "can not use content with a dir as dest");
    let e = h
        .prepare(
            &CopyModule,
            &[("src", v("missing")), ("dest", v(&h.hs("m")))],
        )
        .err()
        .unwrap();
    assert!(e.0.contains("Could not find or access 'missing'"), "{e}");
    assert!(h
        .prepare(
            &CopyModule,
            &[("src", v("../../etc/passwd")), ("dest", v(&h.hs("m")))]
        )
        .is_err());
}

#[test]
fn force_no_does_nothing_not_even_mode() {
    let h = Harness::new();
    std::fs::write(h.h("f"), "old").unwrap();
    std::fs::set_permissions(h.h("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let args = [
        ("content", v("new")),
        ("dest", v(&h.hs("f"))),
        ("force", v("no")),
        ("mode", v("0644")),
    ];
    assert!(h.changes(&CopyModule, &args).is_empty());
    let (changed, out) = h.run(&CopyModule, &args).unwrap();
    assert!(!changed);
    assert_eq!(out.data["msg"].as_str(), Some("file already exists"));
    assert_eq!(mode_of(&h.h("f")), 0o600);
    assert_eq!(std::fs::read_to_string(h.h("f")).unwrap(), "old");
    // Missing: written.
    let args = [
        ("content", v("new")),
        ("dest", v(&h.hs("g"))),
        ("thirsty", v("no")),
    ];
    assert!(h.run(&CopyModule, &args).unwrap().0);
}

#[test]
fn symlink_at_dest_is_replaced_not_followed() {
    let h = Harness::new();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("secret");
    std::fs::write(&target, "same\n").unwrap();
    std::os::unix::fs::symlink(&target, h.h("link")).unwrap();
    let args = [("content", v("same\n")), ("dest", v(&h.hs("link")))];
    // Changed even though the target has the same content (as Ansible: the link goes).
    let (changed, _) = h.run(&CopyModule, &args).unwrap();
    assert!(changed);
    assert!(std::fs::symlink_metadata(h.h("link")).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "same\n");
    assert!(h.changes(&CopyModule, &args).is_empty());
    // follow: yes writes the target, because the task says so.
    std::fs::remove_file(h.h("link")).unwrap();
    std::os::unix::fs::symlink(&target, h.h("link")).unwrap();
    let args = [
        ("content", v("through\n")),
        ("dest", v(&h.hs("link"))),
        ("follow", v("yes")),
    ];
    h.run(&CopyModule, &args).unwrap();
    assert!(std::fs::symlink_metadata(h.h("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "through\n");
}

#[test]
fn backup_and_validate() {
    let h = Harness::new();
    std::fs::write(h.h("f"), "old\n").unwrap();
    let (_, out) = h
        .run(
            &CopyModule,
            &[
                ("content", v("new\n")),
                ("dest", v(&h.hs("f"))),
                ("backup", v("yes")),
            ],
        )
        .unwrap();
    let b = out.data["backup_file"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "old\n");
    let e = h
        .run(
            &CopyModule,
            &[
                ("content", v("bad\n")),
                ("dest", v(&h.hs("f"))),
                ("validate", v("grep -q good %s")),
            ],
        )
        .unwrap_err();
    assert!(e.0.starts_with("failed to validate"), "{e}");
    assert_eq!(std::fs::read_to_string(h.h("f")).unwrap(), "new\n");
    assert!(h
        .prepare(
            &CopyModule,
            &[
                ("content", v("x")),
                ("dest", v(&h.hs("f"))),
                ("validate", v("true"))
            ]
        )
        .is_err());
}

#[test]
fn directory_copy() {
    let h = Harness::new();
    h.repo_file("files/d/x", "x\n");
    h.repo_file("files/d/sub/y", "y\n");
    let args = [("src", v("d")), ("dest", v(&h.hs("dd")))];
    std::fs::create_dir(h.h("dd")).unwrap();
    assert!(h.run(&CopyModule, &args).unwrap().0);
    assert_eq!(std::fs::read_to_string(h.h("dd/d/sub/y")).unwrap(), "y\n");
    assert!(h.changes(&CopyModule, &args).is_empty());
    let args = [
        ("src", v("d/")),
        ("dest", v(&h.hs("de"))),
        ("directory_mode", v("0750")),
    ];
    assert!(h.run(&CopyModule, &args).unwrap().0);
    assert_eq!(std::fs::read_to_string(h.h("de/x")).unwrap(), "x\n");
    assert_eq!(mode_of(&h.h("de/sub")), 0o750);
    assert!(h.changes(&CopyModule, &args).is_empty());
}

/// 450 no-op checks find nothing to change (how long they take: tests/bench/noop_bench.sh).
#[test]
fn noop_checks_of_450_files_find_nothing() {
    let h = Harness::new();
    let args: Vec<Vec<(&str, Value)>> = (0..450)
        .map(|i| {
            vec![
                ("content", Value::from(format!("line {i}\n").repeat(20))),
                ("dest", Value::from(h.hs(&format!("f{i}")))),
                ("mode", v("0644")),
            ]
        })
        .collect();
    for a in &args {
        h.run(&CopyModule, a).unwrap();
    }
    let resources: Vec<_> = args
        .iter()
        .map(|a| h.prepare(&CopyModule, a).unwrap())
        .collect();
    for r in &resources {
        assert!(r.check().unwrap().changes.is_empty());
    }
}

#[test]
fn remote_src() {
    let h = Harness::new();
    std::fs::write(h.h("orig"), "data").unwrap();
    let args = [
        ("src", v(&h.hs("orig"))),
        ("dest", v(&h.hs("copy"))),
        ("remote_src", v("yes")),
    ];
    assert!(h.run(&CopyModule, &args).unwrap().0);
    assert_eq!(std::fs::read_to_string(h.h("copy")).unwrap(), "data");
    assert!(h.changes(&CopyModule, &args).is_empty());
}
