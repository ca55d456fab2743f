//! Engine semantics on real playbook directories: handlers, blocks, variables, loops,
//! validation errors. (Module behaviour against ansible-core is in tests/differential.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gitops_modules::engine::{DriftOptions, Engine, RunOptions};
use gitops_modules::playbook::{Loader, Playbook};
use gitops_modules::report::{RunReport, Silent, Status};
use gitops_modules::source::{DirSource, RepoPath};
use gitops_modules::template::Templar;
use minijinja::Value;

/// One engine test's setup: a playbook directory and a scratch root (each a temp dir, removed on
/// drop); the engine runs the directory's `site.yml` for the host `localhost` with the extra var
/// `root` set to the scratch root, so every path a playbook writes lives under it.
struct Fixture {
    dir: tempfile::TempDir,
    root: tempfile::TempDir,
}

impl Fixture {
    /// A playbook directory holding `site` as `site.yml`.
    fn new(site: &str) -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
            root: tempfile::tempdir().unwrap(),
        };
        f.write("site.yml", site);
        f
    }

    /// Writes `text` to `rel` in the playbook directory.
    fn write(&self, rel: &str, text: &str) -> &Fixture {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// The scratch root (`{{ root }}` in the playbooks).
    fn root(&self) -> &Path {
        self.root.path()
    }

    /// The text of `rel` under the scratch root.
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap()
    }

    fn load(&self, templar: &Templar) -> Playbook {
        let source = DirSource::new(self.dir.path()).unwrap();
        Loader::new(&source, templar)
            .load(
                &RepoPath::new("site.yml").unwrap(),
                &gitops_modules::inventory::InventoryHost::implicit("localhost"),
            )
            .unwrap_or_else(|e| panic!("load: {e}"))
    }

    /// Runs the playbook with `opts` (the extra var `root` and the host name are set here).
    fn run_with(&self, opts: RunOptions) -> RunReport {
        let source = DirSource::new(self.dir.path()).unwrap();
        let templar = Arc::new(Templar::new());
        let pb = self.load(&templar);
        let mut extra = indexmap::IndexMap::new();
        extra.insert(
            "root".to_string(),
            Value::from(self.root().to_string_lossy().into_owned()),
        );
        let opts = RunOptions {
            extra_vars: extra,
            inventory_hostname: "localhost".into(),
            ..opts
        };
        let mut silent = Silent;
        Engine::new(templar, &source, opts, &mut silent).run(&pb)
    }

    fn run(&self) -> RunReport {
        self.run_with(RunOptions::default())
    }

    /// `--check`: nothing is changed.
    fn check(&self) -> RunReport {
        self.run_with(RunOptions {
            check: true,
            ..RunOptions::default()
        })
    }

    /// A drift pass (the daemon's), with the host policy `report` or `correct`, guarding `guard`
    /// (directories that must not have become symbolic links).
    fn drift(&self, report: bool, guard: Vec<PathBuf>) -> RunReport {
        self.run_with(RunOptions {
            drift: Some(DriftOptions {
                report,
                guard: Arc::new(guard),
            }),
            ..RunOptions::default()
        })
    }
}

fn names_status(r: &RunReport) -> Vec<(String, Status)> {
    r.tasks.iter().map(|t| (t.name.clone(), t.status)).collect()
}

/// The load error of a one-file playbook `text`.
fn load_err(text: &str) -> String {
    let f = Fixture::new(text);
    let source = DirSource::new(f.dir.path()).unwrap();
    let templar = Templar::new();
    Loader::new(&source, &templar)
        .load(
            &RepoPath::new("site.yml").unwrap(),
            &gitops_modules::inventory::InventoryHost::implicit("h"),
        )
        .map(|_| ())
        .expect_err("should be invalid")
        .to_string()
}

