//! The bridge to the host's ansible-core: a module the agent does not implement (or a module
//! argument it does not) runs as ansible would run it on this host — the module's own Python
//! program, `python3 -m ansible.modules.NAME ARGSFILE` (or a collection's,
//! `ansible_collections.NS.COLL.plugins.modules.NAME` with the collection roots on
//! `PYTHONPATH`), its arguments as Ansible's module JSON, its JSON result back into the task.
//!
//! Off unless configured (`ansible_modules: auto`). The interpreter is looked for only when a
//! task first needs it, so a run without such tasks costs nothing. Modules whose meaning needs
//! ansible's controller-side action plugin are refused ([`plugins`]).

pub mod args;
pub mod locate;
pub mod plugins;
pub mod result;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use indexmap::IndexMap;
use minijinja::Value;

pub use args::ModuleFlags;
pub use locate::{Interpreter, Located};
pub use result::ModuleResult;

/// A module task as written, kept so that it can run through ansible-core: the module name as
/// the task wrote it and its arguments (not rendered).
#[derive(Debug, Clone)]
pub struct ModuleCall {
    pub module: String,
    pub args: IndexMap<String, Value>,
}

/// The configuration: `ansible_python` (`None`: found by itself) and `ansible_modules_force`
/// (modules the agent has that still run through ansible-core, to compare both).
#[derive(Debug, Clone, Default)]
pub struct BridgeOptions {
    pub python: Option<PathBuf>,
    pub force: Vec<String>,
}

/// Why a module did not run through ansible-core. Each message says how to fix it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BridgeError {
    #[error("ansible module bridge: {0}")]
    NoInterpreter(String),
    #[error("ansible module `{name}` not found: {fix}")]
    ModuleNotFound { name: String, fix: String },
    #[error("{0}")]
    Refused(String),
    #[error("ansible module `{module}`: {what}: {error}")]
    Io {
        module: String,
        what: &'static str,
        error: String,
    },
}

/// The bridge of one run: its options and, once a task needed it, the interpreter.
#[derive(Debug, Default)]
pub struct Bridge {
    opts: BridgeOptions,
    interpreter: OnceLock<Result<Interpreter, BridgeError>>,
}

/// One module run.
#[derive(Debug)]
pub struct Invocation<'a> {
    /// The module to run (after the plugin's choice: `ansible.legacy.apt` for `package`).
    pub module: &'a str,
    /// The rendered arguments.
    pub args: serde_json::Map<String, serde_json::Value>,
    pub check_mode: bool,
    pub diff: bool,
    pub no_log: bool,
    /// The task's `environment`.
    pub env: &'a [(String, String)],
    /// Collection roots searched first: the playbook's `collections/` directory.
    pub collections: &'a [PathBuf],
}

impl Bridge {
    pub fn new(opts: BridgeOptions) -> Bridge {
        Bridge {
            opts,
            interpreter: OnceLock::new(),
        }
    }

    /// A module the agent has natively, configured to run through ansible-core anyway
    /// (`ansible_modules_force`, by short name or as written).
    pub fn forced(&self, short: &str, written: &str) -> bool {
        self.opts.force.iter().any(|f| f == short || f == written)
    }

    /// The interpreter the configuration names (`ansible_python`), if it names one.
    pub fn configured_python(&self) -> Option<&std::path::Path> {
        self.opts.python.as_deref()
    }

    /// The interpreter, found on first use.
    pub fn interpreter(&self) -> Result<&Interpreter, BridgeError> {
        self.interpreter
            .get_or_init(|| locate::interpreter(self.opts.python.as_deref()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Runs the module and reads its result.
    pub fn run(&self, inv: Invocation<'_>) -> Result<ModuleResult, BridgeError> {
        let interp = self.interpreter()?;
        let located = locate::module(interp, inv.module, inv.collections)?;
        let io = |what: &'static str| {
            let module = inv.module.to_string();
            move |e: std::io::Error| BridgeError::Io {
                module,
                what,
                error: e.to_string(),
            }
        };
        // A private directory (0700) for the arguments (they may hold secrets) and the
        // module's own temporary files.
        let tmp = tempfile::Builder::new()
            .prefix("gitops-agent-ansible-")
            .tempdir()
            .map_err(io("cannot create a temporary directory"))?;
        let flags = ModuleFlags {
            check_mode: inv.check_mode,
            diff: inv.diff,
            no_log: inv.no_log,
            module_name: inv.module.to_string(),
            version: interp.version.clone(),
            tmpdir: tmp.path().display().to_string(),
        };
        let input = args::module_input(inv.args, &flags);
        let args_path = tmp.path().join("args");
        let mut f = std::fs::File::create(&args_path).map_err(io("cannot write its arguments"))?;
        f.write_all(input.to_string().as_bytes())
            .map_err(io("cannot write its arguments"))?;
        drop(f);
        let mut cmd = Command::new(&interp.python);
        cmd.arg("-m")
            .arg(&located.python_module)
            .arg(&args_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in inv.env {
            cmd.env(k, v);
        }
        if !located.pythonpath.is_empty() {
            let mut paths = located.pythonpath.clone();
            if let Some(existing) = std::env::var_os("PYTHONPATH") {
                paths.extend(std::env::split_paths(&existing));
            }
            if let Ok(joined) = std::env::join_paths(paths) {
                cmd.env("PYTHONPATH", joined);
            }
        }
        let out = cmd.output().map_err(io("cannot start the interpreter"))?;
        Ok(result::parse(
            inv.module,
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
            out.status.code(),
        ))
    }
}
