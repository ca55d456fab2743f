use super::*;
use crate::modules::testing::{v, Harness};

/// A resource whose `mount`/`umount` are scripts that record their arguments and exit with
/// `rc` (never the real tools: the tests must not mount on this machine).
fn resource(h: &Harness, pairs: &[(&str, &str)], rc: i32) -> MountResource {
    let pairs: Vec<(&str, minijinja::Value)> = pairs.iter().map(|(k, x)| (*k, v(x))).collect();
    let args = h.args(&SPEC, &pairs).unwrap();
    let mut r = MountResource::new(&args).unwrap();
    let log = h.hs("tools.log");
    for tool in ["mount", "umount"] {
        let p = h.h(tool);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho {tool} \"$@\" >> {log}\necho {tool}: failed >&2\nexit {rc}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    r.tools = Tools {
        mount: h.hs("mount"),
        umount: h.hs("umount"),
    };
    r
}

fn converge(r: &MountResource) -> Result<(bool, Outcome), ModuleError> {
    let c = r.check()?;
    if c.changes.is_empty() {
        return Ok((false, c.outcome));
    }
    Ok((true, r.apply(c)?))
}

fn log(h: &Harness) -> String {
    std::fs::read_to_string(h.h("tools.log")).unwrap_or_default()
}

#[test]
fn present_then_absent_edit_only_the_fstab() {
    let h = Harness::new();
    let fstab = h.hs("etc/fstab");
    let mnt = h.hs("mnt/data");
    let args = [
        ("path", mnt.as_str()),
        ("src", "/dev/sdz1"),
        ("fstype", "ext4"),
        ("opts", "noatime"),
        ("passno", "2"),
        ("fstab", fstab.as_str()),
        ("state", "present"),
    ];
    let (changed, out) = converge(&resource(&h, &args, 0)).unwrap();
    assert!(changed);
    assert_eq!(
        std::fs::read_to_string(&fstab).unwrap(),
        format!("/dev/sdz1 {mnt} ext4 noatime 0 2\n")
    );
    assert_eq!(out.data["boot"].as_str(), Some("yes"));
    assert_eq!(out.data["passno"].as_str(), Some("2"));
    assert!(!converge(&resource(&h, &args, 0)).unwrap().0, "idempotent");
    let absent = [
        ("path", mnt.as_str()),
        ("fstab", fstab.as_str()),
        ("state", "absent"),
    ];
    let (changed, _) = converge(&resource(&h, &absent, 0)).unwrap();
    assert!(changed);
    assert_eq!(std::fs::read_to_string(&fstab).unwrap(), "");
    assert!(!converge(&resource(&h, &absent, 0)).unwrap().0);
    assert_eq!(log(&h), "", "no tool run for a path that is not mounted");
}

#[test]
fn boot_no_adds_noauto_and_backup_keeps_the_old_file() {
    let h = Harness::new();
    let fstab = h.hs("fstab");
    std::fs::write(&fstab, "# keep\n/dev/a /srv ext4 defaults 0 0").unwrap();
    let args = [
        ("path", "/srv"),
        ("src", "/dev/b"),
        ("fstype", "xfs"),
        ("boot", "no"),
        ("backup", "yes"),
        ("fstab", fstab.as_str()),
        ("state", "present"),
    ];
    let (changed, out) = converge(&resource(&h, &args, 0)).unwrap();
    assert!(changed);
    assert_eq!(
        std::fs::read_to_string(&fstab).unwrap(),
        "# keep\n/dev/b /srv xfs defaults,noauto 0 0\n"
    );
    assert_eq!(out.data["boot"].as_str(), Some("no"));
    let backup = out.data["backup_file"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(backup).unwrap(),
        "# keep\n/dev/a /srv ext4 defaults 0 0"
    );
}

