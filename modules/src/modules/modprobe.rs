//! The `modprobe` module (`community.general.modprobe`), as its `modprobe.py`:
//!
//! - `state: present` loads the module (`modprobe NAME PARAMS...`) when `/proc/modules` (or
//!   the kernel's `modules.builtin`) does not list it; `absent` unloads it (`modprobe -r NAME`);
//! - `persistent: present` makes sure a line `NAME` is in a file of `/etc/modules-load.d`
//!   (else writes `NAME.conf`) and that the `options NAME KEY=VALUE` lines of `/etc/modprobe.d`
//!   are exactly `params` (else comments the old ones out and writes `NAME.conf`);
//!   `persistent: absent` comments those lines out. Files are rewritten as modprobe.py writes
//!   them (its lines joined with a newline: each commented file gets blank lines between lines).
//! - As modprobe.py, a load that succeeds without the module appearing (`modprobe` found
//!   nothing to do) is not a change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::systool::{exec, run_exec};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{
    Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};

pub struct ModprobeModule;

static SPEC: ArgSpec = ArgSpec {
    module: "modprobe",
    args: &[
        ArgDef::new("name", ArgType::Str).required(),
        ArgDef::new("state", ArgType::Str).choices(&["absent", "present"]),
        ArgDef::new("params", ArgType::Str),
        ArgDef::new("persistent", ArgType::Str).choices(&["disabled", "present", "absent"]),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone)]
struct Paths {
    proc_modules: PathBuf,
    builtin: PathBuf,
    modules_load: PathBuf,
    modprobe_d: PathBuf,
}

impl Paths {
    fn system() -> Paths {
        // platform.release(): the running kernel's release.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Paths {
            proc_modules: "/proc/modules".into(),
            builtin: Path::new("/lib/modules")
                .join(release)
                .join("modules.builtin"),
            modules_load: "/etc/modules-load.d".into(),
            modprobe_d: "/etc/modprobe.d".into(),
        }
    }
}

impl Module for ModprobeModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let params = args.str("params").unwrap_or_default();
        let split = crate::fsops::shlex_split(&params)
            .map_err(|e| ModuleError::new(format!("params: {e}")))?;
        Ok(Box::new(ModprobeResource {
            name: args.str("name").unwrap_or_default(),
            present: args.str("state").as_deref() != Some("absent"),
            params,
            params_argv: split,
            persistent: args.str("persistent").unwrap_or_else(|| "disabled".into()),
            paths: Paths::system(),
        }))
    }
}

struct ModprobeResource {
    name: String,
    present: bool,
    params: String,
    params_argv: Vec<String>,
    persistent: String,
    paths: Paths,
}

/// An I/O error as Python words it (`[Errno 2] No such file or directory: '/proc/modules'`).
fn python_io_error(e: &std::io::Error, path: &Path) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => {
            let desc = text
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&text);
            format!("[Errno {code}] {desc}: '{}'", path.display())
        }
        None => format!("{text}: '{}'", path.display()),
    }
}

/// `^ *NAME *(?:[#;].*)?\n?\Z`
fn is_module_line(line: &str, name: &str) -> bool {
    let l = line.strip_suffix('\n').unwrap_or(line);
    let Some(rest) = l.trim_start_matches(' ').strip_prefix(name) else {
        return false;
    };
    let rest = rest.trim_start_matches(' ');
    rest.is_empty() || rest.starts_with('#') || rest.starts_with(';')
}

/// `^options NAME (\w+=\S+) *(?:[#;].*)?\n?\Z`: the `KEY=VALUE` of a one-option line.
fn option_of_line<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let l = line.strip_suffix('\n').unwrap_or(line);
    let rest = l
        .strip_prefix("options ")?
        .strip_prefix(name)?
        .strip_prefix(' ')?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (kv, tail) = rest.split_at(end);
    let (key, value) = kv.split_once('=')?;
    let word = |c: char| c.is_alphanumeric() || c == '_';
    if key.is_empty() || !key.chars().all(word) || value.is_empty() {
        return None;
    }
    // `\S+` is greedy: a `#` glued to the value belongs to it.
    let tail = tail.trim_start_matches(' ');
    (tail.is_empty() || tail.starts_with('#') || tail.starts_with(';')).then_some(kv)
}

