//! The `group` module: a local group, as ansible-core's `group` module manages it on Linux.
//! State is read by parsing `/etc/group`; changes are made with `groupadd [-g GID [-o]] [-r]
//! NAME`, `groupmod -g GID [-o] NAME` (only the gid is ever modified, as in Ansible) and
//! `groupdel [-f] NAME`.

use std::sync::Arc;

use super::accounts::{run_steps, with_steps, AccountStep, Db, Etc, Tool};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::error::LoadError;
use crate::host::HostState;
use crate::resource::{
    AccountKind, AccountOp, Change, Check, LoadContext, Module, ModuleContext, ModuleError,
    Outcome, Owned, Resource, TaskArgs,
};

pub struct GroupModule;

static SPEC: ArgSpec = ArgSpec {
    module: "group",
    args: &[
        ArgDef::new("name", ArgType::Str).required(),
        ArgDef::new("state", ArgType::Str).choices(&["present", "absent"]),
        ArgDef::new("gid", ArgType::Int),
        ArgDef::new("system", ArgType::Bool),
        ArgDef::new("non_unique", ArgType::Bool),
        ArgDef::new("force", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Default)]
pub(crate) struct GroupSpec {
    pub name: String,
    pub present: bool,
    pub gid: Option<u32>,
    pub system: bool,
    pub non_unique: bool,
    pub force: bool,
}

const NON_UNIQUE_WITHOUT_GID: &str = "non_unique is True but all of the following are missing: gid";

impl Module for GroupModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn validate(&self, args: &TaskArgs, ctx: &LoadContext) -> Result<(), LoadError> {
        if args.is_true("non_unique") && args.get("gid").is_none() {
            return Err(
                LoadError::at(ctx.task.clone(), NON_UNIQUE_WITHOUT_GID).with_key("non_unique")
            );
        }
        Ok(())
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let gid = args.id("gid")?;
        let non_unique = args.bool_or("non_unique", false);
        if non_unique && gid.is_none() {
            return Err(ModuleError::new(NON_UNIQUE_WITHOUT_GID));
        }
        Ok(Box::new(GroupResource {
            spec: GroupSpec {
                name: args.str("name").unwrap_or_default(),
                present: args.str("state").as_deref() != Some("absent"),
                gid,
                system: args.bool_or("system", false),
                non_unique,
                force: args.bool_or("force", false),
            },
            etc: Etc::default(),
            host: ctx.host.clone(),
            check_mode: ctx.check_mode,
        }))
    }
}

fn account(op: AccountOp, name: &str, fields: Vec<String>) -> Change {
    Change::Account {
        kind: AccountKind::Group,
        name: name.to_string(),
        op,
        fields,
        steps: Vec::new(),
    }
}

/// The change for `spec` against `db`, with the command that makes it.
pub(crate) fn plan(spec: &GroupSpec, db: &Db) -> Option<(Change, Tool)> {
    let name = spec.name.as_str();
    let cur = db.group_by_name(name);
    let s = |x: &str| x.to_string();
    match (spec.present, cur) {
        (false, None) => None,
        (false, Some(_)) => {
            let mut argv = vec![s("groupdel")];
            if spec.force {
                argv.push(s("-f"));
            }
            argv.push(s(name));
            Some((
                account(AccountOp::Remove, name, Vec::new()),
                Tool::new(argv),
            ))
        }
        (true, None) => {
            let mut argv = vec![s("groupadd")];
            let mut fields = Vec::new();
            if let Some(gid) = spec.gid {
                argv.extend([s("-g"), gid.to_string()]);
                if spec.non_unique {
                    argv.push(s("-o"));
                }
                fields.push(format!("gid {gid}"));
            }
            if spec.system {
                argv.push(s("-r"));
                fields.push(s("system"));
            }
            argv.push(s(name));
            Some((account(AccountOp::Create, name, fields), Tool::new(argv)))
        }
        (true, Some(g)) => {
            let gid = spec.gid.filter(|gid| *gid != g.gid)?;
            let mut argv = vec![s("groupmod"), s("-g"), gid.to_string()];
            if spec.non_unique {
                argv.push(s("-o"));
            }
            argv.push(s(name));
            Some((
                account(
                    AccountOp::Modify,
                    name,
                    vec![format!("gid {} -> {gid}", g.gid)],
                ),
                Tool::new(argv),
            ))
        }
    }
}

