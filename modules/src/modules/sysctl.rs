//! The `sysctl` module (ansible.posix, also by its short name): a kernel parameter in a sysctl
//! file and, with `sysctl_set`, in the running kernel, with ansible.posix's `sysctl.py` logic
//! for Linux: the file rewritten as that module rewrites it (every `key=value` line normalised,
//! later duplicates of a key dropped), the live value read from `/proc/sys` (what `sysctl -e -n`
//! prints), set with `sysctl -w`, and the file loaded with `sysctl -p FILE` when `reload`
//! (the default) and something changed.
//!
//! Like Ansible, a symlink at `sysctl_file` is followed (the module writes to the file's real
//! path: Debian's `/etc/sysctl.d/99-sysctl.conf` is a link to `/etc/sysctl.conf`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::fsops::{self, Current};
use crate::resource::{
    Attrs, Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};

pub struct SysctlModule;

static SPEC: ArgSpec = ArgSpec {
    module: "sysctl",
    args: &[
        ArgDef::new("name", ArgType::Str)
            .aliases(&["key"])
            .required(),
        ArgDef::new("value", ArgType::Str).aliases(&["val"]),
        ArgDef::new("state", ArgType::Str).choices(&["present", "absent"]),
        ArgDef::new("reload", ArgType::Bool),
        ArgDef::new("sysctl_set", ArgType::Bool),
        ArgDef::new("ignoreerrors", ArgType::Bool),
        ArgDef::new("sysctl_file", ArgType::Path),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// `_parse_value`: Ansible's boolean words are `1`/`0`, anything else is stripped.
fn parse_value(v: Option<String>) -> String {
    let Some(v) = v else { return String::new() };
    match v.to_lowercase().as_str() {
        "y" | "yes" | "on" | "1" | "true" | "t" => "1".into(),
        "n" | "no" | "off" | "0" | "false" | "f" => "0".into(),
        _ => v.trim().to_string(),
    }
}

/// `_values_is_equal`: the same whitespace-separated words.
fn values_equal(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.split_whitespace().eq(b.split_whitespace()))
}

impl Module for SysctlModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let present = args.str("state").as_deref() != Some("absent");
        let name = args.str("name").unwrap_or_default();
        let raw_value = args.str("value");
        if present && raw_value.is_none() {
            return Err(ModuleError::new("value cannot be None"));
        }
        if name.is_empty() {
            return Err(ModuleError::new("name cannot be blank"));
        }
        if present && raw_value.as_deref() == Some("") {
            return Err(ModuleError::new("value cannot be blank"));
        }
        let file = args
            .str("sysctl_file")
            .unwrap_or_else(|| "/etc/sysctl.conf".into());
        Ok(Box::new(Sysctl {
            name: name.trim().to_string(),
            value: parse_value(raw_value),
            present,
            reload: args.bool_or("reload", true),
            sysctl_set: args.bool_or("sysctl_set", false),
            ignoreerrors: args.bool_or("ignoreerrors", false),
            file: PathBuf::from(file),
            proc_root: PathBuf::from("/proc/sys"),
        }))
    }
}

struct Sysctl {
    name: String,
    value: String,
    present: bool,
    reload: bool,
    sysctl_set: bool,
    ignoreerrors: bool,
    file: PathBuf,
    /// `/proc/sys` (another directory in tests).
    proc_root: PathBuf,
}

/// A `key=value` line of a sysctl file, as `sysctl.py` splits it (on stripped lines).
fn key_value(line: &str) -> Option<(&str, &str)> {
    if line.is_empty() || line.starts_with(['#', ';']) {
        return None;
    }
    let (k, v) = line.split_once('=')?;
    Some((k.trim(), v.trim()))
}

