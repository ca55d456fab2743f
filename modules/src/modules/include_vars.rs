//! `include_vars`: variables from YAML/JSON files of the repository, at run time, as
//! ansible-core's action plugin does: one `file` (free-form too), found in the role's `vars/`,
//! beside the task file, then in the playbook's directory; or every file of a `dir` (walked in
//! sorted order, `depth`, `files_matching`, `ignore_files`, `extensions`), optionally under one
//! `name`. The engine keeps the variables at include_vars precedence (below set_fact).
//! Only files inside the repository are read.

use indexmap::IndexMap;
use minijinja::value::ValueKind;
use minijinja::Value;

use crate::args::{python_str, ArgDef, ArgSpec, ArgType, Args};
use crate::error::LoadError;
use crate::resource::{
    Check, LoadContext, Module, ModuleContext, ModuleError, Outcome, Resource, TaskArgs,
};
use crate::source::{RepoPath, SourceKind};

pub struct IncludeVarsModule;

static SPEC: ArgSpec = ArgSpec {
    module: "include_vars",
    args: &[
        ArgDef::new("file", ArgType::Str),
        ArgDef::new("dir", ArgType::Str),
        ArgDef::new("depth", ArgType::Int),
        ArgDef::new("files_matching", ArgType::Str),
        ArgDef::new("ignore_files", ArgType::Raw),
        ArgDef::new("extensions", ArgType::Raw),
        ArgDef::new("ignore_unknown_extensions", ArgType::Bool),
        ArgDef::new("name", ArgType::Str),
        ArgDef::new("hash_behaviour", ArgType::Str),
    ],
    free_form: true,
    mutually_exclusive: &[],
    required_one_of: &[],
};

const DIR_ARGS: &[&str] = &[
    "dir",
    "depth",
    "files_matching",
    "ignore_files",
    "extensions",
    "ignore_unknown_extensions",
];
const FILE_ARGS: &[&str] = &["file", "_raw_params"];
const DEFAULT_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Why variables could not be included (the task fails with this message).
#[derive(Debug, thiserror::Error)]
enum IncludeVarsError {
    #[error("You are mixing file only and dir only arguments, these are incompatible")]
    Mixed,
    #[error("`include_vars` needs a file or a `dir`")]
    NothingGiven,
    #[error("Could not find or access '{name}' (searched {searched})")]
    NotFound { name: String, searched: String },
    #[error("`{0}` is outside the repository: include_vars reads only the repository's files")]
    Outside(String),
    #[error("{0} directory does not exist")]
    NoDir(String),
    #[error("{0} is not a directory")]
    NotADir(String),
    #[error("{file} does not have a valid extension: {valid}")]
    Extension { file: String, valid: String },
    #[error("{0} must be stored as a dictionary/hash")]
    NotAMapping(String),
    #[error("{0}: vault-encrypted files are not supported")]
    Vault(String),
    #[error("Invalid regular expression: {0}")]
    Regex(String),
    #[error("Invalid type for \"extensions\" option, it must be a list")]
    ExtensionsType,
    #[error("{0}")]
    Read(String),
}

impl From<IncludeVarsError> for ModuleError {
    fn from(e: IncludeVarsError) -> Self {
        ModuleError::new(e.to_string())
    }
}

impl Module for IncludeVarsModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn validate(&self, args: &TaskArgs, ctx: &LoadContext) -> Result<(), LoadError> {
        let has = |set: &[&str]| args.pairs.iter().any(|(k, _)| set.contains(&k.as_str()));
        if has(DIR_ARGS) && has(FILE_ARGS) {
            return Err(LoadError::at(
                ctx.task.clone(),
                IncludeVarsError::Mixed.to_string(),
            ));
        }
        Ok(())
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let mut files = Vec::new();
        let included = include(args, ctx, &mut files);
        let mut out = Outcome::default();
        match included {
            Ok(mut vars) => {
                if let Some(name) = args.str("name") {
                    vars = IndexMap::from_iter([(name, crate::vars::map_value(vars))]);
                }
                if args.str("hash_behaviour").as_deref() == Some("merge") {
                    vars = merge_with_existing(vars, ctx.vars);
                }
                out = out.with("ansible_facts", crate::vars::map_value(vars));
            }
            Err(e) => {
                let msg = e.to_string();
                out = out.with("message", msg.clone());
                out.failed = Some(msg);
            }
        }
        let root = ctx.source.describe();
        let shown: Vec<Value> = files
            .iter()
            .map(|p| Value::from(format!("{root}/{p}")))
            .collect();
        out = out.with("ansible_included_var_files", Value::from(shown));
        Ok(Box::new(Included(out)))
    }
}

