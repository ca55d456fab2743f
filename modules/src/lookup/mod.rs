//! Ansible's lookup plugins: `lookup()`, `query()`/`q()` in templates and the `with_<name>`
//! loops, with ansible-core 2.19's semantics (one file per family of lookups).
//!
//! A lookup needs to know where the task is (its role, its task file, the playbook's directory,
//! the repository it reads files from, the agent's state directory): minijinja's functions only
//! see the render [`State`], and the templar is shared by the whole process. So the engine
//! publishes a [`Frame`] for the time it runs a task ([`scoped`]), in a thread-local that the
//! lookup functions read. A thread-local was chosen over a variable in the render context because
//! the frame borrows the engine's [`Source`] (not `'static`) and because every template the task
//! renders — arguments, conditions, lazily rendered variables — then sees it without any change
//! to how the engine renders. Outside a task (no frame), lookups that need one fail loudly.

mod files;
mod lists;
mod password;
mod sequence;
mod system;

use std::cell::Cell;
use std::path::Path;

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, Value};

use crate::source::{RepoPath, Source};
use crate::template::Templar;

/// The lookups this crate implements; a `with_<name>` loop must name one of them.
pub const NAMES: &[&str] = &[
    "items",
    "list",
    "dict",
    "indexed_items",
    "nested",
    "together",
    "subelements",
    "sequence",
    "random_choice",
    "inventory_hostnames",
    "file",
    "template",
    "fileglob",
    "first_found",
    "env",
    "vars",
    "lines",
    "pipe",
    "password",
    "flattened",
    "cartesian",
    "varnames",
];

/// The short name of a lookup written with its collection: `ansible.builtin.file` (and
/// `ansible.legacy.`) for the builtin ones, `community.general.` for `flattened`/`cartesian`.
pub fn short_name(name: &str) -> &str {
    for prefix in ["ansible.builtin.", "ansible.legacy."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            if !matches!(rest, "flattened" | "cartesian") {
                return rest;
            }
        }
    }
    match name {
        "community.general.flattened" => "flattened",
        "community.general.cartesian" => "cartesian",
        _ => name,
    }
}

/// Whether `name` is a lookup the agent implements.
pub fn is_known(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Where the running task is, for the lookups that read files, run commands or store state.
pub struct Frame<'a> {
    pub source: &'a dyn Source,
    /// Directories a relative file name is searched in, most specific first (the task's role,
    /// its task file's directory, the playbook's directory).
    pub search: Vec<RepoPath>,
    /// Ansible's `ansible_search_path`: the same without the playbook's directory when the task
    /// is elsewhere (`fileglob` looks only there).
    pub search_path: Vec<RepoPath>,
    /// How repository paths are shown on the host (`playbook_dir`): a path found by a lookup is
    /// returned as `<playbook_dir>/<path in the repository>`, as Ansible returns absolute paths.
    pub playbook_dir: &'a str,
    /// The agent's state directory (relative `password` files are kept there), if it has one.
    pub state_dir: Option<&'a Path>,
    pub templar: &'a Templar,
    /// The task's variables (for the `template` lookup; names local to a template, such as the
    /// loop item, are read from the render state).
    pub vars: Value,
    /// The task's action (`with_first_found` looks in `templates/`, `vars/` or `files/` by it).
    pub action: &'a str,
    pub inventory_hostname: &'a str,
}

