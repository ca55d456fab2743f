//! The `authorized_key` module (`ansible.posix.authorized_key`): SSH public keys in a user's
//! `authorized_keys`, with the collection's matching and ordering rules:
//!
//! - Keys are matched by their base64 blob. With `state: present` a key whose type, options
//!   or comment differ is rewritten and moves after the existing lines; a new key goes after the
//!   existing lines, several new keys in the order given. `key_options` and `comment`, when
//!   given, replace those of every key of the task.
//! - Options compare as a set of `name[=value]` (order of different names does not matter).
//! - A key without a comment is written with a trailing space (`ssh-ed25519 AAAA… `), as Ansible
//!   writes it. Duplicate lines (same blob, or identical comment/blank lines) collapse into one.
//! - `exclusive: yes` removes every other line, comments and blank lines included.
//! - Only when something is written: `~/.ssh` (or the directory of `path`) is created 0700 and
//!   set to 0700 and owned by the user (`manage_dir`), and the file is 0600 owned by the user.
//! - Keys from a URL (`key: https://…`) are not supported: the agent fetches nothing but its
//!   repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::host::HostState;

use indexmap::IndexMap;
use minijinja::Value;

use super::accounts::Etc;
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::fsops;
use crate::resource::{
    Attrs, Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};

pub struct AuthorizedKeyModule;

