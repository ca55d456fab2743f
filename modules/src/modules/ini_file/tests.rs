//! Cases whose expected results come from community.general's own `do_ini()` (run on the same
//! input with ansible-core's Python), then module-level behaviour.

use super::edit::{read_lines, Condition, IniEdit, OptionMatcher};
use super::IniFileModule;
use crate::modules::testing::{v, Harness};

struct Case {
    content: Option<&'static str>,
    edit: IniEdit,
    changed: bool,
    after: &'static str,
    msg: &'static str,
}

fn edit(section: Option<&str>, option: Option<&str>, values: &[&str]) -> IniEdit {
    IniEdit {
        section: section.map(str::to_string),
        section_has_values: None,
        option: option.map(str::to_string),
        matcher: option.map(OptionMatcher::new),
        values: values.iter().map(|s| s.to_string()).collect(),
        present: true,
        exclusive: true,
        no_extra_spaces: false,
        ignore_spaces: false,
        allow_no_value: false,
        modify_inactive_option: true,
    }
}

fn cond(option: &str, values: &[&str]) -> Condition {
    Condition {
        option: option.to_string(),
        matcher: OptionMatcher::new(option),
        values: values.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn same_lines_as_community_general() {
    let cases = vec![
        Case {
            content: Some("[a]\nx = 1\n"),
            edit: edit(Some("a"), Some("x"), &["2"]),
            changed: true,
            after: "[a]\nx = 2\n",
            msg: "option changed",
        },
        Case {
            content: Some("[a]\n# x = 1\ny=2\n\n[b]\nz=1"),
            edit: edit(Some("a"), Some("x"), &["3"]),
            changed: true,
            after: "[a]\nx = 3\ny=2\n\n[b]\nz=1\n",
            msg: "option changed",
        },
        Case {
            content: Some("[a]\nx=1\n"),
            edit: edit(Some("b"), Some("x"), &["1"]),
            changed: true,
            after: "[a]\nx=1\n[b]\nx = 1\n",
            msg: "section and option added",
        },
        Case {
            content: None,
            edit: edit(Some("s"), Some("o"), &["v"]),
            changed: true,
            after: "\n[s]\no = v\n",
            msg: "section and option added",
        },
        Case {
            content: Some("g=1\n[a]\nx=1\n"),
            edit: {
                let mut e = edit(None, Some("g"), &["2"]);
                e.no_extra_spaces = true;
                e
            },
            changed: true,
            after: "g=2\n[a]\nx=1\n",
            msg: "option changed",
        },
        Case {
            content: Some("[a]\nx=1\nx=2\nx=3\n"),
            edit: edit(Some("a"), Some("x"), &["3", "4"]),
            changed: true,
            after: "[a]\nx = 4\nx = 3\n",
            msg: "option changed",
        },
        Case {
            content: Some("[a]\nx=1\nx=2\n"),
            edit: {
                let mut e = edit(Some("a"), Some("x"), &["5"]);
                e.exclusive = false;
                e
            },
            changed: true,
            after: "[a]\nx=1\nx=2\nx = 5\n",
            msg: "option added",
        },
        Case {
            content: Some("[a]\nx=1\n;x=2\ny=1\n"),
            edit: {
                let mut e = edit(Some("a"), Some("x"), &[]);
                e.present = false;
                e
            },
            changed: true,
            after: "[a]\n;x=2\ny=1\n",
            msg: "option changed",
        },
        Case {
            content: Some("[a]\nx=1\ny=1\n[b]\n"),
            edit: {
                let mut e = edit(Some("a"), None, &[]);
                e.present = false;
                e
            },
            changed: true,
            after: "[b]\n",
            msg: "section removed",
        },
        Case {
            content: Some("[a]\nflag\n"),
            edit: {
                let mut e = edit(Some("a"), Some("other"), &[]);
                e.allow_no_value = true;
                e
            },
            changed: true,
            after: "[a]\nflag\nother\n",
            msg: "option added",
        },
        Case {
            content: Some("[a]\nx  =   1\n"),
            edit: {
                let mut e = edit(Some("a"), Some("x"), &["1"]);
                e.ignore_spaces = true;
                e
            },
            changed: false,
            after: "[a]\nx  =   1\n",
            msg: "OK",
        },
        Case {
            content: Some("[a]\n#x = 1\n"),
            edit: {
                let mut e = edit(Some("a"), Some("x"), &["2"]);
                e.modify_inactive_option = false;
                e
            },
            changed: true,
            after: "[a]\nx = 2\n#x = 1\n",
            msg: "option added",
        },
        Case {
            content: Some("[a]\nk=1\nx=1\n[a]\nk=2\nx=1\n"),
            edit: {
                let mut e = edit(Some("a"), Some("x"), &["9"]);
                e.section_has_values = Some(vec![cond("k", &["2"])]);
                e
            },
            changed: true,
            after: "[a]\nk=1\nx=1\n[a]\nk=2\nx = 9\n",
            msg: "option changed",
        },
        Case {
            content: Some("[a]\nk=1\n"),
            edit: {
                let mut e = edit(Some("a"), Some("x"), &["9"]);
                e.section_has_values = Some(vec![cond("k", &["3"])]);
                e
            },
            changed: true,
            after: "[a]\nk=1\n[a]\nk = 3\nx = 9\n",
            msg: "section and option added",
        },
        Case {
            content: Some(""),
            edit: edit(Some("a"), Some("x"), &["1"]),
            changed: true,
            after: "\n[a]\nx = 1\n",
            msg: "section and option added",
        },
        Case {
            content: Some("[a]\n; x is the thing\nx = 1\n"),
            edit: edit(Some("a"), Some("x"), &["1", "2"]),
            changed: true,
            after: "[a]\n; x is the thing\nx = 1\nx = 2\n",
            msg: "option added",
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let got = c.edit.apply(c.content.map(read_lines));
        assert_eq!(got.lines.concat(), c.after, "case {i}");
        assert_eq!(got.changed, c.changed, "case {i}");
        assert_eq!(got.msg, c.msg, "case {i}");
    }
}

#[test]
fn module_writes_creates_and_is_idempotent() {
    let h = Harness::new();
    let (c, t, m) = h.edit(
        &IniFileModule,
        "php.ini",
        Some("[PHP]\r\nmemory_limit = 128M\r\n"),
        &[
            ("section", "PHP"),
            ("option", "memory_limit"),
            ("value", "512M"),
        ],
    );
    assert!(c);
    // Universal newlines: the file comes back with `\n`.
    assert_eq!(t, "[PHP]\nmemory_limit = 512M\n");
    assert_eq!(m, "option changed");
    let (c, t, m) = h.edit(
        &IniFileModule,
        "new/f.ini",
        None,
        &[
            ("section", "s"),
            ("option", "o"),
            ("value", "v"),
            ("mode", "0600"),
        ],
    );
    assert!(c);
    assert_eq!(t, "\n[s]\no = v\n");
    assert_eq!(m, "section and option added");
    let (_, out) = h
        .run(
            &IniFileModule,
            &[
                ("path", v(&h.hs("absent.ini"))),
                ("section", v("s")),
                ("option", v("o")),
                ("value", v("v")),
                ("create", v("no")),
            ],
        )
        .unwrap();
    assert!(out.failed.unwrap().contains("does not exist!"));
    let e = h
        .run(
            &IniFileModule,
            &[
                ("path", v(&h.hs("x.ini"))),
                ("section", v("s")),
                ("option", v("o")),
            ],
        )
        .unwrap_err();
    assert!(e.0.contains("must be defined"), "{e}");
}