/// The variables of the file or directory the arguments name; `files` gets each file read.
fn include(
    args: &Args,
    ctx: &ModuleContext,
    files: &mut Vec<RepoPath>,
) -> Result<IndexMap<String, Value>, IncludeVarsError> {
    let given = |set: &[&str]| args.iter().any(|(k, _)| set.contains(&k));
    if given(DIR_ARGS) && given(FILE_ARGS) {
        return Err(IncludeVarsError::Mixed);
    }
    if let Some(dir) = args.str("dir") {
        return include_dir(&dir, args, ctx, files);
    }
    let name = match args.str("file") {
        Some(f) => f,
        None => args
            .raw_params()
            .map(|r| r.trim_end_matches('\n').to_string())
            .ok_or(IncludeVarsError::NothingGiven)?,
    };
    let path = find_file(&name, ctx)?;
    let vars = load_file(&path, ctx, None)?;
    files.push(path);
    Ok(vars)
}

/// A path given absolute: inside the repository (as `{{ role_path }}/vars/x.yml` or a
/// `first_found` result gives it), or refused.
fn in_repository(path: &str, ctx: &ModuleContext) -> Result<RepoPath, IncludeVarsError> {
    let root = ctx.source.describe();
    let rel = path
        .strip_prefix(root.as_str())
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| IncludeVarsError::Outside(path.to_string()))?;
    RepoPath::new(rel).map_err(|_| IncludeVarsError::Outside(path.to_string()))
}

/// Ansible's search for a vars file: for each directory (the role's, the task file's, the
/// playbook's), `<dir>/vars/<name>` then `<dir>/<name>`.
fn find_file(name: &str, ctx: &ModuleContext) -> Result<RepoPath, IncludeVarsError> {
    if name.starts_with('/') || name.starts_with('~') {
        let path = in_repository(name, ctx)?;
        return match ctx.source.kind(&path) {
            Ok(Some(_)) => Ok(path),
            _ => Err(IncludeVarsError::NotFound {
                name: name.to_string(),
                searched: name.to_string(),
            }),
        };
    }
    match crate::source::find_in(ctx.source, ctx.search, "vars", name) {
        Ok(Some((path, _))) => Ok(path),
        Ok(None) => Err(IncludeVarsError::NotFound {
            name: name.to_string(),
            searched: ctx
                .search
                .iter()
                .map(|d| format!("{}/vars, {}", show(d), show(d)))
                .collect::<Vec<_>>()
                .join(", "),
        }),
        Err(crate::source::SourceError::Escape(_)) => {
            Err(IncludeVarsError::Outside(name.to_string()))
        }
        Err(e) => Err(IncludeVarsError::Read(e.to_string())),
    }
}

fn show(p: &RepoPath) -> String {
    if p.as_str().is_empty() {
        ".".into()
    } else {
        p.to_string()
    }
}

