//! Lookups that depend on how the engine is run: the `password` lookup's files under the state
//! directory, lookups inside lazily rendered variables.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use gitops_modules::engine::{Engine, RunOptions};
use gitops_modules::playbook::Loader;
use gitops_modules::report::{RunReport, Silent, Status};
use gitops_modules::source::{DirSource, RepoPath};
use gitops_modules::template::Templar;
use minijinja::Value;

fn run(dir: &Path, root: &Path, state_dir: Option<&Path>) -> RunReport {
    let source = DirSource::new(dir).unwrap();
    let templar = Arc::new(Templar::new());
    let pb = Loader::new(&source, &templar)
        .load(
            &RepoPath::new("site.yml").unwrap(),
            &gitops_modules::inventory::InventoryHost::implicit("localhost"),
        )
        .unwrap_or_else(|e| panic!("load: {e}"));
    let mut extra = indexmap::IndexMap::new();
    extra.insert(
        "root".to_string(),
        Value::from(root.to_string_lossy().into_owned()),
    );
    let opts = RunOptions {
        extra_vars: extra,
        inventory_hostname: "localhost".into(),
        state_dir: state_dir.map(Path::to_path_buf),
        ..RunOptions::default()
    };
    let mut silent = Silent;
    Engine::new(templar, &source, opts, &mut silent).run(&pb)
}

const SITE: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: write the password
      copy:
        content: "{{ db_password }}"
        dest: "{{ root }}/pw"
"#;

fn playbook() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.yml"), SITE).unwrap();
    std::fs::create_dir_all(dir.path().join("group_vars")).unwrap();
    std::fs::write(
        dir.path().join("group_vars/all.yml"),
        "db_password: \"{{ lookup('password', 'credentials/db length=15 chars=ascii_letters') }}\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_relative_password_file_is_kept_under_the_state_dir_and_reused() {
    let dir = playbook();
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let first = run(dir.path(), root.path(), Some(state.path()));
    assert!(
        first.tasks.iter().all(|t| t.status != Status::Failed),
        "{first:?}"
    );
    let stored = state.path().join("lookup_password/credentials/db");
    let text = std::fs::read_to_string(&stored).unwrap();
    let pw = text.trim_end();
    assert_eq!(pw.len(), 15, "{text:?}");
    assert!(pw.chars().all(|c| c.is_ascii_alphabetic()), "{pw}");
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(root.path().join("pw")).unwrap(), pw);
    // Nothing is written into the repository.
    assert!(!dir.path().join("credentials").exists());

    let second = run(dir.path(), root.path(), Some(state.path()));
    assert!(second.tasks.iter().all(|t| !t.changed), "{second:?}");
    assert_eq!(std::fs::read_to_string(root.path().join("pw")).unwrap(), pw);
}

#[test]
fn a_relative_password_file_without_a_state_dir_fails_the_task() {
    let dir = playbook();
    let root = tempfile::tempdir().unwrap();
    let report = run(dir.path(), root.path(), None);
    let failed = report
        .tasks
        .iter()
        .find(|t| t.status == Status::Failed)
        .expect("the task fails");
    let msg = failed.msg.clone().unwrap_or_default();
    assert!(msg.contains("state directory"), "{msg}");
    assert!(!root.path().join("pw").exists());
}
