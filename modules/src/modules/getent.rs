//! `getent` (ansible.builtin): runs the system's `getent` tool and returns its records as the
//! fact `getent_<database>`, shaped as ansible-core 2.19 shapes them (first field as the key,
//! the others as a list; a key seen again makes a list of lists). Changes nothing.

use std::process::Command;

use indexmap::IndexMap;
use minijinja::Value;

use super::query::{failed, query};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct GetentModule;

static SPEC: ArgSpec = ArgSpec {
    module: "getent",
    args: &[
        ArgDef::new("database", ArgType::Str).required(),
        ArgDef::new("key", ArgType::Str),
        ArgDef::new("service", ArgType::Str),
        ArgDef::new("split", ArgType::Str),
        ArgDef::new("fail_key", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// Databases whose records are split on `:` unless `split` says otherwise.
const COLON: &[&str] = &["passwd", "shadow", "group", "gshadow"];

#[derive(Debug, Clone)]
struct GetentRequest {
    database: String,
    key: Option<String>,
    service: Option<String>,
    split: Option<String>,
    fail_key: bool,
}

impl Module for GetentModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }
    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let database = args.str("database").unwrap_or_default();
        if args.str("split").is_some_and(|s| s.is_empty()) {
            // Python's `str.split('')`.
            return Err(ModuleError::new("split: empty separator"));
        }
        let split = args
            .str("split")
            .or_else(|| COLON.contains(&database.as_str()).then(|| ":".to_string()));
        let req = GetentRequest {
            database,
            key: args.str("key"),
            service: args.str("service"),
            split,
            fail_key: args.bool_or("fail_key", true),
        };
        query(move || getent(&req))
    }
}

fn getent(req: &GetentRequest) -> Result<Outcome, ModuleError> {
    let Some(tool) = super::stat::bin_path("getent") else {
        return Ok(failed(
            "Failed to find required executable \"getent\" in paths: the PATH, /sbin, /usr/sbin, \
             /usr/local/sbin",
        ));
    };
    let mut cmd = Command::new(tool);
    cmd.arg(&req.database);
    if let Some(k) = &req.key {
        cmd.arg(k);
    }
    if let Some(s) = &req.service {
        cmd.args(["-s", s]);
    }
    let ran = crate::process::run(&mut cmd)?;
    let tree = format!("getent_{}", req.database);
    let facts = |records: Value| crate::vars::map_value([(tree.as_str(), records)]);
    let msg = match ran.rc {
        0 => {
            let records = parse_records(&ran.stdout, req.split.as_deref());
            return Ok(Outcome::default().with("ansible_facts", facts(records)));
        }
        1 => "Missing arguments, or database unknown.",
        2 => {
            let msg = "One or more supplied key could not be found in the database.";
            if !req.fail_key {
                let key = req.key.clone().unwrap_or_else(|| "None".into());
                let records = crate::vars::map_value([(key, Value::from(()))]);
                return Ok(Outcome::default()
                    .with("ansible_facts", facts(records))
                    .with("msg", msg));
            }
            msg
        }
        3 => "Enumeration not supported on this database.",
        _ => "Unexpected failure!",
    };
    Ok(failed(msg))
}

/// The records of `getent`'s output as Ansible's module arranges them.
fn parse_records(out: &str, split: Option<&str>) -> Value {
    let mut tree: IndexMap<String, Value> = IndexMap::new();
    let mut seen: IndexMap<String, usize> = IndexMap::new();
    for line in out.lines() {
        let record: Vec<&str> = match split {
            // Python's `str.split(sep)` (an empty one is refused before).
            Some(sep) if !sep.is_empty() => line.split(sep).collect(),
            _ => line.split_whitespace().collect(),
        };
        let Some((first, rest)) = record.split_first() else {
            // Python's `''.split()` is `[]`: `record[0]` fails the module.
            continue;
        };
        let rest = Value::from(rest.iter().map(|s| Value::from(*s)).collect::<Vec<_>>());
        match seen.get_mut(*first) {
            Some(n) => {
                let prev = tree.get(*first).cloned().unwrap_or_default();
                let mut list: Vec<Value> = if *n == 1 {
                    vec![prev]
                } else {
                    prev.try_iter().map(|i| i.collect()).unwrap_or_default()
                };
                list.push(rest);
                tree.insert(first.to_string(), Value::from(list));
                *n += 1;
            }
            None => {
                tree.insert(first.to_string(), rest);
                seen.insert(first.to_string(), 1);
            }
        }
    }
    crate::vars::map_value(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};

    #[test]
    fn records_are_keyed_by_their_first_field() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            parse_records(passwd, Some(":")).to_string(),
            "{'root': ['x', '0', '0', 'root', '/root', '/bin/bash'], \
             'nobody': ['x', '65534', '65534', '', '/nonexistent', '/usr/sbin/nologin']}"
        );
        let hosts =
            "127.0.0.1       localhost\n127.0.0.1       localhost ip6-localhost\n127.0.0.1 x\n";
        assert_eq!(
            parse_records(hosts, None).to_string(),
            "{'127.0.0.1': [['localhost'], ['localhost', 'ip6-localhost'], ['x']]}"
        );
    }

    #[test]
    fn runs_getent() {
        let h = Harness::new();
        let (changed, out) = h
            .run(
                &GetentModule,
                &[("database", v("passwd")), ("key", v("root"))],
            )
            .unwrap();
        assert!(!changed);
        let facts = out.data.get("ansible_facts").unwrap();
        let root = facts
            .get_attr("getent_passwd")
            .unwrap()
            .get_attr("root")
            .unwrap();
        assert_eq!(root.get_item(&Value::from(1)).unwrap().as_str(), Some("0"));
        let (_, out) = h
            .run(
                &GetentModule,
                &[
                    ("database", v("passwd")),
                    ("key", v("no-such-user-x")),
                    ("fail_key", Value::from(false)),
                ],
            )
            .unwrap();
        assert!(out.failed.is_none());
        assert_eq!(
            out.data["ansible_facts"].to_string(),
            "{'getent_passwd': {'no-such-user-x': None}}"
        );
        let (_, out) = h
            .run(
                &GetentModule,
                &[("database", v("passwd")), ("key", v("no-such-user-x"))],
            )
            .unwrap();
        assert_eq!(
            out.failed.as_deref(),
            Some("One or more supplied key could not be found in the database.")
        );
    }
}