static SPEC: ArgSpec = ArgSpec {
    module: "authorized_key",
    args: &[
        ArgDef::new("user", ArgType::Str).required(),
        ArgDef::new("key", ArgType::Str).required(),
        ArgDef::new("path", ArgType::Path),
        ArgDef::new("manage_dir", ArgType::Bool),
        ArgDef::new("state", ArgType::Str).choices(&["present", "absent"]),
        ArgDef::new("key_options", ArgType::Str),
        ArgDef::new("exclusive", ArgType::Bool),
        ArgDef::new("comment", ArgType::Str),
        ArgDef::new("validate_certs", ArgType::Bool),
        ArgDef::new("follow", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

const KEY_TYPES: &[&str] = &[
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "ssh-ed25519",
    "ssh-dss",
    "ssh-rsa",
];

/// Key options in the order written; a name may appear more than once.
pub(crate) type Options = Vec<(String, Option<String>)>;

/// One line of an authorized_keys file as the collection parses it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Line {
    Key {
        blob: String,
        ktype: String,
        options: Options,
        comment: String,
    },
    /// A comment, blank or unparsable line, kept as it is (with its newline).
    Other(String),
}

impl Line {
    /// The identity lines are matched by: the blob, or the whole text.
    fn id(&self) -> &str {
        match self {
            Line::Key { blob, .. } => blob,
            Line::Other(text) => text,
        }
    }

    fn same(&self, other: &Line) -> bool {
        match (self, other) {
            (
                Line::Key {
                    blob: b1,
                    ktype: t1,
                    options: o1,
                    comment: c1,
                },
                Line::Key {
                    blob: b2,
                    ktype: t2,
                    options: o2,
                    comment: c2,
                },
            ) => b1 == b2 && t1 == t2 && c1 == c2 && options_eq(o1, o2),
            (a, b) => a == b,
        }
    }

    fn serialize(&self) -> String {
        match self {
            Line::Other(text) => text.clone(),
            Line::Key {
                blob,
                ktype,
                options,
                comment,
            } => {
                let mut opts = options
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={v}"),
                        None => k.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                if !opts.is_empty() {
                    opts.push(' ');
                }
                format!("{opts}{ktype} {blob} {comment}\n")
            }
        }
    }
}

/// Options as the collection's `keydict` compares them: per name, the list of values.
fn options_eq(a: &Options, b: &Options) -> bool {
    fn group(o: &Options) -> BTreeMap<&str, Vec<Option<&str>>> {
        let mut m: BTreeMap<&str, Vec<Option<&str>>> = BTreeMap::new();
        for (k, v) in o {
            m.entry(k.as_str()).or_default().push(v.as_deref());
        }
        m
    }
    group(a) == group(b)
}

/// `parseoptions`: split on commas outside double or single quotes.
pub(crate) fn parse_options(text: &str) -> Options {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE
        .get_or_init(|| regex::Regex::new(r#"(?:[^,"']|"[^"]*"|'[^']*')+"#).expect("valid regex"));
    // Python's re.split with a capturing group, minus the first and last separator: the
    // matches and the separators between them.
    let mut parts: Vec<&str> = Vec::new();
    let mut last = None;
    for m in re.find_iter(text) {
        if let Some(end) = last {
            parts.push(&text[end..m.start()]);
        }
        parts.push(m.as_str());
        last = Some(m.end());
    }
    let mut out = Vec::new();
    for part in parts {
        if let Some((k, v)) = part.split_once('=') {
            out.push((k.to_string(), Some(v.to_string())));
        } else if part != "," {
            out.push((part.to_string(), None));
        }
    }
    out
}

/// `parsekey`: `None` for a line without a known key type.
pub(crate) fn parse_key(raw: &str) -> Option<Line> {
    let raw = raw.replace("\\#", "#");
    let parts: Vec<&str> = raw
        .split([' ', '\t', '\r', '\n'])
        .filter(|p| !p.is_empty())
        .collect();
    if parts.first() == Some(&"#") {
        return Some(Line::Other(raw));
    }
    let ti = parts.iter().position(|p| KEY_TYPES.contains(p))?;
    let blob = parts.get(ti + 1)?;
    let options = if ti > 0 {
        parse_options(&parts[..ti].join(" "))
    } else {
        Vec::new()
    };
    Some(Line::Key {
        blob: blob.to_string(),
        ktype: parts[ti].to_string(),
        options,
        comment: parts[ti + 2..].join(" "),
    })
}

/// Python's `str.splitlines(keepends)` for the usual line ends.
fn split_lines(text: &str, keep_ends: bool) -> Vec<&str> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let end = match b[i] {
            b'\n' => Some(i + 1),
            b'\r' if b.get(i + 1) == Some(&b'\n') => Some(i + 2),
            b'\r' => Some(i + 1),
            _ => None,
        };
        if let Some(e) = end {
            out.push(if keep_ends {
                &text[start..e]
            } else {
                &text[start..i]
            });
            start = e;
            i = e;
        } else {
            i += 1;
        }
    }
    if start < b.len() {
        out.push(&text[start..]);
    }
    out
}

/// The file's lines by identity, each with its rank (`parsekeys`).
type Keys = IndexMap<String, (Line, usize)>;

fn parse_file(content: &str) -> Keys {
    let mut keys = Keys::new();
    for (rank, line) in split_lines(content, true).into_iter().enumerate() {
        let parsed = parse_key(line).unwrap_or_else(|| Line::Other(line.to_string()));
        keys.insert(parsed.id().to_string(), (parsed, rank));
    }
    keys
}

/// What the task asks for, independent of the host.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySpec {
    pub key: String,
    pub present: bool,
    pub exclusive: bool,
    pub key_options: Option<String>,
    pub comment: Option<String>,
}

/// `enforce_state` on the current content: the new content, or `None` when nothing changes.
pub(crate) fn enforce(spec: &KeySpec, existing: &str) -> Result<Option<String>, ModuleError> {
    let new_keys: Vec<&str> = split_lines(&spec.key, false)
        .into_iter()
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
        .collect();
    let mut keys = parse_file(existing);
    let mut write = false;
    let mut to_exist: Vec<String> = Vec::new();
    let max_rank = keys.len();
    for (rank, text) in new_keys.iter().enumerate() {
        let Some(Line::Key {
            blob,
            ktype,
            mut options,
            mut comment,
        }) = parse_key(text)
        else {
            return Err(ModuleError::new(format!("invalid key specified: {text}")));
        };
        if let Some(o) = &spec.key_options {
            options = parse_options(o);
        }
        if let Some(c) = &spec.comment {
            comment = c.clone();
        }
        let new = Line::Key {
            blob: blob.clone(),
            ktype,
            options,
            comment,
        };
        let mut matched = false;
        let mut mismatched = false;
        if let Some((old, _)) = keys.get(&blob) {
            if spec.present && !old.same(&new) {
                mismatched = true;
            } else {
                matched = true;
            }
        }
        if spec.present {
            to_exist.push(blob.clone());
            if mismatched && keys.shift_remove(&blob).is_some() {
                write = true;
            }
            if !matched {
                keys.insert(blob, (new, max_rank + rank));
                write = true;
            }
        } else if matched {
            keys.shift_remove(&blob);
            write = true;
        }
    }
    if spec.present && spec.exclusive {
        let before = keys.len();
        keys.retain(|id, _| to_exist.contains(id));
        write |= keys.len() != before;
    }
    if !write {
        return Ok(None);
    }
    let mut lines: Vec<&(Line, usize)> = keys.values().collect();
    lines.sort_by_key(|(_, rank)| *rank);
    Ok(Some(lines.iter().map(|(l, _)| l.serialize()).collect()))
}

/// Why a `key` argument is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "key: fetching keys from a URL ({0}) is not supported: put the keys in the \
         repository (e.g. with a `lookup('file', ...)`) instead"
    )]
    FromUrl(String),
    #[error("invalid key specified: {0}")]
    Invalid(String),
}

