//! The `locale_gen` module (`community.general.locale_gen`), as its `locale_gen.py` with the
//! `glibc` mechanism (Debian, and Ubuntu with `/etc/locale.gen`):
//!
//! - every name must be listed in `/usr/share/i18n/SUPPORTED` (commented or not) or already
//!   generated (`locale -a`);
//! - the names are present when all of them are in `locale -a` (encodings compared as
//!   `.utf8` = `.UTF-8`, ...); nothing is done when that matches `state`;
//! - otherwise each name's line of `/etc/locale.gen` is uncommented (`present`) or commented
//!   (`# NAME CHARSET`, `absent`) and `locale-gen` runs.
//!
//! Refused: the deprecated `ubuntu_legacy` mechanism (no `/etc/locale.gen`, only
//! `/var/lib/locales/supported.d`). Unlike Ansible, check mode reports the change it would
//! make (the collection's module reports none in check mode).

use std::path::PathBuf;
use std::sync::Arc;

use minijinja::Value;

use super::systool::{exec, query, run_exec};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{
    Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};

pub struct LocaleGenModule;

static SPEC: ArgSpec = ArgSpec {
    module: "locale_gen",
    args: &[
        ArgDef::new("name", ArgType::List).required(),
        ArgDef::new("state", ArgType::Str).choices(&["absent", "present"]),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

const LOCALE_NORMALIZATION: &[(&str, &str)] = &[
    (".utf8", ".UTF-8"),
    (".eucjp", ".EUC-JP"),
    (".iso885915", ".ISO-8859-15"),
    (".cp1251", ".CP1251"),
    (".koi8r", ".KOI8-R"),
    (".armscii8", ".ARMSCII-8"),
    (".euckr", ".EUC-KR"),
    (".gbk", ".GBK"),
    (".gb18030", ".GB18030"),
    (".euctw", ".EUC-TW"),
];

#[derive(Debug, Clone)]
struct Files {
    locale_gen: PathBuf,
    legacy: PathBuf,
    supported: PathBuf,
}

impl Module for LocaleGenModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        Ok(Box::new(LocaleGenResource {
            names: args.list_str("name").unwrap_or_default(),
            present: args.str("state").as_deref() != Some("absent"),
            files: Files {
                locale_gen: "/etc/locale.gen".into(),
                legacy: "/var/lib/locales/supported.d".into(),
                supported: "/usr/share/i18n/SUPPORTED".into(),
            },
            locale_a: vec!["locale".into(), "-a".into()],
        }))
    }
}

struct LocaleGenResource {
    names: Vec<String>,
    present: bool,
    files: Files,
    /// The command listing generated locales (`locale -a`).
    locale_a: Vec<String>,
}

fn fix_case(name: &str) -> String {
    LOCALE_NORMALIZATION
        .iter()
        .fold(name.to_string(), |n, (s, r)| n.replace(s, r))
}

/// The `locale` group of `^\s*#?\s*(?P<locale>\S+[\._\S]+) (?P<charset>\S+)\s*$`.
fn supported_locale(line: &str) -> Option<&str> {
    let l = line.trim_start();
    let l = l.strip_prefix('#').unwrap_or(l).trim_start();
    let body = l.trim_end();
    // Exactly one space between two words (the locale has at least 2 characters).
    let (locale, charset) = body.split_once(' ')?;
    let ok = locale.chars().count() >= 2
        && !locale.chars().any(char::is_whitespace)
        && !charset.is_empty()
        && !charset.chars().any(char::is_whitespace);
    ok.then_some(locale)
}

/// `set_locale_glibc`: each name's line (`^#?\s*NAME (CHARSET)`) becomes `NAME CHARSET` or
/// `# NAME CHARSET`.
fn set_lines(text: &str, names: &[String], enabled: bool) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let mut line = line.to_string();
        for name in names {
            let rest = line.strip_prefix('#').unwrap_or(&line).trim_start();
            let Some(after) = rest
                .strip_prefix(name.as_str())
                .and_then(|r| r.strip_prefix(' '))
            else {
                continue;
            };
            // `.+` needs one character that is not a newline.
            let (charset, end) = match after.strip_suffix('\n') {
                Some(c) => (c, "\n"),
                None => (after, ""),
            };
            if charset.is_empty() {
                continue;
            }
            let prefix = if enabled { "" } else { "# " };
            line = format!("{prefix}{name} {charset}{end}");
        }
        out.push_str(&line);
    }
    out
}

impl LocaleGenResource {
    fn generated(&self) -> Result<Vec<String>, ModuleError> {
        let ran = query(&self.locale_a)?;
        if !ran.ok() {
            return Err(ModuleError::new(ran.failure()));
        }
        Ok(ran.stdout.lines().map(fix_case).collect())
    }

    fn not_present<'a>(&self, names: &'a [String], generated: &[String]) -> Vec<&'a String> {
        names
            .iter()
            .filter(|n| !generated.contains(&fix_case(n)))
            .collect()
    }

    fn outcome(&self) -> Outcome {
        Outcome::default().with(
            "name",
            Value::from_iter(self.names.iter().map(|n| Value::from(n.as_str()))),
        )
    }
}

