//! The `known_hosts` module: one host key in a `known_hosts` file, added, replaced or removed,
//! as ansible-core 2.19's `known_hosts.py`: the host is looked up with `ssh-keygen -F HOST -f
//! FILE` (so hashed entries, `[host]:port` and patterns match exactly as OpenSSH matches them),
//! a key of the same type for the host is replaced on its line, a new one appended; `absent`
//! without a key removes every entry of the host with `ssh-keygen -R`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::fsops::{self, Current};
use crate::resource::{
    Attrs, Change, Check, HostState, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};

pub struct KnownHostsModule;

static SPEC: ArgSpec = ArgSpec {
    module: "known_hosts",
    args: &[
        ArgDef::new("name", ArgType::Str)
            .aliases(&["host"])
            .required(),
        ArgDef::new("key", ArgType::Str),
        ArgDef::new("path", ArgType::Path),
        ArgDef::new("hash_host", ArgType::Bool),
        ArgDef::new("state", ArgType::Str).choices(&["absent", "present"]),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

fn err(msg: impl Into<String>) -> ModuleError {
    ModuleError::new(msg)
}

/// HMAC-SHA1 (RFC 2104) with a key shorter than SHA-1's 64-byte block.
fn hmac_sha1(key: &[u8; 20], msg: &[u8]) -> [u8; 20] {
    let mut block = [0u8; 64];
    block[..20].copy_from_slice(key);
    let pad = |b: u8| block.map(|k| k ^ b);
    let inner = Sha1::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha1::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// `hash_host_key`: the host field replaced by `|1|salt|HMAC-SHA1(salt, host)`.
fn hash_host_key(host: &str, key: &str) -> Result<String, ModuleError> {
    let salt: [u8; 20] = std::array::from_fn(|_| fastrand::u8(..));
    let hashed = hmac_sha1(&salt, host.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut parts: Vec<String> = key.split_whitespace().map(str::to_string).collect();
    let i = usize::from(parts.first().is_some_and(|p| p.starts_with('@')));
    let Some(field) = parts.get_mut(i) else {
        return Err(err("the key has no host field"));
    };
    *field = format!("|1|{}|{}", b64.encode(salt), b64.encode(hashed));
    Ok(parts.join(" "))
}

/// `normalize_known_hosts_key`: options, host, type, key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyLine {
    options: Option<String>,
    host: String,
    kind: String,
    key: String,
}

fn normalize(line: &str) -> Result<KeyLine, ModuleError> {
    let k: Vec<&str> = line.split_whitespace().collect();
    let get = |i: usize| {
        k.get(i)
            .map(|s| s.to_string())
            .ok_or_else(|| err(format!("not a known_hosts line: {line:?}")))
    };
    if k.first().is_some_and(|f| f.starts_with('@')) {
        Ok(KeyLine {
            options: Some(get(0)?),
            host: get(1)?,
            kind: get(2)?,
            key: get(3)?,
        })
    } else {
        Ok(KeyLine {
            options: None,
            host: get(0)?,
            kind: get(1)?,
            key: get(2)?,
        })
    }
}

/// `ssh-keygen -F HOST -f FILE`: (rc, stdout, stderr).
fn keygen_find(host: &str, file: &Path) -> Result<(i32, String, String), ModuleError> {
    let ran = crate::process::run(
        std::process::Command::new("ssh-keygen")
            .arg("-F")
            .arg(host)
            .arg("-f")
            .arg(file),
    )
    .map_err(|e| err(format!("cannot run ssh-keygen: {e}")))?;
    Ok((ran.rc, ran.stdout, ran.stderr))
}

/// `~/` at the start of a path is the agent's home, as Ansible's `type='path'`.
fn expand_home(path: &str) -> Result<PathBuf, ModuleError> {
    if path == "~" || path.starts_with("~/") {
        let home = std::env::var("HOME").map_err(|_| err("HOME is not set: cannot expand ~"))?;
        return Ok(PathBuf::from(format!("{home}{}", &path[1..])));
    }
    if path.starts_with('~') {
        return Err(err(format!("{path}: ~user paths are not supported")));
    }
    Ok(PathBuf::from(path))
}

impl Module for KnownHostsModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let name = args.str("name").unwrap_or_default();
        let host = name.to_lowercase();
        let present = args.str("state").as_deref() != Some("absent");
        let hash_host = args.bool_or("hash_host", false);
        let mut key = args.str("key").filter(|k| !k.is_empty());
        if key.is_none() && present {
            return Err(err("No key specified when adding a host"));
        }
        if let (Some(k), true) = (&key, hash_host) {
            key = Some(hash_host_key(&host, k)?);
        }
        if let Some(k) = &mut key {
            if !k.ends_with('\n') {
                k.push('\n');
            }
        }
        let path_arg = args
            .str("path")
            .unwrap_or_else(|| "~/.ssh/known_hosts".into());
        let path = expand_home(&path_arg)?;
        let params = Outcome::default()
            .with("name", name)
            .with(
                "key",
                args.str("key")
                    .map(minijinja::Value::from)
                    .unwrap_or_default(),
            )
            .with("path", path.display().to_string())
            .with("hash_host", hash_host)
            .with("state", if present { "present" } else { "absent" });
        Ok(Box::new(KnownHost {
            host,
            key,
            path,
            present,
            params,
            check_mode: ctx.check_mode,
            host_state: ctx.host.clone(),
        }))
    }
}

struct KnownHost {
    host: String,
    key: Option<String>,
    path: PathBuf,
    present: bool,
    /// The module's parameters, which Ansible returns in the result (with the path's facts:
    /// `state` becomes the file's, as `exit_json`'s `add_path_info` does).
    params: Outcome,
    /// In check mode known_hosts.py exits early with `changed` (and `diff`) only.
    check_mode: bool,
    host_state: Arc<HostState>,
}

impl KnownHost {
    /// `sanity_check`: the key's host field matches `name` (hashed or not).
    fn sanity_check(&self, key: &str) -> Result<(), ModuleError> {
        let comma = self
            .host
            .char_indices()
            .any(|(i, c)| c == ',' && !self.host[..i].trim().is_empty());
        if comma {
            return Err(err(
                "Comma separated list of names is not supported. Please pass a single name to \
                 lookup in the known_hosts file.",
            ));
        }
        let mut tmp = tempfile::NamedTempFile::new()?;
        tmp.write_all(key.as_bytes())?;
        tmp.flush()?;
        let (_, stdout, _) = keygen_find(&self.host, tmp.path())?;
        if stdout.is_empty() {
            return Err(err(
                "Host parameter does not match hashed host field in supplied key",
            ));
        }
        Ok(())
    }

    /// `search_for_host_key`: (found, replace_or_add, found_line).
    fn search(&self) -> Result<(bool, bool, Option<usize>), ModuleError> {
        if !self.path.exists() {
            return Ok((false, false, None));
        }
        let (rc, stdout, stderr) = keygen_find(&self.host, &self.path)?;
        if stdout.is_empty() && stderr.is_empty() && (rc == 0 || rc == 1) {
            return Ok((false, false, None));
        }
        if rc != 0 {
            return Err(err(format!(
                "ssh-keygen failed (rc={rc}, stdout='{stdout}',stderr='{stderr}')"
            )));
        }
        let Some(key) = &self.key else {
            return Ok((true, false, None));
        };
        let mut new_key = normalize(key)?;
        let mut found_line = None;
        for l in stdout.split('\n') {
            if l.is_empty() {
                continue;
            }
            if l.starts_with('#') {
                let n = l
                    .split_once("found: line ")
                    .and_then(|(_, r)| {
                        r.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                            .parse()
                            .ok()
                    })
                    .ok_or_else(|| {
                        err(format!(
                            "failed to parse output of ssh-keygen for line number: '{l}'"
                        ))
                    })?;
                found_line = Some(n);
                continue;
            }
            let found = normalize(l)?;
            let special = found
                .options
                .as_deref()
                .is_some_and(|o| o.starts_with("@cert-authority") || o.starts_with("@revoke"));
            if special {
                if new_key == found {
                    return Ok((true, false, found_line));
                }
                continue;
            }
            if new_key.host.starts_with("|1|") && found.host.starts_with("|1|") {
                new_key.host = found.host.clone();
            }
            if new_key == found {
                return Ok((true, false, found_line));
            }
            if new_key.kind == found.kind {
                return Ok((true, true, found_line));
            }
        }
        Ok((true, true, None))
    }
}

impl Resource for KnownHost {
    fn check(&self) -> Result<Check, ModuleError> {
        let mut out = self.params.clone();
        fsops::path_facts_at(&mut out, &self.path, self.host_state.ids());
        if let Some(k) = &self.key {
            self.sanity_check(k)?;
        }
        let (found, replace_or_add, found_line) = self.search()?;
        if !self.present && found_line.is_none() && self.key.is_some() {
            return Ok(Check::new(Vec::new(), out));
        }
        if self.check_mode {
            out = Outcome::default();
        }
        if found && self.key.is_none() && !self.present {
            let argv = vec![
                "ssh-keygen".to_string(),
                "-R".into(),
                self.host.clone(),
                "-f".into(),
                self.path.display().to_string(),
            ];
            let summary = format!("remove {} from {}", self.host, self.path.display());
            return Ok(Check::new(vec![Change::Exec { argv, summary }], out));
        }
        if !(replace_or_add || found != self.present) {
            return Ok(Check::new(Vec::new(), out));
        }
        let current = match fsops::read_current(&self.path)? {
            Current::File(_, b) => Some(b),
            Current::Absent => None,
            Current::Other(_) => {
                return Err(err(format!(
                    "{} is not a regular file",
                    self.path.display()
                )))
            }
        };
        let text = match &current {
            Some(b) => String::from_utf8(b.clone())
                .map_err(|e| err(format!("{} is not UTF-8: {e}", self.path.display())))?,
            None => String::new(),
        };
        // Read as Python's text mode does (universal newlines).
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut new = String::new();
        for (n, line) in text.split_inclusive('\n').enumerate() {
            if found_line == Some(n + 1) && (replace_or_add || !self.present) {
                continue;
            }
            new.push_str(line);
        }
        if self.present {
            new.push_str(self.key.as_deref().unwrap_or_default());
        }
        let change = Change::WriteFile {
            path: self.path.clone(),
            content: Arc::from(new.into_bytes()),
            before: current.map(Arc::from),
            attrs: Attrs::default(),
            backup: false,
            validate: None,
        };
        Ok(Check::new(vec![change], out))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        for change in &check.changes {
            match change {
                Change::Exec { .. } => {
                    change.exec()?;
                }
                other => {
                    fsops::apply(other)?;
                }
            }
        }
        let mut out = check.outcome;
        if !self.check_mode {
            fsops::path_facts_at(&mut out, &self.path, self.host_state.ids());
        }
        Ok(out)
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.path.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGatestKeyOneGatestKeyOneGatestKeyOne01";
    const KEY2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGatestKeyTwoGatestKeyTwoGatestKeyTwo02";

    #[test]
    fn hmac_matches_rfc2202() {
        // RFC 2202 test case 1 (key 0x0b * 20, "Hi There").
        let h = hmac_sha1(&[0x0b; 20], b"Hi There");
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "b617318655057264e28bc0b6fb378c8ef146be00");
    }

    #[test]
    fn add_replace_remove() {
        if std::process::Command::new("ssh-keygen")
            .arg("-?")
            .output()
            .is_err()
        {
            eprintln!("no ssh-keygen: skipped");
            return;
        }
        let h = Harness::new();
        let p = h.hs("known_hosts");
        std::fs::write(h.h("known_hosts"), "other.example ssh-rsa AAAAB3Nza\n").unwrap();
        let run = |key: &str, state: &str| {
            let mut a = vec![
                ("path", v(&p)),
                ("name", v("Git.Example")),
                ("state", v(state)),
            ];
            if !key.is_empty() {
                a.push(("key", v(&format!("git.example {key}"))));
            }
            h.run(&KnownHostsModule, &a).unwrap().0
        };
        assert!(run(KEY, "present"));
        assert!(!run(KEY, "present"));
        assert!(run(KEY2, "present"));
        assert_eq!(
            std::fs::read_to_string(h.h("known_hosts")).unwrap(),
            format!("other.example ssh-rsa AAAAB3Nza\ngit.example {KEY2}\n")
        );
        assert!(run(KEY2, "absent"));
        assert!(!run(KEY2, "absent"));
        assert_eq!(
            std::fs::read_to_string(h.h("known_hosts")).unwrap(),
            "other.example ssh-rsa AAAAB3Nza\n"
        );
        // A key for another host is refused.
        let e = h
            .run(
                &KnownHostsModule,
                &[
                    ("path", v(&p)),
                    ("name", v("a.example")),
                    ("key", v(&format!("b.example {KEY}"))),
                ],
            )
            .unwrap_err();
        assert!(e.0.contains("does not match"), "{e}");
        // hash_host: hashed, then found again (no change).
        let a = [
            ("path", v(&p)),
            ("name", v("h.example")),
            ("key", v(&format!("h.example {KEY}"))),
            ("hash_host", v("yes")),
        ];
        assert!(h.run(&KnownHostsModule, &a).unwrap().0);
        assert!(!h.run(&KnownHostsModule, &a).unwrap().0);
        assert!(std::fs::read_to_string(h.h("known_hosts"))
            .unwrap()
            .contains("\n|1|"));
    }
}