/// Refuses what the module would refuse at run time: a URL, or a line that is not a key.
pub fn check_keys(key: &str) -> Result<(), KeyError> {
    if key.starts_with("http") {
        return Err(KeyError::FromUrl(key.to_string()));
    }
    for line in split_lines(key, false) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !matches!(parse_key(line), Some(Line::Key { .. })) {
            return Err(KeyError::Invalid(line.to_string()));
        }
    }
    Ok(())
}

impl Module for AuthorizedKeyModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    /// A literal `key` that is not a key (or is a URL) is refused before anything is applied.
    fn validate(
        &self,
        args: &crate::resource::TaskArgs,
        ctx: &crate::resource::LoadContext,
    ) -> Result<(), crate::error::LoadError> {
        match args.literal_str("key") {
            Some((text, node)) => check_keys(text).map_err(|e| {
                crate::error::LoadError::at(ctx.at(node), e.to_string()).with_key("key")
            }),
            None => Ok(()),
        }
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let key = args.str("key").unwrap_or_default();
        if key.starts_with("http") {
            return Err(ModuleError::new(KeyError::FromUrl(key).to_string()));
        }
        Ok(Box::new(KeyResource {
            spec: KeySpec {
                key,
                present: args.str("state").as_deref() != Some("absent"),
                exclusive: args.bool_or("exclusive", false),
                key_options: args.str("key_options"),
                comment: args.str("comment"),
            },
            user: args.str("user").unwrap_or_default(),
            path: args.str("path").map(PathBuf::from),
            manage_dir: args.bool_or("manage_dir", true),
            follow: args.bool_or("follow", false),
            validate_certs: args.bool_or("validate_certs", true),
            check_mode: ctx.check_mode,
            etc: Etc::default(),
            host: ctx.host.clone(),
        }))
    }
}

pub(crate) struct KeyResource {
    pub spec: KeySpec,
    pub user: String,
    pub path: Option<PathBuf>,
    pub manage_dir: bool,
    pub follow: bool,
    pub validate_certs: bool,
    pub check_mode: bool,
    pub etc: Etc,
    pub host: Arc<HostState>,
}

/// Where the keys go and who owns them.
struct Target {
    /// The file read (`keyfile` in the result).
    keyfile: PathBuf,
    /// The file written (resolved with `follow`).
    write_to: PathBuf,
    sshdir: PathBuf,
    owner: Option<(u32, u32)>,
}

fn realpath(p: &Path) -> PathBuf {
    // Python's realpath resolves what exists and keeps the rest.
    if let Ok(r) = std::fs::canonicalize(p) {
        return r;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => realpath(parent).join(name),
        _ => p.to_path_buf(),
    }
}

