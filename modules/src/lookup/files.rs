//! Lookups of files in the repository: `file`, `template`, `fileglob`, `first_found`.
//!
//! Files are read through the task's [`Source`](crate::source::Source) only: a name that leads
//! out of the repository (an absolute path elsewhere on the host, `..` climbing above the top)
//! is an error, never a read of the host's files. Paths found are returned as Ansible returns
//! them, absolute: `<playbook_dir>/<path in the repository>` (which `copy`/`template` `src`
//! map back to the repository).

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::{Object, ValueKind};
use minijinja::{Error, Value};

use super::{err, map_entries, term_str, Call, Frame};
use crate::source::{RepoPath, SourceKind};

/// The repository path an absolute `name` denotes, when it is inside the playbook's directory.
fn inside_repo(fr: &Frame, name: &str) -> Result<RepoPath, Error> {
    let prefix = fr.playbook_dir.trim_end_matches('/');
    let rest = if name == prefix {
        Some("")
    } else {
        name.strip_prefix(prefix).and_then(|r| r.strip_prefix('/'))
    };
    match rest {
        Some(r) => RepoPath::new(r).map_err(|e| err(e.to_string())),
        None => Err(err(format!(
            "`{name}` is outside the repository: lookups read only the repository's files"
        ))),
    }
}

/// The repository path `p` as the host sees it (`playbook_dir`), as Ansible returns paths.
pub(super) fn host_path(fr: &Frame, p: &RepoPath) -> String {
    if p.as_str().is_empty() {
        fr.playbook_dir.to_string()
    } else {
        format!("{}/{}", fr.playbook_dir.trim_end_matches('/'), p.as_str())
    }
}

/// Where Ansible's `find_file_in_search_path` looks for `needle`, in order: for each directory
/// of the task's search path `<dir>/<subdir>/<needle>` (unless `needle` already starts with
/// `<subdir>/`) then `<dir>/<needle>`.
fn candidates(fr: &Frame, subdir: Option<&str>, needle: &str) -> Result<Vec<RepoPath>, Error> {
    if needle.starts_with('/') {
        return Ok(vec![inside_repo(fr, needle)?]);
    }
    if needle.starts_with('~') {
        return Err(err(format!(
            "`{needle}` is outside the repository: lookups read only the repository's files"
        )));
    }
    let escape = |e: crate::source::EscapeError| {
        err(format!("{e}: lookups read only the repository's files"))
    };
    let mut out: Vec<RepoPath> = Vec::new();
    for dir in &fr.search {
        if let Some(sub) = subdir {
            if needle.split('/').next() != Some(sub) {
                out.push(dir.join(sub).and_then(|d| d.join(needle)).map_err(escape)?);
            }
        }
        out.push(dir.join(needle).map_err(escape)?);
    }
    out.dedup();
    Ok(out)
}

/// The first candidate that exists.
fn find(
    fr: &Frame,
    subdir: Option<&str>,
    needle: &str,
) -> Result<Option<(RepoPath, SourceKind)>, Error> {
    for c in candidates(fr, subdir, needle)? {
        if let Some(kind) = fr.source.kind(&c).map_err(|e| err(e.to_string()))? {
            return Ok(Some((c, kind)));
        }
    }
    Ok(None)
}

fn read_text(fr: &Frame, p: &RepoPath) -> Result<String, Error> {
    let bytes = fr
        .source
        .read(p)
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err(format!("could not read `{p}`")))?;
    String::from_utf8(bytes).map_err(|_| err(format!("`{p}` is not UTF-8 text")))
}

