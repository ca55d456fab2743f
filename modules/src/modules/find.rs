//! `find` (ansible.builtin): files under `paths` chosen by name (`patterns`, `excludes`: shell
//! globs or, with `use_regex`, Python-style regexes anchored at the start), type, age, size,
//! content and mode, walked as Python's `os.walk` walks (top-down, `recurse`, `depth`,
//! `follow`, `hidden`). Returns ansible-core 2.19's `files` (each `find`'s `statinfo` dict),
//! `matched`, `examined`, `msg` and `skipped_paths`. Changes nothing; runs in check mode.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use minijinja::Value;
use regex::Regex;

use super::query::{expand_path, failed, query};
use super::stat::{digest_file, group_name, mode_fields, user_name, ALGORITHMS};
use crate::args::{python_str, ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct FindModule;

static SPEC: ArgSpec = ArgSpec {
    module: "find",
    args: &[
        ArgDef::new("paths", ArgType::List)
            .aliases(&["name", "path"])
            .required(),
        ArgDef::new("patterns", ArgType::List).aliases(&["pattern"]),
        ArgDef::new("excludes", ArgType::List).aliases(&["exclude"]),
        ArgDef::new("contains", ArgType::Str),
        ArgDef::new("read_whole_file", ArgType::Bool),
        ArgDef::new("file_type", ArgType::Str).choices(&["any", "directory", "file", "link"]),
        ArgDef::new("age", ArgType::Str),
        ArgDef::new("age_stamp", ArgType::Str).choices(&["atime", "ctime", "mtime"]),
        ArgDef::new("size", ArgType::Str),
        ArgDef::new("recurse", ArgType::Bool),
        ArgDef::new("hidden", ArgType::Bool),
        ArgDef::new("follow", ArgType::Bool),
        ArgDef::new("get_checksum", ArgType::Bool),
        ArgDef::new("checksum_algorithm", ArgType::Str)
            .aliases(&["checksum", "checksum_algo"])
            .choices(ALGORITHMS),
        ArgDef::new("use_regex", ArgType::Bool),
        ArgDef::new("depth", ArgType::Int),
        ArgDef::new("mode", ArgType::Raw),
        ArgDef::new("exact_mode", ArgType::Bool),
        ArgDef::new("encoding", ArgType::Str),
        ArgDef::new("limit", ArgType::Int),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// How entry names are matched.
#[derive(Debug, Clone)]
enum Patterns {
    Glob(Vec<String>),
    Regex(Vec<Regex>),
}

impl Patterns {
    fn matches(&self, name: &str) -> bool {
        match self {
            Patterns::Glob(g) => g
                .iter()
                .any(|p| super::command::fnmatch(p.as_bytes(), name.as_bytes())),
            Patterns::Regex(r) => r.iter().any(|re| re.is_match(name)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileType {
    Any,
    Directory,
    File,
    Link,
}

/// How `contains` reads a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Latin1,
}

#[derive(Debug, Clone)]
struct FindRequest {
    paths: Vec<String>,
    patterns: Patterns,
    excludes: Option<Patterns>,
    contains: Option<Regex>,
    read_whole_file: bool,
    encoding: Encoding,
    /// `encoding` as given, for Ansible's decoding error.
    encoding_given: Option<String>,
    file_type: FileType,
    /// Seconds; negative: younger than.
    age: Option<i64>,
    age_stamp: String,
    /// Bytes; negative: smaller than.
    size: Option<i64>,
    recurse: bool,
    hidden: bool,
    follow: bool,
    checksum: Option<String>,
    depth: Option<i64>,
    mode: Option<(u32, bool)>,
    limit: Option<i64>,
}

/// A Python `re` pattern for Rust's regex engine, anchored as `re.match` is.
fn py_match_regex(pattern: &str, what: &str) -> Result<Regex, ModuleError> {
    let translated = pattern.replace("\\Z", "\\z");
    Regex::new(&format!("^(?:{translated})")).map_err(|e| {
        ModuleError::new(format!(
            "{what}: the regular expression {pattern:?} is not supported by the agent's regex \
             engine (no look-around or backreferences): {e}"
        ))
    })
}

/// `^(-?\d+)(unit)?$` (lowercased) times the unit's factor.
fn scaled(text: &str, units: &[(char, i64)]) -> Option<i64> {
    let t = text.to_lowercase();
    let (num, unit) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => (&t[..t.len() - 1], Some(c)),
        _ => (t.as_str(), None),
    };
    let digits = num.strip_prefix('-').unwrap_or(num);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: i64 = num.parse().ok()?;
    let factor = match unit {
        None => 1,
        Some(u) => units.iter().find(|(c, _)| *c == u)?.1,
    };
    n.checked_mul(factor)
}

const AGE_UNITS: &[(char, i64)] = &[
    ('s', 1),
    ('m', 60),
    ('h', 3600),
    ('d', 86400),
    ('w', 604800),
];
const SIZE_UNITS: &[(char, i64)] = &[
    ('b', 1),
    ('k', 1024),
    ('m', 1 << 20),
    ('g', 1 << 30),
    ('t', 1 << 40),
];

impl Module for FindModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }
    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        match FindRequest::from_args(args)? {
            Ok(req) => query(move || find(&req)),
            Err(out) => query(move || Ok(out.clone())),
        }
    }
}

impl FindRequest {
    /// The request, or the failed result Ansible gives for a bad `age`, `size` or `limit`.
    fn from_args(args: &Args) -> Result<Result<FindRequest, Outcome>, ModuleError> {
        let use_regex = args.bool_or("use_regex", false);
        let compile = |list: Vec<String>, what: &str| -> Result<Patterns, ModuleError> {
            Ok(if use_regex {
                Patterns::Regex(
                    list.iter()
                        .map(|p| py_match_regex(p, what))
                        .collect::<Result<_, _>>()?,
                )
            } else {
                Patterns::Glob(list)
            })
        };
        let mut patterns = args.list_str("patterns").unwrap_or_default();
        if patterns.is_empty() {
            patterns.push(if use_regex { ".*" } else { "*" }.to_string());
        }
        let patterns = compile(patterns, "patterns")?;
        let excludes = match args.list_str("excludes") {
            Some(e) if !e.is_empty() => Some(compile(e, "excludes")?),
            _ => None,
        };
        let contains = match args.str("contains") {
            // `re.compile(p).match(line)` or `.search(whole)`.
            Some(c) if args.bool_or("read_whole_file", false) => Some(
                Regex::new(&c.replace("\\Z", "\\z"))
                    .map_err(|e| ModuleError::new(format!("contains: {e}")))?,
            ),
            Some(c) => Some(py_match_regex(&c, "contains")?),
            None => None,
        };
        let encoding = match args
            .str("encoding")
            .map(|e| e.to_lowercase().replace('_', "-"))
        {
            None => Encoding::Utf8,
            Some(e) if matches!(e.as_str(), "utf-8" | "utf8") => Encoding::Utf8,
            Some(e)
                if matches!(
                    e.as_str(),
                    "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1"
                ) =>
            {
                Encoding::Latin1
            }
            Some(e) => {
                return Err(ModuleError::new(format!(
                    "encoding `{e}` is not supported by the agent (utf-8 and latin-1 are)"
                )))
            }
        };
        let age = match args.str("age") {
            None => None,
            Some(a) => match scaled(&a, AGE_UNITS) {
                Some(n) => Some(n),
                None => {
                    return Ok(Err(failed("failed to process age").with("age", a.as_str())));
                }
            },
        };
        let size = match args.str("size") {
            None => None,
            Some(s) => match scaled(&s, SIZE_UNITS) {
                Some(n) => Some(n),
                None => {
                    return Ok(Err(
                        failed("failed to process size").with("size", s.as_str())
                    ));
                }
            },
        };
        let limit = args.int("limit");
        if let Some(l) = limit.filter(|l| *l <= 0) {
            return Ok(Err(failed(format!(
                "limit cannot be {l} (use None for unlimited)"
            ))));
        }
        let mode = match args.get("mode") {
            None => None,
            Some(m) if m.as_str().is_none() => {
                let kind = match m.kind() {
                    minijinja::value::ValueKind::Number => "int",
                    minijinja::value::ValueKind::Bool => "bool",
                    _ => "object",
                };
                return Ok(Err(failed(format!(
                    "argument 'mode' is not a string and conversion is not allowed, value is of \
                     type {kind}"
                ))));
            }
            Some(m) => Some((find_mode(&python_str(m))?, args.bool_or("exact_mode", true))),
        };
        let file_type = match args.str("file_type").as_deref() {
            Some("any") => FileType::Any,
            Some("directory") => FileType::Directory,
            Some("link") => FileType::Link,
            _ => FileType::File,
        };
        Ok(Ok(FindRequest {
            paths: args
                .list_str("paths")
                .unwrap_or_default()
                .iter()
                .map(|p| expand_path(p).to_string_lossy().into_owned())
                .collect(),
            patterns,
            excludes,
            contains,
            read_whole_file: args.bool_or("read_whole_file", false),
            encoding,
            encoding_given: args.str("encoding"),
            file_type,
            age,
            age_stamp: args.str("age_stamp").unwrap_or_else(|| "mtime".into()),
            size,
            recurse: args.bool_or("recurse", false),
            hidden: args.bool_or("hidden", false),
            follow: args.bool_or("follow", false),
            checksum: args.bool_or("get_checksum", false).then(|| {
                args.str("checksum_algorithm")
                    .unwrap_or_else(|| "sha1".into())
            }),
            depth: args.int("depth").filter(|d| *d != 0),
            mode,
            limit,
        }))
    }
}

/// `int(mode, 8)`, else the symbolic mode applied to 0 (`mode_filter`).
fn find_mode(text: &str) -> Result<u32, ModuleError> {
    let parsed = crate::mode::Mode::parse_str(text)
        .ok()
        .filter(|m| !matches!(m, crate::mode::Mode::Preserve));
    match parsed {
        Some(m) => Ok(m.resolve(0, false, crate::mode::umask()) & 0o7777),
        None => Err(ModuleError::new(format!(
            "mode `{text}` is neither an octal nor a symbolic mode"
        ))),
    }
}

/// What one walk found so far.
#[derive(Default)]
struct Found {
    files: Vec<Value>,
    examined: usize,
    skipped: IndexMap<String, Value>,
    warnings: bool,
}

fn find(req: &FindRequest) -> Result<Outcome, ModuleError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut found = Found::default();
    let mut msg = "All paths examined";
    for top in &req.paths {
        if !Path::new(top).is_dir() {
            found.skipped.insert(
                top.clone(),
                Value::from(format!("'{top}' is not a directory")),
            );
            found.warnings = true;
            continue;
        }
        let mut stack: Vec<PathBuf> = vec![PathBuf::from(top)];
        let mut limited = false;
        'walk: while let Some(root) = stack.pop() {
            let Some((files, mut dirs)) = list_dir(&root, &mut found) else {
                continue;
            };
            found.examined += files.len() + dirs.len();
            for name in files.iter().chain(dirs.clone().iter()) {
                let fsname = normpath(&root.join(name));
                if let Some(max) = req.depth {
                    let base = format!("{}/", top.trim_end_matches('/'));
                    let depth =
                        fsname.matches('/').count() as i64 - base.matches('/').count() as i64 + 1;
                    if depth > max {
                        dirs.clear();
                        continue;
                    }
                }
                if name.starts_with('.') && !req.hidden {
                    continue;
                }
                let meta = match std::fs::symlink_metadata(&fsname) {
                    Ok(m) => m,
                    Err(e) => {
                        found
                            .skipped
                            .insert(fsname.clone(), Value::from(e.to_string()));
                        found.warnings = true;
                        continue;
                    }
                };
                match consider(req, name, &fsname, &meta, now) {
                    Ok(Some(entry)) => found.files.push(entry),
                    Ok(None) => {}
                    Err(e) => {
                        // Ansible's whole path is skipped from here on.
                        found.skipped.insert(top.clone(), Value::from(e));
                        found.warnings = true;
                        break 'walk;
                    }
                }
                if req.limit == Some(found.files.len() as i64) {
                    msg = "Limit of matches reached";
                    limited = true;
                    break;
                }
            }
            if !req.recurse || limited {
                break;
            }
            // os.walk: top-down, depth first, in listing order; links to directories only
            // with `follow`.
            for d in dirs.iter().rev() {
                let p = root.join(d);
                if req.follow || !p.is_symlink() {
                    stack.push(p);
                }
            }
        }
    }
    if found.warnings {
        msg = "Not all paths examined, check warnings for details";
    }
    Ok(Outcome::default()
        .with("files", Value::from(found.files.clone()))
        .with("msg", msg)
        .with("matched", found.files.len())
        .with("examined", found.examined)
        .with("skipped_paths", crate::vars::map_value(found.skipped)))
}

