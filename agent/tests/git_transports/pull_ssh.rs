//! Pull mode in process over SSH: a real sshd on 127.0.0.1 with key auth and a known_hosts
//! check; the converge applies the branch and pushes the status back. (agent/tests/pull.rs runs
//! every scenario through the binary over each transport.)

use std::process::Command;

use clap::Parser;
use gitops_agent::cli::{exit, Cli, Command as Sub};

use crate::common::{git, hostname};
use crate::support::Sshd;

#[test]
fn pull_mode_over_ssh() {
    let tmp = tempfile::tempdir().unwrap();
    let host = hostname();
    let work = tmp.path().join("work");
    let bare = tmp.path().join("fleet.git");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    git(&work, &["init", "-q", "-b", &format!("hosts/{host}")]);
    std::fs::write(
        work.join("local.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: {content: \"over ssh\\n\", dest: \"{{ root }}/app.conf\"}\n",
    )
    .unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "first"]);
    git(
        tmp.path(),
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    git(&work, &["push", "-q", bare.to_str().unwrap(), "HEAD"]);

    let sshd = Sshd::start(tmp.path());
    let url = sshd.url("fleet.git");
    let state = tmp.path().join("state");
    let cli = Cli::parse_from([
        "gitops-agent",
        "converge",
        "--repo",
        &url,
        "--ssh-key",
        sshd.client_key().to_str().unwrap(),
        "--known-hosts",
        sshd.known_hosts().to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "-e",
        &format!("root={}", root.display()),
    ]);
    let Sub::Converge(args) = cli.command else {
        panic!("not converge")
    };
    assert_eq!(gitops_agent::run::pull::converge(&args), exit::CHANGED);
    assert_eq!(
        std::fs::read_to_string(root.join("app.conf")).unwrap(),
        "over ssh\n"
    );
    let out = Command::new("git")
        .args(["--git-dir", bare.to_str().unwrap(), "show"])
        .arg(format!("status/{host}:status.yml"))
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("result: changed"), "{status}");
}
