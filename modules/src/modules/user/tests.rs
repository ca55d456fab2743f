use super::*;

struct FakeFs(Vec<&'static str>);
impl Fs for FakeFs {
    fn exists(&self, path: &str) -> bool {
        self.0.contains(&path)
    }
    fn is_dir(&self, path: &str) -> bool {
        self.0.contains(&path)
    }
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
    alice:x:1001:1001:Alice:/home/alice:/bin/sh\n";
const GROUP: &str = "root:x:0:\nalice:x:1001:\nadm:x:4:alice\nsudo:x:27:\n\
    devs:x:2000:alice\nbob:x:2001:\n";
const SHADOW: &str = "root:*:19000:0:99999:7:::\n\
    alice:$6$salt$abc:19000:0:99999:7:::\n";

fn db() -> Db {
    Db::parse(PASSWD, GROUP, SHADOW)
}

fn fs() -> FakeFs {
    FakeFs(vec!["/home", "/home/alice", "/root"])
}

fn spec(name: &str) -> UserSpec {
    UserSpec {
        name: name.into(),
        present: true,
        update_always: true,
        create_home: true,
        ..Default::default()
    }
}

fn argvs(p: &[(Change, Vec<Step>)]) -> Vec<Vec<String>> {
    p.iter()
        .flat_map(|(_, steps)| steps.iter())
        .filter_map(|s| match s {
            Step::Tool(t) => Some(t.argv.clone()),
            _ => None,
        })
        .collect()
}

fn v(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[test]
fn create_with_everything() {
    let mut sp = spec("carol");
    sp.uid = Some(1500);
    sp.group = Some("devs".into());
    sp.groups = Some("adm,sudo".into());
    sp.shell = Some("/bin/bash".into());
    sp.home = Some("/srv/carol".into());
    sp.comment = Some("Carol C".into());
    sp.password = Some("$6$x$y".into());
    sp.system = true;
    let p = plan(&sp, &db(), &FakeFs(vec!["/srv"]), false).unwrap();
    assert_eq!(
        argvs(&p),
        vec![v(&[
            "useradd",
            "-u",
            "1500",
            "-g",
            "devs",
            "-G",
            "adm,sudo",
            "-c",
            "Carol C",
            "-d",
            "/srv/carol",
            "-s",
            "/bin/bash",
            "-p",
            "$6$x$y",
            "-m",
            "-r",
            "carol"
        ])]
    );
    let desc = p[0].0.describe();
    assert!(desc.starts_with("create user carol"), "{desc}");
    assert!(desc.contains("password set"), "{desc}");
    assert!(
        !desc.contains("$6$"),
        "the hash must never be shown: {desc}"
    );
}

#[test]
fn create_minimal_and_no_home() {
    let mut sp = spec("dave");
    assert_eq!(
        argvs(&plan(&sp, &db(), &fs(), false).unwrap()),
        vec![v(&["useradd", "-m", "dave"])]
    );
    sp.create_home = false;
    assert_eq!(
        argvs(&plan(&sp, &db(), &fs(), false).unwrap()),
        vec![v(&["useradd", "-M", "dave"])]
    );
    // A group named like the user exists: -N.
    assert_eq!(
        argvs(&plan(&spec("bob"), &db(), &fs(), false).unwrap()),
        vec![v(&["useradd", "-N", "-m", "bob"])]
    );
}

#[test]
fn create_with_missing_parent_makes_it() {
    let mut sp = spec("erin");
    sp.home = Some("/data/users/erin".into());
    let p = plan(&sp, &db(), &fs(), false).unwrap();
    assert_eq!(p[0].1[0], Step::MakeParent(PathBuf::from("/data/users")));
}

#[test]
fn create_with_missing_group_fails_but_not_in_check_mode() {
    let mut sp = spec("carol");
    sp.groups = Some("adm,nogroup".into());
    let e = plan(&sp, &db(), &fs(), false).unwrap_err();
    assert_eq!(e.0, "Group nogroup does not exist");
    let p = plan(&sp, &db(), &fs(), true).unwrap();
    assert_eq!(p.len(), 1);
}

#[test]
fn existing_user_unchanged() {
    let mut sp = spec("alice");
    sp.uid = Some(1001);
    sp.group = Some("alice".into());
    sp.groups = Some("adm,devs".into());
    sp.shell = Some("/bin/sh".into());
    sp.home = Some("/home/alice".into());
    sp.comment = Some("Alice".into());
    sp.password = Some("$6$salt$abc".into());
    assert!(plan(&sp, &db(), &fs(), false).unwrap().is_empty());
    // Same by gid; append with a subset; on_create with another password.
    sp.group = Some("1001".into());
    sp.groups = Some("devs".into());
    sp.append = true;
    sp.password = Some("$6$other$zzz".into());
    sp.update_always = false;
    assert!(plan(&sp, &db(), &fs(), false).unwrap().is_empty());
}

#[test]
fn modify_what_differs() {
    let mut sp = spec("alice");
    sp.uid = Some(1002);
    sp.group = Some("devs".into());
    sp.groups = Some("sudo,adm".into());
    sp.shell = Some("/bin/bash".into());
    sp.password = Some("$6$new$hash".into());
    let p = plan(&sp, &db(), &fs(), false).unwrap();
    assert_eq!(
        argvs(&p),
        vec![v(&[
            "usermod",
            "-u",
            "1002",
            "-g",
            "2000",
            "-G",
            "sudo,adm",
            "-s",
            "/bin/bash",
            "-p",
            "$6$new$hash",
            "alice"
        ])]
    );
    let d = p[0].0.describe();
    assert_eq!(
        d,
        "modify user alice (uid 1001 -> 1002, group alice -> devs, groups +sudo -devs, \
         shell /bin/sh -> /bin/bash, password changed)"
    );
}

#[test]
fn groups_append_and_empty() {
    let mut sp = spec("alice");
    sp.groups = Some("sudo".into());
    sp.append = true;
    assert_eq!(
        argvs(&plan(&sp, &db(), &fs(), false).unwrap()),
        vec![v(&["usermod", "-a", "-G", "sudo", "alice"])]
    );
    sp.groups = Some(String::new());
    sp.append = false;
    assert_eq!(
        argvs(&plan(&sp, &db(), &fs(), false).unwrap()),
        vec![v(&["usermod", "-G", "", "alice"])]
    );
    sp.append = true;
    assert!(plan(&sp, &db(), &fs(), false).unwrap().is_empty());
    sp.groups = Some("nope".into());
    assert_eq!(
        plan(&sp, &db(), &fs(), false).unwrap_err().0,
        "Group nope does not exist"
    );
}

#[test]
fn password_lock_and_expiry() {
    let mut sp = spec("alice");
    sp.password_lock = Some(true);
    assert_eq!(
        argvs(&plan(&sp, &db(), &fs(), false).unwrap()),
        vec![v(&["usermod", "-L", "alice"])]
    );
    sp.password = Some("$6$n$h".into());
    assert_eq!(
        argvs(&plan(&sp, &db(), &fs(), false).unwrap()),
        vec![v(&["usermod", "-p", "!$6$n$h", "alice"])]
    );
    let mut sp = spec("alice");
    sp.expires = Some(1_728_000_000.0); // 2024-10-04
    assert_eq!(
        argvs(&plan(&sp, &db(), &fs(), false).unwrap()),
        vec![v(&["usermod", "-e", "2024-10-04", "alice"])]
    );
    let locked = Db::parse(PASSWD, GROUP, "alice:!$6$salt$abc:1:0:99999:7::20000:\n");
    assert!(plan(&sp, &locked, &fs(), false).unwrap().is_empty());
    sp.expires = Some(-1.0);
    assert_eq!(
        argvs(&plan(&sp, &locked, &fs(), false).unwrap()),
        vec![v(&["usermod", "-e", "", "alice"])]
    );
    // A locked account with the same hash: no password change.
    let mut sp = spec("alice");
    sp.password = Some("$6$salt$abc".into());
    assert!(plan(&sp, &locked, &fs(), false).unwrap().is_empty());
    sp.password_lock = Some(false);
    assert_eq!(
        argvs(&plan(&sp, &locked, &fs(), false).unwrap()),
        vec![v(&["usermod", "-U", "alice"])]
    );
}

#[test]
fn missing_home_is_created_unless_create_home_is_off() {
    let mut sp = spec("alice");
    let p = plan(&sp, &db(), &FakeFs(vec![]), false).unwrap();
    assert_eq!(p.len(), 1);
    assert!(matches!(p[0].1[0], Step::CreateHome { .. }));
    assert_eq!(
        p[0].0.describe(),
        "modify user alice (create home directory /home/alice)"
    );
    sp.create_home = false;
    assert!(plan(&sp, &db(), &FakeFs(vec![]), false).unwrap().is_empty());
}

#[test]
fn remove() {
    let mut sp = spec("alice");
    sp.present = false;
    sp.remove = true;
    sp.force = true;
    assert_eq!(
        argvs(&plan(&sp, &db(), &fs(), false).unwrap()),
        vec![v(&["userdel", "-f", "-r", "alice"])]
    );
    sp.name = "nobody-here".into();
    assert!(plan(&sp, &db(), &fs(), false).unwrap().is_empty());
}

#[test]
fn results_hide_the_password() {
    let mut sp = spec("alice");
    sp.password = Some("$6$salt$abc".into());
    let o = outcome(&sp, &db(), true, false, false);
    assert_eq!(
        o.data.get("password").and_then(|v| v.as_str()),
        Some("NOT_LOGGING_PASSWORD")
    );
    assert_eq!(
        o.data.get("uid").map(|v| v.to_string()),
        Some("1001".into())
    );
    assert_eq!(
        o.data.get("group").map(|v| v.to_string()),
        Some("1001".into())
    );
    assert_eq!(
        o.data.get("home").and_then(|v| v.as_str()),
        Some("/home/alice")
    );
}

#[test]
fn create_home_copies_the_skeleton() {
    let t = tempfile::tempdir().unwrap();
    let skel = t.path().join("skel");
    std::fs::create_dir_all(skel.join("sub")).unwrap();
    std::fs::write(skel.join(".profile"), "x").unwrap();
    std::os::unix::fs::symlink(".profile", skel.join("link")).unwrap();
    let home = t.path().join("h/u");
    let me = nix::unistd::getuid().as_raw();
    let g = nix::unistd::getgid().as_raw();
    create_home(&home, &skel, 0o750, me, g).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(&home).unwrap().permissions().mode() & 0o7777;
    assert_eq!(m, 0o750);
    assert_eq!(std::fs::read_to_string(home.join(".profile")).unwrap(), "x");
    assert!(home.join("sub").is_dir());
    assert_eq!(
        std::fs::read_link(home.join("link")).unwrap(),
        PathBuf::from(".profile")
    );
}

#[test]
fn password_aging_runs_chage_with_what_differs() {
    let mut sp = spec("alice");
    // alice has min 0, max 99999, warn 7.
    sp.password_expire_min = Some(0);
    sp.password_expire_max = Some(90);
    sp.password_expire_warn = Some(14);
    assert_eq!(
        argvs(&plan(&sp, &db(), &fs(), false).unwrap()),
        vec![v(&["chage", "-M", "90", "-W", "14", "alice"])]
    );
    let aged = Db::parse(PASSWD, GROUP, "alice:$6$salt$abc:19000:0:90:14:::\n");
    assert!(plan(&sp, &aged, &fs(), false).unwrap().is_empty());
    // An empty field counts as -1 (Python's spwd): a value given differs.
    let empty = Db::parse(PASSWD, GROUP, "alice:$6$salt$abc:19000:::::\n");
    sp.password_expire_max = None;
    sp.password_expire_warn = None;
    assert_eq!(
        argvs(&plan(&sp, &empty, &fs(), false).unwrap()),
        vec![v(&["chage", "-m", "0", "alice"])]
    );
}

#[test]
fn new_user_gets_aging_after_useradd_but_not_in_check_mode() {
    let mut sp = spec("carol");
    sp.password_expire_max = Some(30);
    let p = plan(&sp, &db(), &FakeFs(vec!["/home"]), false).unwrap();
    let all = argvs(&p);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0][0], "useradd");
    assert_eq!(all[1], v(&["chage", "-M", "30", "carol"]));
    let p = plan(&sp, &db(), &FakeFs(vec!["/home"]), true).unwrap();
    assert_eq!(argvs(&p).len(), 1);
}

#[test]
fn ssh_key_is_planned_only_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let mut sp = spec("alice");
    sp.ssh_key = Some(ssh_key::SshKeySpec {
        key_type: "ed25519".into(),
        bits: 0,
        file: key.display().to_string(),
        comment: "c".into(),
        force: false,
    });
    let keygens = |p: &[(Change, Vec<Step>)]| {
        p.iter()
            .flat_map(|(_, s)| s.iter())
            .filter(|s| matches!(s, Step::SshKeygen(_)))
            .count()
    };
    assert_eq!(keygens(&plan(&sp, &db(), &fs(), false).unwrap()), 1);
    std::fs::write(&key, "private").unwrap();
    assert_eq!(keygens(&plan(&sp, &db(), &fs(), false).unwrap()), 0);
}
