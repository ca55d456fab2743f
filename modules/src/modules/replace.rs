//! The `replace` module: every match of a regular expression in a file replaced, as
//! ansible-core 2.19's `replace.py`: `re.subn(re.compile(regexp, re.MULTILINE), replace, text)`
//! on the whole text, or on the part between the `after` and `before` patterns (compiled with
//! `re.DOTALL`, the first match of `after(?P<subsection>.*?)before`).
//!
//! Patterns are Python's `re` syntax; what Rust's `regex` cannot match exactly (look-around,
//! back-references inside a pattern, a non-multiline `$` in `after`/`before`, ...) is refused
//! when the task runs (see [`super::python_re`]). The replacement is Python's template
//! (`\1`, `\g<1>`, `\g<name>`). Files are UTF-8 (the only `encoding` accepted); a symlink at
//! `path` is refused, as for `lineinfile`.

use std::path::PathBuf;

use regex::Regex;

use super::lineinfile::{apply_edit, plan_edit, read_edited, with_attr_msg, FileAttrs};
use super::python_re::{self, Flags};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource};

pub struct ReplaceModule;

static SPEC: ArgSpec = ArgSpec {
    module: "replace",
    args: &[
        ArgDef::new("path", ArgType::Path)
            .aliases(&["dest", "destfile", "name"])
            .required(),
        ArgDef::new("regexp", ArgType::Str).required(),
        ArgDef::new("replace", ArgType::Str),
        ArgDef::new("after", ArgType::Str),
        ArgDef::new("before", ArgType::Str),
        ArgDef::new("backup", ArgType::Bool),
        ArgDef::new("validate", ArgType::Str),
        ArgDef::new("encoding", ArgType::Str),
        ArgDef::new("owner", ArgType::Str),
        ArgDef::new("group", ArgType::Str),
        ArgDef::new("mode", ArgType::Mode),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for ReplaceModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        if let Some(enc) = args.str("encoding") {
            let norm = enc.to_ascii_lowercase().replace(['-', '_'], "");
            if norm != "utf8" {
                return Err(ModuleError::new(format!(
                    "replace: encoding {enc} is not supported (only utf-8)"
                )));
            }
        }
        if let Some(v) = args.str("validate") {
            if !v.contains("%s") {
                return Err(ModuleError::new(format!("validate must contain %s: {v}")));
            }
        }
        let regexp = args.str("regexp").unwrap_or_default();
        let after = args.str("after").filter(|s| !s.is_empty());
        let before = args.str("before").filter(|s| !s.is_empty());
        // The section pattern, exactly as replace.py builds it.
        let section_pattern = match (&after, &before) {
            (Some(a), Some(b)) => Some(format!("{a}(?P<subsection>.*?){b}")),
            (Some(a), None) => Some(format!("{a}(?P<subsection>.*)")),
            (None, Some(b)) => Some(format!("(?P<subsection>.*){b}")),
            (None, None) => None,
        };
        let section = section_pattern
            .map(|p| {
                let dotall = Flags {
                    multiline: false,
                    dotall: true,
                };
                python_re::compile(&p, dotall).map(|re| (p, re))
            })
            .transpose()?;
        let multiline = Flags {
            multiline: true,
            dotall: false,
        };
        let re = python_re::compile(&regexp, multiline)?;
        Ok(Box::new(Replace {
            path: PathBuf::from(args.str("path").unwrap_or_default()),
            re,
            replace: args.str("replace").unwrap_or_default(),
            section,
            backup: args.bool_or("backup", false),
            validate: args.str("validate"),
            attrs: FileAttrs::from_args(args, ctx.host.ids())?,
        }))
    }
}

struct Replace {
    path: PathBuf,
    re: Regex,
    replace: String,
    /// The `after`/`before` pattern as written for Python, and compiled.
    section: Option<(String, Regex)>,
    backup: bool,
    validate: Option<String>,
    attrs: FileAttrs,
}