#[test]
fn handlers_run_once_per_flush_in_definition_order() {
    let f = Fixture::new(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: a
      copy: {content: "1", dest: "{{ root }}/a"}
      notify: [second, first]
    - name: b
      copy: {content: "2", dest: "{{ root }}/b"}
      notify: topic
    - meta: flush_handlers
    - name: c
      copy: {content: "3", dest: "{{ root }}/c"}
      notify: first
  handlers:
    - name: first
      command: /bin/true
      listen: topic
    - name: second
      command: /bin/true
"#,
    );
    let r = f.run();
    let got: Vec<(String, bool)> = r
        .tasks
        .iter()
        .map(|t| (t.name.clone(), t.handler))
        .collect();
    let want = [
        ("a", false),
        ("b", false),
        ("first", true),
        ("second", true),
        ("c", false),
        ("first", true),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(n, h)| (n.to_string(), *h))
            .collect::<Vec<_>>()
    );
    // Second run: nothing changes, so no handler runs.
    let r2 = f.run();
    assert!(r2
        .tasks
        .iter()
        .all(|t| !t.handler && t.status == Status::Ok));
}

#[test]
fn block_rescue_always_and_not_run() {
    let f = Fixture::new(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - block:
        - name: boom
          fail: {msg: broken}
        - name: never
          debug: {msg: x}
      rescue:
        - name: caught
          debug: {msg: "{{ ansible_failed_task.name }}"}
      always:
        - name: cleanup
          debug: {msg: y}
    - name: then this fails
      command: /bin/false
    - name: not reached
      debug: {msg: z}
"#,
    );
    let r = f.run();
    assert_eq!(
        names_status(&r),
        vec![
            ("boom".to_string(), Status::Failed),
            ("caught".to_string(), Status::Ok),
            ("cleanup".to_string(), Status::Ok),
            ("then this fails".to_string(), Status::Failed),
            ("not reached".to_string(), Status::NotRun),
        ]
    );
    assert!(r.tasks[0].rescued);
    assert_eq!(r.stats.rescued, 1);
    assert_eq!(r.stats.failed, 1);
    assert_eq!(r.stats.not_run, 1);
}

#[test]
fn variable_precedence_follows_ansible() {
    let f = Fixture::new(
        r#"
- hosts: all
  gather_facts: false
  vars: {c: play, f: play}
  vars_files: [vars/x.yml]
  roles: [r]
"#,
    );
    f.write("group_vars/all.yml", "a: group\nb: group\nc: group\n")
        .write("host_vars/localhost.yml", "a: host\nd: host\n")
        .write("vars/x.yml", "b: vars_file\n")
        .write(
            "roles/r/defaults/main.yml",
            "e: role_default\nd: role_default\n",
        )
        .write("roles/r/vars/main.yml", "c: role_vars\n")
        .write(
            "roles/r/tasks/main.yml",
            "- copy:\n    dest: \"{{ root }}/out\"\n    content: \"{{ a }} {{ b }} {{ c }} {{ d }} {{ e }} {{ f }}\"\n",
        );
    let r = f.run();
    assert_eq!(r.stats.failed, 0, "{:?}", r.tasks);
    let out = f.read("out");
    // host_vars beat group_vars; vars_files beat group_vars; role vars beat play vars;
    // host_vars beat role defaults.
    assert_eq!(out, "host vars_file role_vars host role_default play");
}

#[test]
fn loops_when_register_and_skips() {
    let f = Fixture::new(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: files
      copy: {content: "{{ thing }}", dest: "{{ root }}/{{ thing }}"}
      loop: [a, b, c]
      loop_control: {loop_var: thing}
      when: thing != 'b'
      register: made
    - name: skipped one
      debug: {msg: never}
      when: false
      register: sk
    - name: check registered
      assert:
        that:
          - made.results | length == 3
          - made.results[1].skipped
          - made is changed
          - sk is skipped
"#,
    );
    let r = f.run();
    assert_eq!(
        names_status(&r),
        vec![
            ("files".to_string(), Status::Changed),
            ("skipped one".to_string(), Status::Skipped),
            ("check registered".to_string(), Status::Ok),
        ],
        "{:?}",
        r.tasks
    );
    assert!(f.root().join("a").exists());
    assert!(!f.root().join("b").exists());
    assert_eq!(r.tasks[0].items.len(), 3);
}