#[test]
fn mounted_creates_the_dir_writes_fstab_and_mounts() {
    let h = Harness::new();
    let fstab = h.hs("fstab");
    let mnt = h.hs("m/a b");
    let args = [
        ("path", mnt.as_str()),
        ("src", "tmpfs"),
        ("fstype", "tmpfs"),
        ("fstab", fstab.as_str()),
        ("state", "mounted"),
    ];
    let (changed, _) = converge(&resource(&h, &args, 0)).unwrap();
    assert!(changed);
    assert!(h.h("m/a b").is_dir());
    assert_eq!(
        std::fs::read_to_string(&fstab).unwrap(),
        format!("tmpfs {} tmpfs defaults 0 0\n", fstab::escape(&mnt))
    );
    assert_eq!(log(&h), format!("mount -T {fstab} {mnt}\n"));
}

#[test]
fn a_failed_mount_puts_the_fstab_back_and_removes_the_new_dirs() {
    let h = Harness::new();
    let fstab = h.hs("fstab");
    std::fs::write(&fstab, "/dev/a / ext4 defaults 0 1").unwrap();
    let mnt = h.hs("new/dir");
    let args = [
        ("path", mnt.as_str()),
        ("src", "/dev/missing"),
        ("fstype", "ext4"),
        ("fstab", fstab.as_str()),
        ("state", "mounted"),
    ];
    let e = converge(&resource(&h, &args, 32)).unwrap_err();
    assert_eq!(e.0, format!("Error mounting {mnt}: mount: failed\n"));
    assert_eq!(
        std::fs::read_to_string(&fstab).unwrap(),
        "/dev/a / ext4 defaults 0 1\n"
    );
    assert!(!h.h("new").exists());
}

#[test]
fn check_plans_without_touching_anything() {
    let h = Harness::new();
    let fstab = h.hs("fstab");
    let mnt = h.hs("x");
    let args = [
        ("path", mnt.as_str()),
        ("src", "tmpfs"),
        ("fstype", "tmpfs"),
        ("fstab", fstab.as_str()),
        ("state", "mounted"),
    ];
    let c = resource(&h, &args, 0).check().unwrap();
    let what: Vec<String> = c.changes.iter().map(|c| c.describe()).collect();
    assert_eq!(
        what,
        [
            format!("create directory {mnt}"),
            format!("write {fstab}"),
            format!("mount {mnt}")
        ]
    );
    assert!(!h.h("x").exists() && !h.h("fstab").exists());
}

#[test]
fn remounted_with_options_fails_rather_than_losing_them() {
    let h = Harness::new();
    let mnt = h.hs("x");
    let args = [
        ("path", mnt.as_str()),
        ("opts", "ro"),
        ("state", "remounted"),
    ];
    let e = converge(&resource(&h, &args, 1)).unwrap_err();
    assert_eq!(e.0, REMOUNT_OPTS_FAILED);
    assert_eq!(log(&h), format!("mount -o remount,ro {mnt}\n"));
    let args = [("path", mnt.as_str()), ("state", "remounted")];
    let e = converge(&resource(&h, &args, 1)).unwrap_err();
    assert_eq!(e.0, format!("Error remounting {mnt}: umount: failed\n"));
}

#[test]
fn refusals() {
    let h = Harness::new();
    let bind = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(&str, minijinja::Value)> = pairs.iter().map(|(k, x)| (*k, v(x))).collect();
        MountResource::new(&h.args(&SPEC, &pairs).unwrap())
            .err()
            .map(|e| e.0)
    };
    assert_eq!(
        bind(&[("path", "/x"), ("state", "present"), ("src", "/dev/a")]).unwrap(),
        "state is present but all of the following are missing: fstype"
    );
    assert!(bind(&[
        ("path", "/x"),
        ("state", "ephemeral"),
        ("src", "a"),
        ("fstype", "b")
    ])
    .unwrap()
    .contains("ephemeral is not supported"));
    assert!(bind(&[
        ("path", "/x"),
        ("state", "unmounted"),
        ("opts_no_log", "yes")
    ])
    .is_some());
}
