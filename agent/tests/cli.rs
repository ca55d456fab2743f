//! The command line as a user meets it: playbook selection, exit codes, check mode, validate.

use std::path::Path;
use std::process::{Command, Output};

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gitops-agent"))
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn converge(dir: &Path, root: &Path, extra: &[&str]) -> Output {
    agent()
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
- hosts: all
  gather_facts: false
  tasks:
    - name: a file
      copy:
        content: "hello {{ who | default('world') }}\n"
        dest: "{{ root }}/hello.txt"
"#;

#[test]
fn exit_codes_follow_the_documented_contract() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write(dir.path(), "local.yml", PLAY);

    // Check mode: would change (2), changes nothing.
    let out = converge(dir.path(), root.path(), &["--check"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!root.path().join("hello.txt").exists());

    // First run changes (2), second changes nothing (0).
    let out = converge(dir.path(), root.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(root.path().join("hello.txt")).unwrap(),
        "hello world\n"
    );
    let out = converge(dir.path(), root.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ok:") && text.contains("changed=0"), "{text}");

    // Extra vars as JSON take precedence and change the file again.
    let out = converge(dir.path(), root.path(), &["-e", r#"{"who": "fleet"}"#]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(root.path().join("hello.txt")).unwrap(),
        "hello fleet\n"
    );
}

#[test]
fn a_failed_task_exits_1_and_invalid_input_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "local.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: /bin/false\n    - copy: {content: x, dest: \"{{ root }}/after\"}\n",
    );
    let out = converge(dir.path(), root.path(), &["--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["result"], "failed");
    assert_eq!(report["tasks"][1]["status"], "not-run");
    assert!(!root.path().join("after").exists());

    write(
        dir.path(),
        "local.yml",
        "- hosts: all\n  tasks:\n    - copy: {content: x, dest: \"{{ root }}/x\"}\n    - file: {path: \"{{ root }}/y\", state: sideways}\n",
    );
    let out = converge(dir.path(), root.path(), &[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("local.yml:4") && err.contains("sideways"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

#[test]
fn validate_touches_nothing_and_picks_the_playbook_like_ansible_pull() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "local.yml", PLAY);
    let out = agent()
        .args(["validate", "--playbook-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("local.yml: valid"));

    let empty = tempfile::tempdir().unwrap();
    let out = agent()
        .args(["validate", "--playbook-dir"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("local.yml"));
}

/// A task whose module (or argument) the agent does not implement: `validate` warns with file
/// and line and exits 0 (1 with --strict); converge warns once and fails it only when reached.
#[test]
fn unsupported_tasks_are_warnings_until_they_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let play = "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: other systems\n      \
                pacman: {name: vim}\n      when: reach | default(false) | bool\n    - copy: \
                {content: x, dest: \"{{ root }}/x\", colour: blue}\n      when: false\n";
    write(dir.path(), "local.yml", play);
    let validate = |strict: bool| {
        let mut cmd = agent();
        cmd.args(["validate", "--playbook-dir"]).arg(dir.path());
        if strict {
            cmd.arg("--strict");
        }
        cmd.output().unwrap()
    };
    let out = validate(false);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: local.yml:5") && err.contains("pacman"),
        "{err}"
    );
    assert!(
        err.contains("warning: local.yml:7") && err.contains("colour"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 tasks that fail if reached"));
    assert_eq!(validate(true).status.code(), Some(1));

    // Not reached: the run succeeds, with the warnings printed once.
    let out = converge(dir.path(), root.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("pacman").count(), 1, "{err}");
    // Reached: that task fails, naming the file and line, in check mode too.
    for extra in [
        &["-e", "reach=true"][..],
        &["-e", "reach=true", "--check"][..],
    ] {
        let out = converge(dir.path(), root.path(), extra);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("local.yml:5") && text.contains("unsupported module `pacman`"),
            "{text}"
        );
    }
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

#[test]
fn diff_shows_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write(dir.path(), "local.yml", PLAY);
    std::fs::write(root.path().join("hello.txt"), "old line\n").unwrap();
    let out = converge(dir.path(), root.path(), &["--check", "--diff"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("-old line") && text.contains("+hello world"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("hello.txt")).unwrap(),
        "old line\n"
    );
}

/// `daemon-worker` is internal to the daemon: a job it cannot read, or one from a daemon of
/// another version, is refused with a message, and nothing runs.
#[test]
fn daemon_worker_refuses_what_is_not_a_job_of_its_own_version() {
    use std::io::Write;
    use std::process::Stdio;
    let ask = |input: &str| {
        let mut child = agent()
            .arg("daemon-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = ask("not json");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("internal command of `gitops-agent run`"));
    assert!(out.stdout.is_empty(), "{out:?}");
    let dir = tempfile::tempdir().unwrap();
    let job = format!(
        r#"{{"version":"0.0.0/0","config":{{"path":"{}","text":"repo: file:///nowhere\n","host_name":null}},"job":"Load"}}"#,
        dir.path().join("config.yml").display()
    );
    let out = ask(&job);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("restart the daemon"), "{err}");
    assert!(out.stdout.is_empty(), "{out:?}");
    // The same job from this version is answered: the settings, one JSON line.
    let this = job.replace("0.0.0/0", &format!("{}/1", env!("CARGO_PKG_VERSION")));
    let out = ask(&this);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.starts_with(r#"{"Settings":{"Ok":{"interval""#),
        "{answer}"
    );
}

#[test]
fn gitops_agentd_alone_explains_itself() {
    let out = Command::new(env!("CARGO_BIN_EXE_gitops-agentd"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("started by `gitops-agent run`"));
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A configuration key's flag wins over the file: here `--metrics-file` and
/// `--status-heartbeat` (flags generated from the schema) on a pull-mode converge.
#[test]
fn a_key_flag_wins_over_the_file() {
    let repo = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    write(
        repo.path(),
        "local.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: {{content: x, dest: {}/x}}\n",
            root.path().display()
        ),
    );
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "one"]);
    let from_file = work.path().join("file.prom");
    let from_flag = work.path().join("flag.prom");
    let config = work.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "repo: {}\nbranch: main\nstate_dir: {}\nmetrics_file: {}\nstatus:\n  enabled: false\n  heartbeat: 1h\n",
            repo.path().display(),
            work.path().join("state").display(),
            from_file.display()
        ),
    )
    .unwrap();
    let out = agent()
        .args(["converge", "--config"])
        .arg(&config)
        .arg("--metrics-file")
        .arg(&from_flag)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(from_flag.is_file(), "--metrics-file was not used");
    assert!(
        !from_file.exists(),
        "the file's metrics_file won over the flag"
    );

    // A bad value names the flag (not the file): the flag's value was read, and refused.
    let out = agent()
        .args(["converge", "--config"])
        .arg(&config)
        .args(["--status-heartbeat", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--status-heartbeat: invalid duration `soon`"),
        "{err}"
    );
    let out = agent()
        .args(["converge", "--config"])
        .arg(&config)
        .args(["--status-heartbeat", "0s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key `status.heartbeat`: must be more than 0s"),
        "{err}"
    );
    // The daemon's keys are flags of `run`, not of `converge` (a usage error).
    let out = agent()
        .args(["converge", "--config"])
        .arg(&config)
        .args(["--interval", "5m"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unexpected argument '--interval'"), "{err}");
}

/// `run`'s key flags reach the daemon's workers: `--interval 0s` over a file's `interval: 1h`
/// is refused at start (exit 3) naming the key, and a worker's settings follow the flags.
#[test]
fn run_passes_its_key_flags_to_the_daemon() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "repo: file:///nowhere\ninterval: 1h\nstate_dir: {}\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut child = agent()
        .args(["run", "--config"])
        .arg(&config)
        .args(["--interval", "0s"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the daemon started: --interval 0s was not used");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(
        err.contains("key `interval`: must be more than 0s"),
        "{err}"
    );

    // What the worker answers the daemon: the flags' values, over the file's.
    let job = serde_json::json!({
        "version": format!("{}/1", env!("CARGO_PKG_VERSION")),
        "config": {
            "path": config,
            "text": "repo: file:///nowhere\ninterval: 1h\nenforce: 1h\n",
            "host_name": null,
            "overrides": [["interval", "5m"], ["drift", "report"]],
        },
        "job": "Load",
    });
    let mut worker = agent()
        .arg("daemon-worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    worker
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = worker.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let settings = &answer["Settings"]["Ok"];
    assert_eq!(settings["interval"]["secs"], 300, "{answer}");
    assert_eq!(settings["enforce"]["secs"], 3600, "{answer}");
    assert_eq!(settings["drift"], "Report", "{answer}");
}
