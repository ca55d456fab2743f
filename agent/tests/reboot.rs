//! A `reboot` task in pull mode: the run records that a reboot is owed (state, status document,
//! log) and, with the default configuration (`reboot: deny`), nothing reboots. The path that
//! reboots (`reboot: allow`) is never taken by a test.

mod common;
#[path = "common/fleet.rs"]
#[macro_use]
mod fleet;

use common::{stderr, Transport};
use fleet::{code, Fleet};

const PLAYBOOK: &str = "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: app config\n      copy:\n        dest: \"{{ root }}/app.conf\"\n        content: \"v1\\n\"\n    - name: kernel updated, reboot\n      reboot:\n        msg: new kernel\n        reboot_timeout: 600\n    - name: runs after the reboot task\n      copy:\n        dest: \"{{ root }}/after.conf\"\n        content: \"after\\n\"\n";

#[test]
fn a_reboot_task_records_a_reboot_owed_and_the_default_configuration_does_not_reboot() {
    let f = Fleet::new(Transport::File);
    f.commit(PLAYBOOK, &[]);
    let out = f.converge(&[]);
    assert_eq!(code(&out), Some(2), "{out:?}");
    // The run went on after the reboot task.
    assert!(f.root.join("after.conf").exists());
    let status = f.status();
    assert!(status.contains("reboot:"), "{status}");
    assert!(
        status.contains("owed_by: 'local.yml:8: task `kernel updated, reboot`'")
            || status.contains("owed_by: \"local.yml:8: task `kernel updated, reboot`\"")
            || status.contains("owed_by: local.yml:8: task `kernel updated, reboot`"),
        "{status}"
    );
    assert!(status.contains("not rebooting"), "{status}");
    let log = stderr(&out);
    assert!(log.contains("not rebooting"), "{log}");
    assert!(!log.contains("rebooting: a reboot is owed"), "{log}");
    let state = std::fs::read_to_string(f.state.join("state.json")).unwrap();
    assert!(state.contains("\"reboot_owed\": \"local.yml:8"), "{state}");
    // Check mode owes nothing and says nothing.
    let out = f.converge(&["--check"]);
    assert!(!stderr(&out).contains("reboot is owed"), "{out:?}");
}
