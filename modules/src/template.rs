//! Jinja templating with Ansible (ansible-core 2.19) semantics, on top of minijinja.
//!
//! The [`Templar`] is what the engine and the modules use to render task arguments, variables,
//! conditions and `template` file bodies.
//!
//! Notes for the engine:
//! - A module argument whose rendered value equals [`OMIT`] (what `{{ omit }}` renders to) must
//!   be dropped from the arguments, as Ansible does. The templar only provides the value.
//! - `render_str` returns native values for a string that is exactly one `{{ expr }}` (Ansible
//!   2.19 behaviour); any text around it (whitespace included) makes the result a string.
//! - Undefined variables are errors, except under `default`/`d`, `is defined`/`is undefined`,
//!   and chained lookups such as `foo.bar is defined` / `foo.bar | default(..)` when `foo` is
//!   itself undefined.

mod backslashes;
mod files;
pub(crate) mod filters;
mod fqcn;
pub mod pyplugins;
pub(crate) use filters::python_subn;
mod pyrepr;
mod tests_impl;
mod yaml;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use minijinja::{AutoEscape, Environment, Error, ErrorKind, Expression, UndefinedBehavior};

pub use files::TemplateFiles;
pub use minijinja::Value;

/// What `{{ omit }}` renders to. The engine drops a module argument whose rendered value is
/// exactly this string.
pub const OMIT: &str = "__omit_place_holder__gitops";

/// A templating error; the message carries minijinja's detail (kind, detail, line) and the
/// offending template text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Maximum number of distinct templates/expressions kept compiled. Beyond it, new sources are
/// compiled on every use (correct, only slower).
const CACHE_LIMIT: usize = 20_000;

/// Compiles and evaluates expressions, checks syntax; lives as long as the process.
struct Engine {
    /// Strict undefined behaviour: what Ansible does in nearly every case.
    strict: Environment<'static>,
    /// Chainable undefined behaviour, used only to retry an evaluation that failed in `strict`
    /// because of an attribute lookup on an undefined value (`foo.bar is defined`,
    /// `foo.bar | default(1)`); printing an undefined value still fails here.
    chain: Environment<'static>,
    /// Compiled expressions (emptied by [`forget_compiled`]).
    strict_exprs: ExprCache,
    chain_exprs: ExprCache,
}

type ExprCache = Mutex<HashMap<String, Arc<Expression<'static, 'static>>>>;

/// Renders templates and keeps each one it compiles (in its loader's store, which only
/// `&mut Environment` can empty: so [`forget_compiled`] replaces the whole store). Built like
/// the [`Engine`]'s environments.
struct Store {
    strict: Environment<'static>,
    chain: Environment<'static>,
    /// Templates kept by either environment.
    loaded: Arc<AtomicUsize>,
}

static ENGINE: OnceLock<Engine> = OnceLock::new();
/// The store in use; `None` until the first [`Templar`] and again after [`forget_compiled`].
static STORE: Mutex<Option<Arc<Store>>> = Mutex::new(None);

fn engine() -> &'static Engine {
    ENGINE.get_or_init(|| {
        let loaded = Arc::new(AtomicUsize::new(0));
        Engine {
            strict: make_env(UndefinedBehavior::Strict, loaded.clone()),
            chain: make_env(UndefinedBehavior::Chainable, loaded),
            strict_exprs: Mutex::new(HashMap::new()),
            chain_exprs: Mutex::new(HashMap::new()),
        }
    })
}

fn store() -> Arc<Store> {
    let mut slot = STORE.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert_with(|| {
        let loaded = Arc::new(AtomicUsize::new(0));
        Arc::new(Store {
            strict: make_env(UndefinedBehavior::Strict, loaded.clone()),
            chain: make_env(UndefinedBehavior::Chainable, loaded.clone()),
            loaded,
        })
    })
    .clone()
}

