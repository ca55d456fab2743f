//! The `assemble` module: a file made of the fragments of a directory, in name order, as
//! ansible-core 2.19 does: `remote_src: true` (the default) reads the directory on the host and
//! behaves as the `assemble` module (result `checksum`, `md5sum`, `msg: OK`); `remote_src:
//! false` reads it from the repository (a role's or the playbook's `files/`, never outside the
//! repository) and, as Ansible's action plugin does, hands the assembled text to `copy`.
//!
//! Fragments: regular files (links followed, as `os.path.isfile`), skipped when `regexp` does
//! not `re.search` their name or, with `ignore_hidden`, when it starts with a dot; a newline is
//! added after a fragment without one; `delimiter` (Python escapes decoded) goes between
//! fragments, followed by a newline if it lacks one.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use minijinja::Value;
use regex::Regex;
use sha1::{Digest, Sha1};

use super::copy::CopyModule;
use super::lineinfile::{apply_edit, plan_edit, read_edited, FileAttrs};
use super::python_re::{self, Flags};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource};
use crate::source::{find_in, SourceKind};

pub struct AssembleModule;

static SPEC: ArgSpec = ArgSpec {
    module: "assemble",
    args: &[
        ArgDef::new("src", ArgType::Path).required(),
        ArgDef::new("dest", ArgType::Path).required(),
        ArgDef::new("delimiter", ArgType::Str),
        ArgDef::new("backup", ArgType::Bool),
        ArgDef::new("remote_src", ArgType::Bool),
        ArgDef::new("regexp", ArgType::Str),
        ArgDef::new("ignore_hidden", ArgType::Bool),
        ArgDef::new("validate", ArgType::Str),
        ArgDef::new("decrypt", ArgType::Bool),
        ArgDef::new("owner", ArgType::Str),
        ArgDef::new("group", ArgType::Str),
        ArgDef::new("mode", ArgType::Mode),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// Python's `codecs.escape_decode` on text: `\n`, `\t`, `\\`, `\xhh`, octal `\ooo`, ...;
/// an unknown escape stays as written.
fn escape_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' || i + 1 == s.len() {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let c = s[i + 1];
        i += 2;
        match c {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < s.len() && (b'0'..=b'7').contains(&s[i]) {
                    v = v * 8 + u32::from(s[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if i + 2 <= s.len()
                && s[i].is_ascii_hexdigit()
                && s[i + 1].is_ascii_hexdigit() =>
            {
                let hex = std::str::from_utf8(&s[i..i + 2]).unwrap_or("0");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                i += 2;
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    out
}

/// `assemble_from_fragments` on fragments already filtered and read, in name order.
fn assemble(fragments: &[Vec<u8>], delimiter: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut delimiter: Option<Vec<u8>> = delimiter.filter(|d| !d.is_empty()).map(|d| d.into());
    let mut add_newline = false;
    for (n, content) in fragments.iter().enumerate() {
        if add_newline {
            out.push(b'\n');
        }
        if n > 0 {
            if let Some(d) = &mut delimiter {
                // ansible-core decodes the already decoded delimiter again at each fragment.
                *d = escape_decode(d);
                out.extend_from_slice(d);
                if d.last() != Some(&b'\n') {
                    out.push(b'\n');
                }
            }
        }
        out.extend_from_slice(content);
        add_newline = !content.ends_with(b"\n");
    }
    out
}

/// Which fragment names are taken.
struct Filter {
    regexp: Option<Regex>,
    ignore_hidden: bool,
}

impl Filter {
    fn takes(&self, name: &str) -> Result<bool, ModuleError> {
        if let Some(re) = &self.regexp {
            // Compiled in multiline mode, which anchors as Python's default mode on a name
            // without a newline.
            if name.contains('\n') {
                return Err(ModuleError::new(format!(
                    "fragment name {name:?} holds a newline: regexp cannot be matched as Python does"
                )));
            }
            if !re.is_match(name) {
                return Ok(false);
            }
        }
        Ok(!(self.ignore_hidden && name.starts_with('.')))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Module for AssembleModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let src = args.str("src").unwrap_or_default();
        let dest = args.str("dest").unwrap_or_default();
        let regexp = args
            .str("regexp")
            .map(|r| {
                let flags = Flags {
                    multiline: true,
                    dotall: false,
                };
                python_re::compile(&r, flags)
            })
            .transpose()?;
        let filter = Filter {
            regexp,
            ignore_hidden: args.bool_or("ignore_hidden", false),
        };
        if let Some(v) = args.str("validate") {
            if !v.contains("%s") {
                return Err(ModuleError::new(format!("validate must contain %s: {v}")));
            }
        }
        let delimiter = args.str("delimiter");
        if args.bool_or("remote_src", true) {
            return Ok(Box::new(Assemble {
                src: PathBuf::from(src),
                dest: PathBuf::from(dest),
                filter,
                delimiter,
                backup: args.bool_or("backup", false),
                validate: args.str("validate"),
                attrs: FileAttrs::from_args(args, ctx.host.ids())?,
            }));
        }
        let content = from_repository(&src, &filter, delimiter.as_deref(), args, ctx)?;
        // The action plugin's second half: `copy` of the assembled file, with the task's other
        // arguments.
        let mut copy_args: IndexMap<String, Value> = IndexMap::new();
        copy_args.insert("content".into(), Value::from(content));
        copy_args.insert("dest".into(), Value::from(dest));
        for key in ["backup", "validate", "owner", "group", "mode"] {
            if let Some(v) = args.get(key) {
                copy_args.insert(key.into(), v.clone());
            }
        }
        let bound = CopyModule.spec().bind(&copy_args)?;
        CopyModule.prepare(&bound, ctx)
    }
}

/// The assembled text of a repository directory (`remote_src: false`).
fn from_repository(
    src: &str,
    filter: &Filter,
    delimiter: Option<&str>,
    args: &Args,
    ctx: &ModuleContext,
) -> Result<String, ModuleError> {
    let err = |e: crate::source::SourceError| ModuleError::new(format!("src {src}: {e}"));
    let dir = match find_in(ctx.source, ctx.search, "files", src).map_err(err)? {
        Some((dir, SourceKind::Dir)) => dir,
        _ => {
            return Err(ModuleError::new(format!(
                "Source ({src}) is not a directory (looked for in the repository's files/ \
                 directories)"
            )))
        }
    };
    let decrypt = args.bool_or("decrypt", true);
    let mut fragments = Vec::new();
    for entry in ctx.source.list(&dir).map_err(err)? {
        if entry.kind != SourceKind::File || !filter.takes(&entry.name)? {
            continue;
        }
        let path = dir.join(&entry.name).map_err(|e| err(e.into()))?;
        let bytes = ctx.source.read(&path).map_err(err)?.unwrap_or_default();
        if decrypt && bytes.starts_with(b"$ANSIBLE_VAULT;") {
            return Err(ModuleError::new(format!(
                "fragment {path} is vault-encrypted: decrypting assemble fragments is not supported"
            )));
        }
        fragments.push(bytes);
    }
    String::from_utf8(assemble(&fragments, delimiter)).map_err(|_| {
        ModuleError::new(format!(
            "the fragments of {src} are not UTF-8 text: remote_src: false assembles text only"
        ))
    })
}

/// `remote_src: true`: the `assemble` module on the host.
struct Assemble {
    src: PathBuf,
    dest: PathBuf,
    filter: Filter,
    delimiter: Option<String>,
    backup: bool,
    validate: Option<String>,
    attrs: FileAttrs,
}

impl Assemble {
    fn fragments(&self) -> Result<Vec<Vec<u8>>, ModuleError> {
        let src = self.src.display();
        if !self.src.exists() {
            return Err(ModuleError::new(format!("Source ({src}) does not exist")));
        }
        if !self.src.is_dir() {
            return Err(ModuleError::new(format!(
                "Source ({src}) is not a directory"
            )));
        }
        let mut names: Vec<String> = std::fs::read_dir(&self.src)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if !self.filter.takes(&name)? {
                continue;
            }
            let path: &Path = &self.src.join(&name);
            if path.is_file() {
                out.push(std::fs::read(path)?);
            }
        }
        Ok(out)
    }
}

impl Resource for Assemble {
    fn check(&self) -> Result<Check, ModuleError> {
        let content = assemble(&self.fragments()?, self.delimiter.as_deref());
        let current = read_edited(&self.dest)?;
        let new = match &current {
            Some((_, old)) if *old == content => None,
            _ => Some(content.clone()),
        };
        let (changes, _) = plan_edit(
            &self.dest,
            current.as_ref(),
            new,
            &self.attrs,
            self.backup,
            self.validate.as_deref(),
        )?;
        let md5 = {
            use md5::Digest as _;
            hex(&md5::Md5::digest(&content))
        };
        let out = Outcome::default()
            .with("src", self.src.display().to_string())
            .with("dest", self.dest.display().to_string())
            .with("checksum", hex(&Sha1::digest(&content)))
            .with("md5sum", md5)
            .with("msg", "OK");
        Ok(Check::new(changes, out))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        apply_edit(check, "backup_file")
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.dest.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};

    #[test]
    fn fragments_newlines_and_delimiter() {
        let f = |s: &[&str]| s.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(assemble(&f(&["a", "b\n", "c"]), None), b"a\nb\nc");
        assert_eq!(
            assemble(&f(&["a\n", "b\n"]), Some("# --\\t")),
            b"a\n# --\t\nb\n"
        );
        assert_eq!(escape_decode(br"\x41\101\q\\"), b"AA\\q\\");
    }

    #[test]
    fn host_directory() {
        let h = Harness::new();
        std::fs::create_dir(h.h("frag")).unwrap();
        for (n, c) in [
            ("10-b", "b\n"),
            ("01-a", "a"),
            (".hidden", "h\n"),
            ("20-c.bak", "x\n"),
        ] {
            std::fs::write(h.h(&format!("frag/{n}")), c).unwrap();
        }
        let args = [
            ("src", v(&h.hs("frag"))),
            ("dest", v(&h.hs("out"))),
            ("regexp", v(r"^(\.|\d+-[a-z]$)")),
            ("ignore_hidden", v("yes")),
        ];
        let (c, out) = h.run(&AssembleModule, &args).unwrap();
        assert!(c);
        assert_eq!(std::fs::read_to_string(h.h("out")).unwrap(), "a\nb\n");
        assert_eq!(
            out.data["checksum"].as_str(),
            Some("05dec960e24d918b8a73a1c53bcbbaac2ee5c2e0")
        );
        assert!(h.changes(&AssembleModule, &args).is_empty());
    }
}