impl Resource for Replace {
    fn check(&self) -> Result<Check, ModuleError> {
        let p = self.path.display().to_string();
        let Some(current) = read_edited(&self.path)? else {
            let msg = format!("Path {p} does not exist !");
            let mut out = Outcome::default().with("rc", 257).with("msg", msg.clone());
            out.failed = Some(msg);
            return Ok(Check::new(Vec::new(), out));
        };
        let contents = std::str::from_utf8(&current.1).map_err(|e| {
            ModuleError::new(format!(
                "{p} is not valid UTF-8 ({e}): replace edits UTF-8 text"
            ))
        })?;
        let (start, end) = match &self.section {
            Some((pattern, re)) => match re.captures(contents).and_then(|c| c.name("subsection")) {
                Some(m) => (m.start(), m.end()),
                None => {
                    let msg = format!(
                        "Pattern for before/after params did not match the given file: {pattern}"
                    );
                    let out = Outcome::default().with("rc", 0).with("msg", msg);
                    return Ok(Check::new(Vec::new(), out));
                }
            },
            None => (0, contents.len()),
        };
        let section = &contents[start..end];
        let (replaced, count) = python_re_subn(&self.re, section, &self.replace)?;
        let new = (count > 0 && replaced != section)
            .then(|| format!("{}{replaced}{}", &contents[..start], &contents[end..]));
        let content_changed = new.is_some();
        let msg = if content_changed {
            format!("{count} replacements made")
        } else {
            String::new()
        };
        let (changes, attrs_changed) = plan_edit(
            &self.path,
            Some(&current),
            new.map(String::into_bytes),
            &self.attrs,
            self.backup,
            self.validate.as_deref(),
        )?;
        let msg = with_attr_msg(&msg, content_changed, attrs_changed);
        Ok(Check::new(
            changes,
            Outcome::default().with("rc", 0).with("msg", msg),
        ))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        apply_edit(check, "backup_file")
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.path.clone())]
    }
}

fn python_re_subn(re: &Regex, text: &str, repl: &str) -> Result<(String, usize), ModuleError> {
    crate::template::python_subn(re, text, repl)
        .map_err(|e| ModuleError::new(format!("Unable to process replace due to error: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};

    #[test]
    fn replaces_every_match_with_backrefs() {
        let h = Harness::new();
        let (c, t, m) = h.edit(
            &ReplaceModule,
            "f",
            Some("listen 80\nlisten 81\nother\n"),
            &[
                ("regexp", r"^listen (\d+)$"),
                ("replace", r"port \g<1> # \1"),
            ],
        );
        assert!(c);
        assert_eq!(t, "port 80 # 80\nport 81 # 81\nother\n");
        assert_eq!(m, "2 replacements made");
        // A match whose replacement is the same text changes nothing.
        let (c, _, m) = h.edit(
            &ReplaceModule,
            "f",
            Some("a\n"),
            &[("regexp", "a"), ("replace", "a")],
        );
        assert!(!c);
        assert_eq!(m, "");
    }

    #[test]
    fn after_and_before_limit_the_section() {
        let h = Harness::new();
        let init = "x=1\n# BEGIN\nx=1\nx=1\n# END\nx=1\n";
        let (c, t, m) = h.edit(
            &ReplaceModule,
            "f",
            Some(init),
            &[
                ("regexp", "^x=1"),
                ("replace", "x=2"),
                ("after", "# BEGIN"),
                ("before", "# END"),
            ],
        );
        assert!(c);
        assert_eq!(t, "x=1\n# BEGIN\nx=2\nx=2\n# END\nx=1\n");
        assert_eq!(m, "2 replacements made");
        let (c, t, m) = h.edit(
            &ReplaceModule,
            "f",
            Some(init),
            &[("regexp", "^x=1"), ("replace", "x=3"), ("after", "# END")],
        );
        assert!(c);
        assert_eq!(t, "x=1\n# BEGIN\nx=1\nx=1\n# END\nx=3\n");
        assert_eq!(m, "1 replacements made");
        let (c, _, m) = h.edit(
            &ReplaceModule,
            "f",
            Some(init),
            &[("regexp", "x"), ("replace", "y"), ("after", "NOPE")],
        );
        assert!(!c);
        assert_eq!(
            m,
            "Pattern for before/after params did not match the given file: NOPE(?P<subsection>.*)"
        );
    }

    #[test]
    fn refusals_and_missing_file() {
        let h = Harness::new();
        std::fs::write(h.h("f"), "a\n").unwrap();
        for (k, val) in [
            ("regexp", "a(?=b)"),
            ("regexp", r"(a)\1"),
            ("encoding", "latin-1"),
        ] {
            let mut args = vec![("path", v(&h.hs("f"))), ("regexp", v("a"))];
            args.retain(|(n, _)| *n != k);
            args.push((k, v(val)));
            assert!(h.run(&ReplaceModule, &args).is_err(), "{k}={val}");
        }
        let (_, out) = h
            .run(
                &ReplaceModule,
                &[("path", v(&h.hs("missing"))), ("regexp", v("a"))],
            )
            .unwrap();
        assert_eq!(
            out.failed,
            Some(format!("Path {} does not exist !", h.hs("missing")))
        );
        assert_eq!(std::fs::read_to_string(h.h("f")).unwrap(), "a\n");
    }
}
