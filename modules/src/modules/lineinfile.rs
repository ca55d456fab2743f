//! The `lineinfile` module: ensures one line is present (inserted or replaced) or absent, with
//! ansible-core 2.19's exact algorithm (`present`/`absent` of `lineinfile.py`): the *last*
//! line matching `regexp`/`search_string` is replaced (the first with `firstmatch`); without a
//! match the line goes after the last `insertafter` match (before the last `insertbefore`
//! match; the first with `firstmatch`), or at EOF/BOF; `backrefs` without a match changes
//! nothing.
//!
//! Regular expressions are Python's `re` on bytes as far as Rust's `regex` can follow: each
//! line is matched without its trailing `\n` (so `$` matches where Python's `$` does);
//! look-around and back-references inside a pattern are refused with an error.
//!
//! A symlink at `path` is refused (fail-closed). Ansible edits the link's target (it writes to
//! `realpath(path)`); the project never follows a link a task did not ask for, and replacing
//! the link with a file would break setups such as `/etc/resolv.conf -> /run/...`: point
//! `path` at the target instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::bytes::{Captures, Regex, RegexBuilder};

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::fsops::{self, Current, IdCache, Kind};
use crate::mode::{self, Mode};
use crate::resource::{
    Attrs, Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};

pub struct LineinfileModule;

static SPEC: ArgSpec = ArgSpec {
    module: "lineinfile",
    args: &[
        ArgDef::new("path", ArgType::Path)
            .aliases(&["dest", "destfile", "name"])
            .required(),
        ArgDef::new("state", ArgType::Str).choices(&["absent", "present"]),
        ArgDef::new("regexp", ArgType::Str).aliases(&["regex"]),
        ArgDef::new("search_string", ArgType::Str),
        ArgDef::new("line", ArgType::Str).aliases(&["value"]),
        ArgDef::new("insertafter", ArgType::Str),
        ArgDef::new("insertbefore", ArgType::Str),
        ArgDef::new("backrefs", ArgType::Bool),
        ArgDef::new("create", ArgType::Bool),
        ArgDef::new("backup", ArgType::Bool),
        ArgDef::new("firstmatch", ArgType::Bool),
        ArgDef::new("validate", ArgType::Str),
        ArgDef::new("owner", ArgType::Str),
        ArgDef::new("group", ArgType::Str),
        ArgDef::new("mode", ArgType::Mode),
    ],
    free_form: false,
    mutually_exclusive: &[
        &["insertbefore", "insertafter"],
        &["regexp", "search_string"],
        &["backrefs", "search_string"],
    ],
    required_one_of: &[],
};

/// Compiles a Python-style pattern for byte lines.
pub(crate) fn compile(pattern: &str) -> Result<Regex, ModuleError> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .or_else(|_| RegexBuilder::new(pattern).build())
        .map_err(|e| {
            ModuleError::new(format!(
                "unsupported or invalid regular expression `{pattern}`: {e}"
            ))
        })
}

/// Matches a line (with its newline) as Python's `re.search` would for patterns that do not
/// name the newline: against the line without its final `\n`.
fn search<'a>(re: &Regex, line: &'a [u8]) -> Option<Captures<'a>> {
    re.captures(line.strip_suffix(b"\n").unwrap_or(line))
}

/// Python's `match.expand(template)`: `\1`..`\99`, `\g<n>`, `\g<name>`, and the usual escapes.
fn expand(caps: &Captures, template: &[u8]) -> Vec<u8> {
    let group = |out: &mut Vec<u8>, name: &str| {
        let m = match name.parse::<usize>() {
            Ok(i) => caps.get(i),
            Err(_) => caps.name(name),
        };
        if let Some(m) = m {
            out.extend_from_slice(m.as_bytes());
        }
    };
    let mut out = Vec::with_capacity(template.len());
    let mut i = 0;
    while i < template.len() {
        let c = template[i];
        if c != b'\\' || i + 1 == template.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let n = template[i + 1];
        match n {
            b'0'..=b'9' => {
                let mut j = i + 1;
                while j < template.len() && j < i + 3 && template[j].is_ascii_digit() {
                    j += 1;
                }
                group(
                    &mut out,
                    std::str::from_utf8(&template[i + 1..j]).unwrap_or("0"),
                );
                i = j;
            }
            b'g' if template.get(i + 2) == Some(&b'<') => {
                if let Some(end) = template[i + 3..].iter().position(|&b| b == b'>') {
                    let name = String::from_utf8_lossy(&template[i + 3..i + 3 + end]).into_owned();
                    group(&mut out, &name);
                    i = i + 3 + end + 1;
                } else {
                    out.extend_from_slice(&template[i..i + 2]);
                    i += 2;
                }
            }
            b'n' => {
                out.push(b'\n');
                i += 2;
            }
            b't' => {
                out.push(b'\t');
                i += 2;
            }
            b'r' => {
                out.push(b'\r');
                i += 2;
            }
            b'\\' => {
                out.push(b'\\');
                i += 2;
            }
            _ => {
                out.extend_from_slice(&template[i..i + 2]);
                i += 2;
            }
        }
    }
    out
}