/// Drops every compiled template, expression and regular expression kept so far; what renders
/// next compiles afresh (a [`Templar`] still alive keeps its templates until it is dropped).
///
/// For a long-running process between runs of a playbook (the daemon): minijinja reserves
/// about 12 KiB of instruction buffers for every template or expression it compiles, however
/// small, so a playbook with hundreds of templated arguments leaves megabytes behind, while
/// compiling one again takes microseconds.
pub fn forget_compiled() {
    STORE.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(e) = ENGINE.get() {
        for cache in [&e.strict_exprs, &e.chain_exprs] {
            cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
    filters::forget_regexes();
}

fn make_env(behavior: UndefinedBehavior, loaded: Arc<AtomicUsize>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(behavior);
    env.set_debug(true);
    // Template names are the template sources themselves (see `Templar::template`): never let
    // a source ending in `.html` switch auto-escaping on.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(false)
            .keep_trailing_newline(true)
            .build()
            .expect("default delimiters"),
    );
    env.set_loader(move |name| {
        if !Templar::is_template(name) {
            // not a source but a name given to include/import/extends: only a template file
            // rendered with its search path (`Templar::render_file`) loads other files.
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "cannot load template '{name}': include, import and extends load a \
                     template file only in a template rendered by the template module"
                ),
            ));
        }
        loaded.fetch_add(1, Ordering::Relaxed);
        // Collection-named filters and tests are rewritten when a source is compiled (once:
        // the compiled template is kept under its source as written).
        Ok(Some(fqcn::in_template(name).into_owned()))
    });
    env.set_formatter(|out, _state, value| {
        if value.is_undefined() {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                "an undefined value was printed",
            ));
        }
        if value.is_none() {
            return Ok(());
        }
        out.write_str(&pyrepr::py_str_final(value))
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "write failed"))
    });
    env.set_unknown_method_callback(filters::call_py_method);
    env.add_global("omit", Value::from(OMIT));
    filters::register(&mut env);
    tests_impl::register(&mut env);
    env.add_filter(fqcn::FILTER, pyplugins::filter);
    env.add_test(fqcn::TEST, pyplugins::test);
    crate::lookup::register(&mut env);
    env
}

/// A value as block-style YAML (what `to_nice_yaml` gives, indent 2), for documents the
/// agent writes (the status document).
pub fn to_yaml_document(v: &Value) -> Result<String, TemplateError> {
    yaml::dump(v, 2, true, false).map_err(|e| TemplateError(e.to_string()))
}

/// A module argument that is not a string, as text the way ansible-core's `copy` action
/// writes `content`: a list or dictionary as `json.dumps` (`[1, 2]`), anything else as
/// Python's `str()` (`True`, `5`, `1.5`).
pub fn python_text(v: &Value) -> Result<String, TemplateError> {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            filters::json_dumps(v).map_err(|e| TemplateError(e.to_string()))
        }
        _ => Ok(pyrepr::py_str(v)),
    }
}

/// Renders strings, values, file bodies and conditions with Ansible's Jinja semantics.
pub struct Templar {
    engine: &'static Engine,
    store: Arc<Store>,
}

impl Default for Templar {
    fn default() -> Self {
        Templar::new()
    }
}

impl std::fmt::Debug for Templar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templar")
    }
}

/// A string that is exactly one `{{ expr }}`: the inner expression.
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
    if inner.contains("}}") || Templar::is_template(inner) {
        return None;
    }
    Some(inner)
}

fn short(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        s.to_string()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

fn describe(err: &Error, source: &str, what: &str) -> TemplateError {
    let mut msg = err.kind().to_string();
    if let Some(detail) = err.detail() {
        if detail.contains(filters::MANDATORY_MARKER) {
            // Ansible: "Mandatory variable 'foo' not defined."
            return TemplateError(detail.replace(
                filters::MANDATORY_MARKER,
                &format!("'{}'", mandatory_name(source)),
            ));
        }
        if err.kind() == ErrorKind::UndefinedError
            && !detail.contains('`')
            && !detail.starts_with("an undefined")
        {
            // a filter's own message (e.g. `mandatory` with a custom msg)
            return TemplateError(detail.to_string());
        }
        msg.push_str(": ");
        msg.push_str(detail);
    }
    if source.contains('\n') {
        if let Some(line) = err.line() {
            msg.push_str(&format!(" (line {line})"));
        }
        if what == "expression" {
            msg.push_str(&format!(" in expression {:?}", short(source)));
        }
    } else {
        msg.push_str(&format!(" in {what} {:?}", short(source)));
    }
    // Errors raised by filters (`mandatory`, `regex_*`) may chain a source error.
    let mut src = std::error::Error::source(err);
    while let Some(e) = src {
        msg.push_str(&format!(": {e}"));
        src = e.source();
    }
    TemplateError(msg)
}

/// The variable piped into `mandatory` in a template source.
fn mandatory_name(source: &str) -> String {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r#"([A-Za-z_][A-Za-z0-9_.]*(?:\[[^\]]*\][A-Za-z0-9_.]*)*)\s*\|\s*mandatory\b"#,
        )
        .unwrap()
    });
    re.captures(source)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "variable".into())
}

