//! The `package` module: `apt` or `dnf`, whichever manages this host, with the arguments both
//! understand (`name`, `state`). As in Ansible, `use` overrides the choice, and every other
//! argument is handed to that module as given: `enablerepo`, `disablerepo`, `allow_downgrade`,
//! `update_cache` mean what the backend says, and one the backend lacks (`enablerepo` on an apt
//! host) fails there, as Ansible's package action does.

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use indexmap::IndexMap;
use minijinja::Value;

use crate::host::HostQueries;
use crate::resource::{Module, ModuleContext, ModuleError, Resource};

pub struct PackageModule;

static SPEC: ArgSpec = ArgSpec {
    module: "package",
    args: &[
        ArgDef::new("name", ArgType::List).required(),
        ArgDef::new("state", ArgType::Str).required(),
        ArgDef::new("use", ArgType::Str),
        // Handed to the backend (which refuses those it does not have).
        ArgDef::new("enablerepo", ArgType::List),
        ArgDef::new("disablerepo", ArgType::List),
        ArgDef::new("allow_downgrade", ArgType::Bool),
        ArgDef::new("update_cache", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for PackageModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn host_queries(&self, args: &IndexMap<String, Value>, queries: &mut HostQueries) {
        queries.packages_named(args);
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let manager = match args.str("use").filter(|u| u != "auto") {
            Some(u) => u,
            None => pkg_mgr(ctx)?,
        };
        let backend: &dyn Module = match manager.as_str() {
            "apt" => &super::apt::AptModule,
            "dnf" | "dnf5" | "yum" => &super::dnf::DnfModule,
            other => {
                return Err(ModuleError::new(format!(
                    "package manager '{other}' is not supported (apt and dnf are)"
                )))
            }
        };
        let mut pass = indexmap::IndexMap::new();
        for key in PASSED {
            if let Some(v) = args.get(key) {
                pass.insert(key.to_string(), v.clone());
            }
        }
        let bound = backend.spec().bind(&pass)?;
        backend.prepare(&bound, ctx)
    }
}

/// The arguments handed to the backend module (all but `use`).
const PASSED: [&str; 6] = [
    "name",
    "state",
    "enablerepo",
    "disablerepo",
    "allow_downgrade",
    "update_cache",
];

/// `ansible_facts.pkg_mgr` when facts were gathered, else what is installed.
fn pkg_mgr(ctx: &ModuleContext) -> Result<String, ModuleError> {
    let from_facts = ctx
        .vars
        .get_attr("ansible_facts")
        .ok()
        .and_then(|f| f.get_attr("pkg_mgr").ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .filter(|s| !s.is_empty() && s != "unknown");
    if let Some(m) = from_facts {
        return Ok(m);
    }
    for (bin, name) in [("/usr/bin/apt-get", "apt"), ("/usr/bin/dnf", "dnf")] {
        if std::path::Path::new(bin).exists() {
            return Ok(name.to_string());
        }
    }
    Err(ModuleError::new(
        "Could not find a package manager on this host (apt-get or dnf); set `use`",
    ))
}