/// One vars file: a mapping (an empty file is none). `valid` checks the extension first.
fn load_file(
    path: &RepoPath,
    ctx: &ModuleContext,
    valid: Option<&[String]>,
) -> Result<IndexMap<String, Value>, IncludeVarsError> {
    let shown = format!("{}/{}", ctx.source.describe(), path);
    if let Some(valid) = valid {
        let name = path.file_name();
        if !valid.iter().any(|v| Some(v.as_str()) == extension(name)) {
            return Err(IncludeVarsError::Extension {
                file: shown,
                valid: valid.join(", "),
            });
        }
    }
    let bytes = ctx
        .source
        .read(path)
        .map_err(|e| IncludeVarsError::Read(e.to_string()))?
        .ok_or_else(|| IncludeVarsError::Read(format!("{shown}: no such file")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| IncludeVarsError::Read(format!("{shown}: not UTF-8 text")))?;
    if text.trim_start().starts_with("$ANSIBLE_VAULT") {
        return Err(IncludeVarsError::Vault(shown));
    }
    let file: std::sync::Arc<str> = std::sync::Arc::from(path.as_str());
    let node =
        crate::yaml::parse(&file, &text).map_err(|e| IncludeVarsError::Read(e.to_string()))?;
    let value = node.to_value();
    if value.is_none() || value.is_undefined() {
        return Ok(IndexMap::new());
    }
    if value.kind() != ValueKind::Map {
        return Err(IncludeVarsError::NotAMapping(shown));
    }
    let mut out = IndexMap::new();
    for k in value.try_iter().into_iter().flatten() {
        if let Ok(v) = value.get_item(&k) {
            out.insert(python_str(&k), v);
        }
    }
    Ok(out)
}

/// Python's `os.path.splitext(name)[1][1:]`: the text after the last dot, unless the dot
/// only starts the name.
fn extension(name: &str) -> Option<&str> {
    let trimmed = name.trim_start_matches('.');
    let dot = trimmed.rfind('.')?;
    Some(&trimmed[dot + 1..])
}

/// `dir:` resolved as Ansible's `_set_root_dir`: in a role, under its `vars/` (a `dir`
/// starting with `vars` is taken from the role's directory when it exists there); else beside
/// the task file.
fn resolve_dir(dir: &str, ctx: &ModuleContext) -> Result<RepoPath, IncludeVarsError> {
    if dir.starts_with('/') {
        return in_repository(dir, ctx);
    }
    let outside = |_| IncludeVarsError::Outside(dir.to_string());
    match ctx.role_dir {
        Some(role) if dir.split('/').next() == Some("vars") => {
            let p = role.join(dir).map_err(outside)?;
            if let Ok(Some(_)) = ctx.source.kind(&p) {
                Ok(p)
            } else {
                // Ansible leaves it relative to the working directory: the playbook's.
                ctx.search
                    .last()
                    .cloned()
                    .unwrap_or_default()
                    .join(dir)
                    .map_err(outside)
            }
        }
        Some(role) => role.join(&format!("vars/{dir}")).map_err(outside),
        None => ctx.task_dir.join(dir).map_err(outside),
    }
}

fn include_dir(
    dir: &str,
    args: &Args,
    ctx: &ModuleContext,
    files: &mut Vec<RepoPath>,
) -> Result<IndexMap<String, Value>, IncludeVarsError> {
    let depth = args.int("depth").unwrap_or(0);
    let matcher = match args.str("files_matching").filter(|s| !s.is_empty()) {
        Some(re) => Some(regex::Regex::new(&re).map_err(|_| IncludeVarsError::Regex(re))?),
        None => None,
    };
    let ignore = ignore_patterns(args.get("ignore_files"))?;
    let valid = extensions(args.get("extensions"))?;
    let ignore_unknown = args.bool_or("ignore_unknown_extensions", false);
    let root = resolve_dir(dir, ctx)?;
    let shown = format!("{}/{}", ctx.source.describe(), root);
    match ctx.source.kind(&root) {
        Ok(Some(SourceKind::Dir)) => {}
        Ok(Some(_)) => return Err(IncludeVarsError::NotADir(shown)),
        Ok(None) => return Err(IncludeVarsError::NoDir(shown)),
        Err(e) => return Err(IncludeVarsError::Read(e.to_string())),
    }
    let mut dirs = Vec::new();
    walk(ctx, &root, 1, &mut dirs)?;
    // os.walk sorted by the directory's path, as Ansible sorts it.
    dirs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    let mut results = IndexMap::new();
    for (d, level, mut names) in dirs {
        if depth != 0 && level > depth {
            continue;
        }
        names.sort();
        for name in names {
            if matcher.as_ref().is_some_and(|m| !m.is_match(&name)) {
                continue;
            }
            if ignore.iter().any(|re| re.is_match(&name)) {
                continue;
            }
            if ignore_unknown && !valid.iter().any(|v| Some(v.as_str()) == extension(&name)) {
                continue;
            }
            let path = d
                .join(&name)
                .map_err(|_| IncludeVarsError::Outside(name.clone()))?;
            let vars = load_file(&path, ctx, Some(&valid))?;
            files.push(path);
            results.extend(vars);
        }
    }
    Ok(results)
}

/// Every directory under `dir` (itself included) with its depth and its files.
fn walk(
    ctx: &ModuleContext,
    dir: &RepoPath,
    level: i64,
    out: &mut Vec<(RepoPath, i64, Vec<String>)>,
) -> Result<(), IncludeVarsError> {
    let entries = ctx
        .source
        .list(dir)
        .map_err(|e| IncludeVarsError::Read(e.to_string()))?;
    let mut names = Vec::new();
    let mut subdirs = Vec::new();
    for e in entries {
        match e.kind {
            SourceKind::Dir => subdirs.push(e.name),
            _ => names.push(e.name),
        }
    }
    out.push((dir.clone(), level, names));
    for s in subdirs {
        let sub = dir
            .join(&s)
            .map_err(|_| IncludeVarsError::Outside(s.clone()))?;
        walk(ctx, &sub, level + 1, out)?;
    }
    Ok(())
}

/// `ignore_files`: regular expressions matched at the end of a file's name (a string is
/// split on white space).
fn ignore_patterns(v: Option<&Value>) -> Result<Vec<regex::Regex>, IncludeVarsError> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let pats: Vec<String> = match v.as_str() {
        Some(s) => s.split_whitespace().map(str::to_string).collect(),
        None => v
            .try_iter()
            .map(|it| it.map(|x| python_str(&x)).collect())
            .unwrap_or_default(),
    };
    pats.into_iter()
        .map(|p| regex::Regex::new(&format!("(?:{p})$")).map_err(|_| IncludeVarsError::Regex(p)))
        .collect()
}