/// The regular files of a directory (none if it is not one).
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, ModuleError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// A file whose matching lines are commented out, written as modprobe.py writes it (the lines,
/// which keep their newline, joined with another). `None` if nothing matches.
fn comment_out(text: &str, matches: impl Fn(&str) -> bool) -> Option<String> {
    let mut hit = false;
    let lines: Vec<String> = text
        .split_inclusive('\n')
        .map(|l| {
            if matches(l) {
                hit = true;
                format!("#{l}")
            } else {
                l.to_string()
            }
        })
        .collect();
    hit.then(|| lines.join("\n"))
}

fn write(path: PathBuf, content: String, before: Option<String>) -> Change {
    Change::WriteFile {
        path,
        content: Arc::from(content.into_bytes()),
        before: before.map(|b| Arc::from(b.into_bytes())),
        attrs: Default::default(),
        backup: false,
        validate: None,
    }
}

impl ModprobeResource {
    fn loaded(&self) -> Result<bool, ModuleError> {
        let fail = |e: std::io::Error, p: &Path| ModuleError::new(python_io_error(&e, p));
        let prefix = format!("{} ", self.name.replace('-', "_"));
        let modules = std::fs::read_to_string(&self.paths.proc_modules)
            .map_err(|e| fail(e, &self.paths.proc_modules))?;
        if modules.lines().any(|l| l.starts_with(&prefix)) {
            return Ok(true);
        }
        let ko = format!("/{}.ko", self.name);
        let builtin = std::fs::read_to_string(&self.paths.builtin)
            .map_err(|e| fail(e, &self.paths.builtin))?;
        Ok(builtin.lines().any(|l| l.trim_end().ends_with(&ko)))
    }

    fn read_all(&self, dir: &Path) -> Result<Vec<(PathBuf, String)>, ModuleError> {
        files_in(dir)?
            .into_iter()
            .map(|p| {
                let t = std::fs::read_to_string(&p)?;
                Ok((p, t))
            })
            .collect()
    }

    fn persistent_changes(&self) -> Result<Vec<Change>, ModuleError> {
        let name = self.name.as_str();
        let loads = self.read_all(&self.paths.modules_load)?;
        let opts = self.read_all(&self.paths.modprobe_d)?;
        let listed = loads
            .iter()
            .any(|(_, t)| t.split_inclusive('\n').any(|l| is_module_line(l, name)));
        let permanent: std::collections::BTreeSet<&str> = opts
            .iter()
            .flat_map(|(_, t)| {
                t.split_inclusive('\n')
                    .filter_map(|l| option_of_line(l, name))
            })
            .collect();
        let wanted: std::collections::BTreeSet<&str> = self.params.split_whitespace().collect();
        let comment_options = || {
            opts.iter().filter_map(|(p, t)| {
                comment_out(t, |l| option_of_line(l, name).is_some())
                    .map(|new| write(p.clone(), new, Some(t.clone())))
            })
        };
        let mut changes = Vec::new();
        match self.persistent.as_str() {
            "present" => {
                if !listed {
                    changes.push(write(
                        self.paths.modules_load.join(format!("{name}.conf")),
                        format!("{name}\n"),
                        None,
                    ));
                }
                if permanent != wanted {
                    changes.extend(comment_options());
                    let content: Vec<String> = self
                        .params
                        .split_whitespace()
                        .map(|p| format!("options {name} {p}"))
                        .collect();
                    let path = self.paths.modprobe_d.join(format!("{name}.conf"));
                    let before = std::fs::read_to_string(&path).ok();
                    changes.push(write(path, content.join("\n") + "\n", before));
                }
            }
            "absent" => {
                for (p, t) in &loads {
                    if let Some(new) = comment_out(t, |l| is_module_line(l, name)) {
                        changes.push(write(p.clone(), new, Some(t.clone())));
                    }
                }
                changes.extend(comment_options());
            }
            _ => {}
        }
        Ok(changes)
    }

    fn outcome(&self) -> Outcome {
        Outcome::default()
            .with("name", self.name.clone())
            .with("params", self.params.clone())
            .with("state", if self.present { "present" } else { "absent" })
    }
}

