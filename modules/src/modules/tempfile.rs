//! The `tempfile` module: a new temporary file (mode 0600) or directory (0700) named
//! `PREFIX` + 8 random characters + `SUFFIX`, in `path` or the temporary directory (`TMPDIR`,
//! `TEMP`, `TMP` — the task's `environment` first — else `/tmp`), as Python's
//! `mkstemp`/`mkdtemp`. Like Ansible it changes something on every run, and is skipped in check
//! mode (the module does not support it).

use std::path::{Path, PathBuf};

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::fsops;
use crate::resource::{
    Attrs, Change, Check, Module, ModuleContext, ModuleError, Outcome, Resource,
};

pub struct TempfileModule;

static SPEC: ArgSpec = ArgSpec {
    module: "tempfile",
    args: &[
        ArgDef::new("state", ArgType::Str).choices(&["file", "directory"]),
        ArgDef::new("path", ArgType::Path),
        ArgDef::new("prefix", ArgType::Str),
        ArgDef::new("suffix", ArgType::Str),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// Python's `tempfile._RandomNameSequence` alphabet.
const NAME_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";

fn random_name(prefix: &str, suffix: &str) -> String {
    let r: String = (0..8)
        .map(|_| NAME_CHARS[fastrand::usize(..NAME_CHARS.len())] as char)
        .collect();
    format!("{prefix}{r}{suffix}")
}

/// A valid file name component: what `os.path.basename` leaves unchanged.
fn is_component(s: &str) -> bool {
    !s.contains('/')
}

impl Module for TempfileModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let prefix = args.str("prefix").unwrap_or_else(|| "ansible.".into());
        let suffix = args.str("suffix").unwrap_or_default();
        let dir = match args.str("path") {
            Some(p) => PathBuf::from(p),
            None => {
                let from_task =
                    |k: &str| ctx.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                ["TMPDIR", "TEMP", "TMP"]
                    .iter()
                    .find_map(|k| from_task(k).or_else(|| std::env::var(k).ok()))
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/tmp"))
            }
        };
        Ok(Box::new(TempEntry {
            dir,
            prefix,
            suffix,
            directory: args.str("state").as_deref() == Some("directory"),
            host: ctx.host.clone(),
        }))
    }
}

struct TempEntry {
    dir: PathBuf,
    prefix: String,
    suffix: String,
    directory: bool,
    /// For the path facts of the result (owner and group names).
    host: std::sync::Arc<crate::resource::HostState>,
}

impl Resource for TempEntry {
    // Everything is checked in apply: in check mode Ansible does not run the module at all.
    fn check(&self) -> Result<Check, ModuleError> {
        // A name not taken now; creating it exclusively in apply catches a race.
        let path = loop {
            let p = self.dir.join(random_name(&self.prefix, &self.suffix));
            if fsops::lstat(&p).ok().flatten().is_none() {
                break p;
            }
        };
        let change = if self.directory {
            Change::CreateDir {
                path: path.clone(),
                attrs: Attrs {
                    mode: Some(0o700),
                    ..Attrs::default()
                },
            }
        } else {
            Change::Touch {
                path: path.clone(),
                create: true,
                attrs: Attrs {
                    mode: Some(0o600),
                    ..Attrs::default()
                },
            }
        };
        let out = Outcome::default().with("path", path.display().to_string());
        Ok(Check::new(vec![change], out))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        for (what, v) in [("prefix", &self.prefix), ("suffix", &self.suffix)] {
            if !is_component(v) {
                return Err(ModuleError::new(format!(
                    "{what} must be a valid file name component, got '{v}'"
                )));
            }
        }
        if !fsops::stat(&self.dir)?.is_some_and(|s| s.kind == fsops::Kind::Dir) {
            return Err(ModuleError::new(format!(
                "[Errno 2] No such file or directory: '{}'",
                self.dir.display()
            )));
        }
        let mut made = None;
        for change in &check.changes {
            match change {
                Change::Touch { path, .. } => {
                    create_new_file(path)?;
                    made = Some(path.clone());
                }
                Change::CreateDir { path, .. } => {
                    fsops::apply(change)?;
                    made = Some(path.clone());
                }
                other => {
                    fsops::apply(other)?;
                }
            }
        }
        let mut out = check.outcome;
        // As Ansible's exit_json adds them for a `path` result: state, mode, owner, size...
        if let Some(path) = made {
            fsops::path_facts_at(&mut out, &path, self.host.ids());
        }
        Ok(out)
    }

    fn supports_check_mode(&self) -> bool {
        false
    }
}

/// `mkstemp`: created exclusively, mode 0600 from the first moment.
fn create_new_file(path: &Path) -> Result<(), ModuleError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(|_| ())
        .map_err(|e| ModuleError::new(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_and_directory_every_time() {
        let h = Harness::new();
        let args = [
            ("path", v(&h.hs(""))),
            ("prefix", v("pre.")),
            ("suffix", v(".suf")),
        ];
        let (c, out) = h.run(&TempfileModule, &args).unwrap();
        assert!(c);
        let p = PathBuf::from(out.data["path"].as_str().unwrap());
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("pre.") && name.ends_with(".suf") && name.len() == 16);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Never idempotent: another one each run.
        let (c, out2) = h.run(&TempfileModule, &args).unwrap();
        assert!(c);
        assert_ne!(out.data["path"], out2.data["path"]);
        let (_, out) = h
            .run(
                &TempfileModule,
                &[("path", v(&h.hs(""))), ("state", v("directory"))],
            )
            .unwrap();
        let p = PathBuf::from(out.data["path"].as_str().unwrap());
        assert!(p.is_dir());
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let e = h.run(&TempfileModule, &[("prefix", v("a/b"))]).unwrap_err();
        assert!(e.0.contains("valid file name component"), "{e}");
    }
}
