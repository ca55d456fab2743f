use super::CronModule;
use crate::modules::testing::{v, Harness};

fn run(h: &Harness, args: &[(&str, &str)]) -> (bool, crate::resource::Outcome) {
    let a: Vec<_> = args.iter().map(|(k, x)| (*k, v(x))).collect();
    h.run(&CronModule, &a).unwrap()
}

#[test]
fn cron_file_jobs_like_ansible() {
    let h = Harness::new();
    let f = h.hs("cron.d/backup");
    std::fs::create_dir(h.h("cron.d")).unwrap();
    let job = [
        ("name", "nightly"),
        ("cron_file", f.as_str()),
        ("user", "root"),
        ("minute", "30"),
        ("hour", "2"),
        ("job", "/usr/local/bin/backup"),
    ];
    let (c, out) = run(&h, &job);
    assert!(c);
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "#Ansible: nightly\n30 2 * * * root /usr/local/bin/backup\n"
    );
    assert_eq!(out.data["jobs"].to_string(), "['nightly']");
    let (c, _) = run(&h, &job);
    assert!(!c, "second run changes nothing");
    // special_time, disabled, and a variable inserted at the top.
    run(
        &h,
        &[
            ("name", "boot"),
            ("cron_file", &f),
            ("user", "root"),
            ("special_time", "reboot"),
            ("job", "/bin/true"),
            ("disabled", "yes"),
        ],
    );
    run(
        &h,
        &[
            ("name", "MAILTO"),
            ("cron_file", &f),
            ("user", "root"),
            ("env", "yes"),
            ("job", "ops@example.com"),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "MAILTO=\"ops@example.com\"\n#Ansible: nightly\n30 2 * * * root /usr/local/bin/backup\n\
         #Ansible: boot\n#@reboot root /bin/true\n"
    );
    // Removing every job keeps a file that still holds a variable...
    for name in ["nightly", "boot"] {
        let (c, _) = run(
            &h,
            &[("name", name), ("cron_file", &f), ("state", "absent")],
        );
        assert!(c);
    }
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "MAILTO=\"ops@example.com\"\n"
    );
    // ... and removes one left empty.
    let g = h.hs("cron.d/other");
    run(
        &h,
        &[
            ("name", "j"),
            ("cron_file", &g),
            ("user", "root"),
            ("job", "x"),
        ],
    );
    let (c, _) = run(&h, &[("name", "j"), ("cron_file", &g), ("state", "absent")]);
    assert!(c);
    assert!(!h.h("cron.d/other").exists());
    let (c, _) = run(&h, &[("name", "j"), ("cron_file", &g), ("state", "absent")]);
    assert!(!c);
}

#[test]
fn refusals() {
    let h = Harness::new();
    let f = h.hs("c");
    for (args, msg) in [
        (
            vec![
                ("name", "x"),
                ("cron_file", f.as_str()),
                ("user", "root"),
                ("job", "a\nb"),
            ],
            "line break",
        ),
        (
            vec![("name", "x"), ("cron_file", f.as_str()), ("job", "a")],
            "must specify user",
        ),
        (
            vec![
                ("name", "x"),
                ("cron_file", f.as_str()),
                ("user", "root"),
                ("job", "a"),
                ("special_time", "daily"),
                ("hour", "1"),
            ],
            "cannot combine",
        ),
        (
            vec![
                ("name", "x"),
                ("cron_file", "/etc/crontab"),
                ("user", "root"),
                ("job", "a"),
            ],
            "/etc/crontab",
        ),
    ] {
        let a: Vec<_> = args.iter().map(|(k, x)| (*k, v(x))).collect();
        let e = h.run(&CronModule, &a).unwrap_err();
        assert!(e.0.contains(msg), "{e}");
    }
    assert!(!h.h("c").exists());
}
