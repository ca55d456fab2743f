use super::*;
use crate::modules::testing::{v, Harness};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// A tar archive of (name, kind, content-or-target, mode) entries, mtime 1_600_000_000, root.
fn tar_of(entries: &[(&str, char, &str, u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, body, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        // Raw names: the builder itself refuses `..` and absolute paths.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        let data: &[u8] = match kind {
            'd' => {
                h.set_entry_type(tar::EntryType::Directory);
                b""
            }
            'l' => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.as_old_mut().linkname[..body.len()].copy_from_slice(body.as_bytes());
                b""
            }
            _ => {
                h.set_entry_type(tar::EntryType::Regular);
                body.as_bytes()
            }
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn extracts_then_nothing_to_do() {
    let h = Harness::new();
    std::fs::write(
        h.h("app.tar.gz"),
        gz(&tar_of(&[
            ("app/", 'd', "", 0o755),
            ("app/bin.sh", 'f', "#!/bin/sh\n", 0o750),
            ("app/current", 'l', "bin.sh", 0o777),
        ])),
    )
    .unwrap();
    std::fs::create_dir(h.h("dest")).unwrap();
    let args = [
        ("src", v(&h.hs("app.tar.gz"))),
        ("dest", v(&h.hs("dest"))),
        ("remote_src", v("yes")),
        ("list_files", v("yes")),
    ];
    let (changed, out) = h.run(&UnarchiveModule, &args).unwrap();
    assert!(changed);
    assert_eq!(out.data["handler"].as_str(), Some("TgzArchive"));
    assert_eq!(out.data["files"].len(), Some(3));
    assert!(!out.data.contains_key(TIMES));
    let md = std::fs::metadata(h.h("dest/app/bin.sh")).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o750);
    assert_eq!(md.mtime(), 1_600_000_000);
    assert_eq!(
        std::fs::read_link(h.h("dest/app/current")).unwrap(),
        Path::new("bin.sh")
    );
    assert!(h.changes(&UnarchiveModule, &args).is_empty());
    // Content changed on disk: extracted again.
    std::fs::write(h.h("dest/app/bin.sh"), "edited").unwrap();
    assert_eq!(h.changes(&UnarchiveModule, &args).len(), 1);
}

#[test]
fn refuses_escaping_members_and_extracts_nothing() {
    for (name, kind, body) in [
        ("../evil", 'f', "x"),
        ("/abs/evil", 'f', "x"),
        ("link", 'l', "../../etc"),
        ("alink", 'l', "/etc"),
    ] {
        let h = Harness::new();
        std::fs::write(
            h.h("bad.tar"),
            tar_of(&[("good.txt", 'f', "fine", 0o644), (name, kind, body, 0o644)]),
        )
        .unwrap();
        std::fs::create_dir(h.h("dest")).unwrap();
        let args = [
            ("src", v(&h.hs("bad.tar"))),
            ("dest", v(&h.hs("dest"))),
            ("remote_src", v("yes")),
        ];
        let err = h.run(&UnarchiveModule, &args).unwrap_err().to_string();
        assert!(err.contains("refused, nothing extracted"), "{name}: {err}");
        assert_eq!(std::fs::read_dir(h.h("dest")).unwrap().count(), 0, "{name}");
    }
}

#[test]
fn strip_components_exclude_and_unsupported_options() {
    let h = Harness::new();
    std::fs::write(
        h.h("a.tar"),
        tar_of(&[
            ("top/", 'd', "", 0o755),
            ("top/keep.txt", 'f', "k", 0o644),
            ("top/skip.log", 'f', "s", 0o644),
        ]),
    )
    .unwrap();
    std::fs::create_dir(h.h("dest")).unwrap();
    let args = [
        ("src", v(&h.hs("a.tar"))),
        ("dest", v(&h.hs("dest"))),
        ("remote_src", v("yes")),
        ("extra_opts", v("--strip-components=1")),
        ("exclude", v("*.log")),
    ];
    h.run(&UnarchiveModule, &args).unwrap();
    assert!(h.h("dest/keep.txt").exists());
    assert!(!h.h("dest/skip.log").exists());
    assert!(!h.h("dest/top").exists());
    let bad = [
        ("src", v(&h.hs("a.tar"))),
        ("dest", v(&h.hs("dest"))),
        ("remote_src", v("yes")),
        ("extra_opts", v("--overwrite")),
    ];
    let err = h.run(&UnarchiveModule, &bad).err().unwrap().to_string();
    assert!(err.contains("--overwrite"), "{err}");
}

#[test]
fn creates_skips_and_zip_is_refused() {
    let h = Harness::new();
    std::fs::create_dir(h.h("dest")).unwrap();
    std::fs::write(h.h("z.zip"), b"PK\x03\x04rest").unwrap();
    let args = [
        ("src", v(&h.hs("z.zip"))),
        ("dest", v(&h.hs("dest"))),
        ("remote_src", v("yes")),
        ("creates", v(&h.hs("dest"))),
    ];
    let (changed, out) = h.run(&UnarchiveModule, &args).unwrap();
    assert!(!changed);
    assert!(out.data["skipped"].is_true());
    let err = h
        .run(&UnarchiveModule, &args[..3])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("zip"), "{err}");
}