impl KeyResource {
    fn target(&self) -> Result<Target, ModuleError> {
        let db = self.host.accounts(&self.etc)?;
        let entry = db.user(&self.user);
        let owner = entry.map(|u| (u.uid, u.gid));
        let (keyfile, sshdir) =
            match (&self.path, entry) {
                (Some(p), _) => (
                    p.clone(),
                    p.parent().map(Path::to_path_buf).unwrap_or_default(),
                ),
                (None, Some(u)) => {
                    let sshdir = Path::new(&u.home).join(".ssh");
                    (sshdir.join("authorized_keys"), sshdir)
                }
                (None, None) if self.check_mode => return Err(ModuleError::new(
                    "Either user must exist or you must provide full path to key file in check \
                     mode",
                )),
                (None, None) => return Err(self.no_user()),
            };
        if owner.is_none() && !self.check_mode {
            return Err(self.no_user());
        }
        let write_to = if self.follow {
            realpath(&keyfile)
        } else {
            keyfile.clone()
        };
        Ok(Target {
            keyfile,
            write_to,
            sshdir,
            owner,
        })
    }

    fn no_user(&self) -> ModuleError {
        ModuleError::new(format!(
            "Failed to lookup user {}: \"getpwnam(): name not found: '{}'\"",
            self.user, self.user
        ))
    }

    fn outcome(&self, keyfile: &Path) -> Outcome {
        if self.check_mode {
            // The collection exits early in check mode with `changed` only.
            return Outcome::default();
        }
        let opt = |v: &Option<String>| v.clone().map(Value::from).unwrap_or(Value::from(()));
        Outcome::default()
            .with("user", self.user.clone())
            .with("key", self.spec.key.clone())
            .with(
                "path",
                self.path
                    .as_ref()
                    .map(|p| Value::from(p.display().to_string()))
                    .unwrap_or(Value::from(())),
            )
            .with("manage_dir", self.manage_dir)
            .with(
                "state",
                if self.spec.present {
                    "present"
                } else {
                    "absent"
                },
            )
            .with("key_options", opt(&self.spec.key_options))
            .with("exclusive", self.spec.exclusive)
            .with("comment", opt(&self.spec.comment))
            .with("validate_certs", self.validate_certs)
            .with("follow", self.follow)
            .with("keyfile", keyfile.display().to_string())
    }
}