impl Resource for LocaleGenResource {
    fn check(&self) -> Result<Check, ModuleError> {
        if !self.files.locale_gen.exists() {
            if self.files.legacy.exists() {
                return Err(ModuleError::new(
                    "locale_gen: the ubuntu_legacy mechanism (no /etc/locale.gen) is not \
                     supported by the agent",
                ));
            }
            return Err(ModuleError::new(format!(
                "{} and {} are missing. Is the package \"locales\" installed?",
                self.files.legacy.display(),
                self.files.locale_gen.display()
            )));
        }
        let supported = std::fs::read_to_string(&self.files.supported)
            .map_err(|e| ModuleError::new(format!("{}: {e}", self.files.supported.display())))?;
        let listed: Vec<&str> = supported.lines().filter_map(supported_locale).collect();
        let generated = self.generated()?;
        let unlisted: Vec<String> = self
            .names
            .iter()
            .filter(|n| !listed.contains(&n.as_str()))
            .cloned()
            .collect();
        let unavailable = self.not_present(&unlisted, &generated);
        if !unavailable.is_empty() {
            let names: Vec<&str> = unavailable.iter().map(|s| s.as_str()).collect();
            return Err(ModuleError::new(format!(
                "The following locales you have entered are not available on your system: {}",
                names.join(", ")
            )));
        }
        let is_present = self.not_present(&self.names, &generated).is_empty();
        let mut changes = Vec::new();
        if is_present != self.present {
            let old = std::fs::read(&self.files.locale_gen)?;
            let text = String::from_utf8_lossy(&old).into_owned();
            let new = set_lines(&text, &self.names, self.present);
            if new.as_bytes() != old.as_slice() {
                changes.push(Change::WriteFile {
                    path: self.files.locale_gen.clone(),
                    content: Arc::from(new.into_bytes()),
                    before: Some(Arc::from(old)),
                    attrs: Default::default(),
                    backup: false,
                    validate: None,
                });
            }
            changes.push(exec(&["locale-gen"], "locale-gen"));
        }
        Ok(Check::new(changes, self.outcome()))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        for change in &check.changes {
            match change {
                Change::Exec { .. } => {
                    let ran = run_exec(change)?;
                    if !ran.ok() {
                        return Err(ModuleError::new(ran.failure()));
                    }
                }
                other => {
                    crate::fsops::apply(other)?;
                }
            }
        }
        // Changed only if the state did change (locale-gen may not have generated them).
        let now = self.not_present(&self.names, &self.generated()?).is_empty();
        let mut out = check.outcome;
        out.changed = Some(now == self.present);
        Ok(out)
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.files.locale_gen.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_lines() {
        assert_eq!(supported_locale("en_US.UTF-8 UTF-8"), Some("en_US.UTF-8"));
        assert_eq!(supported_locale("# de_DE ISO-8859-1"), Some("de_DE"));
        assert_eq!(
            supported_locale("#  fr_FR@euro ISO-8859-15\n"),
            Some("fr_FR@euro")
        );
        assert_eq!(supported_locale("# comment with words"), None);
        assert_eq!(supported_locale(""), None);
    }

    #[test]
    fn comments_and_uncomments_lines() {
        let text = "# en_US.UTF-8 UTF-8\n# en_US ISO-8859-1\nde_DE.UTF-8 UTF-8\n";
        let names = vec!["en_US.UTF-8".to_string()];
        assert_eq!(
            set_lines(text, &names, true),
            "en_US.UTF-8 UTF-8\n# en_US ISO-8859-1\nde_DE.UTF-8 UTF-8\n"
        );
        let names = vec!["de_DE.UTF-8".to_string()];
        assert_eq!(
            set_lines(text, &names, false),
            "# en_US.UTF-8 UTF-8\n# en_US ISO-8859-1\n# de_DE.UTF-8 UTF-8\n"
        );
        assert_eq!(fix_case("en_US.utf8"), "en_US.UTF-8");
    }

    #[test]
    fn plans_edit_and_locale_gen_only_when_state_differs() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n);
        std::fs::write(p("locale.gen"), "# en_US.UTF-8 UTF-8\n").unwrap();
        std::fs::write(p("SUPPORTED"), "en_US.UTF-8 UTF-8\nC.UTF-8 UTF-8\n").unwrap();
        let r = |names: &[&str], present: bool| LocaleGenResource {
            names: names.iter().map(|s| s.to_string()).collect(),
            present,
            files: Files {
                locale_gen: p("locale.gen"),
                legacy: p("legacy"),
                supported: p("SUPPORTED"),
            },
            locale_a: vec!["printf".into(), "C\\nC.utf8\\nPOSIX\\n".into()],
        };
        assert!(r(&["C.UTF-8"], true).check().unwrap().changes.is_empty());
        let c = r(&["en_US.UTF-8"], true).check().unwrap();
        let what: Vec<String> = c.changes.iter().map(|c| c.describe()).collect();
        assert_eq!(
            what,
            [
                format!("update {}", p("locale.gen").display()),
                "locale-gen".into()
            ]
        );
        assert!(r(&["en_US.UTF-8"], false)
            .check()
            .unwrap()
            .changes
            .is_empty());
        let e = r(&["xx_YY"], true).check().unwrap_err();
        assert_eq!(
            e.0,
            "The following locales you have entered are not available on your system: xx_YY"
        );
    }
}
