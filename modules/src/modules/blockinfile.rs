//! The `blockinfile` module: a block of lines between two marker lines, inserted, replaced or
//! removed with ansible-core 2.19's algorithm (`blockinfile.py`): an existing marker pair is
//! replaced in place; otherwise the block goes after the *last* line matching `insertafter`
//! (before the last matching `insertbefore`), at EOF by default or at BOF; a pattern with
//! `(?m)` is searched in the whole text as Ansible does for `re.MULTILINE`.
//!
//! As `lineinfile`, a symlink at `path` is refused (Ansible writes to its target).

use std::path::PathBuf;

use regex::bytes::Regex;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::modules::lineinfile::{compile, plan_edit, read_edited, with_attr_msg, FileAttrs};
use crate::resource::{Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource};

pub struct BlockinfileModule;

static SPEC: ArgSpec = ArgSpec {
    module: "blockinfile",
    args: &[
        ArgDef::new("path", ArgType::Path)
            .aliases(&["dest", "destfile", "name"])
            .required(),
        ArgDef::new("state", ArgType::Str).choices(&["absent", "present"]),
        ArgDef::new("marker", ArgType::Str),
        ArgDef::new("block", ArgType::Str).aliases(&["content"]),
        ArgDef::new("insertafter", ArgType::Str),
        ArgDef::new("insertbefore", ArgType::Str),
        ArgDef::new("create", ArgType::Bool),
        ArgDef::new("backup", ArgType::Bool),
        ArgDef::new("validate", ArgType::Str),
        ArgDef::new("marker_begin", ArgType::Str),
        ArgDef::new("marker_end", ArgType::Str),
        ArgDef::new("append_newline", ArgType::Bool),
        ArgDef::new("prepend_newline", ArgType::Bool),
        ArgDef::new("owner", ArgType::Str),
        ArgDef::new("group", ArgType::Str),
        ArgDef::new("mode", ArgType::Mode),
    ],
    free_form: false,
    mutually_exclusive: &[&["insertbefore", "insertafter"]],
    required_one_of: &[],
};

impl Module for BlockinfileModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let marker = args
            .str("marker")
            .unwrap_or_else(|| "# {mark} ANSIBLE MANAGED BLOCK".into());
        let begin = args.str("marker_begin").unwrap_or_else(|| "BEGIN".into());
        let end = args.str("marker_end").unwrap_or_else(|| "END".into());
        let mut insertafter = args.str("insertafter");
        let insertbefore = args.str("insertbefore");
        if insertafter.is_none() && insertbefore.is_none() {
            insertafter = Some("EOF".into());
        }
        let pattern = match (&insertafter, &insertbefore) {
            (Some(a), _) if a != "EOF" => Some(a.clone()),
            (None, Some(b)) if b != "BOF" => Some(b.clone()),
            _ => None,
        };
        if let Some(v) = args.str("validate") {
            if !v.contains("%s") {
                return Err(ModuleError::new(format!("validate must contain %s: {v}")));
            }
        }
        Ok(Box::new(Block {
            path: PathBuf::from(args.str("path").unwrap_or_default()),
            present: args.str("state").as_deref() != Some("absent"),
            marker0: format!("{}\n", marker.replace("{mark}", &begin)).into_bytes(),
            marker1: format!("{}\n", marker.replace("{mark}", &end)).into_bytes(),
            block: args.str("block").unwrap_or_default().into_bytes(),
            after: insertafter.is_some(),
            before_bof: insertbefore.as_deref() == Some("BOF"),
            multiline: pattern.as_deref().is_some_and(|p| p.contains("(?m")),
            insertre: pattern.as_deref().map(compile).transpose()?,
            create: args.bool_or("create", false),
            backup: args.bool_or("backup", false),
            validate: args.str("validate"),
            append_newline: args.bool_or("append_newline", false),
            prepend_newline: args.bool_or("prepend_newline", false),
            attrs: FileAttrs::from_args(args, ctx.host.ids())?,
        }))
    }
}

struct Block {
    path: PathBuf,
    present: bool,
    marker0: Vec<u8>,
    marker1: Vec<u8>,
    block: Vec<u8>,
    after: bool,
    before_bof: bool,
    multiline: bool,
    insertre: Option<Regex>,
    create: bool,
    backup: bool,
    validate: Option<String>,
    append_newline: bool,
    prepend_newline: bool,
    attrs: FileAttrs,
}

/// Python's `bytes.splitlines(True)`: splits after `\n`, `\r\n` and a lone `\r`.
fn splitlines(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\n' => {
                out.push(b[start..=i].to_vec());
                start = i + 1;
            }
            b'\r' => {
                if b.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                out.push(b[start..=i].to_vec());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < b.len() {
        out.push(b[start..].to_vec());
    }
    out
}

