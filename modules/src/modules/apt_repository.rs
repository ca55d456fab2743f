//! `apt_repository`: one-line APT sources (`deb [signed-by=...] URI suite components`) in
//! `/etc/apt/sources.list` and `/etc/apt/sources.list.d/*.list`, with ansible-core's meaning:
//!
//! - a source is the same as another when their whitespace-normalised lines are equal; a
//!   commented-out (`# deb ...`) copy is enabled again rather than added twice;
//! - a new source goes to `sources.list.d/<filename>.list`, the name derived from the URI as
//!   Ansible derives it (`http://ppa.launchpad.net/x/y/ubuntu` → `ppa_launchpad_net_x_y_ubuntu`)
//!   unless `filename` is given;
//! - `state: absent` removes every copy, and a file left without a source is deleted;
//! - `update_cache` (default yes) runs `apt-get update` after a change.
//!
//! Keys: name the keyring in the line (`[signed-by=/etc/apt/keyrings/x.asc]`) and put the key
//! there with `copy` (no key download here).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::fsops;
use crate::host::HostState;
use crate::mode::Mode;
use crate::process;
use crate::resource::{
    Attrs, Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, PackageOp, Resource,
};

pub struct AptRepositoryModule;

static SPEC: ArgSpec = ArgSpec {
    module: "apt_repository",
    args: &[
        ArgDef::new("repo", ArgType::Str).required(),
        ArgDef::new("state", ArgType::Str).choices(&["absent", "present"]),
        ArgDef::new("mode", ArgType::Mode),
        ArgDef::new("update_cache", ArgType::Bool).aliases(&["update-cache"]),
        ArgDef::new("update_cache_retries", ArgType::Int),
        ArgDef::new("filename", ArgType::Str),
        ArgDef::new("codename", ArgType::Str),
        ArgDef::new("validate_certs", ArgType::Bool),
        ArgDef::new("install_python_apt", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for AptRepositoryModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let repo = args.str("repo").unwrap_or_default();
        if repo.trim().starts_with("ppa:") {
            return Err(ModuleError::new(
                "PPA sources (ppa:...) are not supported: write the deb line",
            ));
        }
        let source = parse_source(&repo)
            .ok_or_else(|| ModuleError::new(format!("Invalid repository string: {repo}")))?;
        let mode = sources_file_mode(args)?;
        let filename = match args.str("filename") {
            Some(f) if f.contains('/') => {
                return Err(ModuleError::new(format!(
                    "filename must be a name, not a path: {f}"
                )))
            }
            Some(f) => f,
            None => suggest_filename(&source),
        };
        Ok(Box::new(AptRepository {
            source,
            present: args.str("state").as_deref() != Some("absent"),
            mode,
            filename: format!("{filename}.list"),
            update_cache: args.bool_or("update_cache", true),
            retries: args.int("update_cache_retries").unwrap_or(5).max(1),
            etc_apt: PathBuf::from("/etc/apt"),
            env: ctx.env.to_vec(),
            host: Arc::clone(ctx.host),
        }))
    }
}

struct AptRepository {
    /// The whitespace-normalised source line.
    source: String,
    present: bool,
    mode: u32,
    filename: String,
    update_cache: bool,
    retries: i64,
    etc_apt: PathBuf,
    env: Vec<(String, String)>,
    host: Arc<HostState>,
}

/// The `mode` of an APT sources file: an absolute mode (default 0644), as both repository
/// modules take it.
pub(crate) fn sources_file_mode(args: &Args) -> Result<u32, ModuleError> {
    match args.get("mode") {
        Some(v) => match Mode::parse(v).map_err(ModuleError::new)? {
            Mode::Octal(m) => Ok(m),
            other => Err(ModuleError::new(format!(
                "mode {other:?}: give an absolute mode such as 0644"
            ))),
        },
        None => Ok(0o644),
    }
}

/// `deb`/`deb-src` line → its normalised form, or None if it is not a source line.
fn parse_source(line: &str) -> Option<String> {
    let norm = line.split_whitespace().collect::<Vec<_>>().join(" ");
    let first = norm.split(' ').next()?;
    if first != "deb" && first != "deb-src" {
        return None;
    }
    // deb [options] uri suite [components]: at least a URI and a suite.
    let rest = norm[first.len()..].trim_start();
    let rest = if rest.starts_with('[') {
        rest.split_once(']')?.1.trim_start()
    } else {
        rest
    };
    (rest.split(' ').filter(|s| !s.is_empty()).count() >= 2).then_some(norm)
}

/// Ansible's `_suggest_filename`: the URI without scheme and credentials, non-alphanumerics as `_`.
fn suggest_filename(source: &str) -> String {
    let no_opts = regex_lite_strip_options(source);
    let part = no_opts
        .split_whitespace()
        .find(|p| *p != "deb" && *p != "deb-src")
        .unwrap_or("");
    let part = part.split_once("://").map(|(_, r)| r).unwrap_or(part);
    let part = part.rsplit_once('@').map(|(_, r)| r).unwrap_or(part);
    part.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

fn regex_lite_strip_options(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// One line of a sources file, as far as this module cares.
fn classify(line: &str) -> Option<(bool, String)> {
    let t = line.trim();
    if let Some(src) = parse_source(t) {
        return Some((true, src));
    }
    let uncommented = t.trim_start_matches('#').trim();
    if t.starts_with('#') {
        return parse_source(uncommented).map(|s| (false, s));
    }
    None
}

impl AptRepository {
    /// Every one-line sources file: `sources.list`, then `sources.list.d/*.list` by name.
    fn files(&self) -> Result<Vec<PathBuf>, ModuleError> {
        let mut files = vec![self.etc_apt.join("sources.list")];
        let dir = self.etc_apt.join("sources.list.d");
        let mut more: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "list"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(ModuleError::new(format!(
                    "cannot read {}: {e}",
                    dir.display()
                )))
            }
        };
        more.sort();
        files.extend(more);
        Ok(files)
    }

    fn read(path: &Path) -> Result<Option<String>, ModuleError> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ModuleError::new(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    fn write(path: &Path, before: &str, after: String, mode: u32) -> Change {
        Change::write_with_mode(
            path.to_path_buf(),
            after.into_bytes(),
            Some(before.as_bytes().to_vec()),
            mode,
        )
    }

    fn file_changes(&self) -> Result<Vec<Change>, ModuleError> {
        let mut changes = Vec::new();
        let mut found_enabled = false;
        let mut disabled_copies: Vec<PathBuf> = Vec::new();
        let files = self.files()?;
        let mut contents = Vec::new();
        for f in &files {
            if let Some(text) = Self::read(f)? {
                for line in text.lines() {
                    match classify(line) {
                        Some((true, s)) if s == self.source => found_enabled = true,
                        Some((false, s)) if s == self.source => disabled_copies.push(f.clone()),
                        _ => {}
                    }
                }
                contents.push((f.clone(), text));
            }
        }
        if self.present {
            if found_enabled {
                return Ok(changes);
            }
            if !disabled_copies.is_empty() {
                // Enable the commented-out copies in place, as Ansible does.
                for (f, text) in &contents {
                    if !disabled_copies.contains(f) {
                        continue;
                    }
                    let after: String = text
                        .lines()
                        .map(|l| match classify(l) {
                            Some((false, s)) if s == self.source => s,
                            _ => l.to_string(),
                        })
                        .map(|l| l + "\n")
                        .collect();
                    changes.push(Self::write(f, text, after, self.mode));
                }
                return Ok(changes);
            }
            let path = self.etc_apt.join("sources.list.d").join(&self.filename);
            let before = Self::read(&path)?;
            let mut after = before.clone().unwrap_or_default();
            if !after.is_empty() && !after.ends_with('\n') {
                after.push('\n');
            }
            after.push_str(&self.source);
            after.push('\n');
            if fsops::stat(&path.with_file_name(""))?.is_none() {
                changes.push(Change::CreateDir {
                    path: self.etc_apt.join("sources.list.d"),
                    attrs: Attrs {
                        mode: Some(0o755),
                        uid: None,
                        gid: None,
                    },
                });
            }
            changes.push(match before {
                Some(b) => Self::write(&path, &b, after, self.mode),
                None => Change::write_with_mode(path, after.into_bytes(), None, self.mode),
            });
        } else {
            for (f, text) in &contents {
                let matches = |l: &str| classify(l).is_some_and(|(_, s)| s == self.source);
                if !text.lines().any(matches) {
                    continue;
                }
                let kept: Vec<&str> = text.lines().filter(|l| !matches(l)).collect();
                let is_dropin = f.parent() == Some(&self.etc_apt.join("sources.list.d"));
                if is_dropin && !kept.iter().any(|l| classify(l).is_some()) {
                    changes.push(Change::Remove { path: f.clone() });
                } else {
                    let after: String = kept.iter().map(|l| format!("{l}\n")).collect();
                    changes.push(Self::write(f, text, after, self.mode));
                }
            }
        }
        Ok(changes)
    }

    fn outcome(&self) -> Outcome {
        Outcome::default()
            .with("repo", self.source.as_str())
            .with("state", if self.present { "present" } else { "absent" })
    }
}

impl Resource for AptRepository {
    fn check(&self) -> Result<Check, ModuleError> {
        let mut changes = self.file_changes()?;
        if !changes.is_empty() && self.update_cache {
            changes.push(Change::Package {
                op: PackageOp::UpdateCache,
                names: Vec::new(),
            });
        }
        Ok(Check::new(changes, self.outcome()))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let changes = &check.changes;
        for c in changes {
            if let Change::Package { .. } = c {
                let mut last = None;
                for _ in 0..self.retries {
                    let mut cmd = Command::new("apt-get");
                    cmd.args(["-q", "update"])
                        .env("DEBIAN_FRONTEND", "noninteractive")
                        .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    let ran = process::run(&mut cmd)?;
                    if ran.ok() {
                        last = None;
                        break;
                    }
                    last = Some(ran);
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
                self.host.invalidate_packages();
                if let Some(ran) = last {
                    let mut out = self.outcome();
                    out.failed = Some(format!("Failed to update apt cache: {}", ran.stderr.trim()));
                    out.changed = Some(true);
                    return Ok(out);
                }
            } else {
                fsops::apply(c)?;
            }
        }
        Ok(self.outcome())
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(
            self.etc_apt.join("sources.list.d").join(&self.filename),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(dir: &Path, line: &str, present: bool) -> AptRepository {
        AptRepository {
            source: parse_source(line).unwrap(),
            present,
            mode: 0o644,
            filename: format!("{}.list", suggest_filename(&parse_source(line).unwrap())),
            update_cache: false,
            retries: 1,
            etc_apt: dir.to_path_buf(),
            env: Vec::new(),
            host: Arc::new(HostState::new()),
        }
    }

    fn converge(r: &AptRepository) -> usize {
        let c = r.check().unwrap();
        let n = c.changes.len();
        r.apply(c).unwrap();
        n
    }

    #[test]
    fn filenames_as_ansible_suggests_them() {
        let s = parse_source("deb [signed-by=/k.asc arch=amd64]  http://user:pw@ppa.launchpad.net/x/y/ubuntu  jammy main").unwrap();
        assert_eq!(s, "deb [signed-by=/k.asc arch=amd64] http://user:pw@ppa.launchpad.net/x/y/ubuntu jammy main");
        assert_eq!(suggest_filename(&s), "ppa_launchpad_net_x_y_ubuntu");
        assert!(parse_source("deb http://x").is_none());
        assert!(parse_source("rpm http://x a b").is_none());
    }

    #[test]
    fn add_is_idempotent_enables_commented_copies_and_removes_everywhere() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sources.list.d")).unwrap();
        std::fs::write(
            d.path().join("sources.list"),
            "deb http://archive.example.net/debian bookworm main\n#  deb   http://example.org/repo stable main\n",
        )
        .unwrap();
        let line = "deb http://example.org/repo stable main";
        // The commented copy is enabled in place, not added again.
        assert_eq!(converge(&repo(d.path(), line, true)), 1);
        let main = std::fs::read_to_string(d.path().join("sources.list")).unwrap();
        assert!(
            main.contains("\ndeb http://example.org/repo stable main\n"),
            "{main}"
        );
        assert_eq!(converge(&repo(d.path(), line, true)), 0);

        let other = "deb [signed-by=/etc/apt/keyrings/o.asc] https://o.example/apt ./";
        assert_eq!(converge(&repo(d.path(), other, true)), 1);
        let f = d.path().join("sources.list.d/o_example_apt.list");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), format!("{other}\n"));
        assert_eq!(converge(&repo(d.path(), other, true)), 0);

        assert_eq!(converge(&repo(d.path(), other, false)), 1);
        assert!(!f.exists(), "an emptied drop-in file is removed");
        assert_eq!(converge(&repo(d.path(), line, false)), 1);
        let main = std::fs::read_to_string(d.path().join("sources.list")).unwrap();
        assert_eq!(
            main,
            "deb http://archive.example.net/debian bookworm main\n"
        );
        assert_eq!(converge(&repo(d.path(), line, false)), 0);
    }
}
