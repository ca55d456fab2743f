//! Which ansible-core modules can run through the bridge as they are, which need their
//! controller-side action plugin mirrored (the agent mirrors the few that only choose a module),
//! and which are refused.
//!
//! Ansible runs a module through an action plugin on the controller
//! (ansible/plugins/action/NAME.py) when one of that name exists, else through `normal`, which
//! only sends the module. Running the module alone is the same program only for the latter;
//! for the former the decision is per plugin (see docs/modules/ansible-bridge.md).

use indexmap::IndexMap;
use minijinja::Value;

/// How a module call goes to ansible-core.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Run this module (as written or chosen by the mirrored plugin) with these arguments.
    Module {
        name: String,
        args: IndexMap<String, Value>,
        /// What the mirrored action plugin warns about (as Ansible's does).
        warnings: Vec<String>,
    },
    /// Not run: the module's meaning needs its action plugin on the controller.
    Refused(String),
}

/// The builtin action plugins of ansible-core 2.19 whose work happens on the controller: a
/// module behind one of them is never run alone.
const CONTROLLER_PLUGINS: &[(&str, &str)] = &[
    ("add_host", "changes the controller's in-memory inventory"),
    ("group_by", "changes the controller's in-memory inventory"),
    ("set_stats", "sets the controller's run statistics"),
    ("set_fact", "sets variables on the controller"),
    ("include_vars", "reads files on the controller"),
    ("debug", "prints on the controller"),
    ("fail", "is evaluated on the controller"),
    ("assert", "is evaluated on the controller"),
    ("validate_argument_spec", "is evaluated on the controller"),
    (
        "async_status",
        "reads async job files the agent does not start",
    ),
    ("gather_facts", "runs fact modules chosen on the controller"),
    ("template", "renders the template on the controller"),
    ("fetch", "copies a file to the controller"),
    ("script", "copies a local script to the host"),
    (
        "raw",
        "runs a command through the connection, without a module",
    ),
    ("reboot", "reboots and waits from the controller"),
    ("pause", "waits on the controller"),
    (
        "wait_for_connection",
        "waits for the connection from the controller",
    ),
];

/// Collections' modules known to need their action plugin (checked besides the plugin files
/// found on the host, see [`collection_plugin_refusal`]).
const COLLECTION_PLUGINS: &[&str] = &[
    "ansible.posix.synchronize",
    "ansible.builtin.synchronize",
    "synchronize",
];

/// The short builtin name of `name` (`ansible.builtin.x`, `ansible.legacy.x`, `x`), `None` for
/// a collection's module.
pub fn builtin_short(name: &str) -> Option<&str> {
    let short = name
        .strip_prefix("ansible.builtin.")
        .or_else(|| name.strip_prefix("ansible.legacy."))
        .unwrap_or(name);
    (!short.contains('.')).then_some(short)
}

/// Why `name` is never run through the bridge, whatever its arguments (for `validate`).
pub fn always_refused(name: &str) -> Option<String> {
    if COLLECTION_PLUGINS.contains(&name) {
        return Some(refusal(name, "synchronizes from the controller"));
    }
    let short = builtin_short(name)?;
    CONTROLLER_PLUGINS
        .iter()
        .find(|(n, _)| *n == short)
        .map(|(_, why)| refusal(name, why))
}

/// Why `name` with `args` (as written, not rendered) would be refused, as far as the load can
/// tell: `package`/`service`/`dnf` choose by the host's facts, known only when they run.
pub fn refused_at_load(name: &str, args: &IndexMap<String, Value>) -> Option<String> {
    if let Some(why) = always_refused(name) {
        return Some(why);
    }
    if matches!(builtin_short(name), Some("package" | "service" | "dnf")) {
        return None;
    }
    match route(name, args, &Value::UNDEFINED) {
        Route::Refused(why) => Some(why),
        Route::Module { .. } => None,
    }
}