fn not_found(fr: &Frame, subdir: Option<&str>, needle: &str) -> Error {
    let searched = candidates(fr, subdir, needle)
        .map(|c| {
            c.iter()
                .map(|p| format!("\t{}", host_path(fr, p)))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    err(format!(
        "Unable to access the file '{needle}': file not found. Searched in:\n{searched}"
    ))
}

/// `file`: each term's content; `rstrip` (default true), `lstrip` (default false).
pub(super) fn file(terms: Vec<Value>, call: &Call, fr: &Frame) -> Result<Vec<Value>, Error> {
    let lstrip = call.flag("lstrip", false)?;
    let rstrip = call.flag("rstrip", true)?;
    let mut out = Vec::with_capacity(terms.len());
    for t in &terms {
        let needle = term_str(t, "file")?;
        let Some((path, _)) = find(fr, Some("files"), &needle)? else {
            return Err(not_found(fr, Some("files"), &needle));
        };
        let mut text = read_text(fr, &path)?;
        if lstrip {
            text = text.trim_start().to_string();
        }
        if rstrip {
            text = text.trim_end().to_string();
        }
        out.push(Value::from(text));
    }
    Ok(out)
}

/// The variables a looked-up template sees: the names the render state knows (the loop item,
/// template locals), then the task's variables.
#[derive(Debug)]
struct TemplateVars {
    overlay: IndexMap<String, Value>,
    base: Value,
}

impl Object for TemplateVars {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        if let Some(v) = self.overlay.get(name) {
            return Some(v.clone());
        }
        self.base.get_attr(name).ok().filter(|v| !v.is_undefined())
    }
}

/// Jinja options of the `template` lookup the agent does not change: only their defaults.
const FIXED_OPTIONS: &[(&str, &str)] = &[
    ("variable_start_string", "{{"),
    ("variable_end_string", "}}"),
    ("comment_start_string", "{#"),
    ("comment_end_string", "#}"),
];

/// `template`: each term rendered as a template file with the task's variables.
pub(super) fn template(terms: Vec<Value>, call: &Call, fr: &Frame) -> Result<Vec<Value>, Error> {
    for (key, default) in FIXED_OPTIONS {
        if let Some(v) = call.kwargs.get::<Option<String>>(key)? {
            if v != *default {
                return Err(err(format!(
                    "the template lookup's `{key}` is not supported (only the default {default:?})"
                )));
            }
        }
    }
    if !call.flag("trim_blocks", true)? {
        return Err(err(
            "the template lookup's `trim_blocks: false` is not supported",
        ));
    }
    if call.flag("jinja2_native", false)? {
        return Err(err(
            "the template lookup's `jinja2_native: true` is not supported",
        ));
    }
    // Accepted and without effect in ansible-core 2.19 too.
    let _ = call.kwargs.get::<Option<Value>>("convert_data")?;
    let extra = call.kwargs.get::<Option<Value>>("template_vars")?;
    let mut out = Vec::with_capacity(terms.len());
    for t in &terms {
        let needle = term_str(t, "template")?;
        let Some((path, _)) = find(fr, Some("templates"), &needle)? else {
            return Err(err(format!(
                "the template file {needle} could not be found for the lookup"
            )));
        };
        let text = read_text(fr, &path)?;
        let mut overlay = IndexMap::new();
        if let Some(state) = call.state {
            let tmpl = state
                .env()
                .template_from_str(&text)
                .map_err(|e| err(format!("{}: {e}", host_path(fr, &path))))?;
            for name in tmpl.undeclared_variables(false) {
                if let Some(v) = state.lookup(&name).filter(|v| !v.is_undefined()) {
                    overlay.insert(name, v);
                }
            }
        }
        if let Some(extra) = &extra {
            let entries = map_entries(extra)
                .ok_or_else(|| err("the template lookup's `template_vars` must be a mapping"))?;
            for (k, v) in entries {
                overlay.insert(k.to_string(), v);
            }
        }
        let vars = Value::from_object(TemplateVars {
            overlay,
            base: fr.vars.clone(),
        });
        let rendered = crate::template::Templar::file_body(&text)
            .and_then(|body| fr.templar.render_text(body, &vars))
            .map_err(|e| err(format!("{}: {e}", host_path(fr, &path))))?;
        out.push(Value::from(rendered));
    }
    Ok(out)
}

/// A shell-style pattern of one path component as a regular expression (Python's `fnmatch`:
/// `*`, `?`, `[set]`, `[!set]`). `glob`'s rule that a leading dot is matched only by a pattern
/// starting with one is applied by the caller.
pub(super) fn glob_regex(pat: &str) -> Result<regex::Regex, Error> {
    let chars: Vec<char> = pat.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                // A `]` right after `[` or `[!` belongs to the set.
                let mut j = i + 1;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                match chars[j.min(chars.len())..].iter().position(|c| *c == ']') {
                    Some(off) => {
                        let end = j + off;
                        let body: String = chars[i + 1..end].iter().collect();
                        let body = match body.strip_prefix('!') {
                            Some(rest) => format!("^{rest}"),
                            None => body,
                        };
                        re.push('[');
                        re.push_str(&body.replace('\\', r"\\").replace('[', r"\["));
                        re.push(']');
                        i = end;
                    }
                    None => re.push_str(r"\["),
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| err(format!("bad glob pattern {pat:?}: {e}")))
}

fn glob_in(fr: &Frame, dir: &RepoPath, pat: &str) -> Result<Vec<Value>, Error> {
    if fr.source.kind(dir).map_err(|e| err(e.to_string()))? != Some(SourceKind::Dir) {
        return Ok(Vec::new());
    }
    let re = glob_regex(pat)?;
    let hidden_ok = pat.starts_with('.');
    let mut out = Vec::new();
    for e in fr.source.list(dir).map_err(|e| err(e.to_string()))? {
        if e.kind != SourceKind::File || (!hidden_ok && e.name.starts_with('.')) {
            continue;
        }
        if re.is_match(&e.name) {
            let p = dir.join(&e.name).map_err(|e| err(e.to_string()))?;
            out.push(Value::from(host_path(fr, &p)));
        }
    }
    Ok(out)
}

/// `fileglob`: the files matching each term's name pattern, in the first directory where any
/// matches (`files/` then the directory itself, along the task's search path).
pub(super) fn fileglob(terms: Vec<Value>, fr: &Frame) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for t in &terms {
        let term = term_str(t, "fileglob")?;
        let (dir, pat) = match term.rsplit_once('/') {
            Some((d, p)) => (Some(if d.is_empty() { "/" } else { d }), p),
            None => (None, term.as_str()),
        };
        let dirs: Vec<RepoPath> = match dir {
            Some(d) => match find(fr, Some("files"), d)? {
                Some((p, _)) => vec![p],
                None => Vec::new(),
            },
            None => {
                let mut v = Vec::new();
                for p in &fr.search_path {
                    v.push(p.join("files").map_err(|e| err(e.to_string()))?);
                    v.push(p.clone());
                }
                v
            }
        };
        for d in dirs {
            let found = glob_in(fr, &d, pat)?;
            if !found.is_empty() {
                out.extend(found);
                break;
            }
        }
    }
    Ok(out)
}

