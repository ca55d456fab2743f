//! A harness for the modules' unit tests: a repository and a host directory, and a module run
//! the way the engine runs it.

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;

use crate::args::{ArgSpec, Args};
use crate::resource::{Change, Module, ModuleContext, ModuleError, Outcome, Resource};
use crate::source::{DirSource, RepoPath};
use crate::template::Templar;

/// Runs a module the way the engine does: bind, prepare, check, apply.
pub(crate) struct Harness {
    pub repo: tempfile::TempDir,
    pub host: tempfile::TempDir,
    pub source: DirSource,
    pub templar: Templar,
    pub vars: Value,
}

impl Harness {
    pub fn new() -> Harness {
        let repo = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let source = DirSource::new(repo.path()).unwrap();
        Harness {
            repo,
            host,
            source,
            templar: Templar::new(),
            vars: Value::from(std::collections::BTreeMap::from([(
                "name".to_string(),
                Value::from("world"),
            )])),
        }
    }
    pub fn repo_file(&self, rel: &str, content: &str) {
        let p = self.repo.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    pub fn h(&self, rel: &str) -> PathBuf {
        self.host.path().join(rel)
    }
    pub fn hs(&self, rel: &str) -> String {
        self.h(rel).display().to_string()
    }
    pub fn args(
        &self,
        spec: &ArgSpec,
        pairs: &[(&str, Value)],
    ) -> Result<Args, crate::args::ArgError> {
        let m: IndexMap<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        spec.bind(&m)
    }
    pub fn prepare(
        &self,
        module: &dyn Module,
        pairs: &[(&str, Value)],
    ) -> Result<Box<dyn Resource>, ModuleError> {
        let args = self.args(module.spec(), pairs)?;
        let search = [RepoPath::root()];
        let host_state = Arc::new(crate::host::HostState::new());
        let ctx = ModuleContext {
            templar: &self.templar,
            vars: &self.vars,
            source: &self.source,
            search: &search,
            role_dir: None,
            task_dir: &search[0],
            check_mode: false,
            diff: false,
            env: &[],
            host: &host_state,
        };
        module.prepare(&args, &ctx)
    }
    /// check + apply; returns (changed, outcome).
    pub fn run(
        &self,
        module: &dyn Module,
        pairs: &[(&str, Value)],
    ) -> Result<(bool, Outcome), ModuleError> {
        let r = self.prepare(module, pairs)?;
        let c = r.check()?;
        if c.changes.is_empty() {
            return Ok((c.outcome.changed.unwrap_or(false), c.outcome));
        }
        let o = r.apply(c)?;
        Ok((o.changed.unwrap_or(true), o))
    }
    pub fn changes(&self, module: &dyn Module, pairs: &[(&str, Value)]) -> Vec<Change> {
        self.prepare(module, pairs)
            .unwrap()
            .check()
            .unwrap()
            .changes
    }
    /// Edits the host file `file` (written first with `initial`, if given) with `module`
    /// (`path` set to it, then `args`); a second check must find nothing to do. Returns
    /// (changed, the file's text, `msg`).
    pub fn edit(
        &self,
        module: &dyn Module,
        file: &str,
        initial: Option<&str>,
        args: &[(&str, &str)],
    ) -> (bool, String, String) {
        let p = self.h(file);
        if let Some(init) = initial {
            std::fs::write(&p, init).unwrap();
        }
        let mut a: Vec<(&str, Value)> = vec![("path", v(&self.hs(file)))];
        a.extend(args.iter().map(|(k, x)| (*k, v(x))));
        let (changed, out) = self.run(module, &a).unwrap();
        if out.failed.is_none() {
            assert!(
                self.changes(module, &a).is_empty(),
                "not idempotent: {args:?}"
            );
        }
        let msg = out
            .data
            .get("msg")
            .map(|m| m.to_string())
            .unwrap_or_default();
        (
            changed,
            std::fs::read_to_string(&p).unwrap_or_default(),
            msg,
        )
    }
}

pub(crate) fn v(s: &str) -> Value {
    Value::from(s)
}
