//! The `script` module: a script of the repository (`files/`, searched as `copy`'s `src`)
//! copied to a temporary file and run, as Ansible's `script` action plugin does.
//!
//! Kept from Ansible: the command line (free form or `cmd`) is split like `shlex.split`, its
//! first word names the script; every occurrence of that word in the line is replaced by the
//! temporary copy (mode u+x) and the line runs through `/bin/sh -c`, after `executable` if given,
//! in `chdir` (which must be absolute); the task's `environment` applies. `creates`/`removes`
//! (plain paths, no globs) skip the task with "<path> exists, matching creates option" / "<path>
//! does not exist, matching removes option". Check mode: changed without running when `creates`
//! or `removes` is given, else skipped. Always `changed`; a non-zero exit fails with "non-zero
//! return code"; results `rc`, `stdout`, `stdout_lines`, `stderr`, `stderr_lines`. Refused:
//! `decrypt` (vault-encrypted scripts are not read).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::fsops::shlex_split;
use crate::resource::{Change, Check, Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct ScriptModule;

static SPEC: ArgSpec = ArgSpec {
    module: "script",
    args: &[
        ArgDef::new("cmd", ArgType::Str),
        ArgDef::new("creates", ArgType::Str),
        ArgDef::new("removes", ArgType::Str),
        ArgDef::new("chdir", ArgType::Str),
        ArgDef::new("executable", ArgType::Str),
    ],
    free_form: true,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for ScriptModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let free = args.raw_params().filter(|s| !s.trim().is_empty());
        let line = match (free, args.str("cmd")) {
            (Some(_), Some(_)) => {
                return Err(ModuleError::new(
                    "parameters are mutually exclusive: _raw_params|cmd",
                ))
            }
            (Some(l), None) | (None, Some(l)) => l,
            (None, None) => {
                return Err(ModuleError::new(
                    "one of the following is required: _raw_params, cmd",
                ))
            }
        };
        let words = shlex_split(line.trim()).map_err(ModuleError::new)?;
        let Some(first) = words.first().cloned() else {
            return Err(ModuleError::new("script needs a script to run"));
        };
        // Found at run time, after creates/removes (a skipped task does not need it).
        let script = super::copy::find_source(ctx, "files", &first).and_then(|(path, _)| {
            ctx.source
                .read(&path)
                .map_err(|e| ModuleError::new(e.to_string()))?
                .ok_or_else(|| ModuleError::new(format!("Could not find or access '{first}'")))
        });
        Ok(Box::new(Script {
            line: line.trim().to_string(),
            first,
            script: script.map(|b| b.to_vec()),
            creates: args.str("creates"),
            removes: args.str("removes"),
            chdir: args.str("chdir"),
            executable: args.str("executable"),
            env: ctx.env.to_vec(),
        }))
    }
}

struct Script {
    line: String,
    /// The script as named in the line.
    first: String,
    script: Result<Vec<u8>, ModuleError>,
    creates: Option<String>,
    removes: Option<String>,
    chdir: Option<String>,
    executable: Option<String>,
    env: Vec<(String, String)>,
}

fn skipped(msg: String) -> Check {
    let mut out = Outcome::default().with("msg", msg);
    out.skipped = true;
    out.changed = Some(false);
    Check::new(Vec::new(), out)
}

impl Resource for Script {
    fn check(&self) -> Result<Check, ModuleError> {
        if let Some(c) = self.creates.as_deref().filter(|c| !c.is_empty()) {
            if std::fs::symlink_metadata(c).is_ok() {
                return Ok(skipped(format!("{c} exists, matching creates option")));
            }
        }
        if let Some(r) = self.removes.as_deref().filter(|r| !r.is_empty()) {
            if std::fs::symlink_metadata(r).is_err() {
                return Ok(skipped(format!(
                    "{r} does not exist, matching removes option"
                )));
            }
        }
        if let Some(d) = self.chdir.as_deref().filter(|d| !d.is_empty()) {
            if !d.starts_with('/') {
                return Err(ModuleError::new(format!(
                    "chdir {d} must be an absolute path for a Unix-aware remote node"
                )));
            }
        }
        if let Err(e) = &self.script {
            return Err(e.clone());
        }
        Ok(Check::new(
            vec![Change::Run {
                command: self.line.clone(),
            }],
            Outcome::default(),
        ))
    }

    fn supports_check_mode(&self) -> bool {
        // As Ansible: with creates/removes, check mode reports changed; without, skipped.
        self.creates.is_some() || self.removes.is_some()
    }

    fn apply(&self, _check: Check) -> Result<Outcome, ModuleError> {
        let content = self.script.as_ref().map_err(Clone::clone)?;
        let dir = tempfile::Builder::new().prefix("ansible-tmp-").tempdir()?;
        let base = std::path::Path::new(&self.first)
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "script".into());
        let copy: PathBuf = dir.path().join(base);
        std::fs::write(&copy, content)?;
        // `_fixup_perms2(execute=True)`: u+x on the copy.
        let mode = std::fs::metadata(&copy)?.permissions().mode();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(mode | 0o100))?;
        let target = self.line.replace(&self.first, &copy.display().to_string());
        let line = match &self.executable {
            Some(e) => format!("{e} {target}"),
            None => target,
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(&line);
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(d) = self.chdir.as_deref().filter(|d| !d.is_empty()) {
            cmd.current_dir(d);
        }
        Ok(super::raw::low_level_execute(&mut cmd, "/bin/sh"))
    }
}