/// Options of `first_found`, from the keyword arguments or from a mapping term.
#[derive(Default, Clone)]
struct FirstFoundOptions {
    files: Vec<Value>,
    paths: Vec<Value>,
    skip: bool,
}

fn as_list(v: Option<Value>) -> Vec<Value> {
    match v {
        None => Vec::new(),
        Some(v) if v.is_none() => Vec::new(),
        Some(v) if v.kind() == ValueKind::Seq => {
            v.try_iter().map(|i| i.collect()).unwrap_or_default()
        }
        Some(v) => vec![v],
    }
}

/// Strings split on any of `seps` (Ansible's deprecated automatic splitting), lists recursively.
fn split_on(vals: &[Value], seps: &[char], out: &mut Vec<String>) -> Result<(), Error> {
    for v in vals {
        if v.kind() == ValueKind::Seq {
            let inner: Vec<Value> = v.try_iter().map(|i| i.collect()).unwrap_or_default();
            split_on(&inner, seps, out)?;
        } else {
            let s = term_str(v, "first_found")?;
            out.extend(s.split(seps).map(str::to_string));
        }
    }
    Ok(())
}

fn options_from(entries: Vec<(Value, Value)>) -> Result<FirstFoundOptions, Error> {
    let mut o = FirstFoundOptions::default();
    for (k, v) in entries {
        match k.as_str() {
            Some("files") => o.files = as_list(Some(v)),
            Some("paths") => o.paths = as_list(Some(v)),
            Some("skip") => {
                o.skip = crate::args::to_bool(&v)
                    .ok_or_else(|| err(format!("first_found `skip` must be a boolean, got {v}")))?
            }
            _ => {
                return Err(err(format!(
                    "first_found: unknown option `{k}` (supported: files, paths, skip)"
                )))
            }
        }
    }
    Ok(o)
}