/// Python's `readlines()`: lines with their `\n`.
pub(crate) fn split_lines(content: &[u8]) -> Vec<Vec<u8>> {
    content
        .split_inclusive(|&b| b == b'\n')
        .map(|l| l.to_vec())
        .collect()
}

fn rstrip_crlf(l: &[u8]) -> &[u8] {
    let mut end = l.len();
    while end > 0 && matches!(l[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    &l[..end]
}

/// Attributes (owner/group/mode) shared by lineinfile and blockinfile.
#[derive(Debug, Clone)]
pub(crate) struct FileAttrs {
    pub mode: Option<Mode>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl FileAttrs {
    pub fn from_args(args: &Args, ids: &IdCache) -> Result<FileAttrs, ModuleError> {
        let mode = args
            .get("mode")
            .map(Mode::parse)
            .transpose()
            .map_err(ModuleError::new)?;
        if mode == Some(Mode::Preserve) {
            return Err(ModuleError::new(
                "mode must be in octal or symbolic form: preserve is only for copy and template",
            ));
        }
        Ok(FileAttrs {
            mode,
            uid: args.str("owner").map(|o| ids.uid_for(&o)).transpose()?,
            gid: args.str("group").map(|g| ids.gid_for(&g)).transpose()?,
        })
    }

    pub fn for_mode(&self, current: u32) -> Attrs {
        Attrs {
            mode: self
                .mode
                .as_ref()
                .map(|m| m.resolve(current, false, mode::umask())),
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// Reads an edited file: `None` when absent. Symlinks and directories are errors.
pub(crate) fn read_edited(path: &Path) -> Result<Option<(fsops::Stat, Vec<u8>)>, ModuleError> {
    match fsops::read_current(path)? {
        Current::Absent => Ok(None),
        Current::File(st, bytes) => Ok(Some((st, bytes))),
        Current::Other(st) if st.kind == Kind::Dir => Err(ModuleError::new(format!(
            "Path {} is a directory !",
            path.display()
        ))),
        Current::Other(st) if st.kind == Kind::Symlink => Err(ModuleError::new(format!(
            "{} is a symlink: refusing to edit through it (Ansible would write to the link's \
             target); point the task at the target file",
            path.display()
        ))),
        Current::Other(_) => Err(ModuleError::new(format!(
            "{} is not a regular file",
            path.display()
        ))),
    }
}

/// The changes for an edited file: a content write when `new` differs, then attributes.
/// Returns the changes and Ansible's message suffix for attribute changes.
pub(crate) fn plan_edit(
    path: &Path,
    current: Option<&(fsops::Stat, Vec<u8>)>,
    new: Option<Vec<u8>>,
    attrs: &FileAttrs,
    backup: bool,
    validate: Option<&str>,
) -> Result<(Vec<Change>, bool), ModuleError> {
    let mut changes = Vec::new();
    let mut attrs_changed = false;
    match (current, new) {
        (Some((st, old)), Some(new)) => {
            let a = attrs.for_mode(st.mode);
            // Attributes change too when the content does: say so as Ansible does.
            attrs_changed = !fsops::attr_changes(path, st, &a).is_empty();
            changes.push(Change::WriteFile {
                path: path.to_path_buf(),
                content: Arc::from(new),
                before: Some(Arc::from(old.as_slice())),
                attrs: a,
                backup,
                validate: validate.map(str::to_string),
            });
        }
        (None, Some(new)) => {
            // A new file's missing directory is made, without attributes of its own.
            if let Some(parent) = path.parent() {
                if !parent.as_os_str().is_empty() && fsops::stat(parent)?.is_none() {
                    changes.push(Change::CreateDir {
                        path: parent.to_path_buf(),
                        attrs: Attrs::default(),
                    });
                }
            }
            let a = attrs.for_mode(0o666 & !mode::umask());
            attrs_changed = a.mode.is_some_and(|m| m != 0o666 & !mode::umask())
                || a.uid.is_some()
                || a.gid.is_some();
            changes.push(Change::WriteFile {
                path: path.to_path_buf(),
                content: Arc::from(new),
                before: None,
                attrs: a,
                backup: false,
                validate: validate.map(str::to_string),
            });
        }
        (Some((st, _)), None) => {
            let c = fsops::attr_changes(path, st, &attrs.for_mode(st.mode));
            attrs_changed = !c.is_empty();
            changes.extend(c);
        }
        (None, None) => {}
    }
    Ok((changes, attrs_changed))
}

/// Applies an edit of a file (`lineinfile`, `blockinfile`): the check's outcome, with the
/// backup made (if any) under `backup_key`.
pub(crate) fn apply_edit(check: Check, backup_key: &str) -> Result<Outcome, ModuleError> {
    let applied = fsops::apply_all(&check.changes)?;
    let mut out = check.outcome;
    if let Some(b) = applied.backup_file {
        out = out.with(backup_key, b.display().to_string());
    }
    Ok(out)
}

/// Ansible's message with its attribute suffix.
pub(crate) fn with_attr_msg(msg: &str, content_changed: bool, attrs_changed: bool) -> String {
    if !attrs_changed {
        return msg.to_string();
    }
    let mut m = msg.to_string();
    if content_changed {
        m.push_str(" and ");
    }
    m.push_str("ownership, perms or SE linux context changed");
    m
}

impl Module for LineinfileModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let present = args.str("state").as_deref() != Some("absent");
        let regexp = args.str("regexp");
        let backrefs = args.bool_or("backrefs", false);
        let line = args.str("line");
        if present {
            if backrefs && regexp.is_none() {
                return Err(ModuleError::new("regexp is required with backrefs=true"));
            }
            if line.is_none() {
                return Err(ModuleError::new("line is required with state=present"));
            }
        } else if regexp.is_none() && !args.has("search_string") && line.is_none() {
            return Err(ModuleError::new(
                "one of line, search_string, or regexp is required with state=absent",
            ));
        }
        if let Some(v) = args.str("validate") {
            if !v.contains("%s") {
                return Err(ModuleError::new(format!("validate must contain %s: {v}")));
            }
        }
        let mut insertafter = args.str("insertafter");
        let insertbefore = args.str("insertbefore");
        if insertafter.is_none() && insertbefore.is_none() {
            insertafter = Some("EOF".into());
        }
        let ins_re = match (&insertafter, &insertbefore) {
            (Some(a), _) if a != "BOF" && a != "EOF" => Some(compile(a)?),
            (None, Some(b)) if b != "BOF" => Some(compile(b)?),
            _ => None,
        };
        Ok(Box::new(LineInFile {
            path: PathBuf::from(args.str("path").unwrap_or_default()),
            present,
            regexp: regexp.as_deref().map(compile).transpose()?,
            search_string: args.str("search_string"),
            line: line.unwrap_or_default(),
            insertafter,
            insertbefore,
            ins_re,
            backrefs,
            create: args.bool_or("create", false),
            backup: args.bool_or("backup", false),
            firstmatch: args.bool_or("firstmatch", false),
            validate: args.str("validate"),
            attrs: FileAttrs::from_args(args, ctx.host.ids())?,
        }))
    }
}

struct LineInFile {
    path: PathBuf,
    present: bool,
    regexp: Option<Regex>,
    search_string: Option<String>,
    line: String,
    insertafter: Option<String>,
    insertbefore: Option<String>,
    ins_re: Option<Regex>,
    backrefs: bool,
    create: bool,
    backup: bool,
    firstmatch: bool,
    validate: Option<String>,
    attrs: FileAttrs,
}

impl LineInFile {
    /// `lineinfile.py`'s `present()`, on the lines: the new lines (if changed) and the message.
    fn present(&self, mut lines: Vec<Vec<u8>>) -> (Option<Vec<Vec<u8>>>, &'static str) {
        let b_line = self.line.as_bytes();
        let sep: &[u8] = b"\n";
        let mut index: [isize; 2] = [-1, -1];
        let mut matched: Option<Option<Vec<u8>>> = None; // Some(expanded-line-if-regexp)
        if let Some(re) = &self.regexp {
            for (n, l) in lines.iter().enumerate() {
                if let Some(caps) = search(re, l) {
                    index[0] = n as isize;
                    matched = Some(Some(expand(&caps, b_line)));
                    if self.firstmatch {
                        break;
                    }
                }
            }
        }
        if let Some(s) = &self.search_string {
            for (n, l) in lines.iter().enumerate() {
                if find_bytes(l, s.as_bytes()) {
                    index[0] = n as isize;
                    matched = Some(None);
                    if self.firstmatch {
                        break;
                    }
                }
            }
        }
        let after = self.insertafter.as_deref();
        let before = self.insertbefore.as_deref();
        if matched.is_none() {
            for (n, l) in lines.iter().enumerate() {
                if b_line == rstrip_crlf(l) {
                    index[0] = n as isize;
                } else if self.ins_re.as_ref().is_some_and(|r| search(r, l).is_some()) {
                    if after.is_some() {
                        index[1] = n as isize + 1;
                        if self.firstmatch {
                            break;
                        }
                    }
                    if before.is_some() {
                        index[1] = n as isize;
                        if self.firstmatch {
                            break;
                        }
                    }
                }
            }
        }
        let with_sep = |l: &[u8]| {
            let mut v = l.to_vec();
            v.extend_from_slice(sep);
            v
        };
        let ends_nl = |lines: &Vec<Vec<u8>>| {
            lines
                .last()
                .is_none_or(|l| matches!(l.last(), Some(b'\n') | Some(b'\r')))
        };
        if index[0] != -1 {
            let mut new_line = match (&matched, self.backrefs) {
                (Some(Some(expanded)), true) => expanded.clone(),
                _ => b_line.to_vec(),
            };
            if !new_line.ends_with(sep) {
                new_line.extend_from_slice(sep);
            }
            // Ansible's insertion branch here needs no regexp, no search_string, no match and
            // no exact line match, which cannot be with index[0] set: only the replacement is
            // reachable.
            let i = index[0] as usize;
            if lines[i] != new_line {
                lines[i] = new_line;
                return (Some(lines), "line replaced");
            }
            return (None, "");
        }
        if self.backrefs {
            return (None, "");
        }
        if before == Some("BOF") || after == Some("BOF") {
            lines.insert(0, with_sep(b_line));
            return (Some(lines), "line added");
        }
        if after == Some("EOF") || index[1] == -1 {
            if !ends_nl(&lines) {
                lines.push(sep.to_vec());
            }
            lines.push(with_sep(b_line));
            return (Some(lines), "line added");
        }
        let i = index[1] as usize;
        if after.is_some() {
            if lines.len() == i {
                if rstrip_crlf(&lines[i - 1]) != b_line {
                    lines.push(with_sep(b_line));
                    return (Some(lines), "line added");
                }
            } else if b_line != rstrip_crlf(&lines[i]) {
                lines.insert(i, with_sep(b_line));
                return (Some(lines), "line added");
            }
            return (None, "");
        }
        lines.insert(i, with_sep(b_line));
        (Some(lines), "line added")
    }

    /// `absent()`: the remaining lines if some were removed, and how many were found.
    fn absent(&self, lines: Vec<Vec<u8>>) -> (Option<Vec<Vec<u8>>>, usize) {
        let before = lines.len();
        let kept: Vec<Vec<u8>> = lines
            .into_iter()
            .filter(|l| {
                let found = if let Some(re) = &self.regexp {
                    search(re, l).is_some()
                } else if let Some(s) = &self.search_string {
                    find_bytes(l, s.as_bytes())
                } else {
                    self.line.as_bytes() == rstrip_crlf(l)
                };
                !found
            })
            .collect();
        let found = before - kept.len();
        if found > 0 {
            (Some(kept), found)
        } else {
            (None, 0)
        }
    }
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

impl Resource for LineInFile {
    fn check(&self) -> Result<Check, ModuleError> {
        let current = read_edited(&self.path)?;
        let p = self.path.display().to_string();
        if self.present {
            if current.is_none() && !self.create {
                let mut out = Outcome::default().with("rc", 257);
                out.failed = Some(format!("Destination {p} does not exist !"));
                return Ok(Check::new(
                    Vec::new(),
                    out.with("msg", format!("Destination {p} does not exist !")),
                ));
            }
            let lines = current
                .as_ref()
                .map(|(_, b)| split_lines(b))
                .unwrap_or_default();
            let (new, msg) = self.present(lines);
            let content_changed = new.is_some();
            let (changes, attrs_changed) = plan_edit(
                &self.path,
                current.as_ref(),
                new.map(|l| l.concat()),
                &self.attrs,
                self.backup,
                self.validate.as_deref(),
            )?;
            let msg = with_attr_msg(msg, content_changed, attrs_changed);
            let out = Outcome::default().with("msg", msg).with("backup", "");
            return Ok(Check::new(changes, out));
        }
        let Some(cur) = current else {
            return Ok(Check::new(
                Vec::new(),
                Outcome::default().with("msg", "file not present"),
            ));
        };
        let (new, found) = self.absent(split_lines(&cur.1));
        let content_changed = new.is_some();
        let (changes, attrs_changed) = plan_edit(
            &self.path,
            Some(&cur),
            new.map(|l| l.concat()),
            &self.attrs,
            self.backup,
            self.validate.as_deref(),
        )?;
        let msg = if content_changed {
            format!("{found} line(s) removed")
        } else {
            String::new()
        };
        let msg = with_attr_msg(&msg, content_changed, attrs_changed);
        Ok(Check::new(
            changes,
            Outcome::default()
                .with("found", found)
                .with("msg", msg)
                .with("backup", ""),
        ))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        apply_edit(check, "backup")
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.path.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};

    fn run(
        h: &Harness,
        file: &str,
        initial: Option<&str>,
        args: &[(&str, &str)],
    ) -> (bool, String, String) {
        h.edit(&LineinfileModule, file, initial, args)
    }

    #[test]
    fn regexp_replaces_last_match_or_appends() {
        let h = Harness::new();
        let (c, t, m) = run(
            &h,
            "f",
            Some("a=1\nb=2\na=3\n"),
            &[("regexp", "^a="), ("line", "a=9")],
        );
        assert!(c);
        assert_eq!(t, "a=1\nb=2\na=9\n");
        assert_eq!(m, "line replaced");
        let (c, t, _) = run(
            &h,
            "f",
            Some("a=1\nb=2\na=3\n"),
            &[("regexp", "^a="), ("line", "a=9"), ("firstmatch", "yes")],
        );
        assert!(c);
        assert_eq!(t, "a=9\nb=2\na=3\n");
        let (c, t, m) = run(&h, "f", Some("x\ny"), &[("regexp", "^z="), ("line", "z=1")]);
        assert!(c);
        assert_eq!(t, "x\ny\nz=1\n");
        assert_eq!(m, "line added");
        // `$` matches before the newline, as in Python.
        let (c, t, _) = run(
            &h,
            "f",
            Some("port = 80\n"),
            &[("regexp", "^port = \\d+$"), ("line", "port = 81")],
        );
        assert!(c);
        assert_eq!(t, "port = 81\n");
    }

    #[test]
    fn backrefs_without_match_changes_nothing() {
        let h = Harness::new();
        let (c, t, _) = run(
            &h,
            "f",
            Some("x=1\n"),
            &[
                ("regexp", "^nomatch(.*)$"),
                ("line", "y\\1"),
                ("backrefs", "yes"),
            ],
        );
        assert!(!c);
        assert_eq!(t, "x=1\n");
        let (c, t, _) = run(
            &h,
            "f",
            Some("listen 80;\n"),
            &[
                ("regexp", "^listen (\\d+);$"),
                ("line", "listen \\g<1>0; # was \\1"),
                ("backrefs", "yes"),
            ],
        );
        assert!(c);
        assert_eq!(t, "listen 800; # was 80\n");
    }

    #[test]
    fn insert_after_and_before() {
        let h = Harness::new();
        let init = "[a]\nk=1\n[b]\nk=2\n[a]\n";
        // insertafter: after the last match.
        let (_, t, _) = run(
            &h,
            "f",
            Some(init),
            &[("line", "new"), ("insertafter", "^\\[a\\]")],
        );
        assert_eq!(t, "[a]\nk=1\n[b]\nk=2\n[a]\nnew\n");
        // insertbefore: before the last match.
        let (_, t, _) = run(
            &h,
            "f",
            Some(init),
            &[("line", "new"), ("insertbefore", "^\\[a\\]")],
        );
        assert_eq!(t, "[a]\nk=1\n[b]\nk=2\nnew\n[a]\n");
        let (_, t, _) = run(
            &h,
            "f",
            Some(init),
            &[
                ("line", "new"),
                ("insertbefore", "^\\[a\\]"),
                ("firstmatch", "yes"),
            ],
        );
        assert_eq!(t, "new\n[a]\nk=1\n[b]\nk=2\n[a]\n");
        let (_, t, _) = run(
            &h,
            "f",
            Some(init),
            &[("line", "new"), ("insertbefore", "BOF")],
        );
        assert_eq!(t, "new\n[a]\nk=1\n[b]\nk=2\n[a]\n");
        // Present already: nothing.
        let (c, _, _) = run(
            &h,
            "f",
            Some(init),
            &[("line", "k=2"), ("insertafter", "^\\[a\\]")],
        );
        assert!(!c);
        // No match for insertafter: EOF.
        let (_, t, _) = run(
            &h,
            "f",
            Some("a\n"),
            &[("line", "new"), ("insertafter", "^zzz")],
        );
        assert_eq!(t, "a\nnew\n");
    }

    #[test]
    fn absent_create_backup_and_errors() {
        let h = Harness::new();
        let (c, t, m) = run(
            &h,
            "f",
            Some("a\nb\na\n"),
            &[("line", "a"), ("state", "absent")],
        );
        assert!(c);
        assert_eq!(t, "b\n");
        assert_eq!(m, "2 line(s) removed");
        let (c, t, m) = run(
            &h,
            "new/f",
            None,
            &[("line", "x"), ("create", "yes"), ("mode", "0600")],
        );
        assert!(c);
        assert_eq!(t, "x\n");
        assert_eq!(
            m,
            "line added and ownership, perms or SE linux context changed"
        );
        let (_, out) = h
            .run(
                &LineinfileModule,
                &[("path", v(&h.hs("missing"))), ("line", v("x"))],
            )
            .unwrap();
        assert_eq!(
            out.failed.as_deref(),
            Some(format!("Destination {} does not exist !", h.hs("missing")).as_str())
        );
        // backup
        std::fs::write(h.h("b"), "old\n").unwrap();
        let (_, out) = h
            .run(
                &LineinfileModule,
                &[
                    ("path", v(&h.hs("b"))),
                    ("line", v("new")),
                    ("backup", v("yes")),
                ],
            )
            .unwrap();
        let b = out.data["backup"].as_str().unwrap().to_string();
        assert_eq!(std::fs::read_to_string(b).unwrap(), "old\n");
        // A symlink is refused, the target untouched.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("t"), "t\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("t"), h.h("l")).unwrap();
        let e = h
            .run(
                &LineinfileModule,
                &[("path", v(&h.hs("l"))), ("line", v("x"))],
            )
            .unwrap_err();
        assert!(e.0.contains("symlink"), "{e}");
        assert_eq!(
            std::fs::read_to_string(outside.path().join("t")).unwrap(),
            "t\n"
        );
        // validate failure leaves the file.
        let e = h
            .run(
                &LineinfileModule,
                &[
                    ("path", v(&h.hs("b"))),
                    ("line", v("zzz")),
                    ("validate", v("false %s")),
                ],
            )
            .unwrap_err();
        assert!(e.0.starts_with("failed to validate"), "{e}");
        assert_eq!(std::fs::read_to_string(h.h("b")).unwrap(), "old\nnew\n");
    }
}