/// Whether a template source has a statement that loads another template.
fn loads_templates(source: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"\{%[-+]?\s*(include|import|from|extends)\b").expect("valid regex")
    })
    .is_match(source)
}

/// A template file's error, naming the included template it comes from and, for a template
/// not found, where it was looked for.
fn describe_file_error(err: &Error, source: &str, files: &TemplateFiles) -> TemplateError {
    if err.kind() == ErrorKind::TemplateNotFound {
        let detail = err.detail().unwrap_or_default();
        let name = detail.split('"').nth(1).unwrap_or(detail);
        let mut msg = files::not_found(files, name);
        if let Some(line) = err.line() {
            msg.push_str(&format!(" (line {line})"));
        }
        return TemplateError(msg);
    }
    let TemplateError(mut msg) = describe(err, source, "template");
    if let Some(name) = err.name().filter(|n| *n != files::MAIN) {
        msg.push_str(&format!(" (in included template '{name}')"));
    }
    TemplateError(msg)
}

/// Whether a strict-mode failure may be a lookup on an undefined parent (`foo.bar` with `foo`
/// undefined), which Ansible tolerates under `is defined` / `default`.
fn may_be_chained_lookup(err: &Error, source: &str) -> bool {
    if err.kind() != ErrorKind::UndefinedError {
        return false;
    }
    // With debug info, minijinja names the undefined expression: "`foo` is undefined".
    if let Some(detail) = err.detail() {
        if let Some(start) = detail.find('`') {
            if let Some(len) = detail[start + 1..].find('`') {
                let name = &detail[start + 1..start + 1 + len];
                if name.contains("...") {
                    // minijinja's abbreviation of a compound expression (`(...)[...]` for
                    // `a[b][c]`): it may be a lookup on an undefined parent too.
                    return true;
                }
                return source.contains(&format!("{name}."))
                    || source.contains(&format!("{name}["));
            }
        }
    }
    source.contains('.') || source.contains('[')
}

fn undefined_error(expr: &str) -> TemplateError {
    TemplateError(format!("'{}' is undefined", short(expr.trim())))
}

/// Whether a rendered condition string counts as false (Ansible's string conversion).
fn string_is_false(s: &str) -> bool {
    let t = s.trim();
    t.is_empty() || t.eq_ignore_ascii_case("false") || t.eq_ignore_ascii_case("no")
}

impl Templar {
    pub fn new() -> Templar {
        Templar {
            engine: engine(),
            store: store(),
        }
    }