impl Resource for ModprobeResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let loaded = self.loaded()?;
        let mut changes = Vec::new();
        if self.present && !loaded {
            let mut argv = vec!["modprobe".to_string(), self.name.clone()];
            argv.extend(self.params_argv.iter().cloned());
            changes.push(exec(&argv, format!("load kernel module {}", self.name)));
        } else if !self.present && loaded {
            changes.push(exec(
                &["modprobe", "-r", &self.name],
                format!("unload kernel module {}", self.name),
            ));
        }
        changes.extend(self.persistent_changes()?);
        Ok(Check::new(changes, self.outcome()))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let mut out = check.outcome;
        let mut changed = false;
        for change in &check.changes {
            if let Change::Exec { argv, .. } = change {
                let ran = run_exec(change)?;
                if !ran.ok() {
                    return Err(ModuleError::new(ran.stderr));
                }
                // A load that left the module absent changed nothing (modprobe.py).
                changed |= argv.get(1).map(String::as_str) == Some("-r") || self.loaded()?;
            } else {
                crate::fsops::apply(change)?;
                changed = true;
            }
        }
        out.changed = Some(changed);
        Ok(out)
    }

    fn owns(&self) -> Vec<Owned> {
        if self.persistent == "disabled" {
            return Vec::new();
        }
        vec![
            Owned::Path(self.paths.modules_load.join(format!("{}.conf", self.name))),
            Owned::Path(self.paths.modprobe_d.join(format!("{}.conf", self.name))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(d: &Path, persistent: &str, params: &str) -> ModprobeResource {
        std::fs::create_dir_all(d.join("load")).unwrap();
        std::fs::create_dir_all(d.join("opts")).unwrap();
        std::fs::write(d.join("modules"), "dummy 16384 0 - Live 0x0\n").unwrap();
        std::fs::write(d.join("builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        ModprobeResource {
            name: "dummy".into(),
            present: true,
            params: params.into(),
            params_argv: params.split_whitespace().map(str::to_string).collect(),
            persistent: persistent.into(),
            paths: Paths {
                proc_modules: d.join("modules"),
                builtin: d.join("builtin"),
                modules_load: d.join("load"),
                modprobe_d: d.join("opts"),
            },
        }
    }

    #[test]
    fn io_errors_read_as_python_s() {
        let d = tempfile::tempdir().unwrap();
        let mut r = resource(d.path(), "disabled", "");
        r.paths.proc_modules = d.path().join("none");
        assert_eq!(
            r.check().unwrap_err().0,
            format!(
                "[Errno 2] No such file or directory: '{}'",
                d.path().join("none").display()
            )
        );
    }

    #[test]
    fn line_patterns() {
        assert!(is_module_line("  dummy  # x\n", "dummy"));
        assert!(!is_module_line("dummy2\n", "dummy"));
        assert_eq!(
            option_of_line("options dummy numdummies=2\n", "dummy"),
            Some("numdummies=2")
        );
        assert_eq!(option_of_line("options dummy a=1 b=2\n", "dummy"), None);
        assert_eq!(
            option_of_line("options dummy a=1 ;c\n", "dummy"),
            Some("a=1")
        );
    }

    #[test]
    fn loaded_or_builtin_means_nothing_to_load() {
        let d = tempfile::tempdir().unwrap();
        let r = resource(d.path(), "disabled", "");
        assert!(r.check().unwrap().changes.is_empty());
        let mut r = resource(d.path(), "disabled", "");
        r.name = "ext4".into();
        assert!(r.check().unwrap().changes.is_empty());
        r.name = "gatest-none".into();
        let c = r.check().unwrap();
        assert_eq!(c.changes.len(), 1);
        assert_eq!(c.changes[0].describe(), "load kernel module gatest-none");
    }

    #[test]
    fn persistent_files_as_modprobe_py() {
        let d = tempfile::tempdir().unwrap();
        let r = resource(d.path(), "present", "numdummies=2");
        std::fs::write(
            d.path().join("opts/old.conf"),
            "options dummy numdummies=1\nalias x y\n",
        )
        .unwrap();
        let c = r.check().unwrap();
        assert_eq!(c.changes.len(), 3);
        let out = r.apply(c).unwrap();
        assert_eq!(out.changed, Some(true));
        assert_eq!(
            std::fs::read_to_string(d.path().join("load/dummy.conf")).unwrap(),
            "dummy\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("opts/dummy.conf")).unwrap(),
            "options dummy numdummies=2\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("opts/old.conf")).unwrap(),
            "#options dummy numdummies=1\n\nalias x y\n"
        );
        assert!(r.check().unwrap().changes.is_empty(), "idempotent");
        let r = resource(d.path(), "absent", "");
        let c = r.check().unwrap();
        assert_eq!(c.changes.len(), 2);
        r.apply(c).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("load/dummy.conf")).unwrap(),
            "#dummy\n"
        );
        assert!(r.check().unwrap().changes.is_empty());
    }
}