#[test]
fn check_mode_changes_nothing() {
    let f = Fixture::new(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - copy: {content: "x", dest: "{{ root }}/x"}
    - file: {path: "{{ root }}/d", state: directory}
"#,
    );
    let r = f.check();
    assert_eq!(r.stats.changed, 2, "{:?}", r.tasks);
    assert_eq!(std::fs::read_dir(f.root()).unwrap().count(), 0);
}

#[test]
fn validation_names_file_line_and_key() {
    let e = load_err("- hosts: all\n  tasks:\n    - debug: {msg: \"{{ x \"}\n");
    assert!(e.contains("site.yml:3"), "{e}");

    let e = load_err("- hosts: all\n  bogus_keyword: 1\n  tasks: []\n");
    assert!(
        e.contains("site.yml:2") && e.contains("bogus_keyword"),
        "{e}"
    );

    let e = load_err(
        "- hosts: all\n  tasks:\n    - copy: {dest: /x, content: y}\n      file: {path: /y}\n",
    );
    assert!(e.contains("conflicting action statements"), "{e}");
}

#[test]
fn a_broken_condition_is_a_warning_naming_its_line() {
    // Ansible evaluates it only when the task is reached: a warning, the task fails then.
    let w = load_warnings("- hosts: all\n  tasks:\n    - debug: msg=x\n      when: 'a =='\n");
    assert!(
        w.iter()
            .any(|w| w.contains("site.yml:4") && w.contains("invalid condition")),
        "{w:?}"
    );
}

/// The warnings of a one-file playbook `text` that loads.
fn load_warnings(text: &str) -> Vec<String> {
    let f = Fixture::new(text);
    let templar = Templar::new();
    f.load(&templar)
        .warnings
        .iter()
        .map(|w| w.to_string())
        .collect()
}

