use std::os::unix::fs::PermissionsExt;

use minijinja::Value;

use super::{is_venv_command, PipModule};
use crate::modules::testing::{v, Harness};

/// A fake pip: `list` prints what `installed` holds; `install`/`uninstall` log their arguments
/// and say what pip says.
fn fake_pip(h: &Harness, installed: &str) -> String {
    std::fs::write(h.h("installed"), installed).unwrap();
    let script = format!(
        "#!/bin/sh\nlog={log}\ncase \"$1\" in\n list) cat {inst} ;;\n install) echo \"$@\" >> $log; echo 'Successfully installed x-1' ;;\n uninstall) echo \"$@\" >> $log; echo 'Successfully uninstalled x-1' ;;\nesac\n",
        log = h.hs("log"),
        inst = h.hs("installed")
    );
    let p = h.h("pip");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    h.hs("pip")
}

fn log(h: &Harness) -> String {
    std::fs::read_to_string(h.h("log")).unwrap_or_default()
}

#[test]
fn installs_only_what_the_specifiers_want() {
    let h = Harness::new();
    let pip = fake_pip(&h, "Gitops_Tiny==1.0\nother==3\n");
    let run = |name: &str, state: &str| {
        h.run(
            &PipModule,
            &[
                ("name", Value::from(vec![name.to_string()])),
                ("state", v(state)),
                ("executable", v(&pip)),
            ],
        )
        .unwrap()
    };
    assert!(!run("gitops-tiny", "present").0);
    assert!(!run("gitops.tiny>=1.0,<2", "present").0);
    assert!(!run("nothere", "absent").0);
    assert_eq!(log(&h), "");
    let (changed, out) = run("gitops-tiny>=2", "present");
    assert!(changed, "{out:?}");
    assert_eq!(log(&h), "install gitops-tiny>=2\n");
    // pip uninstall acts whatever the version: so does the agent (Ansible runs it always).
    let (changed, _) = run("other==1", "absent");
    assert!(changed);
    assert!(log(&h).ends_with("uninstall -y other==1\n"), "{}", log(&h));
}

#[test]
fn version_argument_as_pip_py() {
    let h = Harness::new();
    let pip = fake_pip(&h, "foo==1.0\n");
    let args = |version: &str| {
        vec![
            ("name", v("foo")),
            ("version", v(version)),
            ("executable", v(&pip)),
        ]
    };
    assert!(!h.run(&PipModule, &args("1.0")).unwrap().0);
    assert!(h.run(&PipModule, &args("1.1")).unwrap().0);
    assert!(!h.run(&PipModule, &args(">=0.9")).unwrap().0);
    let e = h
        .run(
            &PipModule,
            &[
                ("name", v("foo>1")),
                ("version", v("2")),
                ("executable", v(&pip)),
            ],
        )
        .err()
        .unwrap();
    assert!(e.0.starts_with("The 'version' argument conflicts"), "{e}");
    let e = h
        .run(
            &PipModule,
            &[
                ("name", v("foo; python_version<'3'")),
                ("executable", v(&pip)),
            ],
        )
        .err()
        .unwrap();
    assert!(e.0.contains("cannot evaluate"), "{e}");
}

#[test]
fn venv_commands_recognised() {
    let w = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    assert!(is_venv_command(&w("python3 -m venv")));
    assert!(is_venv_command(&w("pyvenv")));
    assert!(!is_venv_command(&w("virtualenv")));
    assert!(!is_venv_command(&w("python3 -m virtualenv")));
}
