//! The inventory as ansible-pull has it: `localhost,` by default, or `--inventory FILE` where
//! this machine is found by its names.

use std::path::Path;
use std::process::{Command, Output};

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn converge(dir: &Path, root: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gitops-agent"))
        .arg("converge")
        .arg("--playbook-dir")
        .arg(dir)
        .arg("-e")
        .arg(format!("root={}", root.display()))
        .args(extra)
        .output()
        .unwrap()
}

const PLAY: &str = r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - copy:
        content: "{{ inventory_hostname }} {{ from_host_vars | default('none') }} {{ group_names }}\n"
        dest: "{{ root }}/who"
- hosts: all:!localhost
  gather_facts: false
  tasks:
    - copy: {content: "x\n", dest: "{{ root }}/other"}
"#;

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .split('.')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn by_default_the_host_is_localhost_as_with_ansible_pull() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write(dir.path(), "local.yml", PLAY);
    write(
        dir.path(),
        "host_vars/localhost.yml",
        "from_host_vars: yes-localhost\n",
    );
    let me = this_host();
    if me != "localhost" {
        // ansible-pull -i localhost, does not read host_vars/<hostname>.
        write(
            dir.path(),
            &format!("host_vars/{me}.yml"),
            "from_host_vars: by-hostname\n",
        );
    }
    let out = converge(dir.path(), root.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(root.path().join("who")).unwrap(),
        "localhost yes-localhost ['ungrouped']\n"
    );
    assert!(!root.path().join("other").exists());
}

#[test]
fn an_inventory_finds_this_machine_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let me = this_host();
    write(dir.path(), "local.yml", PLAY);
    write(
        dir.path(),
        "inventory/hosts.yml",
        &format!("all:\n  children:\n    web:\n      hosts:\n        {me}:\n        other:\n"),
    );
    write(
        dir.path(),
        "inventory/group_vars/web.yml",
        "from_host_vars: web-group\n",
    );
    let out = converge(
        dir.path(),
        root.path(),
        &["--inventory", "inventory/hosts.yml"],
    );
    if me == "localhost" {
        // `hosts: localhost` is this host: the first play runs, the second does not.
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(!root.path().join("other").exists());
        return;
    }
    // `hosts: localhost` would be Ansible's implicit localhost, another host: refused.
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("local.yml:2") && err.contains("implicit `localhost`"),
        "{err}"
    );
    write(
        dir.path(),
        "local.yml",
        &PLAY.replacen("hosts: localhost", "hosts: web", 1),
    );
    let out = converge(
        dir.path(),
        root.path(),
        &["--inventory", "inventory/hosts.yml"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(root.path().join("who")).unwrap(),
        format!("{me} web-group ['web']\n")
    );
    assert!(root.path().join("other").exists());
}