#[test]
fn unsupported_modules_and_arguments_are_warnings_at_load() {
    let w = load_warnings("- hosts: all\n  tasks:\n    - name: x\n      nosuchmodule: {a: 1}\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("site.yml:4"), "{w:?}");
    assert!(w[0].contains("unsupported module `nosuchmodule`"), "{w:?}");

    let w =
        load_warnings("- hosts: all\n  tasks:\n    - copy:\n        dest: /x\n        bogus: 1\n");
    assert!(
        w[0].contains("site.yml:5") && w[0].contains("bogus"),
        "{w:?}"
    );

    let w =
        load_warnings("- hosts: all\n  tasks:\n    - ansible.posix.copy: {dest: /x, content: y}\n");
    assert!(w[0].contains("unsupported module"), "{w:?}");

    // Their templates are still checked for syntax at load.
    let e = load_err("- hosts: all\n  tasks:\n    - pacman: {name: \"{{ x \"}\n");
    assert!(e.contains("site.yml:3"), "{e}");
    let e = load_err("- hosts: all\n  tasks:\n    - copy: {dest: /x, bogus: \"{{ x \"}\n");
    assert!(e.contains("site.yml:3"), "{e}");
}

#[test]
fn an_unsupported_task_fails_only_when_it_runs() {
    let f = Fixture::new(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: not on this system
      pacman: {name: vim}
      when: false
    - name: tagged away
      pacman: {name: vim}
      tags: [never]
    - copy: {content: "x", dest: "{{ root }}/before"}
    - name: reached
      pacman: {name: vim}
    - copy: {content: "x", dest: "{{ root }}/after"}
"#,
    );
    let names = |r: &RunReport| names_status(r);
    for r in [f.check(), f.run()] {
        let n = names(&r);
        assert_eq!(
            n[0],
            ("not on this system".into(), Status::Skipped),
            "{n:?}"
        );
        assert!(!r.tasks.iter().any(|t| t.name == "tagged away"), "{n:?}");
        let reached = r.tasks.iter().find(|t| t.name == "reached").unwrap();
        assert_eq!(reached.status, Status::Failed, "{n:?}");
        let msg = reached.msg.clone().unwrap_or_default();
        assert!(
            msg.contains("site.yml:13") && msg.contains("pacman"),
            "{msg}"
        );
        assert_eq!(n.last().unwrap().1, Status::NotRun, "{n:?}");
    }
    assert!(f.root().join("before").exists());
    assert!(!f.root().join("after").exists());
}

#[test]
fn a_rescued_block_keeps_its_skipped_tasks() {
    let f = Fixture::new(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - block:
        - name: skipped first
          debug: {msg: x}
          when: false
        - name: boom
          fail: {msg: broken}
        - name: never
          debug: {msg: x}
      rescue:
        - name: caught
          debug: {msg: "{{ ansible_failed_result.msg }}"}
"#,
    );
    let r = f.run();
    assert_eq!(
        names_status(&r),
        vec![
            ("skipped first".to_string(), Status::Skipped),
            ("boom".to_string(), Status::Failed),
            ("caught".to_string(), Status::Ok),
        ]
    );
    assert_eq!(r.result, gitops_modules::report::RunResult::Ok);
}

#[test]
fn package_and_unit_names_are_gathered_for_one_batched_query() {
    let f = Fixture::new(
        "- hosts: all\n  roles: [web]\n  tasks:\n    - apt: name=nginx,curl\n    - package:\n        name: [git, '{{ templated }}']\n        state: present\n    - block:\n        - dnf: {name: [vim-enhanced]}\n        - service: name=nginx state=started\n  handlers:\n    - name: restart cron\n      systemd: name=cron.service state=restarted\n",
    );
    f.write(
        "roles/web/tasks/main.yml",
        "- apt:\n    pkg: [rsync]\n- systemd:\n    name: '{{ unit }}'\n    enabled: true\n",
    );
    let pb = f.load(&Templar::new());
    let queries = gitops_modules::playbook::host_queries(&pb);
    let (pkgs, units) = (queries.packages, queries.units);
    assert_eq!(pkgs, ["curl", "git", "nginx", "rsync", "vim-enhanced"]);
    assert_eq!(units, ["cron.service", "nginx"]);
}

#[test]
fn package_and_service_tasks_validate_their_arguments() {
    let e = load_err("- hosts: all\n  tasks:\n    - apt: name=x state=build-dep\n");
    assert!(e.contains("state"), "{e}");
    // An argument the module does not know: a warning, the task fails if it runs.
    let e =
        load_warnings("- hosts: all\n  tasks:\n    - service: name=x stat=started\n").join("\n");
    assert!(e.contains("stat") && e.contains("service"), "{e}");
    // Conflicting or missing arguments: bad input, refused before anything runs.
    let e = load_err("- hosts: all\n  tasks:\n    - apt: {deb: /x.deb, name: y}\n");
    assert!(e.contains("deb") && e.contains("name"), "{e}");
    // A status query (a name alone) is a task of its own, as in Ansible (whose required group
    // holds an argument with a default).
    assert!(load_warnings("- hosts: all\n  tasks:\n    - systemd: {name: x}\n").is_empty());
}

#[test]
fn account_tasks_validate_their_arguments() {
    // An argument the module does not know: a warning, the task fails if it runs.
    let e = load_warnings("- hosts: all\n  tasks:\n    - user: {name: a, password_lock_days: 3}\n")
        .join("\n");
    assert!(
        e.contains("password_lock_days") && e.contains("user"),
        "{e}"
    );
    let e = load_err("- hosts: all\n  tasks:\n    - group: {name: g, non_unique: true}\n");
    assert!(e.contains("gid") && e.contains("site.yml:3"), "{e}");
    let e = load_err(
        "- hosts: all\n  tasks:\n    - ansible.posix.authorized_key:\n        user: a\n        \
         key: \"ssh-ed25519 AAAA x\\nnot-a-key\"\n",
    );
    assert!(
        e.contains("invalid key specified: not-a-key") && e.contains("site.yml:5"),
        "{e}"
    );
    let e = load_err("- hosts: all\n  tasks:\n    - authorized_key: user=a key=https://x/keys\n");
    assert!(e.contains("URL"), "{e}");
}

#[test]
fn a_drift_pass_corrects_reports_by_policy_and_never_reruns_commands() {
    use gitops_modules::report::Drift;
    let f = Fixture::new(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: corrected
      copy: {content: "a\n", dest: "{{ root }}/a"}
      notify: h
    - name: by tag
      copy: {content: "b\n", dest: "{{ root }}/b"}
      tags: [drift_report]
      notify: h2
    - name: by var
      copy: {content: "c\n", dest: "{{ root }}/c"}
      vars: {gitops_drift: report}
    - name: cmd
      command: "touch {{ root }}/ran"
  handlers:
    - name: h
      copy: {content: "h\n", dest: "{{ root }}/h"}
    - name: h2
      copy: {content: "h2\n", dest: "{{ root }}/h2"}
"#,
    );
    let r = f.root();
    f.run();
    for name in ["a", "b", "c", "ran", "h", "h2"] {
        assert!(r.join(name).exists(), "{name}");
    }
    for name in ["a", "b", "c"] {
        std::fs::write(r.join(name), "hand\n").unwrap();
    }
    std::fs::remove_file(r.join("ran")).unwrap();
    std::fs::remove_file(r.join("h")).unwrap();
    std::fs::remove_file(r.join("h2")).unwrap();
    let rep = f.drift(false, Vec::new());
    let drift: Vec<_> = rep
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.drift))
        .collect();
    assert_eq!(
        drift,
        [
            ("corrected", Some(Drift::Corrected)),
            ("by tag", Some(Drift::Reported)),
            ("by var", Some(Drift::Reported)),
            ("cmd", None),
            ("h", None),
        ]
    );
    assert_eq!(std::fs::read_to_string(r.join("a")).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(r.join("b")).unwrap(), "hand\n");
    assert_eq!(std::fs::read_to_string(r.join("c")).unwrap(), "hand\n");
    // The command is skipped (check mode), the handler of a correction runs, the one of a
    // report does not.
    assert!(!r.join("ran").exists());
    assert!(r.join("h").exists());
    assert!(!r.join("h2").exists());
    assert!(rep
        .tasks
        .iter()
        .any(|t| t.name == "cmd" && t.status == Status::Skipped));
    // Owned paths are reported for the watch.
    let a = rep.tasks.iter().find(|t| t.name == "corrected").unwrap();
    assert_eq!(a.owns, [gitops_modules::resource::Owned::Path(r.join("a"))]);

    // Host policy report: an untagged task is only reported.
    std::fs::write(r.join("a"), "hand\n").unwrap();
    let rep = f.drift(true, Vec::new());
    assert_eq!(rep.tasks[0].drift, Some(Drift::Reported));
    assert_eq!(std::fs::read_to_string(r.join("a")).unwrap(), "hand\n");
}