fn refusal(name: &str, why: &str) -> String {
    format!(
        "module `{name}` needs ansible-core's controller-side action plugin (it {why}): not run \
         through ansible-core's module alone"
    )
}

/// The route of a builtin module call: as written, through a mirrored plugin, or refused.
/// `facts` are the host's `ansible_facts` (for `package`/`service`/`dnf`'s `use: auto`).
pub fn route(name: &str, args: &IndexMap<String, Value>, facts: &Value) -> Route {
    if let Some(why) = always_refused(name) {
        return Route::Refused(why);
    }
    let plain = |args: &IndexMap<String, Value>| Route::Module {
        name: name.to_string(),
        args: args.clone(),
        warnings: Vec::new(),
    };
    let Some(short) = builtin_short(name) else {
        return plain(args);
    };
    let flag = |key: &str, default: bool| {
        args.get(key)
            .map(|v| crate::args::to_bool(v).unwrap_or(default))
            .unwrap_or(default)
    };
    match short {
        // The plugin only sends the module when the source is on the host already.
        "copy" if !flag("remote_src", false) || args.contains_key("content") => {
            Route::Refused(refusal(
                name,
                "copies `src`/`content` from the controller (only `remote_src: true` \
                          without `content` runs through the bridge)",
            ))
        }
        "unarchive" if !flag("remote_src", false) || args.contains_key("copy") => {
            Route::Refused(refusal(
                name,
                "copies the archive from the controller (only `remote_src: true` runs through \
                 the bridge)",
            ))
        }
        "assemble" if !flag("remote_src", true) => Route::Refused(refusal(
            name,
            "assembles fragments on the controller with `remote_src: false`",
        )),
        "uri" if args.contains_key("src") && !flag("remote_src", false) => Route::Refused(refusal(
            name,
            "reads `src` on the controller (without `remote_src: true`)",
        )),
        // shell is command with `_uses_shell` (ansible/plugins/action/shell.py).
        "shell" => {
            let mut a = args.clone();
            a.insert("_uses_shell".into(), Value::from(true));
            if let Some(exe) = a.shift_remove("executable") {
                a.insert("executable".into(), exe);
            }
            Route::Module {
                name: "ansible.legacy.command".into(),
                args: a,
                warnings: Vec::new(),
            }
        }
        "package" => select_backend(name, args, facts, "pkg_mgr", &[]),
        "service" => select_backend(
            name,
            args,
            facts,
            "service_mgr",
            &[(
                "systemd",
                &["pattern", "runlevel", "sleep", "arguments", "args"],
            )],
        ),
        "dnf" => {
            let backend = args
                .get("use_backend")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "auto".into());
            let chosen = match backend.as_str() {
                "auto" => match fact(facts, "pkg_mgr").as_deref() {
                    Some("dnf5") => "dnf5",
                    _ => "dnf",
                },
                "dnf4" | "dnf" => "dnf",
                "dnf5" => "dnf5",
                other => {
                    return Route::Refused(format!(
                        "module `{name}`: use_backend `{other}` is not run through the bridge"
                    ))
                }
            };
            let mut a = args.clone();
            a.shift_remove("use_backend");
            Route::Module {
                name: format!("ansible.legacy.{chosen}"),
                args: a,
                warnings: Vec::new(),
            }
        }
        _ => plain(args),
    }
}

/// A fact by its short name (`pkg_mgr`), from `ansible_facts`.
fn fact(facts: &Value, name: &str) -> Option<String> {
    facts
        .get_attr(name)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
}