fn outcome(spec: &GroupSpec, db: &Db) -> Outcome {
    let mut out = Outcome::default()
        .with("name", spec.name.clone())
        .with("state", if spec.present { "present" } else { "absent" });
    if let Some(g) = db.group_by_name(&spec.name) {
        out = out.with("system", spec.system).with("gid", g.gid);
    }
    out
}

struct GroupResource {
    spec: GroupSpec,
    etc: Etc,
    host: Arc<HostState>,
    check_mode: bool,
}

impl Resource for GroupResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let db = self.host.accounts(&self.etc)?;
        let planned: Vec<(Change, Vec<AccountStep>)> = plan(&self.spec, &db)
            .into_iter()
            .map(|(c, tool)| (c, vec![AccountStep::Tool(tool)]))
            .collect();
        // Ansible stops before creating or removing in check mode: only `changed` is reported.
        let creates_or_removes = planned.iter().any(|(c, _)| {
            matches!(
                c,
                Change::Account {
                    op: AccountOp::Create | AccountOp::Remove,
                    ..
                }
            )
        });
        let outcome = if self.check_mode && creates_or_removes {
            Outcome::default()
        } else {
            outcome(&self.spec, &db)
        };
        Ok(Check::new(with_steps(planned), outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let printed = run_steps(&check.changes, &|_| Ok(Default::default()))?;
        // The gid reported is the one the group has now.
        Ok(printed.report(outcome(&self.spec, &self.etc.read()?)))
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.etc.dir.join("group"))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Db {
        Db::parse("", "root:x:0:\ndevs:x:2000:alice\n", "")
    }

    fn spec(name: &str) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            present: true,
            ..Default::default()
        }
    }

    fn argv(p: Option<(Change, Tool)>) -> Option<Vec<String>> {
        p.map(|(_, t)| t.argv)
    }

    #[test]
    fn create() {
        let mut sp = spec("ops");
        sp.gid = Some(3000);
        sp.system = true;
        sp.non_unique = true;
        let p = plan(&sp, &db()).unwrap();
        assert_eq!(p.0.describe(), "create group ops (gid 3000, system)");
        assert_eq!(p.1.argv, ["groupadd", "-g", "3000", "-o", "-r", "ops"]);
        assert_eq!(
            argv(plan(&spec("ops"), &db())).unwrap(),
            ["groupadd", "ops"]
        );
    }

    #[test]
    fn modify_only_the_gid() {
        let mut sp = spec("devs");
        assert!(plan(&sp, &db()).is_none());
        sp.system = true; // not changed on an existing group, as in Ansible
        sp.gid = Some(2000);
        assert!(plan(&sp, &db()).is_none());
        sp.gid = Some(2001);
        let p = plan(&sp, &db()).unwrap();
        assert_eq!(p.0.describe(), "modify group devs (gid 2000 -> 2001)");
        assert_eq!(p.1.argv, ["groupmod", "-g", "2001", "devs"]);
    }

    #[test]
    fn remove() {
        let mut sp = spec("devs");
        sp.present = false;
        sp.force = true;
        assert_eq!(argv(plan(&sp, &db())).unwrap(), ["groupdel", "-f", "devs"]);
        sp.name = "none".into();
        assert!(plan(&sp, &db()).is_none());
    }

    #[test]
    fn results() {
        let o = outcome(&spec("devs"), &db());
        assert_eq!(
            o.data.get("gid").map(|v| v.to_string()),
            Some("2000".into())
        );
        assert_eq!(o.data.get("system").map(|v| v.is_true()), Some(false));
        let o = outcome(&spec("none"), &db());
        assert!(o.data.get("gid").is_none());
    }
}