impl Sysctl {
    /// What `sysctl -e -n NAME` prints, read from `/proc/sys` (`.` and `/` swap, as procps
    /// does): `Some("")` for a key the kernel does not have, `None` when it cannot be read.
    fn live_value(&self) -> Option<String> {
        let rel: String = self
            .name
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect();
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return None;
        }
        match std::fs::read(self.proc_root.join(rel)) {
            Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(String::new()),
            Err(_) => None,
        }
    }

    /// `fix_lines()`: the file's lines, stripped, each `key=value` normalised, later
    /// duplicates dropped, this key set (or dropped) in place or appended.
    fn fixed(&self, lines: &[String]) -> Vec<String> {
        let mut checked: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for line in lines {
            let Some((k, v)) = key_value(line) else {
                out.push(line.clone());
                continue;
            };
            if checked.contains(&k) {
                continue;
            }
            checked.push(k);
            if k == self.name {
                if self.present {
                    out.push(format!("{k}={}", self.value));
                }
            } else {
                out.push(format!("{k}={v}"));
            }
        }
        if self.present && !checked.contains(&self.name.as_str()) {
            out.push(format!("{}={}", self.name, self.value));
        }
        out
    }

    fn sysctl_argv(&self, rest: &[&str]) -> Vec<String> {
        let mut argv = vec!["sysctl".to_string()];
        if self.ignoreerrors {
            argv.push("-e".into());
        }
        argv.extend(rest.iter().map(|s| s.to_string()));
        argv
    }
}

/// The file a sysctl file path names: its real path when it is a symlink (as `sysctl.py`).
fn real_file(path: &Path) -> Result<PathBuf, ModuleError> {
    match fsops::lstat(path)? {
        Some(st) if st.kind == fsops::Kind::Symlink => std::fs::canonicalize(path)
            .map_err(|e| ModuleError::new(format!("cannot resolve {}: {e}", path.display()))),
        _ => Ok(path.to_path_buf()),
    }
}

/// `_stderr_failed`: errors `sysctl` reports with a zero exit status.
fn stderr_failed(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        l.strip_prefix("sysctl: setting key \"").is_some_and(|r| {
            r.split_once("\": ").is_some_and(|(key, why)| {
                !key.contains('"')
                    && !key.is_empty()
                    && (why == "Invalid argument" || why == "Read-only file system")
            })
        })
    })
}

