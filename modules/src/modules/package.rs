//! The `package` module: `apt` or `dnf`, whichever manages this host, with the arguments both
//! understand (`name`, `state`). As in Ansible, `use` overrides the choice, and every other
//! argument is handed to that module as given: `enablerepo`, `disablerepo`, `allow_downgrade`,
//! `update_cache`, ... mean what the backend says, and one the backend lacks (`enablerepo` on an
//! apt host) fails there, as Ansible's package action does.

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use indexmap::IndexMap;
use minijinja::Value;

use crate::host::HostQueries;
use crate::resource::{Module, ModuleContext, ModuleError, Resource};

pub struct PackageModule;

/// `use`, and the arguments of `apt` and `dnf` (the union: each is handed to the backend, which
/// refuses those it does not have and checks the values, as Ansible's package action does).
static SPEC: ArgSpec = ArgSpec {
    module: "package",
    args: &[
        ArgDef::new("name", ArgType::List)
            .aliases(&["package", "pkg"])
            .required(),
        // Documented as required, but ansible-core's package action checks nothing itself: the
        // backend's default (`present`) applies, as in Ansible.
        ArgDef::new("state", ArgType::Str),
        ArgDef::new("use", ArgType::Str),
        // Both.
        ArgDef::new("update_cache", ArgType::Bool).aliases(&["update-cache", "expire-cache"]),
        ArgDef::new("autoremove", ArgType::Bool),
        ArgDef::new("allow_downgrade", ArgType::Bool).aliases(&[
            "allow-downgrade",
            "allow_downgrades",
            "allow-downgrades",
        ]),
        // apt.
        ArgDef::new("update_cache_retries", ArgType::Int),
        ArgDef::new("cache_valid_time", ArgType::Int),
        ArgDef::new("install_recommends", ArgType::Bool).aliases(&["install-recommends"]),
        ArgDef::new("purge", ArgType::Bool),
        ArgDef::new("deb", ArgType::Path),
        ArgDef::new("default_release", ArgType::Str).aliases(&["default-release"]),
        ArgDef::new("allow_unauthenticated", ArgType::Bool).aliases(&["allow-unauthenticated"]),
        ArgDef::new("allow_change_held_packages", ArgType::Bool),
        ArgDef::new("only_upgrade", ArgType::Bool),
        ArgDef::new("upgrade", ArgType::Str),
        ArgDef::new("dpkg_options", ArgType::Str),
        ArgDef::new("force", ArgType::Bool),
        ArgDef::new("force_apt_get", ArgType::Bool),
        ArgDef::new("lock_timeout", ArgType::Int),
        ArgDef::new("fail_on_autoremove", ArgType::Bool),
        ArgDef::new("policy_rc_d", ArgType::Int),
        ArgDef::new("autoclean", ArgType::Bool),
        // dnf.
        ArgDef::new("enablerepo", ArgType::List),
        ArgDef::new("disablerepo", ArgType::List),
        ArgDef::new("conf_file", ArgType::Path),
        ArgDef::new("disable_gpg_check", ArgType::Bool),
        ArgDef::new("installroot", ArgType::Path),
        ArgDef::new("releasever", ArgType::Str),
        ArgDef::new("exclude", ArgType::List),
        ArgDef::new("skip_broken", ArgType::Bool),
        ArgDef::new("update_only", ArgType::Bool),
        ArgDef::new("install_weak_deps", ArgType::Bool),
        ArgDef::new("nobest", ArgType::Bool),
        ArgDef::new("allowerasing", ArgType::Bool),
        ArgDef::new("cacheonly", ArgType::Bool),
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
        let pass: IndexMap<String, Value> = args
            .iter()
            .filter(|(k, _)| *k != "use")
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let bound = backend.spec().bind(&pass)?;
        backend.prepare(&bound, ctx)
    }
}

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