#[test]
fn a_drift_pass_does_not_write_through_a_directory_become_symlink() {
    let outside = tempfile::tempdir().unwrap();
    let f = Fixture::new(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: conf
      copy: {content: "x\n", dest: "{{ root }}/conf.d/x.conf"}
"#,
    );
    let r = f.root();
    std::fs::create_dir(r.join("conf.d")).unwrap();
    f.run();
    std::fs::remove_dir_all(r.join("conf.d")).unwrap();
    std::os::unix::fs::symlink(outside.path(), r.join("conf.d")).unwrap();
    let rep = f.drift(false, vec![r.join("conf.d")]);
    assert_eq!(rep.tasks[0].status, Status::Failed);
    assert!(
        rep.tasks[0]
            .msg
            .as_deref()
            .unwrap()
            .contains("is now a symbolic link"),
        "{:?}",
        rep.tasks[0].msg
    );
    assert!(!outside.path().join("x.conf").exists());
}

#[test]
fn a_task_whose_arguments_do_not_render_fails_naming_the_argument() {
    let f = Fixture::new(
        "- hosts: all\n  tasks:\n    - name: write\n      copy:\n        dest: \"{{ root }}/f\"\n        content: \"{{ nowhere }}\"\n",
    );
    let r = f.run();
    assert_eq!(r.stats.failed, 1, "{:?} {:?}", r.tasks, r.error);
    let task = r
        .tasks
        .iter()
        .find(|t| t.name == "write")
        .expect("the task ran");
    assert_eq!(
        task.msg.as_deref(),
        Some("site.yml:3: argument `content`: 'nowhere' is undefined")
    );
}