impl Resource for KeyResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let t = self.target()?;
        let before = match std::fs::metadata(&t.keyfile) {
            Ok(m) if m.is_file() => Some(std::fs::read(&t.keyfile)?),
            _ => None,
        };
        let existing = before
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let outcome = self.outcome(&t.keyfile);
        let Some(content) = enforce(&self.spec, &existing)? else {
            return Ok(Check::new(Vec::new(), outcome));
        };
        let mut changes = Vec::new();
        let (uid, gid) = match t.owner {
            Some((u, g)) => (Some(u), Some(g)),
            None => (None, None),
        };
        if self.manage_dir && !t.sshdir.as_os_str().is_empty() {
            match fsops::stat(&t.sshdir)? {
                None => {
                    let parent_ok = t
                        .sshdir
                        .parent()
                        .is_none_or(|p| p.as_os_str().is_empty() || p.is_dir());
                    if !parent_ok && !self.check_mode {
                        return Err(ModuleError::new(format!(
                            "Failed to create directory {} : [Errno 2] No such file or \
                             directory: '{}'",
                            t.sshdir.display(),
                            t.sshdir.display()
                        )));
                    }
                    changes.push(Change::CreateDir {
                        path: t.sshdir.clone(),
                        attrs: Attrs {
                            mode: Some(0o700),
                            uid,
                            gid,
                        },
                    });
                }
                Some(st) => changes.extend(fsops::attr_changes(
                    &t.sshdir,
                    &st,
                    &Attrs {
                        mode: Some(0o700),
                        uid,
                        gid,
                    },
                )),
            }
        }
        if fsops::stat(&t.write_to)?.is_none() {
            if let Some(dir) = t.write_to.parent() {
                let planned = changes
                    .iter()
                    .any(|c| matches!(c, Change::CreateDir { path, .. } if path == dir));
                if !dir.as_os_str().is_empty() && !planned && fsops::stat(dir)?.is_none() {
                    changes.push(Change::CreateDir {
                        path: dir.to_path_buf(),
                        attrs: Attrs::default(),
                    });
                }
            }
        }
        changes.push(Change::WriteFile {
            path: t.write_to.clone(),
            content: Arc::from(content.into_bytes()),
            before: before.map(Arc::from),
            attrs: Attrs {
                mode: Some(0o600),
                uid,
                gid,
            },
            backup: false,
            validate: None,
        });
        Ok(Check::new(changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        fsops::apply_all(&check.changes)?;
        // The result names the key file the check found, not what it holds.
        Ok(check.outcome)
    }

    fn owns(&self) -> Vec<Owned> {
        match self.target() {
            Ok(t) => vec![Owned::Path(t.write_to)],
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1 alice@a";
    const K2: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC2 bob@b";
    const K3: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI3";

    fn present(key: &str) -> KeySpec {
        KeySpec {
            key: key.into(),
            present: true,
            ..Default::default()
        }
    }

    #[test]
    fn parses_keys_options_and_comments() {
        assert_eq!(
            parse_key(r#"no-pty,command="echo a,b",from="10.0.0.1" ssh-ed25519 AAAA x y"#),
            Some(Line::Key {
                blob: "AAAA".into(),
                ktype: "ssh-ed25519".into(),
                options: vec![
                    ("no-pty".into(), None),
                    ("command".into(), Some("\"echo a,b\"".into())),
                    ("from".into(), Some("\"10.0.0.1\"".into())),
                ],
                comment: "x y".into(),
            })
        );
        assert_eq!(
            parse_key("# a comment\n"),
            Some(Line::Other("# a comment\n".into()))
        );
        assert_eq!(parse_key("garbage here"), None);
        assert_eq!(parse_key("ssh-rsa"), None);
        assert!(options_eq(&parse_options("a,b=1"), &parse_options("b=1,a")));
        assert!(!options_eq(&parse_options("a"), &parse_options("a,b")));
    }

    #[test]
    fn adds_after_existing_lines_and_is_idempotent() {
        let existing = format!("# keep\n{K2}\n");
        let spec = present(&format!("{K1}\n{K3}\n"));
        let new = enforce(&spec, &existing).unwrap().unwrap();
        // A key without a comment keeps Ansible's trailing space.
        assert_eq!(new, format!("# keep\n{K2}\n{K1}\n{K3} \n"));
        assert_eq!(enforce(&spec, &new).unwrap(), None);
    }

    #[test]
    fn empty_file_and_no_trailing_newline() {
        assert_eq!(
            enforce(&present(K1), "").unwrap().unwrap(),
            format!("{K1}\n")
        );
        // An existing key on a last line without newline is not rewritten.
        assert_eq!(enforce(&present(K1), K1).unwrap(), None);
    }

    #[test]
    fn options_and_comment_updates_move_the_key_last() {
        let existing = format!("{K1}\n{K2}\n");
        let mut spec = present(K1);
        spec.key_options = Some("no-pty,from=\"10.0.0.1\"".into());
        let new = enforce(&spec, &existing).unwrap().unwrap();
        assert_eq!(new, format!("{K2}\nno-pty,from=\"10.0.0.1\" {K1}\n"));
        assert_eq!(enforce(&spec, &new).unwrap(), None);
        // Same options in another order: no change.
        spec.key_options = Some("from=\"10.0.0.1\",no-pty".into());
        assert_eq!(enforce(&spec, &new).unwrap(), None);
        // A new comment replaces the old one.
        let mut spec = present(K2);
        spec.comment = Some("ops".into());
        let new = enforce(&spec, &existing).unwrap().unwrap();
        assert_eq!(
            new,
            format!("{K1}\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC2 ops\n")
        );
        // The key given without a comment: the old comment is dropped.
        let bare = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC2";
        assert_eq!(
            enforce(&present(bare), &existing).unwrap().unwrap(),
            format!("{K1}\n{bare} \n")
        );
    }

    #[test]
    fn exclusive_removes_everything_else() {
        let existing = format!("# comment\n\n{K1}\n{K2}\n");
        let mut spec = present(&format!("{K2}\n"));
        spec.exclusive = true;
        let new = enforce(&spec, &existing).unwrap().unwrap();
        assert_eq!(new, format!("{K2}\n"));
        assert_eq!(enforce(&spec, &new).unwrap(), None);
    }

    #[test]
    fn absent_removes_by_blob() {
        let existing = format!("{K1}\n{K2}\n");
        let spec = KeySpec {
            key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1 other-comment".into(),
            present: false,
            ..Default::default()
        };
        assert_eq!(
            enforce(&spec, &existing).unwrap().unwrap(),
            format!("{K2}\n")
        );
        assert_eq!(enforce(&spec, &format!("{K2}\n")).unwrap(), None);
    }

    #[test]
    fn duplicates_collapse_and_bad_keys_fail() {
        let existing = format!("{K1}\n\n\n{K1}\n{K2}\n");
        // Nothing to add, but the file is not rewritten either.
        assert_eq!(enforce(&present(K2), &existing).unwrap(), None);
        let new = enforce(&present(K3), &existing).unwrap().unwrap();
        // Ranks collide after the collapse: the new key lands between (as in Ansible).
        assert_eq!(new, format!("\n{K1}\n{K3} \n{K2}\n"));
        let e = enforce(&present("not a key"), "").unwrap_err();
        assert_eq!(e.0, "invalid key specified: not a key");
    }

    fn resource(etc: &Path, path: Option<PathBuf>, key: &str, check: bool) -> KeyResource {
        KeyResource {
            spec: present(key),
            user: "alice".into(),
            path,
            manage_dir: true,
            follow: false,
            validate_certs: true,
            check_mode: check,
            etc: Etc {
                dir: etc.to_path_buf(),
            },
            host: Arc::new(HostState::new()),
        }
    }

    #[test]
    fn check_and_apply_in_a_temp_home() {
        let t = tempfile::tempdir().unwrap();
        let etc = t.path().join("etc");
        let home = t.path().join("home/alice");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        std::fs::write(
            etc.join("passwd"),
            format!("alice:x:{uid}:{gid}::{}:/bin/sh\n", home.display()),
        )
        .unwrap();
        std::fs::write(etc.join("group"), "").unwrap();
        let r = resource(&etc, None, K1, false);
        let c = r.check().unwrap();
        let ssh = home.join(".ssh");
        assert_eq!(
            c.changes[0],
            Change::CreateDir {
                path: ssh.clone(),
                attrs: Attrs {
                    mode: Some(0o700),
                    uid: Some(uid),
                    gid: Some(gid)
                }
            }
        );
        assert!(
            matches!(&c.changes[1], Change::WriteFile { path, .. } if *path == ssh.join("authorized_keys"))
        );
        r.apply(c).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&ssh), 0o700);
        assert_eq!(mode(&ssh.join("authorized_keys")), 0o600);
        assert_eq!(
            std::fs::read_to_string(ssh.join("authorized_keys")).unwrap(),
            format!("{K1}\n")
        );
        assert!(r.check().unwrap().changes.is_empty());
        // A changed write resets the directory's mode, as Ansible does.
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let r2 = resource(&etc, None, K2, false);
        let c = r2.check().unwrap();
        assert!(c
            .changes
            .iter()
            .any(|c| matches!(c, Change::SetMode { to: 0o700, .. })));
        // Unknown user: fails, except in check mode with an explicit path.
        let mut r3 = resource(&etc, None, K2, false);
        r3.user = "nobody-here".into();
        assert!(r3
            .check()
            .unwrap_err()
            .0
            .starts_with("Failed to lookup user"));
        r3.check_mode = true;
        assert!(r3
            .check()
            .unwrap_err()
            .0
            .starts_with("Either user must exist"));
        r3.path = Some(t.path().join("x/keys"));
        assert_eq!(r3.check().unwrap().changes.len(), 2);
    }
}