impl Resource for Sysctl {
    fn check(&self) -> Result<Check, ModuleError> {
        let proc_value = self.live_value();
        let file = real_file(&self.file)?;
        let current = match fsops::read_current(&file)? {
            Current::File(st, bytes) => Some((st, bytes)),
            _ => None,
        };
        let text = match &current {
            Some((_, b)) => String::from_utf8(b.clone()).map_err(|e| {
                ModuleError::new(format!("{} is not valid UTF-8: {e}", file.display()))
            })?,
            None => String::new(),
        };
        // readlines() with universal newlines, each line stripped.
        let lines: Vec<String> = text
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .split_inclusive('\n')
            .map(|l| l.trim().to_string())
            .collect();
        let mut file_value: Option<&str> = None;
        for l in &lines {
            if let Some((k, v)) = key_value(l) {
                if k == self.name {
                    file_value = Some(v);
                }
            }
        }
        let (mut changed, mut write, mut set) = (false, false, false);
        match (file_value, self.present) {
            (None, true) => (changed, write) = (true, true),
            (None, false) => {}
            (Some(v), false) if !v.is_empty() => (changed, write) = (true, true),
            (Some(v), _) if v != self.value => (changed, write) = (true, true),
            _ if self.reload => changed = !values_equal(proc_value.as_deref(), &self.value),
            _ => {}
        }
        if self.sysctl_set && self.present {
            if proc_value.is_none() {
                changed = true;
            } else if !values_equal(proc_value.as_deref(), &self.value) {
                changed = true;
                set = true;
            }
        }
        let mut changes = Vec::new();
        if set {
            let assignment = format!("{}={}", self.name, self.value);
            changes.push(Change::Exec {
                argv: self.sysctl_argv(&["-w", &assignment]),
                summary: format!("sysctl -w {assignment}"),
            });
        }
        if write {
            let content: String = self
                .fixed(&lines)
                .iter()
                .map(|l| format!("{}\n", l.trim()))
                .collect();
            changes.push(Change::WriteFile {
                path: file.clone(),
                content: Arc::from(content.into_bytes()),
                before: current.as_ref().map(|(_, b)| Arc::from(b.as_slice())),
                attrs: Attrs::default(),
                backup: false,
                validate: None,
            });
        }
        if changed && self.reload {
            let f = self.file.display().to_string();
            changes.push(Change::Exec {
                argv: self.sysctl_argv(&["-p", &f]),
                summary: format!("sysctl -p {f}"),
            });
        }
        let mut out = Outcome::default();
        if changed && changes.is_empty() {
            // A live value that cannot be read counts as a change with nothing to run, as in
            // sysctl.py.
            out.changed = Some(true);
        }
        Ok(Check::new(changes, out))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        for change in &check.changes {
            match change {
                Change::Exec { argv, .. } => {
                    let ran = change.exec().map_err(|e| {
                        let what = if argv.iter().any(|a| a == "-p") {
                            "Failed to reload sysctl".to_string()
                        } else {
                            format!("setting {} failed", self.name)
                        };
                        ModuleError::new(format!("{what}: {e}"))
                    })?;
                    if stderr_failed(&ran.stderr) {
                        return Err(ModuleError::new(format!(
                            "sysctl failed: {}{}",
                            ran.stdout, ran.stderr
                        )));
                    }
                }
                other => {
                    fsops::apply(other)?;
                }
            }
        }
        Ok(check.outcome)
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.file.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysctl(dir: &Path, name: &str, value: &str, present: bool) -> Sysctl {
        Sysctl {
            name: name.into(),
            value: parse_value(Some(value.into())),
            present,
            reload: false,
            sysctl_set: true,
            ignoreerrors: false,
            file: dir.join("sysctl.conf"),
            proc_root: dir.join("proc"),
        }
    }

    #[test]
    fn file_rewrite_and_live_value() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("proc/net/ipv4")).unwrap();
        std::fs::write(d.path().join("proc/net/ipv4/ip_forward"), "0\n").unwrap();
        std::fs::write(
            d.path().join("sysctl.conf"),
            "# comment\n net.ipv4.ip_forward = 0\nvm.swappiness = 10\nvm.swappiness=20\n",
        )
        .unwrap();
        let s = sysctl(d.path(), "net.ipv4.ip_forward", "yes", true);
        let c = s.check().unwrap();
        assert_eq!(c.changes.len(), 2, "{:?}", c.changes);
        assert!(matches!(&c.changes[0], Change::Exec { argv, .. }
            if argv == &["sysctl", "-w", "net.ipv4.ip_forward=1"]));
        let Change::WriteFile { content, .. } = &c.changes[1] else {
            panic!("{:?}", c.changes)
        };
        assert_eq!(
            std::str::from_utf8(content).unwrap(),
            "# comment\nnet.ipv4.ip_forward=1\nvm.swappiness=10\n"
        );
        // In the file and live: nothing to do.
        std::fs::write(d.path().join("proc/net/ipv4/ip_forward"), "1\n").unwrap();
        std::fs::write(d.path().join("sysctl.conf"), "net.ipv4.ip_forward = 1\n").unwrap();
        assert!(s.check().unwrap().changes.is_empty());
        // absent removes the line.
        let s = sysctl(d.path(), "net.ipv4.ip_forward", "", false);
        let c = s.check().unwrap();
        let Change::WriteFile { content, .. } = &c.changes[0] else {
            panic!("{:?}", c.changes)
        };
        assert_eq!(&content[..], b"");
    }

    #[test]
    fn values_and_stderr() {
        assert!(values_equal(
            Some("4096\t87380  6291456\n"),
            "4096 87380 6291456"
        ));
        assert!(!values_equal(None, "1"));
        assert_eq!(parse_value(Some("False".into())), "0");
        assert_eq!(parse_value(Some(" 10 ".into())), "10");
        assert!(stderr_failed(
            "sysctl: setting key \"net.x\": Invalid argument\n"
        ));
        assert!(!stderr_failed(
            "sysctl: cannot stat /proc/sys/x: No such file\n"
        ));
    }
}