    /// true when `s` contains `{{`, `{%` or `{#`.
    pub fn is_template(s: &str) -> bool {
        let b = s.as_bytes();
        let mut i = 0;
        while i + 1 < b.len() {
            if b[i] == b'{' && matches!(b[i + 1], b'{' | b'%' | b'#') {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Parse only (static validation before anything runs): Err on a Jinja syntax error.
    pub fn check_syntax(&self, s: &str) -> Result<(), TemplateError> {
        if !Self::is_template(s) {
            return Ok(());
        }
        self.engine
            .strict
            .template_from_str(&fqcn::in_template(s))
            .map(|_| ())
            .map_err(|e| describe(&e, s, "template"))
    }

    /// Same for a bare expression (as in `when:`, `that:`, `changed_when:`). A condition
    /// written as a `{{ }}` template is checked as a template.
    pub fn check_expr_syntax(&self, expr: &str) -> Result<(), TemplateError> {
        if Self::is_template(expr) {
            return self.check_syntax(expr);
        }
        self.engine
            .strict
            .compile_expression(&fqcn::in_expression(expr))
            .map(|_| ())
            .map_err(|e| describe(&e, expr, "expression"))
    }

    fn expression(
        &self,
        chain: bool,
        expr: &str,
    ) -> Result<Arc<Expression<'static, 'static>>, Error> {
        let e = self.engine;
        let (env, cache) = if chain {
            (&e.chain, &e.chain_exprs)
        } else {
            (&e.strict, &e.strict_exprs)
        };
        if let Some(e) = cache.lock().unwrap().get(expr) {
            return Ok(e.clone());
        }
        // Collection-named filters and tests are rewritten once, when compiled (the cache keeps
        // the expression under its text as written).
        let compiled =
            Arc::new(env.compile_expression_owned(fqcn::in_expression(expr).into_owned())?);
        let mut map = cache.lock().unwrap();
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
        map.insert(expr.to_owned(), compiled.clone());
        Ok(compiled)
    }

    /// Evaluates an expression; the result may be undefined. `escape`: the expression comes
    /// from YAML, its string constants take backslashes literally (see [`backslashes`]).
    fn eval_raw(&self, expr: &str, vars: &Value, escape: bool) -> Result<Value, TemplateError> {
        let source = expr;
        let escaped = if escape {
            backslashes::in_expression(expr)
        } else {
            std::borrow::Cow::Borrowed(expr)
        };
        let expr = &*escaped;
        let strict = self
            .expression(false, expr)
            .map_err(|e| describe(&e, source, "expression"))?;
        match strict.eval(vars.clone()) {
            Ok(v) => Ok(v),
            Err(err) => {
                if may_be_chained_lookup(&err, expr) {
                    if let Ok(chain) = self.expression(true, expr) {
                        if let Ok(v) = chain.eval(vars.clone()) {
                            if !v.is_undefined() {
                                return Ok(v);
                            }
                        }
                    }
                }
                Err(describe(&err, source, "expression"))
            }
        }
    }

    /// Renders a template source; `escape` as in [`Templar::eval_raw`].
    fn render_template(
        &self,
        source: &str,
        vars: &Value,
        escape: bool,
    ) -> Result<String, TemplateError> {
        let e = &*self.store;
        let escaped = if escape {
            backslashes::in_template(source)
        } else {
            std::borrow::Cow::Borrowed(source)
        };
        let attempt = |env: &Environment<'static>| -> Result<String, Error> {
            if e.loaded.load(Ordering::Relaxed) < CACHE_LIMIT {
                // The loader rewrites collection-named filters (see `make_env`).
                env.get_template(&escaped)?.render(vars.clone())
            } else {
                env.template_from_str(&fqcn::in_template(&escaped))?
                    .render(vars.clone())
            }
        };
        match attempt(&e.strict) {
            Ok(s) => Ok(s),
            Err(err) => {
                if may_be_chained_lookup(&err, source) {
                    if let Ok(s) = attempt(&e.chain) {
                        return Ok(s);
                    }
                }
                Err(describe(&err, source, "template"))
            }
        }
    }

    /// Render a string from a task argument or variable, Ansible 2.19 style:
    /// - no template markers -> `Value::from(s)` unchanged;
    /// - the string is exactly one `{{ expr }}` -> the expression's native value;
    /// - otherwise -> the rendered string.
    pub fn render_str(&self, s: &str, vars: &Value) -> Result<Value, TemplateError> {
        if !Self::is_template(s) {
            return Ok(Value::from(s));
        }
        // Jinja (keep_trailing_newline off, as Ansible templates variables) drops one trailing
        // newline of the source; Ansible then gives a text result back the newlines it lost.
        // So `"{{ n }}\n"` is the integer `n`, and `"{{ s }}\n"` is `s` plus a newline.
        let body = s.strip_suffix('\n').unwrap_or(s);
        let want = trailing_newlines(s);
        let restore = |v: Value| -> Value {
            match v.as_str() {
                Some(text) if trailing_newlines(text) < want => {
                    let mut text = text.to_string();
                    for _ in trailing_newlines(&text)..want {
                        text.push('\n');
                    }
                    Value::from(text)
                }
                _ => v,
            }
        };
        if let Some(expr) = single_expression(body) {
            let v = self.eval_raw(expr, vars, true)?;
            if v.is_undefined() {
                return Err(undefined_error(expr));
            }
            return Ok(restore(pyrepr::without_tuples(v)));
        }
        self.render_template(body, vars, true)
            .map(|out| restore(Value::from(out)))
    }

    /// Recursively render every string inside a Value (map keys too, sequences, nested).
    pub fn render_value(&self, v: &Value, vars: &Value) -> Result<Value, TemplateError> {
        if !needs_render(v) {
            return Ok(v.clone());
        }
        match v.kind() {
            minijinja::value::ValueKind::String => match v.as_str() {
                Some(s) => self.render_str(s, vars),
                None => Ok(v.clone()),
            },
            minijinja::value::ValueKind::Seq => {
                let mut out = Vec::new();
                if let Ok(iter) = v.try_iter() {
                    for item in iter {
                        out.push(self.render_value(&item, vars)?);
                    }
                }
                Ok(Value::from(out))
            }
            minijinja::value::ValueKind::Map => {
                let mut out = indexmap::IndexMap::new();
                if let Ok(iter) = v.try_iter() {
                    for key in iter {
                        let val = v.get_item(&key).unwrap_or_default();
                        let new_key = match key.as_str() {
                            Some(k) if Self::is_template(k) => self.render_str(k, vars)?,
                            _ => key,
                        };
                        out.insert(new_key, self.render_value(&val, vars)?);
                    }
                }
                Ok(Value::from(out))
            }
            _ => Ok(v.clone()),
        }
    }

    /// Always a string: the `template` module's file body (trailing newline kept,
    /// `trim_blocks`, no `lstrip_blocks`, as Ansible's template module).
    pub fn render_text(&self, source: &str, vars: &Value) -> Result<String, TemplateError> {
        if !Self::is_template(source) {
            return Ok(source.to_string());
        }
        // Jinja (keep_trailing_newline off) drops the source's final newline; Ansible then
        // gives back as many trailing newlines as the result lacks against the source (so a
        // result that ends with newlines of its own gets none added).
        let mut out = self.render_template(without_final_newline(source), vars, false)?;
        let want = trailing_newlines(source);
        let have = trailing_newlines(&out);
        for _ in have..want {
            out.push('\n');
        }
        Ok(out)
    }

    /// A template file's `#jinja2:` first line (Ansible's per-file overrides of the Jinja
    /// settings), removed as Ansible removes it: the settings the agent renders with anyway
    /// are accepted (`trim_blocks: True`, `lstrip_blocks: False`, `newline_sequence: '\n'`,
    /// `keep_trailing_newline: False`); any other is an error naming it, never ignored.
    pub fn file_body(source: &str) -> Result<&str, TemplateError> {
        let Some(rest) = source.strip_prefix("#jinja2:") else {
            return Ok(source);
        };
        let (line, body) = rest.split_once('\n').unwrap_or((rest, ""));
        for setting in line.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = setting.split_once(':').unwrap_or((setting, ""));
            let (key, value) = (key.trim(), value.trim().trim_matches(['\'', '"']));
            let same = match key {
                "trim_blocks" => value == "True",
                "lstrip_blocks" | "keep_trailing_newline" => value == "False",
                "newline_sequence" => value == "\\n",
                _ => false,
            };
            if !same {
                return Err(TemplateError(format!(
                    "the template's `#jinja2:` line sets `{key}: {value}`, which the agent does \
                     not implement (it renders with trim_blocks: True, lstrip_blocks: False)"
                )));
            }
        }
        Ok(body)
    }

    /// A template file's body, as [`Templar::render_text`], its `{% include %}`, `{% import %}`,
    /// `{% from %}` and `{% extends %}` loaded from `files` (see [`files`]).
    pub fn render_file(
        &self,
        source: &str,
        vars: &Value,
        files: &TemplateFiles,
    ) -> Result<String, TemplateError> {
        let source = Self::file_body(source)?;
        if !loads_templates(source) {
            return self.render_text(source, vars);
        }
        let loads = Arc::new(files::Loads::default());
        let body = without_final_newline(source);
        let pass = |behavior| -> Result<String, Error> {
            let mut env = make_env(behavior, Arc::new(AtomicUsize::new(0)));
            loads.install(&mut env, body);
            env.get_template(files::MAIN)?.render(vars.clone())
        };
        let mut out = loop {
            let result = pass(UndefinedBehavior::Strict);
            if loads.read_wanted(files) {
                if loads.count() > 1000 {
                    return Err(TemplateError("too many templates included".into()));
                }
                continue;
            }
            break match result {
                Ok(s) => s,
                Err(err) => {
                    let retried = if may_be_chained_lookup(&err, source) {
                        pass(UndefinedBehavior::Chainable).ok()
                    } else {
                        None
                    };
                    match retried {
                        Some(s) if !loads.read_wanted(files) => s,
                        _ => return Err(describe_file_error(&err, source, files)),
                    }
                }
            };
        };
        let want = trailing_newlines(source);
        for _ in trailing_newlines(&out)..want {
            out.push('\n');
        }
        Ok(out)
    }

    /// Evaluate a bare Jinja expression (no braces) from YAML, e.g. debug's `var:` (its string
    /// constants take backslashes literally, as Ansible's). An undefined result is an error.
    pub fn eval_expr(&self, expr: &str, vars: &Value) -> Result<Value, TemplateError> {
        self.eval_defined(expr, vars, true)
    }

    fn eval_defined(&self, expr: &str, vars: &Value, escape: bool) -> Result<Value, TemplateError> {
        let v = self.eval_raw(expr, vars, escape)?;
        if v.is_undefined() {
            return Err(undefined_error(expr));
        }
        Ok(pyrepr::without_tuples(v))
    }

    /// Evaluate a condition as Ansible does for `when`/`changed_when`/`failed_when`/`assert
    /// that`: a bare expression, a bool literal, or (rare) a `{{ }}` template. The result is
    /// the Jinja truthiness of the value; the strings "False"/"false"/"no"/"" count as false.
    pub fn eval_bool(&self, expr: &str, vars: &Value) -> Result<bool, TemplateError> {
        let t = expr.trim();
        match t {
            "" => return Ok(false),
            "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
                return Ok(true)
            }
            "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
                return Ok(false)
            }
            _ => {}
        }
        // A conditional keeps Jinja's escapes in its strings (Ansible: escape_backslashes off).
        let v = if Self::is_template(t) {
            self.render_str(t, vars)?
        } else {
            self.eval_defined(t, vars, false)?
        };
        Ok(value_truthy(&v))
    }
}

