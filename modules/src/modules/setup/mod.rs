//! `setup` and `gather_facts` (ansible.builtin): the host's facts gathered again as a task, the
//! same facts the engine gathers for a play's `gather_facts` ([`crate::facts::Facts`]), chosen
//! by `gather_subset` and `filter` as ansible-core 2.19 chooses them, plus local facts from
//! `fact_path`. The result's `ansible_facts` (names prefixed `ansible_`) join the fact cache
//! (see the engine's `absorb_facts`). Changes nothing; runs in check mode.

pub(crate) mod local;
mod subset;

use indexmap::IndexMap;
use minijinja::Value;

use super::query::{expand_path, failed, query};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::facts::lazy::FactsMap;
use crate::facts::Facts;
use crate::resource::{Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct SetupModule;
pub struct GatherFactsModule;

const DEFAULT_FACT_PATH: &str = "/etc/ansible/facts.d";

static SETUP: ArgSpec = ArgSpec {
    module: "setup",
    args: &[
        ArgDef::new("gather_subset", ArgType::List),
        // A bound on collectors that may hang; the agent's reading has none that wait on the
        // network, so it finishes within any timeout Ansible would use.
        ArgDef::new("gather_timeout", ArgType::Int),
        ArgDef::new("filter", ArgType::List),
        ArgDef::new("fact_path", ArgType::Path),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

static GATHER_FACTS: ArgSpec = ArgSpec {
    module: "gather_facts",
    args: &[
        // One facts module, one host: parallel or not gives the same result.
        ArgDef::new("parallel", ArgType::Bool),
        ArgDef::new("gather_subset", ArgType::List),
        ArgDef::new("gather_timeout", ArgType::Int),
        ArgDef::new("filter", ArgType::List),
        ArgDef::new("fact_path", ArgType::Path),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// What one `setup` task asks for.
#[derive(Debug, Clone)]
struct SetupRequest {
    gather_subset: Vec<String>,
    filter: Vec<String>,
    fact_path: String,
    /// `gather_facts` marks its facts `_ansible_facts_gathered`.
    gathered_marker: bool,
}

impl SetupRequest {
    fn from_args(args: &Args, gathered_marker: bool) -> SetupRequest {
        SetupRequest {
            gather_subset: args
                .list_str("gather_subset")
                .unwrap_or_else(|| vec!["all".into()]),
            filter: args.list_str("filter").unwrap_or_default(),
            fact_path: args
                .str("fact_path")
                .map(|p| expand_path(&p).to_string_lossy().into_owned())
                .unwrap_or_else(|| DEFAULT_FACT_PATH.into()),
            gathered_marker,
        }
    }
}

impl Module for SetupModule {
    fn spec(&self) -> &'static ArgSpec {
        &SETUP
    }
    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        check_timeout(args)?;
        let req = SetupRequest::from_args(args, false);
        query(move || setup(&req))
    }
}

impl Module for GatherFactsModule {
    fn spec(&self) -> &'static ArgSpec {
        &GATHER_FACTS
    }
    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        check_timeout(args)?;
        let req = SetupRequest::from_args(args, true);
        query(move || setup(&req))
    }
}

fn check_timeout(args: &Args) -> Result<(), ModuleError> {
    match args.int("gather_timeout") {
        Some(t) if t < 0 => Err(ModuleError::new(format!(
            "gather_timeout must be a positive number of seconds, not {t}"
        ))),
        _ => Ok(()),
    }
}

fn setup(req: &SetupRequest) -> Result<Outcome, ModuleError> {
    let collectors = match subset::collectors(&req.gather_subset) {
        Ok(c) => c,
        Err(msg) => return Ok(failed(msg)),
    };
    let mut all: IndexMap<String, Value> = IndexMap::new();
    for (k, v) in Facts::gather().map {
        if collectors.contains(subset::collector_of_fact(&k)) {
            all.insert(format!("ansible_{k}"), v);
        }
    }
    if collectors.contains("local") {
        let path = std::path::Path::new(&req.fact_path);
        all.insert("ansible_local".into(), local::local_facts(path)?);
    }
    all.insert(
        "gather_subset".into(),
        Value::from(
            req.gather_subset
                .iter()
                .map(|s| Value::from(s.as_str()))
                .collect::<Vec<_>>(),
        ),
    );
    all.insert("module_setup".into(), Value::from(true));
    let mut facts: IndexMap<String, Value> = all
        .into_iter()
        .filter(|(k, _)| passes_filter(k, &req.filter))
        .collect();
    if req.gathered_marker {
        facts.insert("_ansible_facts_gathered".into(), Value::from(true));
    }
    // Lazy facts stay lazy: computed when read (the fact cache keeps them so).
    Ok(Outcome::default().with("ansible_facts", Value::from_object(FactsMap(facts))))
}

/// `AnsibleFactCollector._filter`: an empty filter or `*` keeps all; a pattern matches the
/// name, or (unless it starts with `ansible_`, `facter` or `ohai`) the name with `ansible_`
/// put before the pattern.
fn passes_filter(name: &str, filter: &[String]) -> bool {
    if filter.is_empty() || (filter.len() == 1 && filter[0] == "*") {
        return true;
    }
    let fnmatch = |p: &str| super::command::fnmatch(p.as_bytes(), name.as_bytes());
    filter.iter().any(|f| {
        f.is_empty()
            || fnmatch(f)
            || (!(f.starts_with("ansible_") || f.starts_with("facter") || f.starts_with("ohai"))
                && fnmatch(&format!("ansible_{f}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};

    fn facts_of(args: &[(&str, Value)]) -> Value {
        let h = Harness::new();
        let (changed, out) = h.run(&SetupModule, args).unwrap();
        assert!(!changed);
        assert!(out.failed.is_none(), "{:?}", out.failed);
        out.data.get("ansible_facts").cloned().unwrap()
    }

    fn keys(v: &Value) -> Vec<String> {
        v.try_iter()
            .unwrap()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn filter_matches_with_and_without_prefix() {
        let f = facts_of(&[("filter", v("distribution*"))]);
        let mut k = keys(&f);
        k.sort();
        assert_eq!(
            k,
            vec![
                "ansible_distribution",
                "ansible_distribution_major_version",
                "ansible_distribution_release",
                "ansible_distribution_version"
            ]
        );
        let f = facts_of(&[(
            "filter",
            Value::from(vec![v("ansible_os_family"), v("module_setup")]),
        )]);
        assert_eq!(keys(&f), vec!["ansible_os_family", "module_setup"]);
        assert!(passes_filter("anything", &["*".to_string()]));
        assert!(!passes_filter("facter_x", &["x".to_string()]));
    }

    #[test]
    fn subsets_choose_collectors() {
        let f = facts_of(&[("gather_subset", v("!all,!min,network"))]);
        let k = keys(&f);
        assert!(k.contains(&"ansible_default_ipv4".to_string()));
        assert!(
            k.contains(&"ansible_kernel".to_string()),
            "platform is required"
        );
        assert!(!k.contains(&"ansible_memtotal_mb".to_string()));
        assert!(!k.contains(&"ansible_local".to_string()));
        assert_eq!(
            f.get_attr("gather_subset").unwrap().to_string(),
            "['!all', '!min', 'network']"
        );
        let h = Harness::new();
        let (_, out) = h
            .run(&SetupModule, &[("gather_subset", v("nonsense"))])
            .unwrap();
        assert!(out.failed.unwrap().starts_with("Bad subset 'nonsense'"));
    }

    #[test]
    fn local_facts_from_fact_path() {
        let h = Harness::new();
        std::fs::write(h.h("x.fact"), r#"{"a": 1}"#).unwrap();
        let f = facts_of(&[("fact_path", v(&h.hs(""))), ("filter", v("ansible_local"))]);
        assert_eq!(
            f.get_attr("ansible_local").unwrap().to_string(),
            "{'x': {'a': 1}}"
        );
    }
}