thread_local! {
    static CURRENT: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with `frame` as the current lookup frame (restored to the previous one after, also
/// when `f` unwinds).
pub fn scoped<R>(frame: &Frame<'_>, f: impl FnOnce() -> R) -> R {
    struct Restore(*const ());
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let prev = CURRENT.with(|c| c.replace(frame as *const Frame<'_> as *const ()));
    let _restore = Restore(prev);
    f()
}

/// Calls `f` with the current frame, if a task is running.
pub(crate) fn with_frame<R>(f: impl FnOnce(Option<&Frame<'_>>) -> R) -> R {
    let p = CURRENT.with(|c| c.get()) as *const Frame<'_>;
    // SAFETY: only `scoped` sets the pointer, to a frame it borrows for the whole call of its
    // closure, and it restores the previous value when that call ends (or unwinds); lookups run
    // synchronously inside that call on the same thread, so a non-null pointer is a live frame.
    // The reference handed to `f` cannot outlive this call.
    let frame = unsafe { p.as_ref() };
    f(frame)
}

/// The frame or an error saying the lookup needs a task.
fn need_frame<R>(name: &str, f: impl FnOnce(&Frame<'_>) -> Result<R, Error>) -> Result<R, Error> {
    with_frame(|fr| match fr {
        Some(fr) => f(fr),
        None => Err(err(format!(
            "lookup '{name}' is only available while a task runs"
        ))),
    })
}

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// What a lookup is given besides its terms.
pub(crate) struct Call<'s, 'e> {
    pub state: Option<&'s State<'s, 'e>>,
    pub kwargs: Kwargs,
    /// Invoked by a `with_<name>` loop (not `lookup()`/`query()`).
    pub with: bool,
}

impl Call<'_, '_> {
    fn flag(&self, key: &str, default: bool) -> Result<bool, Error> {
        match self.kwargs.get::<Option<Value>>(key)? {
            None => Ok(default),
            Some(v) => crate::args::to_bool(&v)
                .ok_or_else(|| err(format!("option `{key}` must be a boolean, got {v}"))),
        }
    }
}

/// Runs the lookup `name` on `terms`: always a list.
fn run(name: &str, terms: Vec<Value>, call: &Call) -> Result<Vec<Value>, Error> {
    match name {
        "items" => Ok(lists::flatten_one(terms)),
        "list" => Ok(terms),
        "dict" => lists::dict(terms),
        "indexed_items" => Ok(lists::indexed_items(terms)),
        "nested" => lists::nested(terms),
        "together" => lists::together(terms),
        "subelements" => lists::subelements(terms),
        "random_choice" => Ok(lists::random_choice(terms)),
        "flattened" => Ok(lists::flattened(terms)),
        "cartesian" => lists::cartesian(terms),
        "inventory_hostnames" => need_frame(name, |fr| lists::inventory_hostnames(terms, fr)),
        "sequence" => sequence::run(terms, call),
        "env" => system::env(terms, call),
        "vars" => system::vars(terms, call),
        "varnames" => need_frame(name, |fr| system::varnames(terms, fr)),
        "lines" => with_frame(|fr| system::lines(terms, fr)),
        "pipe" => with_frame(|fr| system::pipe(terms, fr)),
        "file" => need_frame(name, |fr| files::file(terms, call, fr)),
        "template" => need_frame(name, |fr| files::template(terms, call, fr)),
        "fileglob" => need_frame(name, |fr| files::fileglob(terms, fr)),
        "first_found" => need_frame(name, |fr| files::first_found(terms, call, fr)),
        "password" => need_frame(name, |fr| password::run(terms, call, fr)),
        _ => Err(err(format!(
            "lookup plugin '{name}' not found (the agent implements: {})",
            NAMES.join(", ")
        ))),
    }
}

/// The options (keyword arguments) each lookup takes, besides `wantlist` and `errors`.
fn options_of(name: &str) -> &'static [&'static str] {
    match name {
        "file" => &["lstrip", "rstrip"],
        "template" => &[
            "convert_data",
            "template_vars",
            "variable_start_string",
            "variable_end_string",
            "comment_start_string",
            "comment_end_string",
            "trim_blocks",
            "jinja2_native",
        ],
        "first_found" => &["files", "paths", "skip"],
        "sequence" => &["start", "end", "count", "stride", "format"],
        "env" | "vars" => &["default"],
        "password" => &["length", "chars", "seed", "encrypt", "ident"],
        _ => &[],
    }
}

/// How a failing lookup is reported: `errors=strict|warn|ignore`.
fn on_error(name: &str, e: Error, errors: &str, wantlist: bool) -> Result<Value, Error> {
    match errors {
        "ignore" | "warn" => {
            if errors == "warn" {
                eprintln!(
                    "[WARNING]: An error occurred while running the lookup plugin '{name}': {e}"
                );
            }
            Ok(if wantlist {
                Value::from(Vec::<Value>::new())
            } else {
                Value::from(())
            })
        }
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("lookup plugin '{name}' failed: {}", describe(&e)),
        )),
    }
}

fn describe(e: &Error) -> String {
    e.detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.to_string())
}

/// `lookup(name, terms…, wantlist=, errors=, options…)` and `query`: one entry point.
fn invoke(
    state: &State,
    name: &str,
    terms: Vec<Value>,
    kwargs: Kwargs,
    query: bool,
) -> Result<Value, Error> {
    let name = short_name(name);
    let wantlist = query || kwargs.get::<Option<bool>>("wantlist")?.unwrap_or(false);
    let errors = kwargs
        .get::<Option<String>>("errors")?
        .unwrap_or_else(|| "strict".into());
    if !matches!(errors.as_str(), "strict" | "warn" | "ignore") {
        return Err(err(format!(
            "lookup errors= must be strict, warn or ignore, not {errors:?}"
        )));
    }
    if !is_known(name) {
        return Err(err(format!(
            "lookup plugin '{name}' not found (the agent implements: {})",
            NAMES.join(", ")
        )));
    }
    // An option the lookup does not take is an error whatever `errors=` says (ansible-core
    // ignores it for some lookups: the agent never ignores a key).
    let allowed = options_of(name);
    if let Some(bad) = kwargs
        .args()
        .find(|k| !matches!(*k, "wantlist" | "errors") && !allowed.contains(k))
    {
        return Err(err(format!(
            "lookup '{name}' has no option `{bad}`{}",
            if allowed.is_empty() {
                " (it takes none)".to_string()
            } else {
                format!(" (options: {})", allowed.join(", "))
            }
        )));
    }
    let call = Call {
        state: Some(state),
        kwargs,
        with: false,
    };
    let res = run(name, terms, &call).and_then(|r| {
        call.kwargs.assert_all_used()?;
        Ok(r)
    });
    let list = match res {
        Ok(l) => l,
        Err(e) => return on_error(name, e, &errors, wantlist),
    };
    if wantlist || list.is_empty() {
        return Ok(Value::from(list));
    }
    if list.len() == 1 {
        return Ok(list.into_iter().next().unwrap_or_default());
    }
    // Ansible joins the results with commas when they are all strings.
    if list.iter().all(|v| v.kind() == ValueKind::String) {
        let parts: Vec<&str> = list.iter().filter_map(|v| v.as_str()).collect();
        return Ok(Value::from(parts.join(",")));
    }
    Ok(Value::from(list))
}

fn lookup_fn(
    state: &State,
    name: String,
    terms: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    invoke(state, &name, terms.0, kwargs, false)
}

fn query_fn(
    state: &State,
    name: String,
    terms: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    invoke(state, &name, terms.0, kwargs, true)
}

/// Adds `lookup`, `query` and `q` to a template environment.
pub fn register(env: &mut Environment<'static>) {
    env.add_function("lookup", lookup_fn);
    env.add_function("query", query_fn);
    env.add_function("q", query_fn);
}

/// The items of a `with_<name>` loop whose (rendered) value is `rendered`: Ansible passes a
/// string as one term, a list as its terms, anything else (`None` too) as one term.
pub fn with_items(name: &str, rendered: Value) -> Result<Vec<Value>, String> {
    let terms = if rendered.kind() == ValueKind::Seq {
        rendered
            .try_iter()
            .map(|it| it.collect())
            .unwrap_or_default()
    } else if rendered.is_undefined() {
        return Err(format!("the terms of with_{name} are undefined"));
    } else {
        vec![rendered]
    };
    let call = Call {
        state: None,
        kwargs: Kwargs::from_iter(Vec::<(&str, Value)>::new()),
        with: true,
    };
    run(name, terms, &call).map_err(|e| format!("lookup plugin '{name}' failed: {}", describe(&e)))
}

/// A mapping's entries as (key, value), or None for something else.
fn map_entries(v: &Value) -> Option<Vec<(Value, Value)>> {
    if v.kind() != ValueKind::Map {
        return None;
    }
    let keys: Vec<Value> = v.try_iter().ok()?.collect();
    Some(
        keys.into_iter()
            .map(|k| {
                let val = v.get_item(&k).unwrap_or_default();
                (k, val)
            })
            .collect(),
    )
}

/// A term that must be a string.
fn term_str(v: &Value, lookup: &str) -> Result<String, Error> {
    match v.as_str() {
        Some(s) => Ok(s.to_string()),
        None if v.kind() == ValueKind::Number => Ok(v.to_string()),
        None => Err(err(format!(
            "the '{lookup}' lookup expects a string, got {v}"
        ))),
    }
}

#[cfg(test)]
mod tests;