/// Jinja truthiness, with Ansible's string conversion ("False", "no", "" are false).
fn value_truthy(v: &Value) -> bool {
    match v.as_str() {
        Some(s) => !string_is_false(s),
        None => v.is_true(),
    }
}

/// Whether a value contains a string with template markers (so `render_value` can return
/// untouched values without rebuilding them).
fn needs_render(v: &Value) -> bool {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::String => v.as_str().is_some_and(Templar::is_template),
        ValueKind::Seq => v
            .try_iter()
            .map(|mut it| it.any(|x| needs_render(&x)))
            .unwrap_or(false),
        ValueKind::Map => v
            .try_iter()
            .map(|mut it| {
                it.any(|k| {
                    k.as_str().is_some_and(Templar::is_template)
                        || v.get_item(&k).map(|x| needs_render(&x)).unwrap_or(false)
                })
            })
            .unwrap_or(false),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_filters;

/// The source as Jinja reads it with keep_trailing_newline off: one final newline dropped.
fn without_final_newline(s: &str) -> &str {
    s.strip_suffix("\r\n")
        .or_else(|| s.strip_suffix('\n'))
        .or_else(|| s.strip_suffix('\r'))
        .unwrap_or(s)
}

fn trailing_newlines(s: &str) -> usize {
    s.bytes().rev().take_while(|b| *b == b'\n').count()
}

#[cfg(test)]
mod native_tests {
    use super::*;

    #[test]
    fn a_trailing_newline_keeps_native_types_as_ansible() {
        let t = Templar::new();
        let vars = crate::vars::map_value([("n", Value::from(1)), ("s", Value::from("abc"))]);
        assert_eq!(t.render_str("{{ n }}\n", &vars).unwrap(), Value::from(1));
        assert_eq!(
            t.render_str("{{ s }}\n", &vars).unwrap().as_str(),
            Some("abc\n")
        );
        assert_eq!(
            t.render_str("a{{ s }}\n\n", &vars).unwrap().as_str(),
            Some("aabc\n\n")
        );
        assert_eq!(
            t.render_str("{{ n }} ", &vars).unwrap().as_str(),
            Some("1 ")
        );
    }

    #[test]
    fn forget_compiled_then_render_again() {
        let vars = crate::vars::map_value([("n", Value::from(1)), ("s", Value::from("a-b"))]);
        let render = |t: &Templar| {
            let text = t.render_str("x{{ n }}", &vars).unwrap();
            let native = t.render_str("{{ n + 1 }}", &vars).unwrap();
            let re = t
                .render_str("{{ s | regex_replace('-', '+') }}", &vars)
                .unwrap();
            (text.to_string(), native, re.to_string())
        };
        let want = ("x1".to_string(), Value::from(2), "a+b".to_string());
        let before = Templar::new();
        assert_eq!(render(&before), want);
        forget_compiled();
        // A templar from before keeps its templates; a new one compiles afresh.
        assert_eq!(render(&before), want);
        let after = Templar::new();
        assert!(!Arc::ptr_eq(&before.store, &after.store));
        assert_eq!(render(&after), want);
    }

    #[test]
    fn template_text_keeps_trailing_newlines_of_the_source() {
        let t = Templar::new();
        let vars = Value::from(());
        let src = "{% if true %}\nx\n{%- endif %}\n\n";
        let out = t.render_text(src, &vars).unwrap();
        assert!(out.ends_with("\n\n"), "{out:?}");
    }
}