/// `extensions`: a list (a string is taken character by character, as Ansible's `list()`).
fn extensions(v: Option<&Value>) -> Result<Vec<String>, IncludeVarsError> {
    let Some(v) = v else {
        return Ok(DEFAULT_EXTENSIONS.iter().map(|s| s.to_string()).collect());
    };
    if let Some(s) = v.as_str() {
        return Ok(s.chars().map(|c| c.to_string()).collect());
    }
    if v.kind() != ValueKind::Seq {
        return Err(IncludeVarsError::ExtensionsType);
    }
    Ok(v.try_iter()
        .map(|it| it.map(|x| python_str(&x)).collect())
        .unwrap_or_default())
}

/// `hash_behaviour: merge`: each included mapping merged recursively into the variable's
/// current value.
fn merge_with_existing(vars: IndexMap<String, Value>, current: &Value) -> IndexMap<String, Value> {
    vars.into_iter()
        .map(|(k, v)| {
            let old = current.get_attr(&k).unwrap_or_default();
            let merged = if old.is_undefined() {
                v
            } else {
                merge(&old, &v)
            };
            (k, merged)
        })
        .collect()
}

fn merge(a: &Value, b: &Value) -> Value {
    if a.kind() != ValueKind::Map || b.kind() != ValueKind::Map {
        return b.clone();
    }
    let mut out: IndexMap<Value, Value> = IndexMap::new();
    for k in a.try_iter().into_iter().flatten() {
        if let Ok(v) = a.get_item(&k) {
            out.insert(k, v);
        }
    }
    for k in b.try_iter().into_iter().flatten() {
        if let Ok(v) = b.get_item(&k) {
            let merged = match out.get(&k) {
                Some(old) => merge(old, &v),
                None => v,
            };
            out.insert(k, merged);
        }
    }
    Value::from(out)
}

/// include_vars changes nothing on the host: its whole effect is the outcome.
struct Included(Outcome);

impl Resource for Included {
    fn check(&self) -> Result<Check, ModuleError> {
        Ok(Check::new(Vec::new(), self.0.clone()))
    }
    fn apply(&self, _check: Check) -> Result<Outcome, ModuleError> {
        Ok(self.0.clone())
    }
}