impl Block {
    /// The new content for `original` (`None`: the file does not exist).
    fn render(&self, original: Option<&[u8]>) -> Vec<u8> {
        let nl = b"\n".to_vec();
        let mut lines = original.map(splitlines).unwrap_or_default();
        let blocklines: Vec<Vec<u8>> = if self.present && !self.block.is_empty() {
            let mut block = self.block.clone();
            if !block.ends_with(b"\n") {
                block.push(b'\n');
            }
            let mut v = vec![self.marker0.clone()];
            v.extend(splitlines(&block));
            v.push(self.marker1.clone());
            v
        } else {
            Vec::new()
        };
        let (mut n0, mut n1) = (None, None);
        for (i, l) in lines.iter().enumerate() {
            if *l == self.marker0 {
                n0 = Some(i);
            }
            if *l == self.marker1 {
                n1 = Some(i);
            }
        }
        let n0 = match (n0, n1) {
            (Some(a), Some(b)) if a < b => {
                lines.drain(a..=b);
                a
            }
            (Some(a), Some(b)) => {
                lines.drain(b..=a);
                b
            }
            _ => {
                if let Some(re) = &self.insertre {
                    let mut found = None;
                    if self.multiline {
                        let text = original.unwrap_or_default();
                        if let Some(m) = re.find(text) {
                            let upto = if self.after { m.end() } else { m.start() };
                            found = Some(text[..upto].iter().filter(|&&c| c == b'\n').count());
                        }
                    } else {
                        for (i, l) in lines.iter().enumerate() {
                            if re.is_match(l.strip_suffix(b"\n").unwrap_or(l)) {
                                found = Some(i);
                            }
                        }
                    }
                    match found {
                        None => lines.len(),
                        Some(i) if self.after => i + 1,
                        Some(i) => i,
                    }
                } else if self.before_bof {
                    0
                } else {
                    lines.len()
                }
            }
        };
        let mut n0 = n0.min(lines.len());
        if n0 > 0 && !lines[n0 - 1].ends_with(b"\n") {
            lines[n0 - 1].push(b'\n');
        }
        if self.prepend_newline && self.present && n0 != 0 && lines[n0 - 1] != nl {
            lines.insert(n0, nl.clone());
            n0 += 1;
        }
        let count = blocklines.len();
        lines.splice(n0..n0, blocklines);
        if self.append_newline && self.present {
            let after = n0 + count;
            if after < lines.len() && lines[after] != nl {
                lines.insert(after, nl);
            }
        }
        lines.concat()
    }
}

impl Resource for Block {
    fn check(&self) -> Result<Check, ModuleError> {
        let current = read_edited(&self.path)?;
        let p = self.path.display().to_string();
        if current.is_none() {
            if !self.create {
                let msg = format!("Path {p} does not exist !");
                let mut out = Outcome::default().with("rc", 257).with("msg", msg.clone());
                out.failed = Some(msg);
                return Ok(Check::new(Vec::new(), out));
            }
            if !self.present {
                return Ok(Check::new(
                    Vec::new(),
                    Outcome::default().with("msg", format!("File {p} not present")),
                ));
            }
        }
        let original = current.as_ref().map(|(_, b)| b.as_slice());
        let result = self.render(original);
        let (msg, new) = match original {
            Some(o) if o == result.as_slice() => ("", None),
            None => ("File created", Some(result)),
            Some(_) if !self.present || self.block.is_empty() => ("Block removed", Some(result)),
            Some(_) => ("Block inserted", Some(result)),
        };
        let content_changed = new.is_some();
        let (changes, attrs_changed) = plan_edit(
            &self.path,
            current.as_ref(),
            new,
            &self.attrs,
            self.backup,
            self.validate.as_deref(),
        )?;
        Ok(Check::new(
            changes,
            Outcome::default().with("msg", with_attr_msg(msg, content_changed, attrs_changed)),
        ))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        super::lineinfile::apply_edit(check, "backup_file")
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.path.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};

    fn run(h: &Harness, initial: Option<&str>, args: &[(&str, &str)]) -> (bool, String, String) {
        h.edit(&BlockinfileModule, "f", initial, args)
    }

    #[test]
    fn insert_replace_remove() {
        let h = Harness::new();
        let (c, t, m) = run(&h, Some("a\nb"), &[("block", "x\ny")]);
        assert!(c);
        assert_eq!(m, "Block inserted");
        assert_eq!(
            t,
            "a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nx\ny\n# END ANSIBLE MANAGED BLOCK\n"
        );
        let (c, t, _) = run(&h, None, &[("block", "z")]);
        assert!(c);
        assert_eq!(
            t,
            "a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nz\n# END ANSIBLE MANAGED BLOCK\n"
        );
        let (c, t, m) = run(&h, None, &[("state", "absent")]);
        assert!(c);
        assert_eq!(m, "Block removed");
        assert_eq!(t, "a\nb\n");
    }

    #[test]
    fn positions_and_markers() {
        let h = Harness::new();
        let (_, t, _) = run(
            &h,
            Some("a\n[s]\nb\n"),
            &[
                ("block", "x"),
                ("insertafter", "^\\[s\\]"),
                ("marker", "<!-- {mark} -->"),
                ("marker_begin", "B"),
                ("marker_end", "E"),
            ],
        );
        assert_eq!(t, "a\n[s]\n<!-- B -->\nx\n<!-- E -->\nb\n");
        let (_, t, _) = run(
            &h,
            Some("a\nb\n"),
            &[("block", "x"), ("insertbefore", "BOF")],
        );
        assert_eq!(
            t,
            "# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\na\nb\n"
        );
        let (_, t, _) = run(
            &h,
            Some("a\nb\n"),
            &[
                ("block", "x"),
                ("insertbefore", "^b"),
                ("prepend_newline", "yes"),
                ("append_newline", "yes"),
            ],
        );
        assert_eq!(
            t,
            "a\n\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n\nb\n"
        );
    }

    #[test]
    fn create_and_missing() {
        let h = Harness::new();
        let (_, out) = h
            .run(
                &BlockinfileModule,
                &[("path", v(&h.hs("f"))), ("block", v("x"))],
            )
            .unwrap();
        assert!(out.failed.is_some());
        let (c, t, m) = run(
            &h,
            None,
            &[("block", "x"), ("create", "yes"), ("mode", "0600")],
        );
        assert!(c);
        assert_eq!(
            m,
            "File created and ownership, perms or SE linux context changed"
        );
        assert_eq!(
            t,
            "# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"
        );
    }
}