/// `package`/`service`: `use`, else the fact, names the module run (as their action plugins).
/// Arguments the chosen module does not take are dropped with a warning, as Ansible does.
fn select_backend(
    name: &str,
    args: &IndexMap<String, Value>,
    facts: &Value,
    fact_name: &str,
    unused: &[(&str, &[&str])],
) -> Route {
    let given = args
        .get("use")
        .and_then(|v| v.as_str().map(str::to_lowercase))
        .filter(|u| u != "auto");
    let Some(module) = given.or_else(|| fact(facts, fact_name)) else {
        return Route::Refused(format!(
            "module `{name}` through ansible-core: the fact `{fact_name}` is not known (gather \
             facts first, or set `use`)"
        ));
    };
    if module.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')) {
        return Route::Refused(format!(
            "module `{name}`: `use: {module}` is not a module name"
        ));
    }
    let mut a = args.clone();
    a.shift_remove("use");
    let mut warnings = Vec::new();
    if let Some((_, keys)) = unused.iter().find(|(m, _)| *m == module) {
        for k in *keys {
            if a.shift_remove(*k).is_some() {
                warnings.push(format!(
                    "Ignoring \"{k}\" as it is not used in \"{module}\""
                ));
            }
        }
    }
    let module = if module.contains('.') {
        module
    } else {
        format!("ansible.legacy.{module}")
    };
    Route::Module {
        name: module,
        args: a,
        warnings,
    }
}

/// A collection module with an action plugin of its own on this host (found by the locator):
/// refused, naming the module.
pub fn collection_plugin_refusal(name: &str) -> String {
    refusal(name, "has an action plugin in its collection")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, Value)]) -> IndexMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn controller_plugins_are_refused_naming_the_module() {
        for name in [
            "template",
            "ansible.builtin.fetch",
            "raw",
            "reboot",
            "add_host",
        ] {
            match route(name, &IndexMap::new(), &Value::from(())) {
                Route::Refused(msg) => assert!(msg.contains(&format!("`{name}`")), "{msg}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn plain_modules_run_as_written() {
        let a = args(&[("path", Value::from("/x"))]);
        assert_eq!(
            route("ansible.builtin.stat", &a, &Value::from(())),
            Route::Module {
                name: "ansible.builtin.stat".into(),
                args: a.clone(),
                warnings: vec![]
            }
        );
    }

    #[test]
    fn local_file_plugins_need_remote_src() {
        let a = args(&[("src", Value::from("a.tgz")), ("dest", Value::from("/x"))]);
        assert!(matches!(
            route("unarchive", &a, &Value::from(())),
            Route::Refused(_)
        ));
        let mut r = a.clone();
        r.insert("remote_src".into(), Value::from(true));
        assert!(matches!(
            route("unarchive", &r, &Value::from(())),
            Route::Module { .. }
        ));
        assert!(matches!(
            route("copy", &a, &Value::from(())),
            Route::Refused(_)
        ));
        // assemble's remote_src defaults to true
        assert!(matches!(
            route("assemble", &a, &Value::from(())),
            Route::Module { .. }
        ));
    }

    #[test]
    fn shell_is_command_with_uses_shell() {
        let a = args(&[("_raw_params", Value::from("echo hi | cat"))]);
        match route("shell", &a, &Value::from(())) {
            Route::Module { name, args, .. } => {
                assert_eq!(name, "ansible.legacy.command");
                assert_eq!(args.get("_uses_shell"), Some(&Value::from(true)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn package_and_service_choose_by_fact_or_use() {
        let facts = crate::template::filters::encoding::json_to_value(serde_json::json!({
            "pkg_mgr": "apt", "service_mgr": "systemd"
        }));
        let a = args(&[("name", Value::from("vim")), ("use", Value::from("auto"))]);
        match route("package", &a, &facts) {
            Route::Module { name, args, .. } => {
                assert_eq!(name, "ansible.legacy.apt");
                assert!(!args.contains_key("use"));
            }
            other => panic!("{other:?}"),
        }
        let s = args(&[("name", Value::from("x")), ("sleep", Value::from(2))]);
        match route("service", &s, &facts) {
            Route::Module {
                name,
                args,
                warnings,
            } => {
                assert_eq!(name, "ansible.legacy.systemd");
                assert!(!args.contains_key("sleep"));
                assert_eq!(warnings.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            route("package", &a, &Value::from(())),
            Route::Refused(_)
        ));
    }
}