/// The names to try, in order (ansible-core's `_process_terms`).
fn process_terms(
    terms: &[Value],
    opts: &mut FirstFoundOptions,
    out: &mut Vec<String>,
) -> Result<(), Error> {
    for term in terms {
        let files: Vec<String> = if let Some(entries) = map_entries(term) {
            *opts = options_from(entries)?;
            let mut f = Vec::new();
            split_on(&opts.files, &[',', ';'], &mut f)?;
            f
        } else if term.kind() == ValueKind::Seq {
            let inner: Vec<Value> = term.try_iter().map(|i| i.collect()).unwrap_or_default();
            process_terms(&inner, opts, out)?;
            continue;
        } else if term.is_none() || term.is_undefined() {
            return Err(err("first_found: a term is undefined"));
        } else {
            let s = term_str(term, "first_found")?;
            // Ansible splits a plain string on ',;' too.
            s.split([',', ';']).map(str::to_string).collect()
        };
        let mut paths = Vec::new();
        split_on(&opts.paths, &[',', ':', ';'], &mut paths)?;
        if paths.is_empty() {
            out.extend(files);
        } else {
            for p in &paths {
                for f in &files {
                    out.push(if f.starts_with('/') {
                        f.clone()
                    } else {
                        format!("{}/{}", p.trim_end_matches('/'), f)
                    });
                }
            }
        }
    }
    Ok(())
}

/// `first_found`: the first file that exists, as a one-element list (empty with `skip`).
pub(super) fn first_found(terms: Vec<Value>, call: &Call, fr: &Frame) -> Result<Vec<Value>, Error> {
    let mut opts = FirstFoundOptions {
        files: as_list(call.kwargs.get::<Option<Value>>("files")?),
        paths: as_list(call.kwargs.get::<Option<Value>>("paths")?),
        skip: call.flag("skip", false)?,
    };
    // `with_first_found` looks in the directory the task's action reads from (ansible-core
    // picks it from the action's name); `lookup()` in none.
    let subdir = if call.with {
        Some(
            ["template", "var", "file"]
                .into_iter()
                .find(|s| fr.action.contains(s))
                .map(|s| match s {
                    "template" => "templates",
                    "var" => "vars",
                    _ => "files",
                })
                .unwrap_or("files"),
        )
    } else {
        None
    };
    let terms = if terms.is_empty() {
        opts.files.clone()
    } else {
        terms
    };
    let mut names = Vec::new();
    process_terms(&terms, &mut opts, &mut names)?;
    for name in &names {
        if let Some((path, _)) = find(fr, subdir, name)? {
            return Ok(vec![Value::from(host_path(fr, &path))]);
        }
    }
    if opts.skip {
        return Ok(Vec::new());
    }
    Err(err(format!(
        "No file was found when using first_found (tried: {})",
        names.join(", ")
    )))
}

#[cfg(test)]
pub(super) fn glob_matches(pat: &str, name: &str) -> bool {
    glob_regex(pat).map(|r| r.is_match(name)).unwrap_or(false)
}