/// A directory's entries split as `os.walk` splits them (a link to a directory counts as a
/// directory); `None` when it cannot be listed (recorded as skipped, as Ansible's
/// `handle_walk_errors` does for permission and missing-path errors).
fn list_dir(root: &Path, found: &mut Found) -> Option<(Vec<String>, Vec<String>)> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) => {
            let text = format!(
                "[Errno {}] {}: '{}'",
                e.raw_os_error().unwrap_or(0),
                e.raw_os_error()
                    .map(|n| nix::errno::Errno::from_raw(n).desc().to_string())
                    .unwrap_or_else(|| e.to_string()),
                root.display()
            );
            found
                .skipped
                .insert(root.to_string_lossy().into_owned(), Value::from(text));
            return None;
        }
    };
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
            dirs.push(name);
        } else {
            files.push(name);
        }
    }
    Some((files, dirs))
}

/// `os.path.normpath` for the joined paths the walk makes (no `..` inside them).
fn normpath(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    let absolute = s.starts_with('/');
    let parts: Vec<&str> = s
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if absolute {
        out.push('/');
    }
    out.push_str(&parts.join("/"));
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// The entry's result dict when it passes the filters of its type (Ansible's branches).
fn consider(
    req: &FindRequest,
    name: &str,
    fsname: &str,
    meta: &Metadata,
    now: f64,
) -> Result<Option<Value>, String> {
    let ft = meta.file_type();
    let named =
        || req.patterns.matches(name) && !req.excludes.as_ref().is_some_and(|e| e.matches(name));
    let common = || named() && age_ok(req, meta, now) && mode_ok(req, meta);
    let size_ok = || match req.size {
        None => true,
        Some(s) if s >= 0 => meta.size() as i64 >= s,
        Some(s) => meta.size() as i64 <= -s,
    };
    let keep = match req.file_type {
        FileType::Any => common() && (!ft.is_file() || size_ok()),
        FileType::Directory => ft.is_dir() && common(),
        FileType::File => {
            ft.is_file()
                && named()
                && age_ok(req, meta, now)
                && size_ok()
                && contains_ok(req, fsname)?
                && mode_ok(req, meta)
        }
        FileType::Link => ft.is_symlink() && common(),
    };
    if !keep {
        return Ok(None);
    }
    let mut entry: IndexMap<&'static str, Value> = IndexMap::new();
    entry.insert("path", Value::from(fsname));
    for (k, v) in mode_fields(meta) {
        entry.insert(k, v);
    }
    // statinfo's order: names after ctime; empty when unknown.
    let names = [
        ("gr_name", group_name(meta.gid()).unwrap_or_default()),
        ("pw_name", user_name(meta.uid()).unwrap_or_default()),
    ];
    let mut ordered: IndexMap<&'static str, Value> = IndexMap::new();
    for (k, v) in entry {
        let after_ctime = k == "ctime";
        ordered.insert(k, v);
        if after_ctime {
            for (n, val) in &names {
                ordered.insert(n, Value::from(val.as_str()));
            }
        }
    }
    if ft.is_file() && matches!(req.file_type, FileType::Any | FileType::File) {
        if let Some(algo) = &req.checksum {
            let sum = digest_file(Path::new(fsname), algo).map_err(|e| e.0)?;
            ordered.insert("checksum", Value::from(sum));
        }
    }
    Ok(Some(crate::vars::map_value(ordered)))
}

fn age_ok(req: &FindRequest, meta: &Metadata, now: f64) -> bool {
    let Some(age) = req.age else { return true };
    let stamp = match req.age_stamp.as_str() {
        "atime" => meta.atime() as f64 + meta.atime_nsec() as f64 * 1e-9,
        "ctime" => meta.ctime() as f64 + meta.ctime_nsec() as f64 * 1e-9,
        _ => meta.mtime() as f64 + meta.mtime_nsec() as f64 * 1e-9,
    };
    let elapsed = now - stamp;
    if age >= 0 {
        elapsed >= age as f64
    } else {
        elapsed <= (-age) as f64
    }
}

fn mode_ok(req: &FindRequest, meta: &Metadata) -> bool {
    let Some((mode, exact)) = req.mode else {
        return true;
    };
    let have = meta.mode() & 0o7777;
    if exact {
        have == mode
    } else {
        have & mode != 0
    }
}

/// `contentfilter`: a line matching (`re.match`) or, with `read_whole_file`, the whole text
/// (`re.search`). A file that cannot be opened does not match; one that does not decode is an
/// error (Ansible then skips the rest of the path).
fn contains_ok(req: &FindRequest, fsname: &str) -> Result<bool, String> {
    let Some(re) = &req.contains else {
        return Ok(true);
    };
    let Ok(bytes) = std::fs::read(fsname) else {
        return Ok(false);
    };
    let text = match req.encoding {
        Encoding::Latin1 => bytes.iter().map(|&b| b as char).collect::<String>(),
        Encoding::Utf8 => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                let shown = req.encoding_given.as_deref().unwrap_or(
                    "None (default determined by the Python built-in function \"open\")",
                );
                return Err(format!(
                    "Failed to read the file {fsname} due to an encoding error. current \
                     encoding: {shown}"
                ));
            }
        },
    };
    if req.read_whole_file {
        return Ok(re.is_match(&text));
    }
    // Python's lines keep their newline, which `$` may stand before: matched without it.
    Ok(text
        .split_inclusive('\n')
        .any(|line| re.is_match(line.strip_suffix('\n').unwrap_or(line))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};

    fn paths_of(h: &Harness, args: &[(&str, Value)]) -> (Vec<String>, Outcome) {
        let mut a = vec![("paths", v(&h.hs("")))];
        a.extend(args.iter().cloned());
        let (changed, out) = h.run(&FindModule, &a).unwrap();
        assert!(!changed);
        let base = h.hs("");
        if out.failed.is_some() {
            return (Vec::new(), out);
        }
        let mut paths: Vec<String> = out.data["files"]
            .try_iter()
            .unwrap()
            .map(|f| {
                f.get_attr("path")
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .trim_start_matches(base.trim_end_matches('/'))
                    .to_string()
            })
            .collect();
        paths.sort();
        (paths, out)
    }

    fn tree(h: &Harness) {
        for d in ["a", "a/b", ".hid"] {
            std::fs::create_dir_all(h.h(d)).unwrap();
        }
        for (f, c) in [
            ("x.conf", "port = 80\n"),
            ("y.txt", "hello\n"),
            ("a/z.conf", "other\n"),
            ("a/b/deep.conf", "port = 81\n"),
            (".hidden.conf", ""),
            (".hid/in.conf", ""),
        ] {
            std::fs::write(h.h(f), c).unwrap();
        }
    }

    #[test]
    fn patterns_recurse_hidden_depth() {
        let h = Harness::new();
        tree(&h);
        let (p, out) = paths_of(&h, &[("patterns", v("*.conf"))]);
        assert_eq!(p, vec!["/x.conf"]);
        assert_eq!(out.data["examined"], Value::from(5));
        let (p, _) = paths_of(
            &h,
            &[("patterns", v("*.conf")), ("recurse", Value::from(true))],
        );
        // A hidden directory is walked; only hidden names are left out.
        assert_eq!(
            p,
            vec!["/.hid/in.conf", "/a/b/deep.conf", "/a/z.conf", "/x.conf"]
        );
        let (p, _) = paths_of(
            &h,
            &[
                ("patterns", v("*.conf")),
                ("recurse", Value::from(true)),
                ("hidden", Value::from(true)),
                ("depth", Value::from(2)),
            ],
        );
        assert_eq!(
            p,
            vec!["/.hid/in.conf", "/.hidden.conf", "/a/z.conf", "/x.conf"]
        );
        let (p, _) = paths_of(
            &h,
            &[
                ("patterns", v("^[xy]\\.")),
                ("use_regex", Value::from(true)),
                ("excludes", v("y")),
            ],
        );
        assert_eq!(p, vec!["/x.conf"]);
        let (p, _) = paths_of(
            &h,
            &[
                ("recurse", Value::from(true)),
                ("contains", v("port = \\d+$")),
            ],
        );
        assert_eq!(p, vec!["/a/b/deep.conf", "/x.conf"]);
        let (p, _) = paths_of(&h, &[("file_type", v("directory"))]);
        assert_eq!(p, vec!["/a"]);
    }

    #[test]
    fn sizes_ages_limits() {
        assert_eq!(scaled("2k", SIZE_UNITS), Some(2048));
        assert_eq!(scaled("-1W", AGE_UNITS), Some(-604800));
        assert_eq!(scaled("1x", AGE_UNITS), None);
        assert_eq!(scaled("", AGE_UNITS), None);
        let h = Harness::new();
        tree(&h);
        let (p, _) = paths_of(&h, &[("size", v("7"))]);
        assert_eq!(p, vec!["/x.conf"]);
        let (p, _) = paths_of(&h, &[("age", v("1d"))]);
        assert!(p.is_empty());
        let (_, out) = paths_of(&h, &[("age", v("soon"))]);
        assert_eq!(out.failed.as_deref(), Some("failed to process age"));
        let (p, out) = paths_of(&h, &[("limit", Value::from(1))]);
        assert_eq!(p.len(), 1);
        assert_eq!(out.data["msg"].as_str(), Some("Limit of matches reached"));
        let (_, out) = paths_of(&h, &[("mode", Value::from(644))]);
        assert!(out.failed.unwrap().contains("not a string"));
    }

    #[test]
    fn entries_carry_statinfo() {
        let h = Harness::new();
        tree(&h);
        let (_, out) = paths_of(
            &h,
            &[
                ("patterns", v("x.conf")),
                ("get_checksum", Value::from(true)),
            ],
        );
        let f = out.data["files"].get_item(&Value::from(0)).unwrap();
        let keys: Vec<String> = f.try_iter().unwrap().map(|k| k.to_string()).collect();
        assert_eq!(&keys[..3], &["path", "mode", "isdir"]);
        assert_eq!(keys[18], "gr_name");
        assert_eq!(keys.last().unwrap(), "checksum");
        assert!(f.get_attr("isreg").unwrap().is_true());
    }
}
